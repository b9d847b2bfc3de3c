"""The Export page's downloads. The HTML report and the weights are built only when their button is
clicked (Streamlit's deferred download runs the callable in a worker thread, without this session),
so the callables capture everything they need here, on the script thread.
"""
from __future__ import annotations

from collections.abc import Callable

from core import export
from ui import url_state
from core.deploy import tables as deploy_tables
from core.deploy import onnx_export
from core.deploy import packed as deploy_packed
from core.figures import format_bytes
from ui.cache import (Setup, _model, comparison_summary, compressed_model, dataset, deploy_artifacts, packed_weights,
                      report)


def file_stem(setup: Setup) -> str:
    """A file name that says what was compared: compression-lens_lenet5_mnist5k_prune40_magnitude_bits4."""
    t, c = setup.train, setup.compression
    weights = "_uploaded" if getattr(t, "weights", "") else ""
    return (f"compression-lens_{t.model}_{t.dataset}{weights}_prune{round(c.prune_amount * 100)}_{c.prune_method}"
            f"_bits{c.weight_bits}")


def view_link() -> str:
    """The link that reproduces this comparison (every setting in the URL), opening on the Overview."""
    return url_state.link(page="overview")


def report_file(setup: Setup, link: str) -> Callable[[], str]:
    """A callable that writes the self-contained HTML report of this comparison (about 5 MB)."""
    original, compressed = _model(setup.train), compressed_model(setup)
    rep, data = report(setup), dataset(setup.train.dataset)
    sentences = comparison_summary(setup).sentences
    settings = export.settings_rows(setup.train, setup.compression)
    note = ("Made with Compression Lens. The charts are interactive and work offline: hover for values, drag the "
            "sliders under the scrub boards.")

    def build() -> str:
        figs = export.comparison_figures(original, compressed, rep, data)
        return export.report_html("Compression Lens: original vs compressed", settings, rep, figs, link, note,
                                  summary=sentences)
    return build


def weights_file(setup: Setup) -> Callable[[], bytes]:
    """A callable that writes the compressed model's weights as safetensors, configs in the metadata."""
    compressed, data = compressed_model(setup), dataset(setup.train.dataset)
    return lambda: export.weights_safetensors(compressed, setup.train, setup.compression, data.input_shape,
                                              data.num_classes)


# ---------------------------------------------------------------- deployable files (issue 9 §1)
def _artifacts(setup: Setup):
    """A callable giving this setting's shared Artifacts (the trained model resolved here, on the script thread)."""
    original = _model(setup.train)
    return lambda: deploy_artifacts(setup, original)


def onnx_file(setup: Setup, precision: str) -> Callable[[], bytes]:
    """A callable that gives the compressed model as an ONNX file, "fp32" or "int8" (ONNX Runtime's QDQ)."""
    get = _artifacts(setup)

    def build() -> bytes:
        art = get()
        blob = art.onnx_fp32 if precision == "fp32" else art.onnx_int8
        if blob is None:
            raise ValueError(" ".join(art.notes) or "ONNX Runtime could not quantize this model to int8.")
        return blob
    return build


def onnx_codebook_file(setup: Setup) -> Callable[[], bytes]:
    """A callable giving the weight-shared model as ONNX with uint8 indices and float32 tables (Gather)."""
    get = _artifacts(setup)
    return lambda: onnx_export.onnx_codebook(get().onnx_fp32)


def onnx_config_file(setup: Setup) -> str:
    """The JSON that goes with the ONNX files: input and output names, shapes, normalization, the settings."""
    data = dataset(setup.train.dataset)
    return deploy_tables.onnx_config(setup.train, setup.compression, data.input_shape, data.num_classes, data.mean,
                                     data.std, data.classes)


def packed_file(setup: Setup) -> Callable[[], bytes]:
    """A callable that gives the packed weights file (what the Size card counts; core.deploy.packed.unpack reads it)."""
    original = _model(setup.train)
    return lambda: packed_weights(setup, original)


def packed_download(setup: Setup) -> tuple[bytes | None, str]:
    """(the packed weights file, its caption: file bytes against the Size card's), or (None, why there is none)."""
    if (refusal := deploy_packed.packable(setup.compression)) is not None:
        return None, refusal
    try:
        blob = packed_weights(setup, _model(setup.train))
    except ValueError as err:
        return None, f"The packed file could not be written for this setting: {err}"
    card, extra = report(setup).size_compressed_bytes, deploy_packed.overhead(blob)
    words = (f"**{format_bytes(len(blob))} on disk** for the **{format_bytes(round(card))}** the Size card counts: "
             f"{deploy_packed.contents(setup.compression)}; plus {format_bytes(extra)} of header (the settings and "
             "each layer's layout) and under a byte of rounding per bit stream. `core.deploy.packed.unpack` "
             "rebuilds the compressed model from it, bit for bit.")
    return blob, words

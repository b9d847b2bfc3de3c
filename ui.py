"""The one Streamlit-aware helper module: shared sidebar, URL state and every @st.cache_*.

Pages call `current_setup()` for the frozen configs chosen in the sidebar and the
cached functions below for data, models and reports. Models returned here are shared
by every session: never train, prune, hook or otherwise mutate them (core functions
copy first).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import plotly.graph_objects as go
import streamlit as st
import torch
from torch import nn

import models
from core import data as datasets
from core import figures, figures_maps, layers
from core.attribution import attribute, methods_for, saliency_agreement
from core.compression import (PRUNE_METHODS, PRUNE_SCOPES, QUANT_GRANULARITIES, QUANT_SCHEMES,
                              WEIGHT_BITS, CompressionConfig, compress)
from core.metrics import CompressionReport, Evaluation, compression_report, evaluate
from core.training import TrainConfig, TrainResult, load_or_train

# Two cores: torch's default intra-op threads oversubscribe them (10-80x slower).
torch.set_num_threads(1)


@dataclass(frozen=True)
class Setup:
    """Everything the sidebar decides: how the model was trained and how it is compressed."""

    train: TrainConfig
    compression: CompressionConfig


def train_config(model: str, dataset: str) -> TrainConfig:
    """The training recipe for a model on a data set (fewer epochs on the big sets)."""
    big = dataset in ("mnist", "fashion_mnist", "cifar10")
    return TrainConfig(model=model, dataset=dataset, epochs=3 if big else 20)


# ---------------------------------------------------------------- caches
@st.cache_resource(max_entries=5, show_spinner="Loading the data set…")
def dataset(name: str) -> datasets.Dataset:
    """Shared, read-only tensors of a data set."""
    return datasets.load_dataset(name)


class TrainingJob:
    """Loads or trains one model in a background thread, once per process, shared by all sessions.

    A thread (not a cached function) does the work, so every session that asks for the
    model while it trains can draw the same live progress bar, and thirty students
    opening the app at once start one training run, not thirty.
    """

    def __init__(self, cfg: TrainConfig, data: datasets.Dataset) -> None:
        self.cfg, self.progress = cfg, (0.0, "starting")
        self.result: TrainResult | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        threading.Thread(target=self._run, args=(data,), daemon=True, name=f"train-{cfg.key()}").start()

    def _run(self, data: datasets.Dataset) -> None:
        try:
            self.result = load_or_train(self.cfg, data, progress=self._update)
            self.result.model.requires_grad_(False)  # shared: nobody trains it (maps need input grads only)
        except BaseException as err:  # reported to the page by trained_model
            self.error = err
        finally:
            self.done.set()

    def _update(self, fraction: float, message: str) -> None:
        self.progress = (fraction, message)


@st.cache_resource(max_entries=12, show_spinner=False)
def _training_job(cfg: TrainConfig) -> TrainingJob:
    return TrainingJob(cfg, dataset(cfg.dataset))


def _model(cfg: TrainConfig) -> nn.Module:
    """The shared trained model (waits for its job; pages call trained_model first to show progress)."""
    job = _training_job(cfg)
    job.done.wait()
    if job.error is not None:
        raise job.error
    return job.result.model


def trained_model(cfg: TrainConfig) -> nn.Module:
    """The shared trained model for `cfg`, with a live progress bar while it trains."""
    job = _training_job(cfg)
    if not job.done.is_set():
        bar = st.progress(0.0, text="Loading the model…")
        name = models.describe_model(cfg.model)
        while not job.done.wait(0.25):
            fraction, message = job.progress
            bar.progress(fraction, text=f"Training {name} on {cfg.dataset} (first use only): {message}")
        bar.empty()
    if job.error is not None:
        _training_job.clear()  # let the next attempt start afresh
        st.error(f"Training failed: {job.error}")
        st.stop()
    notice = job.result.notice
    if notice and notice not in st.session_state.setdefault("_shown_notices", set()):
        st.session_state["_shown_notices"].add(notice)
        st.warning(notice, icon="⚠️")
    return job.result.model


@st.cache_resource(max_entries=48, show_spinner=False)
def compressed_model(setup: Setup) -> nn.Module:
    """The shared compressed copy of the trained model (the trained one stays untouched)."""
    return compress(_model(setup.train), setup.compression)


@st.cache_data(max_entries=12, show_spinner=False)
def original_evaluation(cfg: TrainConfig) -> Evaluation:
    data = dataset(cfg.dataset)
    return evaluate(_model(cfg), data.x_test, data.y_test)


@st.cache_data(max_entries=128, show_spinner=False)
def report(setup: Setup) -> CompressionReport:
    """Accuracy, agreement, sparsity, size and MACs of original vs compressed."""
    data = dataset(setup.train.dataset)
    return compression_report(_model(setup.train), compressed_model(setup), setup.compression,
                              data.x_test, data.y_test, original_eval=original_evaluation(setup.train))


@st.cache_data(max_entries=256, show_spinner=False)
def saliency_maps(setup: Setup, indices: tuple[int, ...], method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps (N, H, W) of the original and the compressed model for test images `indices`.

    Both maps explain the ORIGINAL model's predicted class, so they are comparable.
    """
    data = dataset(setup.train.dataset)
    original = _model(setup.train)
    x = data.x_test[list(indices)]
    target = original_evaluation(setup.train).predictions[list(indices)]
    target = torch.as_tensor(target)
    return (attribute(original, x, target, method),
            attribute(compressed_model(setup), x, target, method))


def available_methods(setup: Setup) -> list[str]:
    return methods_for(_model(setup.train))


@st.cache_data(max_entries=12, show_spinner=False)
def layer_labels(cfg: TrainConfig) -> dict[str, str]:
    return layers.layer_labels(_model(cfg))


@st.cache_data(max_entries=64, show_spinner=False)
def weight_histograms(setup: Setup) -> dict[str, go.Figure]:
    """One overlaid histogram per prunable layer, keyed by layer name."""
    original, compressed = _model(setup.train), compressed_model(setup)
    return {name: figures.weight_histogram(layers.weight_of(original, name), layers.weight_of(compressed, name),
                                           label, setup.compression.weight_bits)
            for name, label in layer_labels(setup.train).items()}


@st.cache_data(max_entries=64, show_spinner=False)
def sparsity_figure(setup: Setup) -> go.Figure:
    rep = report(setup)
    return figures.sparsity_bars(list(layer_labels(setup.train).values()),
                                 [s.sparsity for s in rep.original_layers],
                                 [s.sparsity for s in rep.compressed_layers], overall=rep.sparsity)


@st.cache_data(max_entries=64, show_spinner=False)
def weight_heatmaps(setup: Setup, layer: str) -> tuple[go.Figure, go.Figure]:
    """Heatmaps of one layer's weights in the original and the compressed model."""
    label = layer_labels(setup.train)[layer]
    original, compressed = _model(setup.train), compressed_model(setup)
    return (figures_maps.weight_heatmap(layers.weight_of(original, layer), f"{label}, original"),
            figures_maps.weight_heatmap(layers.weight_of(compressed, layer), f"{label}, compressed"))


# ---------------------------------------------------------------- shared page pieces
def chart(fig, key: str) -> None:
    """A Plotly figure with its student caption (stored by the builder) underneath."""
    st.plotly_chart(fig, key=key, config={"displaylogo": False})
    text = figures.figure_caption(fig)
    if text:
        st.caption(text)


def describe_setup(setup: Setup) -> str:
    """One line naming the model and every compression setting, for page headers."""
    c = setup.compression
    bits = "no quantization (32-bit floats)" if c.weight_bits == 32 else (
        f"{c.weight_bits}-bit {c.quant_scheme} {c.quant_granularity.replace('_', '-')} quantization")
    prune = "no pruning" if c.prune_amount == 0 else (
        f"{c.prune_amount:.0%} {c.prune_method} pruning ({c.prune_scope})")
    return (f"{SHORT_NAMES.get(setup.train.model)} on {SHORT_NAMES.get(setup.train.dataset)}: "
            f"{prune}, {bits}.")


def metric_cards(rep: CompressionReport) -> None:
    """The headline numbers, compressed vs original, as metric cards with deltas."""
    cols = st.columns(6)
    acc = rep.compressed.accuracy
    cols[0].metric("Test accuracy", f"{acc:.1%}", f"{rep.accuracy_change * 100:+.1f} pts",
                   help=f"Original: {rep.original.accuracy:.1%} on {len(rep.original.labels):,} test images.")
    cols[1].metric("Size", figures.format_bytes(rep.size_compressed_bytes),
                   f"{rep.size_compressed_bytes / rep.size_original_bytes - 1:+.0%}", delta_color="inverse",
                   help=f"Original: {figures.format_bytes(rep.size_original_bytes)} as 32-bit floats. "
                        "Compressed: non-zero weights at the chosen bits + the cheaper index (bitmask or "
                        "sparse positions) + quantization scales; biases stay 32-bit.")
    cols[2].metric("Compression ratio", figures.format_ratio(rep.compression_ratio),
                   help="Original size ÷ compressed size.")
    cols[3].metric("Sparsity", figures.format_percent(rep.sparsity),
                   help="Share of the weights of Linear and Conv layers that are exactly zero (biases not counted).")
    cols[4].metric("MACs per image", f"{rep.remaining_macs:,}", f"{figures.format_ratio(rep.theoretical_speedup)} fewer",
                   delta_color="off", help=f"Multiply-accumulates left after pruning (dense: {rep.dense_macs:,}). "
                                           "A theoretical speed-up: masks alone make nothing faster.")
    cols[5].metric("Agreement", figures.format_percent(rep.agreement),
                   help="Share of test images on which both models predict the same class.")


IMAGES_PER_VIEW = 4


def pick_images(setup: Setup, mode: str) -> tuple[list[int], str]:
    """Test-image indices chosen by index, by class, or where the two models disagree.

    Returns the indices and the message to show when there are none.
    """
    data, rep = dataset(setup.train.dataset), report(setup)
    n = len(data.y_test)
    if mode == "by index":
        first = st.number_input(f"First test image (0 to {n - 1})", 0, n - 1, key="saliency_index", step=1)
        return list(range(first, min(first + IMAGES_PER_VIEW, n))), ""
    if mode == "by class":
        label = st.selectbox("Class", range(len(data.classes)), key="saliency_class",
                             format_func=lambda c: data.classes[c])
        return [int(i) for i in (rep.original.labels == label).nonzero()[0][:IMAGES_PER_VIEW]], \
            "No test image of this class."
    disagree = (rep.original.predictions != rep.compressed.predictions).nonzero()[0]
    st.metric("Images where the predictions differ", f"{len(disagree):,} of {n:,}")
    return [int(i) for i in disagree[:IMAGES_PER_VIEW]], (
        "The two models agree on every test image at this setting: try a higher pruning rate or fewer bits.")


def saliency_panel(setup: Setup, index: int, method: str) -> None:
    """One test image: input, both maps and their difference, predictions and agreement figures."""
    data, rep = dataset(setup.train.dataset), report(setup)
    maps_o, maps_c = saliency_maps(setup, (index,), method)
    classes = data.classes
    pred_o, pred_c = rep.original.predictions[index], rep.compressed.predictions[index]
    titles = {"image": f"test image {index}: a {classes[rep.original.labels[index]]}",
              "original": f"original: {classes[pred_o]} ({rep.original.probabilities[index, pred_o]:.0%})",
              "compressed": f"compressed: {classes[pred_c]} ({rep.compressed.probabilities[index, pred_c]:.0%})"}
    agree = saliency_agreement(maps_o[0], maps_c[0])
    figure_col, numbers_col = st.columns([5, 1])
    with figure_col:
        ui_fig = figures_maps.saliency_row(data.x_test[index], maps_o[0], maps_c[0], titles)
        chart(ui_fig, key=f"saliency_{index}")
    with numbers_col:
        st.metric("Rank corr. |map|", f"{float(agree['spearman_abs']):.2f}",
                  help="Spearman correlation of the absolute maps: 1 = same pixel ranking.")
        st.metric("Rank corr. signed", f"{float(agree['spearman']):.2f}")
        st.metric("Top-10 % overlap", f"{float(agree['topk']):.0%}",
                  help="Share of the 10 % most important pixels that both maps pick.")
        st.metric("SSIM", f"{float(agree['ssim']):.2f}", help="Structural similarity of the two maps (1 = identical).")
        if bool(agree["degenerate"]):
            st.caption("One map is flat (every pixel equal), so its ranking means nothing.")


# ---------------------------------------------------------------- sidebar and URL
# Every sidebar control: session-state key == URL parameter, its choices, its default.
DEFAULTS = {"dataset": datasets.DEFAULT_DATASET, "model": "lenet5", "prune": 0, "method": "magnitude",
            "scope": "global", "bits": 32, "scheme": "symmetric", "granularity": "per_channel"}
CHOICES = {"dataset": tuple(datasets.list_datasets()), "model": tuple(models.list_models()),
           "method": PRUNE_METHODS, "scope": PRUNE_SCOPES, "bits": WEIGHT_BITS,
           "scheme": QUANT_SCHEMES, "granularity": QUANT_GRANULARITIES}
SHORT_NAMES = {"mnist5k": "MNIST, 5k digits (offline)", "digits": "Digits 8×8 (offline)",
               "mnist": "MNIST, 70k (download)", "fashion_mnist": "Fashion-MNIST (download)",
               "cifar10": "CIFAR-10 (download)", "mlp": "MLP 128-64", "lenet300": "LeNet-300-100 (MLP)",
               "lenet5": "LeNet-5 (CNN)"}
LABELS = {"magnitude": "Magnitude (smallest |w|)", "random": "Random", "structured": "Structured (whole neurons / filters)",
          "global": "Global (one threshold)", "layer": "Per layer (same rate each)",
          "symmetric": "Symmetric", "affine": "Affine (with zero point)",
          "per_channel": "Per channel", "per_tensor": "Per tensor"}


def _parse(key: str, raw: str) -> object:
    """A URL value as the control's type, clamped into range; raises ValueError if unusable."""
    if key == "prune":
        return min(100, max(0, round(float(raw))))
    value = int(raw) if key == "bits" else raw
    if key == "bits" and value not in WEIGHT_BITS:  # snap to the nearest offered bit width
        value = min(WEIGHT_BITS, key=lambda b: abs(b - value))
    if value not in CHOICES[key]:
        raise ValueError(f"choose one of {', '.join(map(str, CHOICES[key]))}")
    return value


def _restore_from_url() -> None:
    """On a session's first run, take every setting from the URL; bad values get a notice."""
    if st.session_state.get("_restored"):
        return
    st.session_state["_restored"] = True
    notices = []
    for key, default in DEFAULTS.items():
        st.session_state[key] = default
        raw = st.query_params.get(key)
        if raw is None:
            continue
        try:
            value = _parse(key, raw)
        except ValueError as err:
            notices.append(f"Ignored {key}={raw!r} from the link ({err}); using {default}.")
            continue
        if str(value) != raw:
            notices.append(f"Adjusted {key}={raw!r} from the link to {value}.")
        st.session_state[key] = value
    st.session_state["_notices"] = notices
    _check_dataset()


def _check_dataset() -> None:
    """Fall back to the default data set, with a notice, when the chosen one cannot be loaded."""
    name = st.session_state["dataset"]
    try:
        dataset(name)
    except datasets.DatasetUnavailable as err:
        st.session_state["dataset"] = datasets.DEFAULT_DATASET
        st.session_state.setdefault("_notices", []).append(
            f"{err} Showing the default data set ({datasets.DEFAULT_DATASET}) instead.")


def _sync_url() -> None:
    """Write every setting into the URL, so the address bar is a link to this exact view."""
    for key in DEFAULTS:
        value = str(st.session_state[key])
        if st.query_params.get(key) != value:
            st.query_params[key] = value


def sidebar() -> Setup:
    """Draw the shared sidebar (data set, model, every compression control); return the setup."""
    _restore_from_url()
    with st.sidebar:
        for notice in st.session_state.get("_notices", []):
            st.warning(notice, icon="⚠️")
        st.header("Model")
        st.selectbox("Data set", CHOICES["dataset"], key="dataset", on_change=_check_dataset,
                     format_func=lambda n: SHORT_NAMES.get(n, n),
                     help="  \n".join(f"**{SHORT_NAMES.get(n, n)}**: {d}" for n, d in datasets.DATASETS.items()))
        st.selectbox("Model", CHOICES["model"], key="model", format_func=lambda n: SHORT_NAMES.get(n, n),
                     help="  \n".join(f"**{SHORT_NAMES.get(n, n)}**: {models.describe_model(n)}"
                                      for n in CHOICES["model"]))
        st.header("Compression")
        st.slider("Pruning rate", 0, 100, key="prune", step=1, format="%d%%",
                  help="Share of the weights set to exactly zero.")
        st.radio("Pruning method", PRUNE_METHODS, key="method", format_func=LABELS.get)
        st.radio("Pruning scope", PRUNE_SCOPES, key="scope", format_func=LABELS.get, horizontal=True,
                 help="Global: one threshold for the whole network. Per layer: every layer loses the same share.")
        st.select_slider("Bit width", WEIGHT_BITS, key="bits",
                         format_func=lambda b: "32 (float, off)" if b == 32 else str(b),
                         help="Bits per weight after quantization; 32 means no quantization.")
        st.radio("Quantization scheme", QUANT_SCHEMES, key="scheme", format_func=LABELS.get, horizontal=True)
        st.radio("Quantization granularity", QUANT_GRANULARITIES, key="granularity", format_func=LABELS.get,
                 horizontal=True, help="One scale per output channel, or one for the whole layer.")
    _sync_url()
    state = st.session_state
    setup = Setup(
        train=train_config(state["model"], state["dataset"]),
        compression=CompressionConfig(prune_amount=state["prune"] / 100, prune_method=state["method"],
                                      prune_scope=state["scope"], weight_bits=state["bits"],
                                      quant_scheme=state["scheme"], quant_granularity=state["granularity"]),
    )
    st.session_state["_setup"] = setup
    return setup


def current_setup() -> Setup:
    """The setup the sidebar chose in this run; call it once, at the top of a page.

    app.py draws the sidebar before the page, and the page takes (pops) its setup. A page
    file that runs without app.py finds none and draws the sidebar itself: Streamlit runs a
    page alone while its legacy pages/ mode is on, which lasts from a server's start until
    some session has run app.py (a first request to /weights, say).
    """
    if "_setup" not in st.session_state:
        sidebar()
    return st.session_state.pop("_setup")

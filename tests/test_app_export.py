"""The Scrub, Export and Your model pages through AppTest: frames for every stop, the downloads, and
uploaded weights explored on every page (or refused, running nothing).

Runs through app.py like tests/test_app.py (same navigation fixture) on the default model, LeNet-5
on mnist5k, trained once into the disk cache.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import open_app, model_group
import torch
from safetensors.torch import save as safetensors_save
from streamlit.testing.v1 import AppTest

import ui
from core.compression import CompressionConfig
from core.data import load_dataset
from core.figures import format_bytes
from core.training import load_or_train

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 180




def healthy(at: AppTest, title: str) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert title in [t.value for t in at.title]


def charts(at: AppTest) -> dict[str, dict]:
    return {e.key: json.loads(e.proto.spec) for e in at.get("plotly_chart")}


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


# ---------------------------------------------------------------- scrubbing
def test_scrub_board_carries_every_stop_and_opens_at_the_sidebar_value():
    at = open_app("scrub", prune=40, bits=6)
    healthy(at, "Scrub through a setting")
    board = charts(at)["scrub_board_prune"]
    assert len(board["frames"]) == 21 and board["layout"]["sliders"][0]["active"] == 8  # 40 %
    assert "Pruning rate 40 %" in board["data"][4]["text"][0]  # the headline (a text trace: frames update it)
    assert "6-bit" in at.caption[0].value  # the other settings come from the sidebar

    at.radio(key="scrub_control").set_value("bits").run()
    healthy(at, "Scrub through a setting")
    board = charts(at)["scrub_board_bits"]
    assert len(board["frames"]) == 9 and board["layout"]["sliders"][0]["active"] == 5  # 6 bits
    assert [s["label"] for s in board["layout"]["sliders"][0]["steps"]][-1] == "32-bit (off)"


def test_scrub_controls_change_the_board():
    at = open_app("scrub")
    before = charts(at)["scrub_board_prune"]
    assert at.selectbox(key="scrub_layer").value == "7"  # the largest layer, fc 1 (120×784)
    at.selectbox(key="scrub_layer").set_value("0").run()
    at.number_input(key="scrub_index").set_value(5).run()
    healthy(at, "Scrub through a setting")
    after = charts(at)["scrub_board_prune"]
    assert "conv 1" in after["layout"]["xaxis2"]["title"]["text"]
    assert after["layout"]["images"][0]["source"] != before["layout"]["images"][0]["source"]  # another input


# ---------------------------------------------------------------- export
def test_export_page_offers_its_downloads_and_the_link():
    at = open_app("export", prune=50, bits=4)
    healthy(at, "Export this comparison")
    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    assert set(buttons) == {"HTML report", "Metrics (CSV)", "Compressed weights (safetensors)", "ONNX fp32",
                            "ONNX int8", "ONNX config (JSON)", "Packed weights"}
    stem = "compression-lens_lenet5_mnist5k_prune50_magnitude_bits4"
    assert at.code[0].value.startswith("?") and "prune=50" in at.code[0].value and "page=overview" in at.code[0].value
    table = at.dataframe[0].value
    assert table.loc[0, "scope"] == "model" and table.loc[0, "sparsity_compressed"] == pytest.approx(0.5, abs=1e-3)
    assert any(stem in c.value for c in at.code)  # the loading snippet names the file


@pytest.mark.parametrize("params, cfg, words", [
    ({"prune": 50, "share": 4}, CompressionConfig(prune_amount=0.5, share_bits=4), "4-bit indices into each layer's table"),
    ({"rank": 0.6, "bits": 4}, CompressionConfig(rank_kept=0.6, weight_bits=4), "every low-rank layer as its two factors"),
    ({"precision": "fp16"}, CompressionConfig(precision="fp16"), "fp16 weights (16 bits each)"),
    ({"bits": 4, "act_bits": 8}, CompressionConfig(weight_bits=4, act_bits=8), "8-bit activation ranges"),
    ({"plan": "conv1:p0.5b4,fc1:b2"}, CompressionConfig(layer_plan="conv1:p0.5b4,fc1:b2"),
     "per-layer plan names in its own code (conv1: 50 % pruned, 4 bits; fc1: 2 bits)")])
def test_export_page_offers_the_packed_file_of_every_family_with_its_size(params, cfg, words):
    at = open_app("export", **params)
    healthy(at, "Export this comparison")
    labels = {b.proto.label for b in at.get("download_button")}
    assert "Packed weights" in labels and ("ONNX, shared values" in labels) == ("share" in params)
    caption = next(c.value for c in at.caption if "on disk** for the" in c.value)
    assert words in caption and "the Size card counts" in caption
    setup = ui.Setup(ui.train_config("lenet5", "mnist5k"), cfg)
    blob = ui.packed_file(setup)()
    assert f"**{format_bytes(len(blob))} on disk**" in caption
    assert f"**{format_bytes(round(ui.report(setup).size_compressed_bytes))}** the Size card" in caption


def test_export_page_checks_an_uploaded_packed_file_in_words():
    at = open_app("export", prune=50, share=4)
    setup = ui.Setup(ui.train_config("lenet5", "mnist5k"), CompressionConfig(prune_amount=0.5, share_bits=4))
    blob = ui.packed_file(setup)()
    at.file_uploader(key="export_packed_file").set_value(("mine.safetensors", blob, "application/octet-stream")).run()
    healthy(at, "Export this comparison")
    assert "bit for bit" in at.success[0].value
    assert b"Gather" in ui.onnx_codebook_file(setup)()
    at.file_uploader(key="export_packed_file").set_value(("cut.safetensors", blob[:-9], "application/octet-stream")).run()
    assert not at.exception and "cannot be loaded" in at.error[0].value and "cut short" in at.error[0].value


def test_report_and_weights_builders_work_without_a_session():
    """The deferred downloads run in a worker thread: their callables must not need the script run."""
    setup = ui.Setup(ui.train_config("lenet5", "mnist5k"), CompressionConfig(prune_amount=0.5, weight_bits=4))
    html = ui.report_file(setup, "http://localhost:8501/?page=overview&prune=50")()
    assert html.count("class=\"js-plotly-plot\"") + html.count("plotly-graph-div") >= 10
    assert "prune=50" in html and "Scrub: bit width" in html
    blob = ui.weights_file(setup)()
    assert blob[8:9] == b"{" and b"compression_config" in blob


# ---------------------------------------------------------------- your own weights
@pytest.fixture(scope="module")
def always_three() -> tuple[bytes, float]:
    """LeNet-5 weights for mnist5k that answer 3 for every image, and the accuracy that gives."""
    data = load_dataset("mnist5k")
    model = load_or_train(ui.train_config("lenet5", "mnist5k"), data).model
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["11.weight"].zero_()
    state["11.bias"].zero_()
    state["11.bias"][3] = 1.0
    return safetensors_save(state, metadata={"note": "always three"}), float((data.y_test == 3).float().mean())


def _upload(at: AppTest, name: str, blob: bytes) -> AppTest:
    return at.file_uploader(key=ui.OWN_MODEL_FILE_KEY).set_value((name, blob, "application/octet-stream")).run()


def test_uploaded_weights_are_explored_on_every_page(always_three):
    blob, accuracy = always_three
    at = _upload(open_app("upload"), "three.safetensors", blob)
    healthy(at, "Bring your own model")
    assert any("Every page now explores your weights" in s.value for s in at.success)
    assert f"{accuracy * 100:.1f} %" in at.success[0].value

    at.switch_page("pages/overview.py").run()
    healthy(at, "Original vs compressed")
    assert any("your uploaded weights" in i.value for i in at.info)
    assert metric(at, "Test accuracy") == f"{accuracy * 100:.1f} %"
    at.slider(key="prune").set_value(30).run()  # compressing it keeps the constant answer
    assert metric(at, "Agreement") == "100 %"

    at.switch_page("pages/upload.py").run()
    at.toggle(key="own_model_use").set_value(False).run()
    at.switch_page("pages/overview.py").run()
    healthy(at, "Original vs compressed")
    assert not any("your uploaded weights" in i.value for i in at.info)
    assert float(metric(at, "Test accuracy").split()[0]) > 90  # the built-in model again


def test_weights_for_another_architecture_switch_the_sidebar(tmp_path):
    torch.manual_seed(0)
    import models
    state = models.create_model("mlp", (1, 28, 28), 10).state_dict()
    at = _upload(open_app("upload"), "mlp.pt", _torch_bytes(state))
    healthy(at, "Bring your own model")
    assert model_group(at).selectbox(key="model").value == "mlp"
    next(b for b in at.button if b.label == "Forget my weights").click().run()
    healthy(at, "Bring your own model")
    assert any("No weights uploaded" in i.value for i in at.info)


def _torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class WritesAFile:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def test_bad_uploads_are_refused_and_run_nothing(tmp_path, always_three):
    target = tmp_path / "pwned.txt"
    at = _upload(open_app("upload"), "evil.pt", _torch_bytes({"0.weight": WritesAFile(str(target))}))
    assert not target.exists()
    assert [e.value for e in at.error] and "evil.pt" in at.error[0].value and "refused" in at.error[0].value
    assert any("No weights uploaded" in i.value for i in at.info)

    wrong = {k: v for k, v in load_or_train(ui.train_config("lenet5", "mnist5k")).model.state_dict().items()}
    wrong["0.weight"] = torch.zeros(6, 1, 3, 3)
    at = _upload(at, "wrong.safetensors", safetensors_save(wrong))
    assert "0.weight is (6, 1, 3, 3), expected (6, 1, 5, 5)" in at.error[0].value
    at = _upload(at, "noise.safetensors", bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)))
    assert "neither a safetensors file" in at.error[0].value
    at = _upload(at, "three.safetensors", always_three[0])  # a good file after bad ones clears the message
    assert not at.error and at.success

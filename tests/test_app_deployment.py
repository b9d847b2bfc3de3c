"""The Deployment page through AppTest: both models exported and timed in a background job, the tables and
the sentence from that measurement (no timing is asserted), and the Export page's deployable downloads.
"""
from __future__ import annotations

import io
import json

import numpy as np
import onnxruntime as ort
import pytest
from conftest import open_app

import ui
from core.compression import CompressionConfig
from core.data import load_dataset
from core.deploy import packed

TITLE = "What it really costs"


def healthy(at, title: str) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert title in [t.value for t in at.title]


def test_deployment_page_shows_measured_beside_theory():
    at = open_app("deployment", prune=50, method="structured", scope="layer")
    healthy(at, TITLE)
    assert "Cutting out 50 % of the units" in at.info[0].value
    costs, timing, ratios, checks = (d.value for d in at.table)
    assert list(costs["Model"]) == ["Original", "Compressed"]
    assert costs.loc[0, "Parameters"] == "107,786" and costs.loc[1, "Parameters"] == "27,258"
    assert len(timing) == 6 and set(timing["Batch"]) == {1, 256}
    assert all("ms (IQR" in cell for cell in timing["Compressed"])
    ratios = ratios.set_index("What")["Measured"]
    assert ratios["MACs"].startswith("3.4×")  # 693,000 / 202,860 MACs as it runs
    assert ratios["Size, ONNX fp32 files"].startswith("3.7×")  # 432,727 / 117,010 bytes
    assert list(checks["Runtime"]) == ["ONNX Runtime fp32", "ONNX Runtime int8"]
    assert checks.loc[0, "Same answer as the simulation"] == "100 % of 1,000"


def test_a_mask_says_so_and_the_page_measures_again():
    at = open_app("deployment", prune=80, bits=4)
    healthy(at, TITLE)
    assert at.info[0].value.startswith("A mask removes nothing: 80 % of the weights are zero")
    assert any("only a mask" in w.value for w in at.warning)
    assert any("4-bit weights have no ONNX Runtime kernel" in w.value for w in at.warning)
    before = at.table[1].value
    at.button(key="deployment_again").click().run()
    healthy(at, TITLE)
    assert list(at.table[1].value["Runtime"]) == list(before["Runtime"])  # measured again, same layout


@pytest.mark.parametrize("params, words", [({"act_bits": 4, "bits": 4}, "4-bit activations are simulated"),
                                           ({"precision": "bf16"}, "no bf16 kernels"),
                                           ({"share": 3, "prune": 50}, "Weight sharing has no ONNX Runtime kernel")])
def test_families_without_a_kernel_are_exported_and_say_so(params, words):
    at = open_app("deployment", **params)
    healthy(at, TITLE)
    assert any(words in w.value for w in at.warning)
    costs = at.table[0].value
    assert "could not be made" not in str(costs.loc[1, "Packed weights file"])  # a packed file for every family


def test_export_page_offers_the_deployable_files():
    at = open_app("export", prune=50, bits=4)
    healthy(at, "Export this comparison")
    labels = {b.proto.label for b in at.get("download_button")}
    assert {"ONNX fp32", "ONNX int8", "ONNX config (JSON)", "Packed weights"} <= labels


def test_deployable_downloads_work_without_a_session():
    setup = ui.Setup(ui.train_config("lenet5", "mnist5k"), CompressionConfig(prune_amount=0.5, weight_bits=4))
    data = load_dataset("mnist5k")
    for precision in ("fp32", "int8"):
        sess = ort.InferenceSession(ui.onnx_file(setup, precision)(), providers=["CPUExecutionProvider"])
        logits = sess.run(["y"], {"x": data.x_test[:64].numpy()})[0]
        assert logits.shape == (64, 10) and (logits.argmax(1) == data.y_test[:64].numpy()).mean() > 0.9
    config = json.loads(ui.onnx_config_file(setup))
    assert config["input"]["name"] == "x" and config["compression_config"]["weight_bits"] == 4
    model, cfg, _ = packed.unpack(ui.packed_file(setup)())
    assert cfg == setup.compression
    report = ui.report(setup)
    blob = ui.packed_file(setup)()
    assert 0 <= len(blob) - packed.overhead(blob) - report.size_compressed_bytes < 2 * 5


def test_extreme_settings_are_measured_without_error():
    at = open_app("deployment", prune=100, bits=1)
    healthy(at, TITLE)
    text = " ".join(str(t.value.to_string()) for t in at.table)
    assert "nan" not in text.lower() and "inf" not in text.lower()
    assert at.info[0].value.startswith("A mask removes nothing: 100 % of the weights are zero")

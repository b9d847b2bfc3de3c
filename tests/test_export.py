"""core.export: the CSV matches the report, the weights round-trip, the HTML report works offline in Chromium."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load as safetensors_load

import models
from core import export
from core.compression import CompressionConfig, compress, set_calibration
from core.data import Dataset
from core.metrics import compression_report, layer_table
from core.training import TrainConfig
from core.upload import load_upload

SHAPE, K = (1, 8, 8), 10
LINK = "http://localhost:8501/?page=overview&prune=60&bits=4&x=<b>"


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    original = models.create_model("lenet5", SHAPE, K).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(30, *SHAPE, generator=g), torch.randint(0, K, (30,), generator=g)
    data = Dataset(name="tiny", classes=tuple(str(i) for i in range(K)), input_shape=SHAPE, x_train=x, y_train=y,
                   x_test=x, y_test=y)
    set_calibration(original, x)  # as every trained model has (the activation scrub calibrates on them)
    cfg = CompressionConfig(prune_amount=0.6, weight_bits=4)
    compressed = compress(original, cfg)
    report = compression_report(original, compressed, cfg, x, y)
    return original, compressed, report, data, TrainConfig(model="lenet5", dataset="digits"), cfg


def test_csv_parses_and_matches_the_report(setting):
    _, _, report, _, _, _ = setting
    frame = pd.read_csv(io.StringIO(export.metrics_csv(report)))
    model, layers = frame.iloc[0], frame.iloc[1:].reset_index(drop=True)
    assert model["scope"] == "model" and (layers["scope"] == "layer").all()
    assert model["accuracy_original"] == report.original.accuracy
    assert model["accuracy_compressed"] == report.compressed.accuracy
    assert model["agreement"] == report.agreement and model["sparsity_compressed"] == report.sparsity
    assert model["size_compressed_bytes"] == report.size_compressed_bytes
    assert model["compression_ratio"] == pytest.approx(report.compression_ratio, rel=1e-15)
    assert model["remaining_macs"] == report.remaining_macs and model["params"] == report.prunable_params
    expected = layer_table(report)
    for column in expected.columns:
        got, want = layers[column].to_numpy(), expected[column].to_numpy()
        if want.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=1e-15)
        else:
            assert [str(v) for v in got] == [str(v) for v in want], column
    assert layers[list(export.HEADLINE_COLUMNS)].isna().all().all()


def test_inf_ratio_survives_the_csv(setting):
    original, _, _, data, _, _ = setting
    cfg = CompressionConfig(prune_amount=1.0)
    everything = compress(original, cfg)
    report = compression_report(original, everything, cfg, data.x_test, data.y_test)
    frame = pd.read_csv(io.StringIO(export.metrics_csv(report)))
    assert frame.loc[0, "theoretical_speedup"] == float("inf") and frame.loc[0, "sparsity_compressed"] == 1.0


def test_safetensors_round_trip_into_the_same_architecture(setting, tmp_path):
    _, compressed, _, _, train, cfg = setting
    before = {k: v.clone() for k, v in compressed.state_dict().items()}
    blob = export.weights_safetensors(compressed, train, cfg, SHAPE, K)
    assert all(torch.equal(before[k], v) for k, v in compressed.state_dict().items())
    state = safetensors_load(blob)
    rebuilt = models.create_model(train.model, SHAPE, K)
    rebuilt.load_state_dict(state, strict=True)
    assert all(torch.equal(rebuilt.state_dict()[k], before[k]) for k in before)
    path = Path(tmp_path / "w.safetensors")
    path.write_bytes(blob)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert set(meta) == set(export.METADATA_KEYS) and meta["format"] == export.FORMAT
    assert TrainConfig(**json.loads(meta["train_config"])) == train
    assert CompressionConfig(**json.loads(meta["compression_config"])) == cfg
    assert json.loads(meta["input_shape"]) == list(SHAPE) and meta["num_classes"] == str(K)
    # and the app's own upload path accepts it
    upload = load_upload(blob, "w.safetensors", "digits", SHAPE, K, models.list_models(), "mlp")
    assert upload.architecture == "lenet5" and upload.metadata == meta


def _html(setting, figures=None) -> str:
    original, compressed, report, data, train, cfg = setting
    figs = figures if figures is not None else export.comparison_figures(original, compressed, report, data,
                                                                         images=(0, 1))
    return export.report_html("Report <test>", export.settings_rows(train, cfg), report, figs, LINK, note="a & b")


def test_report_html_is_escaped_and_inlines_plotly_once(setting):
    html = _html(setting, figures=[])
    assert html.startswith("<!DOCTYPE html>") and html.count("<script>") == 1
    assert "Report &lt;test&gt;" in html and "a &amp; b" in html and "x=&lt;b&gt;" in html and "<b>" not in html
    assert "<script src" not in html and "<link" not in html  # nothing to fetch (the browser test checks it)
    assert "compression: prune_amount" in html and "layer by layer" in html.lower()
    assert "alert(1)" not in export.report_html("t", {}, setting[2], [], link="javascript:alert(1)")


def test_comparison_figures_leave_the_models_untouched(setting):
    original, compressed, report, data, _, _ = setting
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in (original, compressed)]
    figs = export.comparison_figures(original, compressed, report, data, images=(0,))
    headings = [h for h, _ in figs]
    assert headings[:2] == ["Accuracy per class", "Sparsity per layer"] and len(headings) == 2 + 5 + 1 + 2
    assert headings[-2:] == ["Scrub: pruning rate", "Scrub: bit width"] and figs[-1][1].frames
    for m, state in zip((original, compressed), before):
        assert all(torch.equal(state[k], v) for k, v in m.state_dict().items())


@pytest.mark.browser
def test_report_opens_offline_in_chromium_with_every_figure(setting, tmp_path, browser):
    """The report, opened from disk with the network cut, draws every figure and requests only data: URIs."""
    original, compressed, report, data, _, _ = setting
    figs = export.comparison_figures(original, compressed, report, data, images=(0, 1))
    path = tmp_path / "report.html"
    path.write_text(_html(setting, figs), encoding="utf-8")
    context = browser.new_context(offline=True, viewport={"width": 1300, "height": 900})
    try:
        page = context.new_page()
        requests, errors = [], []
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {len(figs)}",
                               timeout=30_000)
        drawn = page.evaluate("document.querySelectorAll('.js-plotly-plot').length")
        frames = page.evaluate("[...document.querySelectorAll('.js-plotly-plot')].map(g => "
                               "(g._transitionData && g._transitionData._frames || []).length)")
    finally:
        context.close()
    assert drawn == len(figs) and not errors
    assert frames[-2:] == [21, 9]  # the scrub boards kept their frames
    others = [u for u in requests if not u.startswith("data:") and u != path.as_uri()]
    assert others == [], others


def test_a_shared_setting_adds_its_own_scrub_board(setting):
    original, _, _, data, _, _ = setting
    cfg = CompressionConfig(prune_amount=0.6, share_bits=3, act_bits=8)
    compressed = compress(original, cfg)
    report = compression_report(original, compressed, cfg, data.x_test, data.y_test)
    headings = [h for h, _ in export.comparison_figures(original, compressed, report, data, images=(0,))]
    assert headings[-4:] == ["Scrub: pruning rate", "Scrub: bit width", "Scrub: shared values per layer",
                             "Scrub: activation bits"]  # the main sliders first, then the families in use

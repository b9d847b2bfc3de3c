"""core.studies.scrub and core.figures.scrub: every stop measured on copies, frames that carry only what changes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import models
from core.figures import scrub as fs
from core.studies import scrub
from core.compression import CompressionConfig
from core.metrics import evaluate

SHAPE, K = (1, 8, 8), 10


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return models.create_model("mlp", SHAPE, K).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(40, *SHAPE, generator=g), torch.randint(0, K, (40,), generator=g)


@pytest.fixture(scope="module")
def prune_series(model, data):
    return scrub.scrub_series(model, CompressionConfig(prune_amount=0.37, weight_bits=8), "prune", *data)


@pytest.fixture(scope="module")
def prune_maps(model, data):
    return scrub.scrub_maps(model, CompressionConfig(), "prune", data[0][3], "saliency")


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}, model.training, [
        p.requires_grad for p in model.parameters()]


def test_stops_and_configs():
    assert scrub.stops("prune") == tuple(range(0, 101, 5)) and len(scrub.stops("prune")) == 21
    assert scrub.stops("bits") == (1, 2, 3, 4, 5, 6, 7, 8, 32)
    base = CompressionConfig(prune_amount=0.37, weight_bits=4, prune_method="random")
    assert scrub.stop_config(base, "prune", 45) == CompressionConfig(prune_amount=0.45, weight_bits=4,
                                                                       prune_method="random")
    assert scrub.stop_config(base, "bits", 32).weight_bits == 32 and base.weight_bits == 4
    assert scrub.neutral(base, "prune").prune_amount == 0.0 and scrub.neutral(base, "bits").weight_bits == 1
    assert scrub.neutral(base, "prune") == scrub.neutral(CompressionConfig(prune_amount=0.9, weight_bits=4,
                                                                           prune_method="random"), "prune")
    assert scrub.nearest_stop(base, "prune") == 7      # 37 % -> 35 %
    assert scrub.nearest_stop(base, "bits") == 3       # 4 bits
    assert scrub.stop_label("prune", 45) == "45 %" and scrub.stop_label("bits", 32) == "32-bit (off)"
    with pytest.raises(ValueError, match="unknown control"):
        scrub.stops("epochs")
    with pytest.raises(ValueError, match="not a stop"):
        scrub.stop_config(base, "prune", 37)


def test_series_measures_every_stop(model, data, prune_series):
    s = prune_series
    assert s.stops == scrub.PRUNE_STOPS and s.base.prune_amount == 0.0 and s.base.weight_bits == 8
    for array in (s.accuracy, s.size_bytes, s.ratio, s.sparsity, s.agreement):
        assert array.shape == (21,)
    assert s.original_accuracy == evaluate(model, *data).accuracy
    assert s.sparsity[-1] == 1.0 and s.sparsity[0] < 0.05   # 8-bit rounding may zero a few tiny weights
    assert np.all(np.diff(s.size_bytes) <= 0)                # magnitude pruning only ever removes weights
    assert s.original_size_bytes == 4 * sum(p.numel() for p in model.parameters())


def test_series_histograms_add_up_and_share_their_bins(model, prune_series):
    hist = prune_series.histograms["5"]                       # the 10x64 output layer
    assert list(prune_series.histograms) == ["1", "3", "5"]
    assert hist.counts.shape == (21, len(hist.edges) - 1) and hist.original.shape == (len(hist.edges) - 1,)
    np.testing.assert_allclose(hist.counts.sum(axis=1) + hist.zeros, 100.0)
    assert hist.original.sum() + hist.zeros_original == pytest.approx(100.0)
    assert hist.zeros_original == 0.0 and hist.zeros[-1] == 100.0
    assert np.all(np.diff(hist.zeros) >= 0)                   # the spike at zero only grows


def test_bit_series_ends_at_the_original(model, data):
    before = _snapshot(model)
    s = scrub.scrub_series(model, CompressionConfig(), "bits", *data)
    assert s.stops == scrub.BIT_STOPS and s.accuracy[-1] == s.original_accuracy and s.agreement[-1] == 1.0
    assert s.ratio[-1] == 1.0 and np.all(s.ratio[:-1] > 1.0)
    after = _snapshot(model)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0]) and before[1:] == after[1:]


def test_maps_at_every_stop(model, data, prune_maps):
    m = prune_maps
    image = data[0][3]
    assert m.maps.shape == (21, 8, 8) and m.original.shape == (8, 8) and m.probabilities.shape == (21, K)
    with torch.no_grad():
        assert m.target == int(model(image[None]).argmax())
    assert m.rank.shape == (21,) and m.rank[0] == 1.0        # stop 0 is the original itself
    np.testing.assert_array_equal(m.maps[0], m.original)
    np.testing.assert_allclose(m.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(m.maps[-1] == 0)  # everything pruned: the output no longer depends on the pixels


def test_maps_leave_model_and_image_untouched(model, data):
    image = data[0][5].clone()
    before = _snapshot(model)
    scrub.scrub_maps(model, CompressionConfig(), "bits", image, "integrated_gradients")
    assert torch.equal(image, data[0][5])
    after = _snapshot(model)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0]) and before[1:] == after[1:]


def _board(series, maps, data, active=4):
    return fs.scrub_figure(series, maps, "5", "fc 3 (10×64)", data[0][3], [str(c) for c in range(K)], active=active)


def test_board_frames_carry_every_trace_but_only_the_changing_data(prune_series, prune_maps, data):
    fig = _board(prune_series, prune_maps, data)
    assert [f.name for f in fig.frames] == [str(s) for s in scrub.PRUNE_STOPS]
    # redraw=False plays only animatable traces, and drops any trace a frame leaves out
    assert {t.type for t in fig.data} == {"scatter"}
    for frame in fig.frames:
        assert list(frame.traces) == list(range(len(fig.data)))
        for n, entry in enumerate(frame.data):
            fields = set(entry.to_plotly_json()) - {"type"}
            assert bool(fields) == (n in fs.ANIMATED), (frame.name, n, fields)
    size = len(fig.to_json())
    assert size < 250_000, size


def test_board_slider_animates_immediately_and_opens_at_active(prune_series, prune_maps, data):
    fig = _board(prune_series, prune_maps, data, active=4)
    slider = fig.layout.sliders[0]
    assert slider.active == 4 and len(slider.steps) == 21 and slider.steps[4].label == "20 %"
    method, (names, options) = slider.steps[4].method, slider.steps[4].args
    assert method == "animate" and list(names) == ["20"]
    assert options == {"mode": "immediate", "frame": {"duration": 0, "redraw": False}, "transition": {"duration": 0}}
    # the figure as sent shows the same state as its frame "20"
    for n in fs.ANIMATED:
        sent, framed = fig.data[n].to_plotly_json(), fig.frames[4].data[n].to_plotly_json()
        for key, value in framed.items():
            got = sent[key]
            if key == "marker":
                got = {k: got[k] for k in value}
            assert np.array_equal(np.asarray(got, dtype=object), np.asarray(value, dtype=object)) \
                if isinstance(value, (list, tuple)) else got == value, (n, key)
    assert "Pruning rate 20 %" in fig.data[4].text[0]
    json.loads(fig.to_json())  # serializable as Streamlit sends it


def test_board_pictures_are_static_layout_images(prune_series, prune_maps, data):
    fig = _board(prune_series, prune_maps, data)
    assert len(fig.layout.images) == 2 and all(i.source.startswith("data:image/png;base64,") for i in fig.layout.images)
    assert len(fig.data[9].x) == 64 and fig.data[9].marker.coloraxis == "coloraxis"  # 8x8 map, one marker a pixel


def test_board_refuses_mismatched_inputs(prune_series, prune_maps, model, data):
    bit_maps = scrub.scrub_maps(model, CompressionConfig(), "bits", data[0][3], "saliency")
    with pytest.raises(ValueError, match="9 stops, the series 21"):
        _board(prune_series, bit_maps, data)
    with pytest.raises(ValueError, match="active must index a stop"):
        _board(prune_series, prune_maps, data, active=21)


def test_large_maps_are_drawn_in_blocks_but_scored_on_every_pixel():
    torch.manual_seed(0)
    model = models.create_model("mlp", (1, 28, 28), K).eval()
    x, y = torch.randn(12, 1, 28, 28), torch.arange(12) % K
    series = scrub.scrub_series(model, CompressionConfig(), "bits", x, y)
    maps = scrub.scrub_maps(model, CompressionConfig(), "bits", x[0], "saliency")
    assert maps.maps.shape == (9, 28, 28)  # the numbers keep every pixel
    fig = fs.scrub_figure(series, maps, "1", "fc 1", x[0], [str(c) for c in range(K)])
    assert len(fig.data[9].x) == 14 * 14  # 2x2 blocks on the board: 196 markers redraw per frame, not 784
    block = fig.data[9].marker.color[0]  # block (0, 0) at stop 0 (1 bit), where the board opens
    first = maps.maps[0][:2, :2].mean() / np.abs(fs._pooled(maps.maps[0])).max()
    assert block == pytest.approx(first, abs=1e-3)
    np.testing.assert_array_equal(fs._pooled(np.ones((8, 8))), np.ones((8, 8)))  # small maps stay as they are

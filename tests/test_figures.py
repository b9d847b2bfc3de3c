"""Figure builders: trace counts, hand-computed payloads, captions, sizes, inputs unchanged."""
import base64
import io
import math
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from PIL import Image

from core import figures as F
from core import figures_maps as M

ROOT = Path(__file__).resolve().parents[1]


def _png(fig: go.Figure) -> Image.Image:
    """The weight picture of a weight_heatmap figure, decoded to RGB."""
    source = fig.data[0].source
    assert source.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).convert("RGB")


def _no_nan(values) -> bool:
    return not np.isnan(np.asarray(values, dtype=float)).any()


# ---------------------------------------------------------------- formatting helpers

@pytest.mark.parametrize("n, text", [(0, "0 B"), (512, "512 B"), (999, "999 B"), (1000, "1.0 kB"),
                                     (12_345, "12.3 kB"), (999_960, "1.0 MB"), (4_200_000, "4.2 MB")])
def test_format_bytes(n, text):
    assert F.format_bytes(n) == text


def test_format_bytes_rejects_negative():
    with pytest.raises(ValueError):
        F.format_bytes(-1)


@pytest.mark.parametrize("x, text", [(4.24, "4.2×"), (1.0, "1.0×"), (120.4, "120×"), (math.inf, "∞"),
                                     (math.nan, "n/a")])
def test_format_ratio(x, text):
    assert F.format_ratio(x) == text


@pytest.mark.parametrize("x, text", [(0.0, "0 %"), (0.8, "80 %"), (1.0, "100 %"), (0.005, "0.5 %"),
                                     (0.9996, "99.9 %"), (1e-6, "<0.1 %"), (0.5, "50 %")])
def test_format_percent(x, text):
    assert F.format_percent(x) == text


# ---------------------------------------------------------------- captions

def test_every_caption_says_what_to_look_for():
    for name, text in F.CAPTIONS.items():
        assert isinstance(text, str) and len(text) > 40, name
        assert "look" in text.lower(), name


def test_caption_appends_facts():
    text = F.caption("weight_heatmap", zeros="62 %")
    assert text.startswith(F.CAPTIONS["weight_heatmap"]) and "62 % of this layer" in text


# ---------------------------------------------------------------- per-class accuracy

def test_per_class_accuracy_bars_in_percent_and_worst_class():
    orig, comp = np.array([0.9, 0.8, 1.0]), np.array([0.9, 0.5, 1.0])
    kept = orig.copy(), comp.copy()
    fig = F.per_class_accuracy(["a", "b", "c"], orig, comp)
    assert len(fig.data) == 2 and [t.name for t in fig.data] == ["original", "compressed"]
    assert np.allclose(fig.data[0].y, [90, 80, 100]) and np.allclose(fig.data[1].y, [90, 50, 100])
    assert list(fig.data[1].text) == ["", "−30", ""]
    assert tuple(fig.layout.yaxis.range) == (0, 100)
    assert fig.layout.yaxis.title.text == "accuracy (%)" and fig.layout.xaxis.title.text == "class"
    assert fig.data[0].marker.color == F.ORIGINAL_COLOR and fig.data[1].marker.color == F.COMPRESSED_COLOR
    assert "class b, from 80 % to 50 %" in F.figure_caption(fig)
    assert np.array_equal(orig, kept[0]) and np.array_equal(comp, kept[1])


def test_per_class_accuracy_rejects_percentages_and_length_mismatch():
    with pytest.raises(ValueError, match="fractions"):
        F.per_class_accuracy(["a"], np.array([97.0]), np.array([95.0]))
    with pytest.raises(ValueError):
        F.per_class_accuracy(["a", "b"], np.array([0.9]), np.array([0.9]))


# ---------------------------------------------------------------- weight histogram

def test_weight_histogram_ternary_draws_exact_levels_and_zero_share():
    original = torch.tensor([[-0.9, -0.5, -0.1, 0.05], [0.2, 0.4, 0.6, 0.8]])
    compressed = torch.tensor([[-0.8, 0.0, 0.0, 0.0], [0.0, 0.8, 0.8, 0.8]])   # 2 levels, 4 of 8 zero
    kept = original.clone(), compressed.clone()
    fig = F.weight_histogram(original, compressed, "0", 2)
    assert len(fig.data) == 2
    stems = fig.data[1]
    assert np.allclose(stems.x, [-0.8, 0.8]) and np.allclose(stems.y, [12.5, 37.5])   # % of 8 weights
    assert "2 levels" in stems.name
    note = fig.layout.annotations[0].text
    assert "exact zeros (not drawn): 0 % original, 50 % compressed" in note
    assert math.isclose(sum(fig.data[0].y), 100.0)                 # the original has no zeros
    assert "50 % of the compressed layer's weights are exactly zero" in F.figure_caption(fig)
    assert "2-bit" in fig.layout.title.text and fig.layout.xaxis.title.text == "weight value"
    assert torch.equal(original, kept[0]) and torch.equal(compressed, kept[1])


def test_weight_histogram_many_values_share_bin_edges():
    g = torch.Generator().manual_seed(0)
    original = torch.randn(50, 40, generator=g)
    compressed = torch.where(original.abs() > 0.5, original, torch.zeros(()))
    fig = F.weight_histogram(original, compressed, "3", 32)
    a, b = fig.data
    assert len(a.x) == len(b.x) == F.HIST_BINS and np.allclose(a.x, b.x) and np.allclose(a.width, b.width)
    zeros = float((compressed == 0).double().mean())
    assert math.isclose(sum(b.y) + 100 * zeros, 100.0)
    assert _no_nan(a.y) and _no_nan(b.y)
    assert "32-bit float" in fig.layout.title.text
    assert a.name == "original" and b.name == f"compressed: {int((compressed != 0).sum()):,} distinct values"


def test_weight_histogram_all_zero_still_renders():
    original = torch.tensor([1.0, -2.0, 3.0, 0.5])
    fig = F.weight_histogram(original, torch.zeros(4), "7", 1)
    assert len(fig.data) == 2 and len(fig.data[1].x) == 0
    assert "all weights are zero" in fig.layout.annotations[0].text
    assert "100 % compressed" in fig.layout.annotations[0].text
    fig.to_json()
    both = F.weight_histogram(torch.zeros(3), torch.zeros(3), "7", 1)
    assert both.layout.annotations[0].text.count("all weights are zero") == 2
    both.to_json()


# ---------------------------------------------------------------- sparsity bars

def test_sparsity_bars_percent_and_overall_line():
    fig = F.sparsity_bars(["0", "2"], [0.0, 0.0], [0.82, 0.59], overall=0.8)
    assert len(fig.data) == 3 and np.allclose(fig.data[1].y, [82, 59])   # original, compressed, overall key
    assert list(fig.data[1].text) == ["82 %", "59 %"] and list(fig.data[1].x) == ["layer 0", "layer 2"]
    (line,) = fig.layout.shapes
    assert line.y0 == line.y1 == pytest.approx(80.0) and line.line.dash == "dash"
    assert fig.data[2].name == "all layers, compressed: 80 %" and fig.data[2].line.dash == "dash"
    assert "The most pruned is layer 0: 82 %" in F.figure_caption(fig)
    without = F.sparsity_bars(["0"], [0.0], [0.5])
    assert len(without.data) == 2 and not without.layout.shapes


def test_sparsity_bars_rejects_percentages():
    with pytest.raises(ValueError, match="fractions"):
        F.sparsity_bars(["0"], [0.0], [80.0])


# ---------------------------------------------------------------- weight heatmap

def test_filter_grid_shape_and_gaps():
    w = np.arange(2 * 3 * 5 * 5, dtype=float).reshape(2, 3, 5, 5)
    grid = M.filter_grid(w)
    assert grid.shape == (2 * 6 - 1, 3 * 6 - 1)
    assert np.isnan(grid[5, :]).all() and np.isnan(grid[:, 5]).all()
    assert np.array_equal(grid[6:11, 12:17], w[1, 2])                 # filter 1, input channel 2


def test_weight_heatmap_linear_pixels_mark_pruned_in_black():
    w = torch.tensor([[0.5, 0.0, -0.5, 0.1], [0.0, 0.0, 1.0, -1.0], [0.2, -0.2, 0.0, 0.3]])
    kept = w.clone()
    fig = M.weight_heatmap(w, "0")
    assert len(fig.data) == 3 and isinstance(fig.data[0], go.Image)
    picture = _png(fig)
    assert picture.size == (4, 3)                                    # width = inputs, height = outputs
    assert picture.getpixel((1, 0)) == M.PRUNED_RGB and picture.getpixel((2, 2)) == M.PRUNED_RGB
    assert picture.getpixel((3, 0)) != M.PRUNED_RGB                  # a small kept weight is not black
    assert fig.layout.xaxis.title.text == "input feature" and fig.layout.yaxis.title.text == "output neuron"
    assert fig.layout.title.text == "layer 0 (3×4): weights, 33 % pruned"   # 4 of 12 are zero
    assert "33 % of this layer's weights are exactly zero" in F.figure_caption(fig)
    assert fig.data[1].marker.cmin == -1.0 and fig.data[1].marker.cmax == 1.0
    assert torch.equal(w, kept)


def test_weight_heatmap_conv_grid_shape():
    w = torch.ones(4, 3, 5, 5)
    w[1, 2] = 0.0                                                    # one pruned filter slice
    fig = M.weight_heatmap(w, "3")
    picture = _png(fig)
    assert picture.size == (3 * 6 - 1, 4 * 6 - 1)                   # (width, height) of the filter grid
    assert picture.getpixel((5, 0)) == M.GAP_RGB                     # the blank column between tiles
    assert picture.getpixel((12, 6)) == M.PRUNED_RGB                 # filter 1, input channel 2
    assert fig.layout.yaxis.title.text == "output channel (filter)"
    assert list(fig.layout.xaxis.ticktext) == ["0", "1", "2"]
    labelled = M.weight_heatmap(w, "conv 2 (4×3×5×5), compressed")           # the label already has the shape
    assert labelled.layout.title.text.startswith("conv 2 (4×3×5×5), compressed: weights")


def test_layer_title_prefixes_bare_indices_only():
    assert F.layer_title("3") == "layer 3" and F.layer_title("fc 1 (120×784)") == "fc 1 (120×784)"


def test_weight_heatmap_300x784_stays_light():
    w = torch.randn(300, 784, generator=torch.Generator().manual_seed(0)) * 0.05
    size = len(M.weight_heatmap(w, "0").to_json())
    assert size < 300_000, size


def test_weight_heatmap_rejects_other_shapes():
    with pytest.raises(ValueError):
        M.weight_heatmap(torch.ones(5), "bias")


# ---------------------------------------------------------------- saliency row

def test_saliency_row_shared_scale_and_difference():
    image = torch.rand(1, 6, 6, generator=torch.Generator().manual_seed(1))
    a, b = torch.zeros(6, 6), torch.zeros(6, 6)
    a[2, 3], b[2, 3], b[0, 0] = 2.0, 1.0, 0.5                         # non-negative maps, max 2
    kept = image.clone(), a.clone(), b.clone()
    fig = M.saliency_row(image, a, b, titles={"original": "original: 7 (99 %)"})
    assert len(fig.data) == 4 and isinstance(fig.data[0], go.Image)
    assert fig.data[0].z.shape == (6, 6, 3)
    assert fig.data[1].coloraxis == fig.data[2].coloraxis == "coloraxis"
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0.0, 2.0)
    assert (fig.layout.coloraxis2.cmin, fig.layout.coloraxis2.cmax) == (-2.0, 2.0)
    assert np.allclose(fig.data[3].z, (b - a).numpy())
    titles = [ann.text for ann in fig.layout.annotations]
    assert titles == ["input", "original: 7 (99 %)", "compressed", "compressed − original"]
    assert fig.layout.xaxis2.scaleanchor == "y2" and fig.layout.height <= 300
    assert "largest change is 50 %" in F.figure_caption(fig)
    for before, after in zip(kept, (image, a, b)):
        assert torch.equal(before, after)


def test_saliency_row_signed_maps_are_symmetric_and_rgb_input_scaled():
    g = torch.Generator().manual_seed(2)
    fig = M.saliency_row(torch.randn(3, 5, 5, generator=g), torch.randn(5, 5, generator=g),
                         torch.randn(5, 5, generator=g))
    axis = fig.layout.coloraxis
    assert axis.cmin == -axis.cmax and axis.colorscale == fig.layout.coloraxis2.colorscale
    rgb = fig.data[0].z
    assert rgb.min() == 0 and rgb.max() == 255


def test_saliency_row_constant_maps_render():
    fig = M.saliency_row(torch.zeros(4, 4), torch.zeros(4, 4), torch.zeros(4, 4))
    assert fig.layout.coloraxis.cmax == 1.0                          # no zero-width colour range
    fig.to_json()


def test_saliency_row_rejects_mismatched_maps():
    with pytest.raises(ValueError):
        M.saliency_row(torch.zeros(4, 4), torch.zeros(4, 4), torch.zeros(3, 3))


# ---------------------------------------------------------------- house rules

def test_figure_modules_never_import_streamlit():
    for name in ("figures.py", "figures_maps.py"):
        assert "streamlit" not in (ROOT / "core" / name).read_text()

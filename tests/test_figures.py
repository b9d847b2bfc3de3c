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
from core.figures import maps as M

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
    text = F.caption("weight_heatmap", zeros="62 %", unused="none")
    assert text.startswith(F.CAPTIONS["weight_heatmap"]) and "62 % of this layer" in text
    assert F.caption("weight_heatmap") == F.CAPTIONS["weight_heatmap"]          # the general text alone


def test_figure_meta_keeps_caption_and_facts_apart():
    meta = F.figure_meta("saliency_row", change="12 %")
    assert meta["facts"] == "The largest change is 12 % of the maps' maximum."
    assert meta["caption"] == f"{F.CAPTIONS['saliency_row']} {meta['facts']}"
    assert F.figure_facts(go.Figure()) == "" and F.figure_caption(go.Figure()) == ""


def test_every_builder_stores_caption_and_facts():
    w = torch.tensor([[0.5, 0.0], [0.25, -0.5]])
    figs = [F.per_class_accuracy(["a"], np.array([0.9]), np.array([0.8])),
            F.weight_histogram(w, w, "0", 32), F.sparsity_bars(["0"], [0.0], [0.25]),
            M.weight_heatmap(w, "0"), M.saliency_row(torch.rand(4, 4), torch.rand(4, 4), torch.rand(4, 4))]
    for fig in figs:
        facts, text = F.figure_facts(fig), F.figure_caption(fig)
        assert facts and text.endswith(facts) and len(text) > len(facts) + 40


def test_house_layout_merges_extra_dicts_and_keeps_the_white_look():
    layout = F.house_layout("t", "x", "y", margin=dict(t=130), barmode="group")
    assert layout["margin"] == dict(l=80, r=30, t=130, b=70) and layout["barmode"] == "group"
    fig = F.style(go.Figure(), "t", "x", "y")
    assert fig.layout.template.layout.plot_bgcolor == "white" and fig.layout.font.size == F.FONT_SIZE
    assert fig.layout.title.text == "t" and fig.layout.xaxis.title.text == "x"


# ---------------------------------------------------------------- per-class accuracy

def test_per_class_accuracy_bars_in_percent_and_worst_class():
    orig, comp = np.array([0.9, 0.8, 1.0]), np.array([0.9, 0.5, 1.0])
    kept = orig.copy(), comp.copy()
    fig = F.per_class_accuracy(["a", "b", "c"], orig, comp)
    assert len(fig.data) == 2 and [t.name for t in fig.data] == ["original", "compressed"]
    assert np.allclose(fig.data[0].y, [90, 80, 100]) and np.allclose(fig.data[1].y, [90, 50, 100])
    assert list(fig.data[1].text) == ["", "−30", ""]
    assert fig.layout.yaxis.range[0] == 0 and fig.layout.yaxis.tickvals[-1] == 100 < fig.layout.yaxis.range[1] < 110
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
    outline, stems = fig.data
    assert isinstance(outline, go.Scatter) and outline.line.shape == "hv" and outline.fill is None
    assert isinstance(stems, go.Bar) and stems.marker.color == F.COMPRESSED_COLOR
    assert np.allclose(stems.x, [-0.8, 0.8]) and np.allclose(stems.y, [12.5, 37.5])   # % of 8 weights
    assert "2 levels" in stems.name
    note = fig.layout.annotations[0].text
    assert "exact zeros, not drawn:<br>0 % original · 50 % compressed" in note
    assert math.isclose(sum(outline.y), 100.0)                     # the original has no zeros
    assert F.figure_facts(fig) == ("50 % of the compressed layer's weights are exactly zero (original: 0 %); "
                                   "the others take 2 distinct values.")
    assert F.figure_caption(fig).endswith(F.figure_facts(fig))
    assert fig.layout.title.text == "layer 0 · 2-bit" and fig.layout.xaxis.title.text == "weight value"
    assert torch.equal(original, kept[0]) and torch.equal(compressed, kept[1])


def test_weight_histogram_outline_closes_on_the_axis_at_the_bin_edges():
    original = torch.tensor([0.0, 1.0, 1.0, 2.0, 3.0, 4.0])        # one zero, five values over [1, 4]
    outline = F.weight_histogram(original, original, "0", 32).data[0]
    edges = np.linspace(1.0, 4.0, F.MIN_HIST_BINS + 1)             # sqrt(5) bins, clamped up to 15
    assert np.allclose(outline.x, np.concatenate([[1.0], edges])) and outline.y[0] == outline.y[-1] == 0
    assert math.isclose(outline.y[1], 100 * 2 / 6) and math.isclose(sum(outline.y), 100 * 5 / 6)
    assert np.allclose(outline.customdata[1:-1], np.stack([edges[:-1], edges[1:]], axis=1))   # hover: bin ends


@pytest.mark.parametrize("n, bins", [(150, 15), (2_400, 49), (94_080, 80)])
def test_hist_edges_square_root_rule_clamped(n, bins):
    values = np.random.default_rng(0).normal(size=n)
    assert F.hist_edges(values, values[: n // 5]).size == bins + 1


def test_weight_histogram_many_values_share_bin_edges():
    g = torch.Generator().manual_seed(0)
    original = torch.randn(50, 40, generator=g)
    compressed = torch.where(original.abs() > 0.5, original, torch.zeros(()))
    fig = F.weight_histogram(original, compressed, "3", 32)
    a, b = fig.data
    bins = math.ceil(math.sqrt(2000))                               # 45: the square-root rule on 2,000 weights
    assert len(a.x) == bins + 2 and len(b.x) == bins and np.allclose(a.x[2:], b.x + b.width / 2)
    zeros = float((compressed == 0).double().mean())
    assert math.isclose(sum(b.y) + 100 * zeros, 100.0)
    assert _no_nan(a.y) and _no_nan(b.y)
    assert fig.layout.title.text == "layer 3 · 32-bit"
    assert a.name == "original" and b.name == f"compressed: {int((compressed != 0).sum()):,} distinct values"


def test_weight_histogram_titles_fit_half_a_page():
    w = torch.ones(120, 784)
    for label in ("conv 2 (16×6×5×5)", "fc 1 (300×784)", "fc 1 (120×1024)"):
        for bits in (1, 4, 8, 32):
            title = F.weight_histogram(w, w, label, bits).layout.title.text
            assert "<br>" not in title and len(title) <= F.TITLE_CHARS  # one line, even on a phone


def test_weight_histogram_all_zero_still_renders():
    original = torch.tensor([1.0, -2.0, 3.0, 0.5])
    fig = F.weight_histogram(original, torch.zeros(4), "7", 1)
    assert len(fig.data) == 2 and len(fig.data[1].x) == 0
    assert "all weights are zero" in fig.layout.annotations[0].text
    assert "100 % compressed" in fig.layout.annotations[0].text
    assert "no weights remain" in F.figure_facts(fig)
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
    assert F.figure_facts(fig) == "The most pruned is layer 0: 82 % of its weights are zero."
    labelled = F.sparsity_bars(["conv 1 (6×1×5×5)"], [0.0], [0.5])
    assert list(labelled.data[0].x) == ["conv 1<br>(6×1×5×5)"] and "conv 1 (6×1×5×5): 50 %" in F.figure_facts(labelled)
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
    assert fig.layout.title.text == "layer 0 (3×4) · 33 % pruned"   # 4 of 12 are zero
    assert F.figure_facts(fig) == ("33 % of this layer's weights are exactly zero; every one of its output "
                                   "neurons and inputs keeps at least one weight.")
    assert fig.data[1].marker.cmin == -1.0 and fig.data[1].marker.cmax == 1.0
    assert torch.equal(w, kept)


def test_weight_heatmap_conv_grid_puts_filters_along_x():
    w = torch.ones(4, 3, 5, 5)
    w[1, 2] = 0.0                                                    # one pruned filter slice
    fig = M.weight_heatmap(w, "3")
    picture = _png(fig)
    assert picture.size == (4 * 6 - 1, 3 * 6 - 1)                   # (width, height): filters across, inputs down
    assert picture.getpixel((5, 0)) == M.GAP_RGB                     # the blank column between tiles
    assert picture.getpixel((6, 12)) == M.PRUNED_RGB                 # filter 1 (x), input channel 2 (y)
    assert picture.getpixel((0, 12)) != M.PRUNED_RGB
    assert fig.layout.xaxis.title.text == "output channel (filter)" and fig.layout.yaxis.title.text == "input channel"
    assert list(fig.layout.xaxis.ticktext) == ["0", "1", "2", "3"] and list(fig.layout.yaxis.ticktext) == ["0", "1", "2"]
    assert "0 of 4 filters and 0 of 3 input channels" not in F.figure_facts(fig)
    labelled = M.weight_heatmap(w, "conv 2 (4×3×5×5), compressed")           # the label already has the shape
    assert labelled.layout.title.text == "conv 2 (4×3×5×5), compressed<br>8 % pruned"   # 25 of 300 zero


def test_weight_heatmap_facts_count_units_without_weights():
    w = torch.ones(3, 4)
    w[1] = 0.0                                                       # output neuron 1 lost everything
    w[:, 3] = 0.0                                                    # input 3 is used by nobody
    facts = F.figure_facts(M.weight_heatmap(w, "0"))
    assert facts.startswith("50 % of this layer's weights are exactly zero; ")
    assert "1 of 3 output neurons and 1 of 4 inputs have no weight left" in facts
    conv = torch.ones(4, 2, 3, 3)
    conv[:, 1] = 0.0                                                 # input channel 1 unused
    assert "0 of 4 filters and 1 of 2 input channels" in F.figure_facts(M.weight_heatmap(conv, "0"))


def test_layer_title_prefixes_bare_indices_only():
    assert F.layer_title("3") == "layer 3" and F.layer_title("fc 1 (120×784)") == "fc 1 (120×784)"


@pytest.mark.parametrize("rows", [300, 120])
def test_weight_heatmap_784_inputs_stays_light(rows):
    w = torch.randn(rows, 784, generator=torch.Generator().manual_seed(0)) * 0.05
    fig = M.weight_heatmap(w, "0")
    size = len(fig.to_json())
    assert size < 300_000, size
    assert 280 <= fig.layout.height <= 760


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
    assert [(t.xaxis, t.yaxis) for t in fig.data[1:]] == [("x2", "y2"), ("x3", "y3"), ("x4", "y4")]
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0.0, 2.0)
    assert (fig.layout.coloraxis2.cmin, fig.layout.coloraxis2.cmax) == (-2.0, 2.0)
    assert np.allclose(fig.data[3].z, (b - a).numpy())
    titles = [ann.text for ann in fig.layout.annotations]
    assert titles == ["input", "original: 7 (99 %)", "compressed", "compressed<br>− original"]
    assert fig.layout.xaxis2.scaleanchor == "y2" and fig.layout.height <= 300
    assert F.figure_facts(fig) == "The largest change is 50 % of the maps' maximum."
    for before, after in zip(kept, (image, a, b)):
        assert torch.equal(before, after)


def _bar_span(colorbar) -> tuple[float, float]:
    assert colorbar.xanchor == "center"
    return colorbar.x - colorbar.len / 2, colorbar.x + colorbar.len / 2


@pytest.mark.parametrize("signed", [False, True])
def test_saliency_row_layout_keeps_panels_titles_and_colour_bars_apart(signed):
    maps = torch.rand(2, 5, 5, generator=torch.Generator().manual_seed(3)) - (0.5 if signed else 0.0)
    layout = M.saliency_row(torch.rand(5, 5), maps[0], maps[1]).layout
    domains = [tuple(layout[f"xaxis{s}"].domain) for s in ("", "2", "3", "4")]
    assert domains == M.saliency_domains()
    for (_, end), (start, _) in zip(domains, domains[1:]):
        assert end < start                                           # slots never touch
    # Which slots each shown bar serves: the maps' scale under panels 2-3 and the difference's under
    # panel 4, or (signed maps) one shared scale under panels 2-4.
    served = [(layout.coloraxis2.colorbar, (1, 3))] if signed else [
        (layout.coloraxis.colorbar, (1, 2)), (layout.coloraxis2.colorbar, (3, 3))]
    assert layout.coloraxis.showscale is (not signed)
    for bar, (first, last) in served:
        # Horizontal bars hang below the plot area (every panel spans y 0..1), in the bottom margin.
        assert bar.orientation == "h" and bar.yanchor == "top" and bar.y < 0
        assert layout.margin.b >= bar.thickness + 2 * F.FONT_SIZE
        low, high = _bar_span(bar)
        assert domains[first][0] <= low < high <= domains[last][1]
    for i, axis in enumerate(("y", "y2", "y3", "y4")):
        assert layout[axis.replace("y", "yaxis")].domain == (0.0, 1.0)
        assert layout.annotations[i].yref == f"{axis} domain" and layout.annotations[i].yanchor == "bottom"
    assert layout.margin.t >= 2 * F.FONT_SIZE + 8                   # room for two-line titles


def test_saliency_row_constant_maps_render():
    fig = M.saliency_row(torch.zeros(4, 4), torch.zeros(4, 4), torch.zeros(4, 4))
    assert fig.layout.coloraxis.cmax == 1.0                          # no zero-width colour range
    fig.to_json()


def test_saliency_row_rejects_mismatched_maps():
    with pytest.raises(ValueError):
        M.saliency_row(torch.zeros(4, 4), torch.zeros(4, 4), torch.zeros(3, 3))


# ---------------------------------------------------------------- house rules

def test_figure_modules_never_import_streamlit():
    for path in (ROOT / "core" / "figures").glob("*.py"):
        text = path.read_text()
        assert "import streamlit" not in text and "from streamlit" not in text, path


# ---------------------------------------------------------------- trade-off curves: what is offered, chance
def _gain_summary(metric: str) -> "pd.DataFrame":
    import pandas as pd
    rows = [{"curve": "sparsity", "baseline": name, "fine_tuned": False, "matches_sidebar": name == "random",
             "prune_amount": a, "weight_bits": 32, metric: gain}
            for name, top in (("global magnitude", 0.4), ("random", 0.2)) for a, gain in ((0.0, top), (0.9, top / 2))]
    rows.append({"curve": "reference", "baseline": "uncompressed", "fine_tuned": False, "matches_sidebar": False,
                 "prune_amount": 0.0, "weight_bits": 32, metric: 0.4})
    return pd.DataFrame(rows)


def test_infidelity_gain_is_offered_only_for_signed_maps():
    from core.figures import tradeoff as T
    from core.explain.attribution import METHODS, is_signed
    for method in METHODS:
        offered = T.metrics_for(method)
        assert ("infidelity_gain" in offered) == is_signed(method), method
        assert {"accuracy", "deletion_gain", "insertion_gain"} <= set(offered)
    assert T.metrics_for("integrated_gradients") == list(T.METRICS)


@pytest.mark.parametrize("metric", ["deletion_gain", "insertion_gain", "infidelity_gain"])
def test_gain_curves_draw_chance_at_zero_and_say_so(metric):
    from core.figures import tradeoff as T
    fig = T.tradeoff_curves(_gain_summary(metric), metric=metric)
    chance = [s for s in fig.layout.shapes if s.y0 == s.y1 == 0.0]
    assert len(chance) == 1 and chance[0].line.width == 1  # thin, under the curves
    assert [a.text for a in fig.layout.annotations if a.text == "chance"] == ["chance"]
    assert fig.layout.yaxis.rangemode == "tozero"  # in view though every curve is above it
    assert "The thin grey line at 0 is chance" in fig.layout.meta["caption"]
    assert ("random maps score" in fig.layout.meta["caption"]) == (metric == "infidelity_gain")


def test_other_curves_have_no_chance_line():
    from core.figures import tradeoff as T
    fig = T.tradeoff_curves(_gain_summary("accuracy"), metric="accuracy")
    assert not [s for s in fig.layout.shapes if s.y0 == s.y1 == 0.0]
    assert "chance" not in fig.layout.meta["caption"]

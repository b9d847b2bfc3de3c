"""Plotly figures that compare the original and the compressed model, plus their captions.

Every builder takes plain inputs (tensors, numpy arrays, sequences), copies what it
reads, returns a `plotly.graph_objects.Figure` and never calls Streamlit. Each figure
carries a one-or-two-sentence caption for students in `fig.layout.meta["caption"]`
(read it with `figure_caption(fig)`) and, in `meta["facts"]`, only its chart-specific sentence
(`figure_facts(fig)`), for pages that show the general `caption(name)` once above several charts.
Fractions come in as 0..1 and are shown in %. The weight and saliency maps live in `core.figures.maps`.

Speed: these builders run on every slider move. Each figure is made by one `go.Figure(data, layout)`
call with a prebuilt layout dict (every `update_layout` call validates again), and the look comes
from the small `TEMPLATE` below rather than `template="plotly_white"`, which plotly deep-copies and
validates for every figure (5-10 ms each, and ~6 kB more JSON to pickle and send).
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch

# Blue/orange is the colorblind-safe pair of Tableau 10; used for every original/compressed chart.
ORIGINAL_COLOR = "#1f77b4"
COMPRESSED_COLOR = "#ff7f0e"
DIVERGING = "RdBu_r"        # signed maps: blue negative, white zero, red positive
SEQUENTIAL = "Viridis"      # non-negative maps
OVERALL_COLOR = "#444444"   # reference lines (overall sparsity)
FONT_SIZE = 16              # readable on a classroom projector
MAX_LEVELS = 64             # up to this many distinct values, draw quantization levels as stems
HIST_BINS = 80              # at most this many histogram bins ...
MIN_HIST_BINS = 15          # ... and at least this many (the square-root rule picks in between)
# 0-100 % axes run a little past 100 so that a label above a full bar stays clear of the legend.
_PERCENT_AXIS = dict(range=[0, 109], tickvals=[0, 20, 40, 60, 80, 100])
# Plotly shrinks labels that are wider than their bar; one fixed size reads better from the back row.
_BAR_TEXT = dict(textfont_size=FONT_SIZE - 2, constraintext="none")
_GRID = "#e6e9ef"
_AXIS = dict(gridcolor=_GRID, linecolor=_GRID, zerolinecolor=_GRID, zerolinewidth=1, automargin=True)
# The parts of plotly_white these charts show (white background, light grid, a zero line no louder than the
# grid, plotly's colours for traces that set none), as a plain dict: validated in ~0.5 ms, not 5-10 ms.
TEMPLATE = dict(layout=dict(
    # x tick labels a little below the axis: at the corner, the first one stays clear of the y axis' lowest.
    paper_bgcolor="white", plot_bgcolor="white", xaxis=dict(_AXIS, ticklabelstandoff=6), yaxis=_AXIS,
    coloraxis_colorbar_outlinewidth=0,
    colorway=["#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880", "#FF97FF",
              "#FECB52"]))
TEXT_COLOR = "#2a3f5f"

CAPTIONS: dict[str, str] = {
    "per_class_accuracy": (
        "Each pair of bars is one class: blue is the original model, orange the compressed one. "
        "Look for orange bars much shorter than their blue neighbour; the number above marks the change in points."),
    "weight_histogram": (
        "How often each weight value occurs in a layer: the blue outline is the original, the orange bars the "
        "compressed layer; exact zeros are left out and counted above the chart. Look for the gap around zero "
        "that pruning leaves and, at low bit widths, the few orange stems: every remaining weight is rounded "
        "to one of those values."),
    "sparsity_bars": (
        "Each group is one layer; bar height is the share of its weights that are exactly zero. "
        "Look at the orange bars: a taller one means more of that layer's weights were removed."),
    "weight_heatmap": (
        "Each pixel is one weight: red is positive, blue negative, black is pruned (exactly zero). "
        "Look for black rows or columns: whole neurons or inputs the compressed layer no longer uses."),
    "saliency_row": (
        "The maps colour the pixels the prediction is most sensitive to; both models share one colour scale. "
        "Look at the last panel: it shows where the compressed model's explanation differs from the original's."),
}
_FACTS: dict[str, str] = {
    "per_class_accuracy": "{worst}",
    "weight_histogram": "{zeros} of the compressed layer's weights are exactly zero (original: {zeros_original}); "
                        "{levels}.",
    "sparsity_bars": "The most pruned is {layer}: {sparsity} of its weights are zero.",
    "weight_heatmap": "{zeros} of this layer's weights are exactly zero; {unused}.",
    "saliency_row": "The largest change is {change} of the maps' maximum.",
}


def caption(name: str, **facts: object) -> str:
    """The student-facing caption of figure `name`, with its computed facts appended when given."""
    text = CAPTIONS[name]
    return f"{text} {_FACTS[name].format(**facts)}" if facts else text


def figure_meta(name: str, **facts: object) -> dict[str, str]:
    """`layout.meta` for figure `name`: the full "caption" and, alone, the chart-specific "facts"."""
    return {"caption": caption(name, **facts), "facts": _FACTS[name].format(**facts)}


def _meta_text(fig: go.Figure, key: str) -> str:
    meta = fig.layout.meta
    return meta.get(key, "") if isinstance(meta, dict) else ""


def figure_caption(fig: go.Figure) -> str:
    """The caption a builder stored in `fig.layout.meta["caption"]` ("" when none)."""
    return _meta_text(fig, "caption")


def figure_facts(fig: go.Figure) -> str:
    """Only the chart-specific sentence of the caption, `fig.layout.meta["facts"]` ("" when none)."""
    return _meta_text(fig, "facts")


def format_percent(fraction: float) -> str:
    """A fraction as a percentage for people: 0.8 -> "80 %", 0.005 -> "0.5 %", 0.9996 -> "99.9 %"."""
    p = 100.0 * float(fraction)
    if math.isnan(p):
        return "n/a"
    text = f"{p:.0f}" if round(p) not in (0, 100) or p in (0.0, 100.0) else f"{p:.1f}"
    # Never round a partial count up to "100" or down to "0": that would claim all or none.
    if text in ("100", "100.0") and p < 100.0:
        text = "99.9"
    if text in ("0", "0.0") and p > 0.0:
        text = "<0.1"
    return f"{text} %"


def format_bytes(n: int) -> str:
    """A byte count in decimal units: 512 -> "512 B", 12_345 -> "12.3 kB", 4_200_000 -> "4.2 MB"."""
    if n < 0:
        raise ValueError(f"a size cannot be negative, got {n}")
    if n < 1000:
        return f"{int(n)} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000.0
        if round(value, 1) < 1000.0 or unit == "TB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def format_ratio(x: float) -> str:
    """A compression ratio or speed-up: 4.24 -> "4.2×", 120.4 -> "120×", inf -> "∞", nan -> "n/a"."""
    x = float(x)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "∞"
    return f"{x:.1f}×" if x < 100 else f"{x:.0f}×"


def _signed(x: float, decimals: int) -> str:
    """A change with an explicit sign and a true minus sign: -12 -> "−12", 3 -> "+3"."""
    return f"{x:+.{decimals}f}".replace("-", "\u2212")


def layer_title(name: str) -> str:
    """How a layer is named on charts: a bare nn.Sequential index "3" becomes "layer 3"; labels stay."""
    return f"layer {name}" if str(name).isdigit() else str(name)


def as_array(x: object) -> np.ndarray:
    """A float64 numpy copy of a tensor or array-like, so the caller's data is never touched."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.array(x, dtype=np.float64)


def finite_weights(x: object, what: str) -> np.ndarray:
    """`as_array(x)`, refusing NaN or infinite values: they mean a bug upstream, not a chart to draw."""
    values = as_array(x)
    if not np.isfinite(values).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return values


# Header geometry, in pixels: titles wrap at TITLE_CHARS so that a line fits a phone (about 300 px at
# FONT_SIZE + 4); the title is pinned to the top and the legend hangs under it, so that a legend that wraps
# onto more rows in a narrow window grows down, away from the title (reserve its rows with `legend_rows`).
TITLE_CHARS = 28
TITLE_PAD_PX, TITLE_LINE_PX, LEGEND_ROW_PX = 12, 28, 26


def wrap_title(text: str, width: int = TITLE_CHARS) -> str:
    """`text` broken into lines of at most `width` characters with "<br>" (a text that has "<br>" is kept).

    A title made of parts ("conv 1 (6×1×5×5) · 4-bit") breaks between its parts first.
    """
    if "<br>" in text or len(text) <= width:
        return text
    if " · " in text and all(len(part) <= width for part in text.split(" · ")):
        return "<br>".join(text.split(" · "))
    return "<br>".join(textwrap.wrap(text, width))


def header_px(title: str, legend_rows: int = 0) -> int:
    """Height of a chart's header: the wrapped title's lines, then `legend_rows` legend rows under it."""
    lines = title.count("<br>") + 1 if title else 0
    return TITLE_PAD_PX + TITLE_LINE_PX * lines + LEGEND_ROW_PX * legend_rows + 8


def house_layout(title: str, x_title: str, y_title: str, height: int = 440, legend_rows: int = 1,
                 **extra: object) -> dict:
    """The house look as one layout dict: small white template, large fonts, title top left, legend under it.

    The title is wrapped (`wrap_title`) and the top margin fits it and `legend_rows` rows of legend.
    `extra` adds layout keys; a dict value is merged into the house dict of that name (margin=dict(t=130)
    keeps l, r and b). Build the whole layout first and pass it to go.Figure once: that is the cheap path.
    """
    title = wrap_title(title)
    legend_top = 1 - header_px(title) / height + 4 / height
    # Centred on its lines: Plotly shifts a multi-line title up by half its extra lines whatever the anchor.
    middle = (TITLE_PAD_PX + TITLE_LINE_PX * (title.count("<br>") + 1) / 2) / height
    layout = dict(
        template=TEMPLATE, height=height, font=dict(size=FONT_SIZE, color=TEXT_COLOR),
        title=dict(text=title, font=dict(size=FONT_SIZE + 4), x=0.01, xanchor="left", yref="container",
                   y=1 - middle, yanchor="middle"),
        margin=dict(l=80, r=30, t=header_px(title, legend_rows), b=70),
        legend=dict(orientation="h", yref="container", y=legend_top, yanchor="top", x=0, xanchor="left"),
        xaxis=dict(title=dict(text=x_title)), yaxis=dict(title=dict(text=y_title)),
        hoverlabel=dict(font_size=FONT_SIZE),
    )
    for key, value in extra.items():
        base = layout.get(key)
        layout[key] = {**base, **value} if isinstance(base, dict) and isinstance(value, dict) else value
    return layout


def style(fig: go.Figure, title: str, x_title: str, y_title: str, height: int = 440,
          legend_rows: int = 1) -> go.Figure:
    """Apply `house_layout` to an existing figure (one update_layout call); returns the same figure."""
    fig.update_layout(house_layout(title, x_title, y_title, height, legend_rows))
    return fig


def _check_fractions(name: str, values: np.ndarray) -> None:
    # Fail loudly on percentages passed by mistake: 80 would draw an 8000 % bar.
    finite = values[np.isfinite(values)]
    if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
        raise ValueError(f"{name} must be fractions between 0 and 1, got values up to {finite.max():g}")


def per_class_accuracy(classes: Sequence[str], original: np.ndarray, compressed: np.ndarray) -> go.Figure:
    """Grouped bars of per-class accuracy (fractions 0..1, one per class; NaN = no examples), y in %."""
    orig, comp = as_array(original) * 100.0, as_array(compressed) * 100.0
    if not len(classes) == orig.size == comp.size:
        raise ValueError(f"need one accuracy per class: {len(classes)} classes, {orig.size} and {comp.size} values")
    _check_fractions("accuracies", np.concatenate([orig, comp]) / 100.0)
    names = [str(c) for c in classes]
    delta = comp - orig
    # Label only changes of at least one point, so the chart is not covered in zeros.
    labels = [_signed(d, 0) if np.isfinite(d) and abs(d) >= 1.0 else "" for d in delta]
    if np.isfinite(delta).any() and np.nanmin(delta) < 0:
        i = int(np.nanargmin(delta))
        worst = f"Largest drop: class {names[i]}, from {orig[i]:.0f} % to {comp[i]:.0f} % ({_signed(delta[i], 1)} points)."
    else:
        worst = "No class lost accuracy."
    hover = "class %{x}<br>accuracy %{y:.1f} %<extra>%{fullData.name}</extra>"
    return go.Figure([
        go.Bar(x=names, y=orig, name="original", marker_color=ORIGINAL_COLOR, hovertemplate=hover),
        go.Bar(x=names, y=comp, name="compressed", marker_color=COMPRESSED_COLOR, hovertemplate=hover,
               text=labels, textposition="outside", cliponaxis=False, **_BAR_TEXT),
    ], house_layout("Accuracy per class", "class", "accuracy (%)", barmode="group",
                    xaxis=dict(type="category"), yaxis=_PERCENT_AXIS,
                    meta=figure_meta("per_class_accuracy", worst=worst)))


def _stem_width(levels: np.ndarray, span: float) -> float:
    # Thin enough that neighbouring levels never touch, wide enough to stay visible on a projector.
    gap = float(np.diff(levels).min()) if levels.size > 1 else span
    return max(min(0.35 * gap, span / 40.0), span / 150.0)


def hist_edges(*nonzero: np.ndarray) -> np.ndarray:
    """Shared bin edges over every value of the given arrays (at least one nonempty).

    The count follows the square-root rule on the larger array, clamped to [MIN_HIST_BINS, HIST_BINS]:
    a 150-weight conv layer over 80 bins would be mostly empty bins and spikes.
    """
    both = np.concatenate(nonzero)
    bins = int(np.clip(math.ceil(math.sqrt(max(a.size for a in nonzero))), MIN_HIST_BINS, HIST_BINS))
    # np.histogram widens a single value to a range of 1 itself; passing the range keeps that behaviour explicit.
    return np.histogram_bin_edges(both, bins=bins, range=(both.min(), both.max()))


_NOTE_LINE_PX = 19   # a line of the histogram's note on zeros, in pixels
_BIN_HOVER = ("weights %{customdata[0]:.3g} to %{customdata[1]:.3g}<br>%{y:.2f} % of the layer"
              "<extra>%{fullData.name}</extra>")


def _outline_trace(values: np.ndarray, total: int, edges: np.ndarray) -> go.Scatter:
    """The original's histogram as an unfilled step outline (% of the layer's weights per bin).

    An outline over filled bars stays readable where the two overlap; two translucent bar sets blend
    into a third colour the legend does not explain. Points sit on the left bin edges ("hv" steps),
    framed by a zero at both ends so the outline closes on the axis.
    """
    counts = np.histogram(values, bins=edges)[0] * (100.0 / total) if values.size else np.zeros(edges.size - 1)
    x = np.concatenate([edges[:1], edges])
    y = np.concatenate([[0.0], counts, [0.0]])
    right = np.concatenate([edges[:1], edges[1:], edges[-1:]])
    return go.Scatter(x=x, y=y, customdata=np.stack([x, right], axis=1), mode="lines", name="original",
                      line=dict(color=ORIGINAL_COLOR, width=2.5, shape="hv"), hovertemplate=_BIN_HOVER)


def _compressed_trace(values: np.ndarray, levels: np.ndarray, counts: np.ndarray, total: int,
                      edges: np.ndarray) -> go.Bar:
    """The compressed layer as filled bars in % of its weights: exact levels (np.unique) as stems, else binned."""
    if not values.size:
        return go.Bar(x=[], y=[], name="compressed", marker_color=COMPRESSED_COLOR)
    if levels.size <= MAX_LEVELS:
        return go.Bar(x=levels, y=counts * (100.0 / total), width=_stem_width(levels, edges[-1] - edges[0]),
                      name=f"compressed: {levels.size} levels", marker_color=COMPRESSED_COLOR,
                      hovertemplate="weight %{x:.4g}<br>%{y:.2f} % of the layer<extra>%{fullData.name}</extra>")
    binned = np.histogram(values, bins=edges)[0] * (100.0 / total)
    # Per-channel quantization gives a few levels per row, many per layer: say how many.
    return go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=binned, width=np.diff(edges), customdata=np.stack(
        [edges[:-1], edges[1:]], axis=1), name=f"compressed: {levels.size:,} distinct values",
        marker=dict(color=COMPRESSED_COLOR, opacity=0.75, line_width=0), hovertemplate=_BIN_HOVER)


def weight_histogram(original: torch.Tensor, compressed: torch.Tensor, layer: str, bits: int) -> go.Figure:
    """One layer's nonzero weights: the original as a step outline (go.Scatter), the compressed as bars.

    Both tensors have the same shape and are copied. y is the % of the layer's weights; exact zeros
    are not drawn but counted in an annotation. When the compressed tensor has at most MAX_LEVELS
    distinct nonzero values they are drawn as stems at their exact values. The title stays short
    ("conv 1 (6×1×5×5) · 4-bit") so that it fits a half-width column on a phone; the rest is in the caption.
    """
    orig = finite_weights(original, "original weight").ravel()
    comp = finite_weights(compressed, "compressed weight").ravel()
    orig_nz, comp_nz = orig[orig != 0], comp[comp != 0]
    zeros_o, zeros_c = 1 - orig_nz.size / max(orig.size, 1), 1 - comp_nz.size / max(comp.size, 1)
    edges = hist_edges(orig_nz, comp_nz) if orig_nz.size + comp_nz.size else np.array([-1.0, 1.0])
    note = f"exact zeros, not drawn:<br>{format_percent(zeros_o)} original · {format_percent(zeros_c)} compressed"
    note += "".join(f"<br><b>{who}: all weights are zero</b>" for who, nz in (("compressed", comp_nz),
                                                                              ("original", orig_nz)) if not nz.size)
    levels, counts = np.unique(comp_nz, return_counts=True)
    n_levels = levels.size
    facts = figure_meta("weight_histogram", zeros=format_percent(zeros_c), zeros_original=format_percent(zeros_o),
                        levels=f"the others take {n_levels:,} distinct values" if n_levels else "no weights remain")
    pad = 0.03 * (edges[-1] - edges[0])  # stems at the extreme levels would otherwise be cut in half
    # Header, top down: title, legend (two rows: "compressed: 1,234 distinct values" wraps in a narrow column),
    # then the note on the plot's top edge, its lines counted in `margin.t`.
    # One line ("fc 1 (120×784) · 32-bit") for every built-in layer, also on a phone; a longer name wraps.
    title = wrap_title(f"{layer_title(layer)} · {min(bits, 32)}-bit")
    layout = house_layout(
        title, "weight value", "weights (% of layer)", height=440 + TITLE_LINE_PX * title.count("<br>"),
        legend_rows=2, barmode="overlay", bargap=0, showlegend=True,
        margin=dict(t=header_px(title, 2) + _NOTE_LINE_PX * (note.count("<br>") + 1) - 4),
        xaxis=dict(range=[edges[0] - pad, edges[-1] + pad], zeroline=False),
        yaxis=dict(rangemode="tozero"), meta=facts,
        annotations=[dict(text=note, xref="paper", yref="paper", x=1, y=1, xanchor="right", yanchor="bottom",
                          showarrow=False, align="right", font_size=FONT_SIZE - 2)])
    return go.Figure([_outline_trace(orig_nz, orig.size, edges),
                      _compressed_trace(comp_nz, levels, counts, comp.size, edges)], layout)


def sparsity_bars(layers: Sequence[str], original: Sequence[float], compressed: Sequence[float],
                  overall: float | None = None) -> go.Figure:
    """Grouped bars of each layer's sparsity (fractions 0..1 of exact zeros) in %, plus the overall."""
    orig, comp = as_array(original) * 100.0, as_array(compressed) * 100.0
    if not len(layers) == orig.size == comp.size:
        raise ValueError(f"need one sparsity per layer: {len(layers)} layers, {orig.size} and {comp.size} values")
    _check_fractions("sparsities", np.concatenate([orig, comp, [overall or 0.0]]) / 100.0)
    names = [layer_title(name) for name in layers]
    # "conv 1<br>(6×1×5×5)": two short lines stay level where one long label would be turned sideways.
    categories = [name.replace(" (", "<br>(", 1) for name in names]
    hover = "%{x}<br>%{y:.1f} % zeros<extra>%{fullData.name}</extra>"
    data = [go.Bar(x=categories, y=values, name=name, marker_color=color, hovertemplate=hover,
                   text=[format_percent(v / 100) for v in values], textposition="outside", cliponaxis=False,
                   textfont_size=FONT_SIZE - 2, constraintext="outside")
            for name, values, color in (("original", orig, ORIGINAL_COLOR), ("compressed", comp, COMPRESSED_COLOR))]
    shapes = []
    if overall is not None:
        line = dict(dash="dash", color=OVERALL_COLOR, width=2)
        shapes.append(dict(type="line", xref="x domain", x0=0, x1=1, yref="y", y0=100.0 * overall,
                           y1=100.0 * overall, line=line))
        # The label goes in the legend: next to the line it collides with the bars' own labels.
        data.append(go.Scatter(x=[None], y=[None], mode="lines", hoverinfo="skip", line=line,
                               name=f"all layers, compressed: {format_percent(overall)}"))
    i = int(np.argmax(comp)) if comp.size else -1
    meta = (figure_meta("sparsity_bars", layer=names[i], sparsity=format_percent(comp[i] / 100)) if i >= 0
            else {"caption": caption("sparsity_bars"), "facts": ""})
    return go.Figure(data, house_layout("Share of weights that are exactly zero, per layer", "layer",
                                        "weights that are zero (%)", barmode="group", shapes=shapes, meta=meta,
                                        xaxis=dict(type="category"), yaxis=_PERCENT_AXIS, legend_rows=2,
                                        # Labels wider than their bar (a phone) are hidden, not drawn over
                                        # each other; the hover and the caption still give every value.
                                        uniformtext=dict(mode="hide", minsize=FONT_SIZE - 2)))

"""Plotly figures that compare the original and the compressed model, plus their captions.

Every builder takes plain inputs (tensors, numpy arrays, sequences), copies what it
reads, returns a `plotly.graph_objects.Figure` and never calls Streamlit. Each figure
carries a one-or-two-sentence caption for students in `fig.layout.meta["caption"]`
(read it with `figure_caption(fig)`). Fractions come in as 0..1 and are shown in %.
The weight and saliency maps live in `core.figures_maps`.
"""
from __future__ import annotations

import math
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
HIST_BINS = 80
# Plotly shrinks labels that are wider than their bar; one fixed size reads better from the back row.
_BAR_TEXT = dict(textfont_size=FONT_SIZE - 2, constraintext="none")

CAPTIONS: dict[str, str] = {
    "per_class_accuracy": (
        "Each pair of bars is one class: blue is the original model, orange the compressed one. "
        "Look for orange bars much shorter than their blue neighbour; the number above marks the change in points."),
    "weight_histogram": (
        "How often each weight value occurs in this layer; exact zeros are left out and counted above the chart. "
        "Look for the gap around zero that pruning leaves and, at low bit widths, the few orange stems: "
        "every remaining weight is rounded to one of those values."),
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
    "weight_histogram": "{zeros} of the compressed layer's weights are exactly zero (original: {zeros_original}); {levels}.",
    "sparsity_bars": "The most pruned is {layer}: {sparsity} of its weights are zero.",
    "weight_heatmap": "{zeros} of this layer's weights are exactly zero.",
    "saliency_row": "The largest change is {change} of the maps' maximum.",
}


def caption(name: str, **facts: object) -> str:
    """The student-facing caption of figure `name`, with its computed facts appended when given."""
    text = CAPTIONS[name]
    return f"{text} {_FACTS[name].format(**facts)}" if facts else text


def figure_caption(fig: go.Figure) -> str:
    """The caption a builder stored in `fig.layout.meta["caption"]` ("" when none)."""
    meta = fig.layout.meta
    return meta.get("caption", "") if isinstance(meta, dict) else ""


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


def style(fig: go.Figure, title: str, x_title: str, y_title: str, height: int = 440) -> go.Figure:
    """The house look: white template, large fonts, title top left, legend under the title."""
    fig.update_layout(
        template="plotly_white", height=height, font=dict(size=FONT_SIZE),
        title=dict(text=title, font=dict(size=FONT_SIZE + 4), x=0.01, xanchor="left"),
        margin=dict(l=80, r=30, t=100, b=70),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, xanchor="left"),
        xaxis_title=x_title, yaxis_title=y_title, hoverlabel=dict(font_size=FONT_SIZE),
    )
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
    hover = "class %{x}<br>accuracy %{y:.1f} %<extra>%{fullData.name}</extra>"
    fig = go.Figure([
        go.Bar(x=names, y=orig, name="original", marker_color=ORIGINAL_COLOR, hovertemplate=hover),
        go.Bar(x=names, y=comp, name="compressed", marker_color=COMPRESSED_COLOR, hovertemplate=hover,
               text=labels, textposition="outside", cliponaxis=False, **_BAR_TEXT),
    ])
    style(fig, "Accuracy per class", "class", "accuracy (%)")
    fig.update_layout(barmode="group", yaxis_range=[0, 100], xaxis_type="category")
    if np.isfinite(delta).any() and np.nanmin(delta) < 0:
        i = int(np.nanargmin(delta))
        worst = f"Largest drop: class {names[i]}, from {orig[i]:.0f} % to {comp[i]:.0f} % ({_signed(delta[i], 1)} points)."
    else:
        worst = "No class lost accuracy."
    fig.update_layout(meta={"caption": caption("per_class_accuracy", worst=worst)})
    return fig


def _levels_and_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The exact distinct values and their counts, or None when there are too many to draw as stems."""
    levels, counts = np.unique(values, return_counts=True)
    return (levels, counts) if levels.size <= MAX_LEVELS else None


def _stem_width(levels: np.ndarray, span: float) -> float:
    # Thin enough that neighbouring levels never touch, wide enough to stay visible on a projector.
    gap = float(np.diff(levels).min()) if levels.size > 1 else span
    return max(min(0.35 * gap, span / 40.0), span / 150.0)


def _hist_edges(*nonzero: np.ndarray) -> np.ndarray:
    """Shared bin edges over every nonzero value of both tensors (np.histogram widens a single value)."""
    both = np.concatenate(nonzero)
    return np.histogram_bin_edges(both, bins=HIST_BINS, range=(both.min(), both.max()))


def _distribution_trace(values: np.ndarray, total: int, edges: np.ndarray, name: str, color: str,
                        stems: bool) -> go.Bar:
    """One go.Bar in % of the layer's weights: exact levels as thin stems, or binned counts."""
    hover = "weight %{x:.4g}<br>%{y:.2f} % of the layer<extra>%{fullData.name}</extra>"
    if values.size and stems and (found := _levels_and_counts(values)) is not None:
        levels, counts = found
        return go.Bar(x=levels, y=100.0 * counts / total, width=_stem_width(levels, edges[-1] - edges[0]),
                      name=f"{name}: {levels.size} levels", marker_color=color, hovertemplate=hover)
    if not values.size:
        return go.Bar(x=[], y=[], name=name, marker_color=color)
    counts, _ = np.histogram(values, bins=edges)
    # Per-channel quantization gives a few levels per row, many per layer: say how many.
    label = f"{name}: {np.unique(values).size:,} distinct values" if stems else name
    return go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=100.0 * counts / total, width=np.diff(edges),
                  name=label, marker_color=color, opacity=0.6, hovertemplate=hover)


def weight_histogram(original: torch.Tensor, compressed: torch.Tensor, layer: str, bits: int) -> go.Figure:
    """Overlaid distributions of one layer's nonzero weights (two go.Bar traces: original, compressed).

    Both tensors have the same shape and are copied. y is the % of the layer's weights; exact
    zeros are not drawn but counted in an annotation. When the compressed tensor has at most
    MAX_LEVELS distinct nonzero values they are drawn as stems at their exact values.
    """
    orig = finite_weights(original, "original weight").ravel()
    comp = finite_weights(compressed, "compressed weight").ravel()
    orig_nz, comp_nz = orig[orig != 0], comp[comp != 0]
    zeros_o, zeros_c = 1 - orig_nz.size / max(orig.size, 1), 1 - comp_nz.size / max(comp.size, 1)
    edges = _hist_edges(orig_nz, comp_nz) if orig_nz.size + comp_nz.size else np.array([-1.0, 1.0])
    fig = go.Figure([
        _distribution_trace(orig_nz, orig.size, edges, "original", ORIGINAL_COLOR, stems=False),
        _distribution_trace(comp_nz, comp.size, edges, "compressed", COMPRESSED_COLOR, stems=True),
    ])
    note = f"exact zeros (not drawn): {format_percent(zeros_o)} original, {format_percent(zeros_c)} compressed"
    if not comp_nz.size:
        note += "<br><b>compressed: all weights are zero</b>"
    if not orig_nz.size:
        note += "<br><b>original: all weights are zero</b>"
    fig.add_annotation(text=note, xref="paper", yref="paper", x=1, y=1, xanchor="right", yanchor="bottom",
                       showarrow=False, align="right")
    precision = "no quantization (32-bit float)" if bits >= 32 else f"{bits}-bit"
    style(fig, f"{layer_title(layer)}: weight values, original vs {precision}", "weight value",
          "weights (% of layer)")
    pad = 0.03 * (edges[-1] - edges[0])  # stems at the extreme levels would otherwise be cut in half
    fig.update_layout(barmode="overlay", bargap=0, legend_y=1.12, margin_t=130, showlegend=True,
                      xaxis_range=[edges[0] - pad, edges[-1] + pad])
    n_levels = np.unique(comp_nz).size
    levels = "no weights remain" if not n_levels else f"the others take {n_levels:,} distinct values"
    facts = caption("weight_histogram", zeros=format_percent(zeros_c), zeros_original=format_percent(zeros_o),
                    levels=levels)
    fig.update_layout(meta={"caption": facts})
    return fig


def sparsity_bars(layers: Sequence[str], original: Sequence[float], compressed: Sequence[float],
                  overall: float | None = None) -> go.Figure:
    """Grouped bars of each layer's sparsity (fractions 0..1 of exact zeros) in %, plus the overall."""
    orig, comp = as_array(original) * 100.0, as_array(compressed) * 100.0
    if not len(layers) == orig.size == comp.size:
        raise ValueError(f"need one sparsity per layer: {len(layers)} layers, {orig.size} and {comp.size} values")
    _check_fractions("sparsities", np.concatenate([orig, comp, [overall or 0.0]]) / 100.0)
    names = [layer_title(name) for name in layers]
    hover = "%{x}<br>%{y:.1f} % zeros<extra>%{fullData.name}</extra>"
    fig = go.Figure([
        go.Bar(x=names, y=orig, name="original", marker_color=ORIGINAL_COLOR, hovertemplate=hover,
               text=[format_percent(v / 100) for v in orig], textposition="outside", cliponaxis=False, **_BAR_TEXT),
        go.Bar(x=names, y=comp, name="compressed", marker_color=COMPRESSED_COLOR, hovertemplate=hover,
               text=[format_percent(v / 100) for v in comp], textposition="outside", cliponaxis=False, **_BAR_TEXT),
    ])
    style(fig, "Sparsity per layer (share of weights that are exactly zero)", "layer", "weights that are zero (%)")
    fig.update_layout(barmode="group", yaxis_range=[0, 100], xaxis_type="category")
    if overall is not None:
        # The label goes in the legend: next to the line it collides with the bars' own labels.
        fig.add_hline(y=100.0 * overall, line_dash="dash", line_color=OVERALL_COLOR, line_width=2)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", hoverinfo="skip",
                                 line=dict(dash="dash", color=OVERALL_COLOR, width=2),
                                 name=f"all layers, compressed: {format_percent(overall)}"))
    i = int(np.argmax(comp)) if comp.size else -1
    text = caption("sparsity_bars", layer=names[i], sparsity=format_percent(comp[i] / 100)) if i >= 0 else None
    fig.update_layout(meta={"caption": text or caption("sparsity_bars")})
    return fig

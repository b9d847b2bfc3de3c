"""Plotly figures of the trade-off sweeps (core.studies.sweeps): curves per baseline and the sparsity x bits map.

Builders take the DataFrames of `core.studies.sweeps` (read only), return a `go.Figure`, never
call Streamlit, and store a student caption in `fig.layout.meta["caption"]`. The map is a
go.Heatmap under one invisible square marker per cell: Streamlit's `on_select` ignores heatmap
clicks (streamlit issues #8760, #15042), so the markers take them; each carries
customdata = [prune_amount, weight_bits] for the page to read.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.explain.attribution import is_signed
from core.figures import COMPRESSED_COLOR, FONT_SIZE, OVERALL_COLOR, SEQUENTIAL, format_percent, style
from core.stats import accuracy_interval, format_interval
from core.studies.sweeps import SALIENCY_METRICS

BASELINE_COLORS = {  # Tableau 10, leaving blue/orange to original/compressed as on the other pages
    "global magnitude": "#2ca02c", "layer-wise magnitude": "#9467bd", "random": "#7f7f7f",
    "global structured": "#8c564b", "layer-wise structured": "#8c564b",  # structured follows the sidebar's scope
    "global apoz": "#bcbd22", "layer-wise apoz": "#bcbd22"}               # and so does APoZ
OTHER_COLOR = "#e377c2"              # the sidebar's own method when it is not a baseline
CURRENT_COLOR = COMPRESSED_COLOR     # the current setting is "the compressed model" everywhere
BITS_OFF_POSITION = 9.5              # 32 bits sits after 8 with a gap: it is "no quantization", not a step
CELL_SIZE = 44                       # px; grid rows are CELL_SIZE * 1.2 apart
GRID_BAR_PX = 44                     # the map's colour bar (title, bar, ticks) between its title and its cells
CURVE_HEIGHT, CURVE_AXIS_PX, CURVE_BOTTOM_PX = 600, 68, 230  # curves: figure, tick labels + axis title, margin

METRICS: dict[str, str] = {
    "accuracy": "test accuracy (%)",
    "agreement": "same prediction as the original (%)",
    "sparsity": "measured sparsity (%)",
    "spearman_abs": "map similarity: Spearman of |maps|",
    "spearman": "map similarity: signed Spearman",
    "topk": "map similarity: top-10 % pixel overlap",
    "ssim": "map similarity: SSIM",
    "deletion_gain": "deletion gain over random (0 = chance)",
    "insertion_gain": "insertion gain over random (0 = chance)",
    "infidelity_gain": "infidelity gain over random (0 = chance)",
    "sparseness": "map sparseness: Gini index (1 = one pixel)",
    "complexity": "map complexity: entropy (lower = simpler)",
    "sensitivity": "map max-sensitivity (lower = steadier)",
}
PERCENT = ("accuracy", "agreement", "sparsity")
GAIN_METRICS = ("deletion_gain", "insertion_gain", "infidelity_gain")  # 0 = chance: a line marks it
QUALITY_CHANCE = ("sparseness", "complexity", "sensitivity")  # a random map's value (column <metric>_random): a line
SIGNED_ONLY = ("infidelity_gain",)  # measured only for maps with a sign (core.explain.attribution.is_signed)
CHANCE_COLOR = "#999999"
_TOLERANCE = {"accuracy": (0.01, "1 point"), "agreement": (0.01, "1 point")}  # others: 0.1 of similarity
_MEANING = {
    "accuracy": "how many test images the compressed model classifies correctly",
    "agreement": "how often the compressed model predicts the same class as the original",
    "sparsity": "the share of weights that are exactly zero",
    "deletion_gain": ("how much better than a random ordering the map finds the pixels the model needs: blacking "
                      "out its top pixels first makes the class probability fall faster than blacking out pixels "
                      "in random order, by this much of the area under the curve (0 = no better than random, "
                      "below 0 = worse; random orderings of the same images on the same model, so a model that "
                      "simply got less sure does not count)"),
    "insertion_gain": ("how much better than a random ordering the map finds the pixels the model needs: putting "
                       "its top pixels back into a blurred image first brings the class probability back faster "
                       "than random order, by this much of the area under the curve (0 = no better than random)"),
    "infidelity_gain": ("how much better than a random map this map predicts what small random pixel changes do to "
                        "the class score: 1 − its infidelity ÷ a random map's (0 = no better than random, 1 = "
                        "perfect). Only for maps with a sign (Gradient × Input, Integrated Gradients, Occlusion): "
                        "an absolute-value map cannot say whether a change raises or lowers the score"),
    "sparseness": ("how concentrated the compressed model's own maps are: the Gini index of the map's absolute "
                   "values, 1 when one pixel holds everything, 0 when every pixel counts the same (higher = a "
                   "simpler map to read)"),
    "complexity": ("how spread out the compressed model's own maps are: the entropy of the map's absolute values "
                   "as shares of their sum, 0 for one pixel, the log of the number of pixels for a flat map "
                   "(lower = a simpler map)"),
    "sensitivity": ("how much the compressed model's map changes when the image gets a tiny random nudge "
                    "(up to 2 % of the pixel range per pixel): the largest change over three nudges, as a share of the "
                    "map's size, on 16 of the probe images (lower = a steadier map)"),
}


def metrics_for(method: str) -> list[str]:
    """The measures the curves offer for explanation `method`: infidelity gain only when its maps have a sign."""
    signed = is_signed(method)
    return [metric for metric in METRICS if signed or metric not in SIGNED_ONLY]


def bits_label(bits: int) -> str:
    """How a bit width is shown: 4 -> "4", 32 -> "32 (off)"."""
    return "32 (off)" if int(bits) == 32 else str(int(bits))


def bits_words(bits: int) -> str:
    """A bit width in a sentence: 1 -> "1 bit", 4 -> "4 bits", 32 -> "32 bits (off)"."""
    return "32 bits (off)" if int(bits) == 32 else f"{int(bits)} bit{'' if int(bits) == 1 else 's'}"


def _bits_position(bits: object) -> object:
    return np.where(np.asarray(bits) == 32, BITS_OFF_POSITION, np.asarray(bits, dtype=float))


def _meaning(metric: str) -> str:
    if metric in ("spearman_abs", "spearman"):
        return ("how similar the compressed model's saliency maps are to the original's (1 = same ranking of "
                "pixels; pixels that are zero in both maps, such as a black background, are left out)")
    if metric in SALIENCY_METRICS:
        return "how similar the compressed model's saliency maps are to the original's (1 = same ranking of pixels)"
    return _MEANING[metric]


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _band_column(df: pd.DataFrame, metric: str, band: str) -> tuple[str | None, str]:
    """Which spread to draw around the mean: over seeds, over probe images, or none."""
    seeds = int(df["n_seeds"].max()) if "n_seeds" in df else 1
    if band == "auto":
        band = "seeds" if seeds > 1 else "probes" if metric in SALIENCY_METRICS else "none"
    if band == "seeds" and f"{metric}_std" in df:
        return f"{metric}_std", f"Bands: ± one standard deviation over {seeds} seeds."
    if band == "probes" and f"{metric}_probe_std" in df:
        return f"{metric}_probe_std", "Bands: ± one standard deviation over the probe images."
    return None, ""


def tradeoff_curves(summary: pd.DataFrame, x: str = "prune_amount", metric: str = "accuracy",
                    current: float | int | None = None, band: str = "auto", note: str = "",
                    n_test: int | None = None) -> go.Figure:
    """One line per baseline of `metric` (from `core.studies.sweeps.summarize`) against sparsity or bit width.

    x: "prune_amount" (the "sparsity" curves, axis in %) or "weight_bits" (the "bits"
    curves; 1..8 and "32 (off)" after a gap). current: the sidebar's value on that axis,
    drawn as a vertical line and a star on the sidebar method's curve. band: "auto"
    (seed spread when there are several seeds, else probe spread for map similarities),
    "seeds", "probes" or "none". Fine-tuned rows are dashed lines of the same colour.
    Rows of curve "current" (the sidebar's exact setting) place the star; without them it
    sits on the sidebar method's point at `current`. note: a sentence added to the caption.
    n_test: the number of test images behind each accuracy; when given, the accuracy caption counts a
    curve as holding while it stays in the uncompressed model's 95 % Wilson interval instead of within 1 point.
    """
    if x not in ("prune_amount", "weight_bits") or metric not in METRICS:
        raise ValueError(f"x must be prune_amount or weight_bits and metric one of {', '.join(METRICS)}")
    rows = summary[summary["curve"] == ("sparsity" if x == "prune_amount" else "bits")]
    reference = summary.loc[summary["curve"] == "reference", metric]
    if rows.empty:
        raise ValueError(f"the summary has no {x} curve")
    scale = 100.0 if metric in PERCENT else 1.0
    band_col, band_text = _band_column(rows, metric, band)
    fig = go.Figure()
    for (name, tuned), curve in rows.groupby(["baseline", "fine_tuned"], sort=False):
        curve = curve.sort_values(x)
        xs = curve[x].to_numpy() * 100 if x == "prune_amount" else _bits_position(curve[x])
        _add_line(fig, name, bool(tuned), xs, curve, metric, scale, band_col)
    style(fig, f"{METRICS[metric]} against {'sparsity' if x == 'prune_amount' else 'bit width'}",
          "sparsity (% of weights removed)" if x == "prune_amount" else "bits per weight", METRICS[metric],
          height=CURVE_HEIGHT, legend_rows=0)
    # Up to ten legend entries: hung under the axis title (a fixed distance from the figure's bottom),
    # growing down into a bottom margin that holds five rows, as many as a phone's width needs.
    fig.update_layout(legend=dict(y=(CURVE_BOTTOM_PX - CURVE_AXIS_PX) / CURVE_HEIGHT, yanchor="top",
                                  font_size=FONT_SIZE - 2), margin_t=fig.layout.margin.t + 16,  # star at 100 %
                      margin_b=CURVE_BOTTOM_PX)
    _axes(fig, x, metric, rows)
    if len(reference):
        _add_reference(fig, float(reference.iloc[0]) * scale)
    chance = ""
    if metric in GAIN_METRICS:
        _add_chance(fig)
        chance = (" The thin grey line at 0 is chance: where random "
                  f"{'maps' if metric == 'infidelity_gain' else 'pixel orderings'} score.")
    elif metric in QUALITY_CHANCE and rows[f"{metric}_random"].notna().any():
        level = float(rows[f"{metric}_random"].mean())
        _add_chance(fig, level)
        chance = (f" The thin grey line is chance, a map of random noise: {level:.2f}"
                  + (" (redrawn for every nudged image)." if metric == "sensitivity" else "."))
    if current is not None:
        mine = summary[(summary["curve"] == "current") & np.isclose(summary[x], float(current))]
        _mark_current(fig, mine if len(mine) else rows, x, metric, current, scale)
    facts = _holds_fact(rows, x, metric, float(reference.iloc[0]) if len(reference) else None, n_test)
    tuned_note = " Dashed lines: the same pruning followed by fine-tuning with the mask held fixed." \
        if rows["fine_tuned"].any() else ""
    unmeasured = " Not measured for this explanation method: its maps have no sign." \
        if rows[metric].isna().all() and metric in SIGNED_ONLY else ""
    text = (f"Each line is one pruning method; the height shows {_meaning(metric)}.{unmeasured}{chance} "
            f"The orange line marks the sidebar's setting.{tuned_note} {band_text} {facts} {note}")
    fig.update_layout(meta={"caption": " ".join(text.split())})
    return fig


def _add_line(fig: go.Figure, name: str, tuned: bool, xs: np.ndarray, curve: pd.DataFrame, metric: str,
              scale: float, band_col: str | None) -> None:
    color = BASELINE_COLORS.get(name, OTHER_COLOR)
    label = f"{name}, fine-tuned" if tuned else name
    y = curve[metric].to_numpy() * scale
    if band_col is not None:
        spread = curve[band_col].fillna(0.0).to_numpy() * scale
        fig.add_trace(go.Scatter(x=np.concatenate([xs, xs[::-1]]), y=np.concatenate([y + spread, (y - spread)[::-1]]),
                                 mode="lines", fill="toself", fillcolor=_rgba(color, 0.15), line_width=0,
                                 hoverinfo="skip",
                                 showlegend=False, legendgroup=label, name=f"{label} band"))
    unit = " %" if scale == 100.0 else ""
    fig.add_trace(go.Scatter(
        x=xs, y=y, mode="lines+markers", name=label, legendgroup=label,
        line=dict(color=color, width=3, dash="dash" if tuned else "solid"), marker=dict(size=7),
        customdata=np.column_stack([curve["prune_amount"], curve["weight_bits"]]),
        hovertemplate=(f"{label}<br>sparsity %{{customdata[0]:.0%}}, %{{customdata[1]}} bits"
                       f"<br>{metric} %{{y:.3g}}{unit}<extra></extra>")))


def _axes(fig: go.Figure, x: str, metric: str, rows: pd.DataFrame) -> None:
    if x == "weight_bits":
        bits = sorted(rows["weight_bits"].unique())
        fig.update_xaxes(tickvals=list(_bits_position(bits)), ticktext=[bits_label(b) for b in bits])
    else:
        fig.update_xaxes(range=[-5, 102], ticksuffix=" %")  # "0 %" clear of the y axis' "0 %"
    if metric in PERCENT:
        fig.update_yaxes(range=[0, 102], ticksuffix=" %")
    elif metric in ("spearman_abs", "topk", "ssim", "sparseness"):
        fig.update_yaxes(range=[min(0.0, float(rows[metric].min()) - 0.05), 1.05])


def _add_reference(fig: go.Figure, value: float) -> None:
    # The label goes in the legend (as on the sparsity page): on the line it would hide the curves.
    fig.add_hline(y=value, line_dash="dash", line_color=OVERALL_COLOR, line_width=2)
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", hoverinfo="skip", name="uncompressed model",
                             line=dict(dash="dash", color=OVERALL_COLOR, width=2)))


def _add_chance(fig: go.Figure, level: float = 0.0) -> None:
    """A thin line at `level` (0: no better than random), labelled "chance" under its right end."""
    fig.add_hline(y=level, line_color=CHANCE_COLOR, line_width=1, layer="below", annotation_text="chance",
                  annotation_position="bottom right", annotation_font=dict(color=CHANCE_COLOR, size=FONT_SIZE - 2))
    if level == 0.0:
        fig.update_yaxes(rangemode="tozero")  # chance stays in view when every curve is above it


def _mark_current(fig: go.Figure, rows: pd.DataFrame, x: str, metric: str, current: float | int,
                  scale: float) -> None:
    position = float(current) * 100 if x == "prune_amount" else float(_bits_position(current))
    fig.add_vline(x=position, line_dash="dot", line_color=CURRENT_COLOR, line_width=3)
    mine = rows[rows["matches_sidebar"] & ~rows["fine_tuned"].astype(bool) & np.isclose(rows[x], float(current))]
    label = format_percent(current) if x == "prune_amount" else (
        "32 bits, no quantization" if int(current) == 32 else f"{int(current)} bits")
    fig.add_trace(go.Scatter(x=[position] * len(mine), y=mine[metric].to_numpy() * scale, mode="markers",
                             name=f"current setting ({label})", marker=dict(symbol="star", size=18,
                             color=CURRENT_COLOR, line=dict(width=1, color="black")), hoverinfo="skip"))


def _tolerance(metric: str, reference: float | None, n_test: int | None, than: str) -> tuple[float, str]:
    """How far below the reference a curve may fall and still hold, and how a caption says so.

    Accuracy on n_test images carries sampling noise: with n_test given, holding means not falling
    below the reference's 95 % Wilson interval (core.stats), else within a fixed 1 point. (One-sided:
    a compressed model rising above the interval is not a loss.)
    """
    tol, tol_text = _TOLERANCE.get(metric, (0.1, "0.1"))
    if metric == "accuracy" and reference is not None and n_test:
        low, high = accuracy_interval(reference, n_test)
        return reference - low, (f"within the noise of {than} (its 95 % interval: {format_interval(low, high)}, "
                                 f"{n_test:,} test images)")
    return tol, f"within {tol_text} of {than}"


def _holds_fact(rows: pd.DataFrame, x: str, metric: str, reference: float | None, n_test: int | None = None) -> str:
    """How far each baseline goes before `metric` falls more than a tolerance below the reference.

    The reference is the uncompressed model when the sweep has it, else each curve's mildest
    point. Fine-tuned curves get a second sentence.
    """
    if metric not in PERCENT[:2] and metric not in SALIENCY_METRICS:
        return ""
    than = "the mildest setting" if reference is None else "the uncompressed model"
    tol, holding = _tolerance(metric, reference, n_test, than)
    where = "up to" if x == "prune_amount" else "down to"
    sentences = []
    for tuned, part in rows.groupby(rows["fine_tuned"].astype(bool), sort=True):
        reaches = {name: _reach(curve, x, metric, reference, tol) for name, curve in part.groupby("baseline", sort=False)}
        if all(r is None for r in reaches.values()):
            lead = "Even after fine-tuning, no" if tuned else "No"
            sentences.append(f"{lead} curve stays {holding}.")
            continue
        lead = f"After fine-tuning, {holding}" if tuned else holding[:1].upper() + holding[1:]
        listed = ", ".join(f"{name} {r or 'at no setting'}" for name, r in reaches.items())
        sentences.append(f"{lead} {where}: {listed}.")
    return " ".join(sentences)


def _reach(curve: pd.DataFrame, x: str, metric: str, reference: float | None, tol: float) -> str | None:
    """The harshest setting before the curve first drops below reference - tol, as text (None: none)."""
    curve = curve.sort_values(x, ascending=x == "prune_amount")  # from the mildest setting on
    values = curve[metric].to_numpy()
    ok = values >= (values[0] if reference is None else reference) - tol
    last = len(ok) if ok.all() else int(np.argmin(ok))  # points before the first failure
    if not last:
        return None
    reach = curve[x].to_numpy()[last - 1]
    return format_percent(reach) if x == "prune_amount" else bits_words(reach)


def grid_heatmap(grid: pd.DataFrame, metric: str = "accuracy",
                 current: tuple[float, int] | None = None, n_test: int | None = None) -> go.Figure:
    """The sparsity x bits map of `metric` ("accuracy", "agreement", "spearman_abs", ...) from `grid_sweep`.

    grid: rows of curve "grid" (raw, several seeds are averaged, or summarized). Trace 0 holds one
    invisible square marker per cell, with customdata [prune_amount, weight_bits], so that a click can
    be read by Streamlit; trace 1 is the heatmap that shows the cells; the current (amount, bits) cell
    is outlined by a shape (its trace "current setting" carries x, y and customdata).
    n_test: as for `tradeoff_curves` (the caption's "smallest setting" then uses the 95 % interval).
    """
    column = metric if metric in grid else f"{metric}_mean"
    if column not in grid or grid.empty:
        raise ValueError(f"the grid has no column for {metric!r}")
    cells = grid.groupby(["prune_amount", "weight_bits"], as_index=False)[column].mean()
    x = [format_percent(a) for a in cells["prune_amount"]]
    y = [bits_label(b) for b in cells["weight_bits"]]
    values = cells[column].to_numpy()
    custom = np.column_stack([cells["prune_amount"], cells["weight_bits"]])
    text = [f"{100 * v:.0f}" if metric in PERCENT else f"{v:.2f}" for v in values]
    sparsities = [format_percent(a) for a in sorted(cells["prune_amount"].unique())]
    bits = [bits_label(b) for b in sorted(cells["weight_bits"].unique())]
    # Drawn as a heatmap, whose cells scale with the chart's width (markers have a fixed size in pixels and
    # ran into each other on a phone); clicks go to the invisible markers of trace 0 at the cells' centres
    # (hoverdistance -1: the nearest one, wherever in its cell the click lands).
    table = pd.DataFrame({"x": x, "y": y, "v": values, "t": text})
    z = table.pivot(index="y", columns="x", values="v").reindex(index=bits, columns=sparsities)
    labels = table.pivot(index="y", columns="x", values="t").reindex(index=bits, columns=sparsities).fillna("")
    hidden = dict(opacity=0)
    fig = go.Figure([go.Scatter(
        x=x, y=y, mode="markers", text=text, customdata=custom, name="settings", showlegend=False,
        marker=dict(symbol="square", size=CELL_SIZE / 2, color=values, opacity=0),
        selected=dict(marker=hidden), unselected=dict(marker=hidden),
        hovertemplate=(f"sparsity %{{x}}, %{{y}} bits<br>{metric} %{{marker.color:.3f}}"
                       "<br>click to use this setting<extra></extra>")),
        go.Heatmap(x=sparsities, y=bits, z=z.to_numpy(), text=labels.to_numpy(), texttemplate="%{text}",
                   textfont=dict(size=FONT_SIZE - 3), colorscale=SEQUENTIAL, zmin=0, zmax=1, xgap=3, ygap=3,
                   hoverinfo="skip", name="map",
                   # Ticks above the bar, nothing hangs down into the cells; no title of its own: the
                   # chart's title names the measure, and a title beside it left the ticks no room on a phone.
                   colorbar=dict(orientation="h", x=0, xanchor="left", yref="container", yanchor="top", len=0.6,
                                 thickness=12, ticklabelposition="outside top",
                                 tickformat=".0%" if metric in PERCENT else ".1f"))])
    style(fig, f"{METRICS[metric]} for every sparsity and bit width", "sparsity (% of weights removed)",
          "bits per weight", height=int(len(bits) * CELL_SIZE * 1.2) + 250, legend_rows=0)
    # The colour bar lies under the title, in container coordinates (in paper ones it pushes the title away).
    fig.update_layout(margin_t=fig.layout.margin.t + GRID_BAR_PX, hoverdistance=-1)
    fig.update_traces(colorbar_y=1 - (fig.layout.margin.t - GRID_BAR_PX + 4) / fig.layout.height, selector=dict(type="heatmap"))
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=sparsities, showgrid=False)
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=bits, showgrid=False)
    fig.update_layout(clickmode="event+select")
    found = current is not None and bool(np.any(_at(cells, current)))
    if found:
        column_at, row_at = sparsities.index(format_percent(current[0])), bits.index(bits_label(current[1]))
        fig.add_trace(go.Scatter(
            x=[format_percent(current[0])], y=[bits_label(current[1])], mode="markers", name="current setting",
            customdata=[[float(current[0]), int(current[1])]], showlegend=False, hoverinfo="skip",
            marker=dict(opacity=0)))
        # The outline is a shape in category positions, so it fits its cell at every width.
        fig.add_shape(type="rect", x0=column_at - 0.5, x1=column_at + 0.5, y0=row_at - 0.5, y1=row_at + 0.5,
                      line=dict(color=CURRENT_COLOR, width=4))
    fig.update_layout(meta={"caption": _grid_caption(cells, column, metric, found, n_test)})
    return fig


def _at(cells: pd.DataFrame, setting: tuple[float, int]) -> np.ndarray:
    return np.isclose(cells["prune_amount"], float(setting[0])) & (cells["weight_bits"] == int(setting[1]))


def _grid_caption(cells: pd.DataFrame, column: str, metric: str, found: bool, n_test: int | None = None) -> str:
    text = (f"Each square is one setting, sparsity across and bits per weight up; the colour and number show "
            f"{_meaning(metric)}. Click a square to move the sidebar to it; "
            + ("the orange outline is the current setting." if found else "the current setting is not on this grid."))
    dense = cells[_at(cells, (0.0, 32))]
    if dense.empty:
        return text
    tol, holding = _tolerance(metric, float(dense[column].iloc[0]), n_test, "the uncompressed model")
    good = cells[cells[column] >= float(dense[column].iloc[0]) - tol]
    # Storage per weight, ignoring index costs: what "smallest" means for a student here.
    size = (1 - good["prune_amount"]) * good["weight_bits"]
    best = good.loc[size.idxmin()]
    return (f"{text} The smallest setting {holding}: "
            f"{format_percent(best['prune_amount'])} sparsity at {bits_words(best['weight_bits'])}.")

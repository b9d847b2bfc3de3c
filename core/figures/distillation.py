"""Figures of the Distillation page: the models' accuracies with their 95 % intervals, and one test image's
maps by the teacher and two students on one colour scale. Built like core.figures' others (one
`go.Figure(data, layout)` call, the caption in `layout.meta`)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from core.figures import ORIGINAL_COLOR, COMPRESSED_COLOR, as_array, format_percent, house_layout
from core.figures.maps import SALIENCY_MARGIN, _colorbar, _display_rgb, _saliency_layout

COLORS = {"teacher": ORIGINAL_COLOR, "distilled": COMPRESSED_COLOR, "label_only": "#7f7f7f",
          "kcenter": COMPRESSED_COLOR, "random": "#7f7f7f", "compressed": "#d62728"}
ACCURACY_CAPTION = ("Each dot is one model's accuracy on the test images; the bar is its 95 % Wilson interval, the "
                    "range the test set's noise allows. Two bars that overlap do not show a real difference.")
MAPS_CAPTION = ("The maps colour the pixels each model's answer is most sensitive to, for the teacher's answer, on one "
                "colour scale. The ρ above a student's map is the rank correlation of that map with the teacher's "
                "(1: the same pixels in the same order).")


def accuracy_intervals(table: pd.DataFrame, chance: float, names: dict[str, str] | None = None) -> go.Figure:
    """Accuracy (dot) and 95 % interval (bar) per model (`table`: core.distillation.compare's rows).

    The axis spans the intervals (a few points wide, so that the bars can be told apart); guessing
    (`chance`) is drawn as a dashed line when it lies on the axis and named in the caption when not.
    names: short row names by model (phones have room for about 12 characters beside the axis).
    """
    rows = table.iloc[::-1].copy()  # the teacher on top
    rows["label"] = [(names or {}).get(m, label) for m, label in zip(rows["model"], rows["label"])]
    acc, low, high = (100 * rows[c].to_numpy(dtype=float) for c in ("accuracy", "accuracy_low", "accuracy_high"))
    colors = [COLORS.get(m, ORIGINAL_COLOR) for m in rows["model"]]
    dots = go.Scatter(x=acc, y=list(rows["label"]), mode="markers+text", marker=dict(size=14, color=colors),
                      text=[f"{a:.1f} %" for a in acc], textposition="top center", showlegend=False,
                      error_x=dict(type="data", symmetric=False, array=high - acc, arrayminus=acc - low,
                                   thickness=3, width=6),
                      hovertemplate="%{y}: %{x:.1f} %<extra></extra>")
    start = max(0.0, float(np.floor(low.min())) - 2.0)
    traces, caption = [dots], ACCURACY_CAPTION
    if 100 * chance >= start:
        traces.append(go.Scatter(x=[100 * chance] * 2, y=[rows["label"].iloc[0], rows["label"].iloc[-1]],
                                 mode="lines", line=dict(dash="dash", color="#999999"), name="guessing",
                                 hoverinfo="skip"))
    else:
        caption += f" Guessing would score {format_percent(chance)}, far left of this axis."
    layout = house_layout("Test accuracy with its 95 % interval", "test accuracy (%)", "",
                          height=150 + 60 * len(rows), legend_rows=int(len(traces) > 1), meta={"caption": caption},
                          xaxis=dict(range=[start, 100.5]),
                          yaxis=dict(range=[-0.5, len(rows) - 0.2]))  # room above the top dot's label
    return go.Figure(traces, layout)


def maps_row(image: torch.Tensor, maps: Sequence[tuple[str, torch.Tensor]]) -> go.Figure:
    """Input | three models' maps (title, (H, W)), all maps on one colour scale (diverging if any is signed)."""
    if len(maps) != 3:
        raise ValueError(f"need exactly three maps (teacher and two students), got {len(maps)}")
    arrays = [as_array(m) for _, m in maps]
    signed = bool(min(np.nanmin(a) for a in arrays) < 0)
    vmax = float(max(np.nanmax(np.abs(a)) for a in arrays)) or 1.0
    layout = _saliency_layout(signed, vmax, {"caption": MAPS_CAPTION}, ["input", *(title for title, _ in maps)])
    lines = max(title.count("<br>") + 1 for title, _ in maps)  # titles of up to three short lines (phones)
    layout["margin"] = dict(layout["margin"], t=max(layout["margin"]["t"], 8 + 19 * lines))
    layout["height"] += layout["margin"]["t"] - SALIENCY_MARGIN["t"]
    layout["coloraxis"] = dict(layout["coloraxis"], showscale=True,
                               colorbar=_colorbar(1, 3, -vmax if signed else 0.0, vmax))
    layout["coloraxis2"] = dict(layout["coloraxis2"], showscale=False)
    hover = "row %{y}, column %{x}<br>%{z:.3g}<extra></extra>"
    data = [go.Image(z=_display_rgb(as_array(image)), hoverinfo="skip"),
            *(go.Heatmap(z=z, coloraxis="coloraxis", xaxis=f"x{i}", yaxis=f"y{i}", hovertemplate=hover)
              for i, z in zip((2, 3, 4), arrays))]
    return go.Figure(data, layout)

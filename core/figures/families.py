"""The cross-family comparison (core.studies.families): a metric against compressed size, one line per family.

The x axis is the compressed size on a log scale (the original's size is a dotted line at the
right); the Pareto front (no other point is both smaller and better) is a grey dashed staircase
through ringed points; the sidebar's own setting is a star; with several seeds each line has a
band of ± one standard deviation. The caption (`fig.layout.meta`) says what to notice, in numbers
computed from the table.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.figures import COMPRESSED_COLOR, format_bytes, format_percent, house_layout
from core.studies.families import METRICS, at_ratio, pareto_front

# Tableau 10 without the blue/orange that mean original/compressed on every other page.
PALETTE = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#d62728", "#aec7e8",
           "#98df8a")
FRONT_COLOR = "#555555"
LEGEND_ROW_CHARS = 90
FOCUS_RATIO = 10.0  # "at 10x smaller": where the caption compares the families


def _value_text(metric: str, value: float) -> str:
    return format_percent(value) if metric in ("accuracy", "agreement") else f"{value:.2f}"


def _band(x: np.ndarray, y: np.ndarray, spread: np.ndarray, color: str, group: str) -> go.Scatter:
    return go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([y + spread, (y - spread)[::-1]]),
                      fill="toself", fillcolor=color, opacity=0.18, line=dict(width=0), hoverinfo="skip",
                      showlegend=False, legendgroup=group)


def _scale(metric: str, values: np.ndarray) -> np.ndarray:
    return values * 100 if metric in ("accuracy", "agreement") else values


def families_chart(summary: pd.DataFrame, metric: str, chance: float | None = None, note: str = "") -> go.Figure:
    """`summary` = core.studies.families.summarize_lines(table, metric). chance: the metric's chance level.
    note: a sentence added to the caption (the distilled student's line, or how to get one)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    lines = summary[~summary["line"].isin(["current", "original"])]
    traces, several = [], bool((summary["n_seeds"] > 1).any())
    for k, ((key, label), line) in enumerate(lines.groupby(["line", "label"], sort=False)):
        line = line.sort_values("size_bytes")
        color = PALETTE[k % len(PALETTE)]
        x, y = line["size_bytes"].to_numpy(float) / 1000, _scale(metric, line["value"].to_numpy(float))
        if several:
            traces.append(_band(x, y, _scale(metric, line["spread"].to_numpy(float)), color, key))
        traces.append(go.Scatter(
            x=x, y=y, mode="lines+markers", name=label, legendgroup=key, line=dict(color=color, width=3),
            marker=dict(size=9), customdata=line["ratio"].to_numpy(float),
            hovertemplate=f"<b>{label}</b><br>%{{x:.1f}} kB (%{{customdata:.1f}}× smaller)<br>%{{y:.1f}}<extra></extra>"))
    front = lines[pareto_front(lines)].sort_values("size_bytes")
    if len(front):
        fx, fy = front["size_bytes"].to_numpy(float) / 1000, _scale(metric, front["value"].to_numpy(float))
        traces.append(go.Scatter(x=fx, y=fy, mode="lines+markers", name="Pareto front", line=dict(
            color=FRONT_COLOR, dash="dash", width=1.5, shape="hv"), marker=dict(size=16, symbol="circle-open",
            color=FRONT_COLOR, line=dict(width=2)), hoverinfo="skip"))
    current = summary[summary["line"] == "current"]
    if len(current):
        traces.append(go.Scatter(
            x=current["size_bytes"] / 1000, y=_scale(metric, current["value"].to_numpy(float)), mode="markers",
            name="Sidebar setting", marker=dict(symbol="star", size=20, color=COMPRESSED_COLOR,
                                                line=dict(color="white", width=1)),
            hovertemplate="<b>Sidebar setting</b><br>%{x:.1f} kB<br>%{y:.1f}<extra></extra>"))
    shapes = []
    original = summary[summary["line"] == "original"]
    if len(original):
        shapes.append(dict(type="line", xref="x", yref="paper", x0=float(original["size_bytes"].iloc[0]) / 1000,
                           x1=float(original["size_bytes"].iloc[0]) / 1000, y0=0, y1=1,
                           line=dict(color=FRONT_COLOR, dash="dot", width=1)))
    if chance is not None:
        y = chance * 100 if metric in ("accuracy", "agreement") else chance
        shapes.append(dict(type="line", xref="paper", yref="y", x0=0, x1=1, y0=y, y1=y,
                           line=dict(color="#999999", dash="dot", width=1)))
    unit = " (%)" if metric in ("accuracy", "agreement") else ""
    # Rows the legend needs at a projector's width (about 90 characters a row); a phone wraps it further.
    named = sum(len(t.name) + 6 for t in traces if t.showlegend is not False)
    layout = house_layout(f"{METRICS[metric].split(' (')[0]} against size", "compressed size (kB, log scale)",
                          METRICS[metric].split(" (")[0] + unit, height=560,
                          legend_rows=max(2, math.ceil(named / LEGEND_ROW_CHARS)),
                          xaxis=dict(type="log"), shapes=shapes)
    layout["meta"] = {"caption": f"{families_caption(summary, metric, chance)} {note}".strip()}
    return go.Figure(data=traces, layout=layout)


def families_caption(summary: pd.DataFrame, metric: str, chance: float | None = None) -> str:
    """Two sentences on what to notice, from the numbers: who wins at 10x smaller, and what the front is."""
    what = METRICS[metric].split(" (")[0].lower()
    at = at_ratio(summary, FOCUS_RATIO).sort_values("value", ascending=False)
    original = summary[summary["line"] == "original"]
    size = format_bytes(float(original["size_bytes"].iloc[0]) / FOCUS_RATIO) if len(original) else ""
    if len(at) >= 2:
        best, worst = at.iloc[0], at.iloc[-1]
        first = (f"At {FOCUS_RATIO:.0f}× smaller than the original ({size}), {best['label']} keeps the highest "
                 f"{what} ({_value_text(metric, best['value'])}) and {worst['label']} the lowest "
                 f"({_value_text(metric, worst['value'])}), each read off its line between its two nearest points; "
                 f"lines that never reach {FOCUS_RATIO:.0f}× are left out of this comparison.")
    elif len(at) == 1:
        first = (f"At {FOCUS_RATIO:.0f}× smaller ({size}) only {at.iloc[0]['label']} has points on both sides: "
                 f"{what} {_value_text(metric, at.iloc[0]['value'])}.")
    else:
        first = f"No family's points reach {FOCUS_RATIO:.0f}× smaller on both sides here, so none is compared there."
    chance_words = (f" The dotted horizontal line is chance ({_value_text(metric, chance)})."
                    if chance is not None else "")
    return (first + " Ringed points on the dashed staircase are the Pareto front: no other setting is both smaller "
            f"and better; the dotted vertical line is the original's size.{chance_words}")

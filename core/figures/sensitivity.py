"""Figures of the layer sensitivity analysis (core.studies.sensitivity): the layer x setting map, SQNR bars.

Builders take the analysis table, return a `go.Figure` with its caption in `layout.meta["caption"]`
(numbers in it come from the table) and never call Streamlit.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.figures import COMPRESSED_COLOR, FONT_SIZE, ORIGINAL_COLOR, SEQUENTIAL, house_layout

METRICS: dict[str, str] = {
    "accuracy": "Accuracy",
    "agreement": "Prediction agreement with the original",
    "spearman_abs": "Explanation agreement (Spearman of |map|)",
}
PERCENT = ("accuracy", "agreement")
CURRENT_COLOR = COMPRESSED_COLOR
CELL_PX = 46


def sidebar_columns(table: pd.DataFrame, prune_amount: float, weight_bits: int) -> list[str]:
    """The settings (column labels) of the table that the sidebar's rate and bit width are; [] if neither is one."""
    columns = table.drop_duplicates("setting")
    marked = columns[(columns.kind == "prune") & np.isclose(columns.prune_amount, float(prune_amount))
                     & (float(prune_amount) > 0)]
    marked = pd.concat([marked, columns[(columns.kind == "quantize") & (columns.weight_bits == int(weight_bits))]])
    return list(marked.setting)


def sensitivity_heatmap(table: pd.DataFrame, metric: str = "accuracy", prune_amount: float = 0.0,
                        weight_bits: int = 32) -> go.Figure:
    """Layers (rows) x settings (columns) coloured by `metric`; the sidebar's rate and bit width outlined.

    Settings that do not apply (structured pruning of the classes' layer) stay empty and say "n/a".
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    settings = list(dict.fromkeys(table.setting))
    layers = list(dict.fromkeys(table.label))
    z = table.pivot(index="label", columns="setting", values=metric).reindex(index=layers, columns=settings)
    text = z.map(lambda v: "n/a" if pd.isna(v) else (f"{100 * v:.0f}" if metric in PERCENT else f"{v:.2f}"))
    heat = go.Heatmap(x=settings, y=layers, z=z.to_numpy(), text=text.to_numpy(), texttemplate="%{text}",
                      textfont=dict(size=FONT_SIZE - 3), colorscale=SEQUENTIAL, zmin=0, zmax=1, xgap=3, ygap=3,
                      colorbar=dict(thickness=12, tickformat=".0%" if metric in PERCENT else ".1f"),
                      hovertemplate="%{y}, %{x}: %{text}<extra></extra>")
    marked = sidebar_columns(table, prune_amount, weight_bits)
    shapes = [dict(type="rect", xref="x", yref="paper", x0=settings.index(s) - 0.5, x1=settings.index(s) + 0.5,
                   y0=0, y1=1, line=dict(color=CURRENT_COLOR, width=4)) for s in marked]
    title = f"{METRICS[metric]} when one layer alone is compressed"
    layout = house_layout(title, "setting of that layer alone", "", legend_rows=0,
                          height=len(layers) * CELL_PX + 230, shapes=shapes)
    fig = go.Figure([heat], layout)
    # Two short lines per column ("prune / 50 %"), upright: slanted labels ran into each other on a projector.
    fig.update_xaxes(type="category", showgrid=False, tickangle=0, tickvals=settings,
                     ticktext=[s.replace(" ", "<br>", 1) for s in settings])
    fig.update_yaxes(type="category", autorange="reversed", showgrid=False)
    fig.update_layout(meta={"caption": _heatmap_caption(table, metric, marked, prune_amount, weight_bits)})
    return fig


def _heatmap_caption(table: pd.DataFrame, metric: str, marked: list[str], prune_amount: float,
                     weight_bits: int) -> str:
    rows = table[table.applicable.astype(bool)]
    base = table.attrs.get("original_accuracy")
    worst = rows.loc[rows[metric].idxmin()] if len(rows) else None
    text = ("Each row is one layer compressed alone, every other layer left as trained; each column one setting. "
            "Dark cells are where that one layer costs most.")
    if not table.applicable.astype(bool).all():
        text += " n/a: structured pruning never removes the classes' units, so the last layer cannot take it."
    if worst is not None:
        value = f"{100 * worst[metric]:.1f} %" if metric in PERCENT else f"{worst[metric]:.2f}"
        text += f" The most sensitive cell: {worst.label.split(' (')[0]} at {worst.setting} ({value}"
        text += f", original {100 * base:.1f} %)." if metric == "accuracy" and base is not None else ")."
    if marked:
        text += f" Outlined: the sidebar's setting ({' and '.join(marked)})."
    elif float(prune_amount) > 0 or weight_bits != 32:
        text += " The sidebar's setting is not one of these columns, so nothing is outlined."
    return text


def sqnr_bars(table: pd.DataFrame, kind: str = "weight") -> go.Figure:
    """Per layer, the SQNR in dB of its weights (kind "weight") or outputs ("activation") at each bit width."""
    column = f"{kind}_sqnr_db"
    quant = table[table.kind == "quantize"]
    widths = list(dict.fromkeys(quant.weight_bits))
    layers = list(dict.fromkeys(quant.label))
    colors = _shades(len(widths))
    traces, exact = [], []
    for bits, color in zip(widths, colors):
        part = quant[quant.weight_bits == bits].set_index("label").reindex(layers)
        values = part[column].to_numpy(dtype=float)
        finite = np.where(np.isfinite(values), values, np.nan)
        exact += [f"{label.split(' (')[0]} at {bits} bits" for label, v in zip(layers, values) if v == math.inf]
        traces.append(go.Bar(x=[label.split(" (")[0] for label in layers], y=np.nan_to_num(finite, nan=0.0),
                             name=f"{bits} bits", marker_color=color,
                             text=["exact" if v == math.inf else f"{v:.0f}" for v in values],
                             textposition="outside", textfont_size=FONT_SIZE - 4, constraintext="none",
                             hovertemplate="%{x}, " + f"{bits} bits" + ": %{text} dB<extra></extra>"))
    what = "weights" if kind == "weight" else "outputs on test images"
    layout = house_layout(f"Quantization error of each layer's {what} (SQNR)", "layer",
                          "signal-to-noise ratio (dB)", barmode="group", legend_rows=1)
    fig = go.Figure(traces, layout)
    fig.update_layout(meta={"caption": _sqnr_caption(quant, column, kind, exact)})
    return fig


def _shades(n: int) -> list[str]:
    """From the original's blue (most bits) to the compressed orange (fewest)."""
    if n <= 1:
        return [ORIGINAL_COLOR][:n]
    blue, orange = np.array([0x1F, 0x77, 0xB4]), np.array([0xFF, 0x7F, 0x0E])
    return ["#%02x%02x%02x" % tuple(int(c) for c in blue + (orange - blue) * i / (n - 1)) for i in range(n)]


def _sqnr_caption(quant: pd.DataFrame, column: str, kind: str, exact: list[str]) -> str:
    what = "weights" if kind == "weight" else "output on the first test images (the layers before it dense)"
    text = (f"SQNR = 10·log10(‖signal‖² / ‖signal − quantized‖²) of each layer's {what}: every bit fewer costs "
            "about 6 dB. A layer whose bars sit low loses most of its signal to rounding.")
    finite = quant[np.isfinite(quant[column])]
    if len(finite):
        low = finite.loc[finite[column].idxmin()]
        text += f" Lowest: {low.label.split(' (')[0]} at {low.weight_bits} bits, {low[column]:.1f} dB."
    if exact:
        text += f" Exact (no error at all): {', '.join(exact)}."
    return text

"""Plotly figures of the Global view page (core.studies.global_view): embedding, tiles of filters or class
maps, silent units. Builders copy what they read, return a go.Figure with a student caption in
`fig.layout.meta["caption"]` and never call Streamlit."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from core.figures import COMPRESSED_COLOR, DIVERGING, FONT_SIZE, ORIGINAL_COLOR, SEQUENTIAL, house_layout

CLASS_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                "#17becf"]  # Tableau 10, one per class
SUBPLOT_TITLE_PX = 28  # room above the first panel for its title (make_subplots puts it above the plot area)


def embedding_figure(original: np.ndarray, compressed: np.ndarray, labels: np.ndarray, pred_original: np.ndarray,
                     pred_compressed: np.ndarray, classes: Sequence[str], note: str = "",
                     indices: np.ndarray | None = None) -> go.Figure:
    """Both models' 2-D features side by side in one coordinate system, coloured by true class; test images
    whose prediction changed are ringed in black. Hover: test index, label, both predictions.

    indices: the test-image index of each row (default 0..n-1; t-SNE shows a subset). It is every point's
    first customdata, so a selection names its test images (core.studies.global_view.selected_indices)."""
    labels, po, pc = (np.asarray(v) for v in (labels, pred_original, pred_compressed))
    flipped = po != pc
    fig = make_subplots(rows=1, cols=2, shared_xaxes=True, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("original", "compressed"))
    rows = np.arange(len(labels)) if indices is None else np.asarray(indices)
    custom = np.column_stack([rows, labels, po, pc])
    hover = "test image %{customdata[0]}<br>label %{customdata[1]}<br>original says %{customdata[2]}, " \
            "compressed %{customdata[3]}<extra></extra>"
    for col, coords in ((1, np.asarray(original)), (2, np.asarray(compressed))):
        for c, name in enumerate(classes):
            at = labels == c
            fig.add_trace(go.Scattergl(x=coords[at, 0], y=coords[at, 1], mode="markers", name=str(name),
                                       legendgroup=str(name), showlegend=col == 1, customdata=custom[at],
                                       hovertemplate=hover, marker=dict(size=5, color=CLASS_COLORS[c % 10],
                                                                        opacity=0.7)), row=1, col=col)
        fig.add_trace(go.Scattergl(x=coords[flipped, 0], y=coords[flipped, 1], mode="markers",
                                   name="prediction changed", legendgroup="flipped", showlegend=col == 1,
                                   customdata=custom[flipped], hovertemplate=hover,
                                   marker=dict(size=11, color="rgba(0,0,0,0)", line=dict(color="black", width=2))),
                      row=1, col=col)
    fig.update_layout(house_layout("What the last hidden layer sees, in 2-D", "", "", height=560, legend_rows=2),
                      legend_font_size=FONT_SIZE - 3)
    fig.update_layout(margin_t=fig.layout.margin.t + SUBPLOT_TITLE_PX)  # the panel titles sit under the legend
    fig.update_xaxes(matches="x")  # one coordinate system: the same x range in both panels
    fig.update_layout(clickmode="event+select")  # a click selects its dot: the page shows that image
    fig.update_annotations(font_size=FONT_SIZE)
    changed = int(flipped.sum())
    fig.update_layout(meta={"caption": (
        "Each dot is a test image, placed by the features the model's last layer reads (the layer before the "
        "classes); colour is its true digit. Tight, separate colour groups mean the model tells the classes "
        "apart easily; in the same coordinates, a compressed model whose features shrink or blur draws a smaller "
        f"or more mixed cloud. Black rings: the {changed} image{'s' if changed != 1 else ''} whose answer changed "
        f"with compression. Click a dot (or draw a box or lasso around a few) to see those test images beside the "
        f"chart. {note}").strip()})
    return fig


def _tile_row(maps: np.ndarray) -> np.ndarray:
    """(K, H, W) -> one (H, K*(W+1)-1) image with a NaN column between the tiles."""
    k, h, w = maps.shape
    row = np.full((h, k * (w + 1) - 1), np.nan)
    for i in range(k):
        row[:, i * (w + 1): i * (w + 1) + w] = maps[i]
    return row


def tiles_figure(rows: dict[str, torch.Tensor], names: Sequence[str], title: str, caption: str,
                 signed: bool = True, per_row: bool = False) -> go.Figure:
    """One row of tiles per model ({"original": (K, H, W), "compressed": ...}), named on its left; `names` label
    the K columns. One colour scale for all (symmetric about 0 when signed), or with per_row each row ÷ its
    own largest |value| (then rows compare by shape, not size)."""
    arrays = {model: maps.detach().float().numpy().copy() for model, maps in rows.items()}
    if per_row:
        arrays = {model: a / max(float(np.abs(a).max()), 1e-12) for model, a in arrays.items()}
    vmax = max([float(np.nanmax(np.abs(a))) for a in arrays.values()] + [1e-12])
    k, h, w = next(iter(arrays.values())).shape
    fig = make_subplots(rows=len(arrays), cols=1, vertical_spacing=0.12)
    fig.update_layout(house_layout(title, "", "", height=170 + 150 * len(arrays), legend_rows=0))  # before the axes
    for r, (model, array) in enumerate(arrays.items(), 1):
        fig.add_trace(go.Heatmap(z=_tile_row(array)[::-1], colorscale=DIVERGING if signed else SEQUENTIAL,
                                 zmin=-vmax if signed else 0.0, zmax=vmax, showscale=r == 1, hoverinfo="skip",
                                 colorbar=dict(thickness=12, len=0.8)), row=r, col=1)
        fig.update_xaxes(tickvals=[i * (w + 1) + (w - 1) / 2 for i in range(k)], ticktext=list(names),
                         showgrid=False, zeroline=False, row=r, col=1)
        fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, title_text=model,
                         scaleanchor=f"x{r if r > 1 else ''}", row=r, col=1)
    fig.update_layout(meta={"caption": caption})
    return fig


def silent_units_figure(original: pd.DataFrame, compressed: pd.DataFrame) -> go.Figure:
    """Per hidden layer, the share of units that never fire on the test set, original vs compressed."""
    # The short layer name under each pair of bars ("fc 1"); the shape is in the hover (long names overlapped).
    bars = [go.Bar(x=[layer.split(" (")[0] for layer in t["layer"]], y=100 * t["silent_share"], name=name,
                   marker_color=color, customdata=t["layer"],
                   text=[f"{s} of {u}" for s, u in zip(t["silent"], t["units"])], textposition="outside",
                   hovertemplate="%{customdata}: %{y:.0f} % of the units never fire<extra>" + name + "</extra>")
            for name, t, color in (("original", original, ORIGINAL_COLOR), ("compressed", compressed,
                                                                             COMPRESSED_COLOR))]
    layout = house_layout("Units that never fire on the test set", "layer", "share of the layer's units (%)",
                          height=460)
    layout["yaxis"] = {**layout["yaxis"], "range": [0, 112], "ticksuffix": " %"}
    fig = go.Figure(bars, layout)
    worst = compressed.loc[compressed["silent_share"].idxmax()] if len(compressed) else None
    fact = (f" Most silent after compression: {worst['layer'].split(' (')[0]}, {worst['silent']} of its "
            f"{worst['units']} units." if worst is not None else "")
    fig.update_layout(meta={"caption": (
        "A unit (a neuron, or a channel of a convolution) fires when its output is above 0 (what its ReLU passes "
        "on) for at least one test image. A unit that never fires passes nothing to the next layer: it is dead "
        f"weight, whether it was pruned or died in training.{fact}")})
    return fig


def silent_notes(table: pd.DataFrame, model: str) -> list[str]:
    """Sentences for the layers of `table` (core.studies.global_view.unit_activity) with no unit left or none firing."""
    out = []
    for row in table.itertuples():
        name = row.layer.split(" (")[0]
        if row.no_units:
            out.append(f"{model}: {name} has no units left; counted as 100 % silent.")
        elif row.silent == row.units:
            out.append(f"{model}: no unit of {name} fires on any test image, so every later layer sees only its "
                       "biases: the model answers the same whatever the image.")
    return out

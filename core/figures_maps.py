"""Image-like figures: a layer's weights as a picture, and saliency maps side by side.

Same contract as `core.figures`: plain inputs (copied), a `go.Figure` out, no Streamlit,
the student caption in `fig.layout.meta["caption"]`.
"""
from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image  # Pillow comes with torchvision; encodes the weight picture as PNG
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from core.figures import (DIVERGING, FONT_SIZE, SEQUENTIAL, as_array, caption, finite_weights, format_percent,
                          layer_title, style)

PRUNED_RGB = (0, 0, 0)        # black: a pruned weight must not look like a small one
GAP_RGB = (255, 255, 255)     # the 1-pixel blank between conv filter tiles
N_COLORS = 65                 # odd, so the middle colour sits exactly at weight 0
# RdBu's darkest ends are cut off so that the largest weights never read as the black of pruned ones.
WEIGHT_COLORSCALE = [[i / (N_COLORS - 1), c]
                     for i, c in enumerate(sample_colorscale(DIVERGING, np.linspace(0.1, 0.9, N_COLORS)))]


def filter_grid(weight: np.ndarray) -> np.ndarray:
    """Conv weights (out, in, kh, kw) as one 2-D grid of kh×kw tiles, rows = output channels.

    Shape (out*(kh+1) - 1, in*(kw+1) - 1): tiles are separated by one row/column of NaN.
    """
    out, inp, kh, kw = weight.shape
    grid = np.full((out, kh + 1, inp, kw + 1), np.nan)
    grid[:, :kh, :, :kw] = weight.transpose(0, 2, 1, 3)
    return grid.reshape(out * (kh + 1), inp * (kw + 1))[:-1, :-1]


def _png_uri(grid: np.ndarray, vmax: float) -> str:
    """A palette PNG of `grid`: NaN -> gap, exact 0 -> pruned black, others -> diverging colour.

    One palette byte per weight instead of a JSON number keeps a 300×784 layer near 100 kB,
    where a go.Heatmap would send about 2 MB of text to the browser.
    """
    finite = np.isfinite(grid)
    index = np.zeros(grid.shape, dtype=np.uint8)                 # 0 = gap
    index[finite & (grid == 0)] = 1                              # 1 = pruned
    kept = finite & (grid != 0)
    steps = np.rint((grid[kept] / vmax + 1.0) / 2.0 * (N_COLORS - 1))
    index[kept] = 2 + np.clip(steps, 0, N_COLORS - 1).astype(np.uint8)
    rgb = [tuple(int(float(v)) for v in c[4:-1].split(",")) for _, c in WEIGHT_COLORSCALE]
    picture = Image.fromarray(index)
    picture.putpalette([v for color in (GAP_RGB, PRUNED_RGB, *rgb) for v in color])
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _tile_ticks(count: int, size: int) -> dict:
    """Axis ticks at the centre of each filter tile, labelled by channel index (at most ~16 labels)."""
    step = max(1, int(np.ceil(count / 16)))
    return dict(tickvals=[i * (size + 1) + (size - 1) / 2 for i in range(0, count, step)],
                ticktext=[str(i) for i in range(0, count, step)], showgrid=False, zeroline=False)


def _key_traces(vmax: float) -> list[go.Scatter]:
    """Invisible traces that carry the colour bar and the legend entry for pruned weights."""
    colorbar = go.Scatter(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
                          marker=dict(color=[0.0], colorscale=WEIGHT_COLORSCALE, cmin=-vmax, cmax=vmax,
                                      showscale=True, colorbar=dict(title="weight", thickness=16)))
    pruned = go.Scatter(x=[None], y=[None], mode="markers", name="pruned (exactly 0)", hoverinfo="skip",
                        marker=dict(symbol="square", size=16, color="rgb(0,0,0)"))
    return [colorbar, pruned]


def weight_heatmap(weight: torch.Tensor, layer: str) -> go.Figure:
    """One layer's weights as a picture (traces: go.Image, colour-bar carrier, pruned legend entry).

    Linear (out, in): one pixel per weight, rows = output neurons. Conv2d (out, in, kh, kw): the
    `filter_grid` of tiles, shape (out*(kh+1)-1, in*(kw+1)-1). The weight is copied.
    """
    w = finite_weights(weight, f"layer {layer}'s weight")
    if w.ndim not in (2, 4):
        raise ValueError(f"expected a Linear (out, in) or Conv2d (out, in, kh, kw) weight, got shape {w.shape}")
    grid = filter_grid(w) if w.ndim == 4 else w
    vmax = float(np.abs(w).max()) or 1.0
    zeros = float((w == 0).mean()) if w.size else 0.0
    shape = "×".join(str(n) for n in w.shape)
    image = go.Image(source=_png_uri(grid, vmax), name="weights", hoverinfo="skip" if w.ndim == 4 else None,
                     hovertemplate=None if w.ndim == 4 else "output neuron %{y}<br>input feature %{x}<extra></extra>")
    fig = go.Figure([image, *_key_traces(vmax)])
    labels = ("input channel", "output channel (filter)") if w.ndim == 4 else ("input feature", "output neuron")
    # Keep pixels square and let tall or wide layers pick a height that fills the width.
    rows, cols = grid.shape
    name = layer_title(layer) if shape in str(layer) else f"{layer_title(layer)} ({shape})"
    style(fig, f"{name}: weights, {format_percent(zeros)} pruned", *labels,
          height=int(np.clip(650 * rows / cols + 170, 340, 760)))
    fig.update_layout(legend=dict(y=1.0, x=1.0, xanchor="right", yanchor="bottom"), plot_bgcolor="white")
    fig.update_xaxes(showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(showgrid=False, zeroline=False, constrain="domain")
    if w.ndim == 4:
        fig.update_xaxes(**_tile_ticks(w.shape[1], w.shape[3]))
        fig.update_yaxes(**_tile_ticks(w.shape[0], w.shape[2]))
    fig.update_layout(meta={"caption": caption("weight_heatmap", zeros=format_percent(zeros))})
    return fig


def _display_rgb(image: np.ndarray) -> np.ndarray:
    """An (H, W), (1, H, W) or (3, H, W) input as (H, W, 3) uint8, min-max scaled (inputs are normalized)."""
    if image.ndim == 3 and image.shape[0] in (1, 3):
        image = image.transpose(1, 2, 0)
    elif image.ndim == 2:
        image = image[:, :, None]
    else:
        raise ValueError(f"expected an image (H, W), (1, H, W) or (3, H, W), got shape {image.shape}")
    low, high = np.nanmin(image), np.nanmax(image)
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return np.broadcast_to(np.rint(scaled * 255), (*image.shape[:2], 3)).astype(np.uint8)


def saliency_row(image: torch.Tensor, original_map: torch.Tensor, compressed_map: torch.Tensor,
                 titles: dict[str, str] | None = None) -> go.Figure:
    """Input | original map | compressed map | difference (compressed − original), in one row.

    image (H, W) or (C, H, W) with C in {1, 3}; maps (H, W). All are copied. Both maps share one
    colour scale (symmetric around 0 if either is signed, else 0..max); the difference is diverging
    on the same ±max, so a faint difference panel means the explanation barely changed.
    `titles` may override the keys "image", "original", "compressed", "difference".
    """
    rgb, a, b = _display_rgb(as_array(image)), as_array(original_map), as_array(compressed_map)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"maps must be two (H, W) arrays of one shape, got {a.shape} and {b.shape}")
    signed = bool(min(np.nanmin(a), np.nanmin(b)) < 0)
    vmax = float(max(np.nanmax(np.abs(a)), np.nanmax(np.abs(b)))) or 1.0
    names = {"image": "input", "original": "original", "compressed": "compressed",
             "difference": "compressed − original", **(titles or {})}
    fig = make_subplots(rows=1, cols=4, horizontal_spacing=0.07,
                        subplot_titles=[names[k] for k in ("image", "original", "compressed", "difference")])
    fig.add_trace(go.Image(z=rgb, hoverinfo="skip"), 1, 1)
    hover = "row %{y}, column %{x}<br>%{z:.3g}<extra></extra>"
    for col, z in ((2, a), (3, b)):
        fig.add_trace(go.Heatmap(z=z, coloraxis="coloraxis", hovertemplate=hover), 1, col)
    fig.add_trace(go.Heatmap(z=b - a, coloraxis="coloraxis2", hovertemplate=hover), 1, 4)
    bar = dict(thickness=10, len=0.9, tickfont_size=FONT_SIZE - 3)
    fig.update_layout(
        height=250, template="plotly_white", font=dict(size=FONT_SIZE), margin=dict(l=10, r=10, t=40, b=10),
        coloraxis=dict(colorscale=DIVERGING if signed else SEQUENTIAL, cmin=-vmax if signed else 0.0, cmax=vmax,
                       showscale=not signed, colorbar=dict(x=0.74, **bar)),  # signed: same as the next bar
        coloraxis2=dict(colorscale=DIVERGING, cmin=-vmax, cmax=vmax, colorbar=dict(x=1.0, **bar)),
    )
    fig.update_annotations(font_size=FONT_SIZE - 1)
    for col in range(1, 5):
        fig.update_xaxes(visible=False, scaleanchor=f"y{'' if col == 1 else col}", constrain="domain", row=1, col=col)
        fig.update_yaxes(visible=False, autorange="reversed", constrain="domain", row=1, col=col)
    change = float(np.nanmax(np.abs(b - a))) / vmax if a.size else 0.0
    fig.update_layout(meta={"caption": caption("saliency_row", change=format_percent(change))})
    return fig

"""Image-like figures: a layer's weights as a picture, and saliency maps side by side.

Same contract as `core.figures`: plain inputs (copied), a `go.Figure` out, no Streamlit,
the student caption in `fig.layout.meta["caption"]`, its facts alone in `meta["facts"]`.
Each figure is built by one `go.Figure(data, layout)` call (see `core.figures` on speed).
"""
from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image  # Pillow comes with torchvision; encodes the weight picture as PNG
from plotly.colors import sample_colorscale, unlabel_rgb

from core.figures import (DIVERGING, FONT_SIZE, SEQUENTIAL, TEMPLATE, as_array, figure_meta, finite_weights,
                          format_percent, house_layout, layer_title)

PRUNED_RGB = (0, 0, 0)        # black: a pruned weight must not look like a small one
GAP_RGB = (255, 255, 255)     # the 1-pixel blank between conv filter tiles
N_COLORS = 65                 # odd, so the middle colour sits exactly at weight 0
# RdBu's darkest ends are cut off so that the largest weights never read as the black of pruned ones.
WEIGHT_COLORSCALE = [[i / (N_COLORS - 1), c]
                     for i, c in enumerate(sample_colorscale(DIVERGING, np.linspace(0.1, 0.9, N_COLORS)))]
# The colour bar needs far fewer stops than the picture: 17 look the same and validate 5× faster than 65.
_BAR_COLORSCALE = [[i / 16, c] for i, (_, c) in enumerate(WEIGHT_COLORSCALE[::4])]
# PNG palette: index 0 = gap, 1 = pruned, 2.. = the colour scale (parsed once, not per figure).
_PALETTE = [int(round(v)) for color in (GAP_RGB, PRUNED_RGB, *(unlabel_rgb(c) for _, c in WEIGHT_COLORSCALE))
            for v in color]


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
    where a go.Heatmap would send about 2 MB of text to the browser. compress_level=1: the
    default search (optimize=True) took 13-60 ms per picture for ~18 % fewer bytes.
    """
    steps = np.rint((np.nan_to_num(grid) / vmax + 1.0) * ((N_COLORS - 1) / 2.0))
    index = (2 + np.clip(steps, 0, N_COLORS - 1)).astype(np.uint8)
    index[grid == 0] = 1                                         # pruned (NaN compares unequal)
    index[np.isnan(grid)] = 0                                    # gap between tiles
    picture = Image.fromarray(index, mode="P")
    picture.putpalette(_PALETTE)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _tile_ticks(count: int, size: int) -> dict:
    """Axis ticks at the centre of each filter tile, labelled by channel index (at most ~16 labels)."""
    step = max(1, int(np.ceil(count / 16)))
    return dict(tickvals=[i * (size + 1) + (size - 1) / 2 for i in range(0, count, step)],
                ticktext=[str(i) for i in range(0, count, step)])


def _key_traces(vmax: float) -> list[dict]:
    """Invisible traces that carry the colour bar and the legend entry for pruned weights.

    Plain dicts: go.Figure validates them once, where go.Scatter objects would be validated twice.
    """
    colorbar = dict(type="scatter", x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
                    marker=dict(color=[0.0], colorscale=_BAR_COLORSCALE, cmin=-vmax, cmax=vmax, showscale=True,
                                colorbar=dict(title=dict(text="weight"), thickness=16)))
    pruned = dict(type="scatter", x=[None], y=[None], mode="markers", name="pruned (exactly 0)", hoverinfo="skip",
                  marker=dict(symbol="square", size=16, color="rgb(0,0,0)"))
    return [colorbar, pruned]


def _unused(w: np.ndarray) -> str:
    """How many output units and inputs have no nonzero weight left, in words (the black rows and columns)."""
    zero = w == 0
    rows = int(zero.reshape(w.shape[0], -1).all(axis=1).sum())
    cols = int(zero.all(axis=(0, 2, 3) if w.ndim == 4 else 0).sum())
    outputs, inputs = ("filters", "input channels") if w.ndim == 4 else ("output neurons", "inputs")
    if not rows and not cols:
        return f"every one of its {outputs} and {inputs} keeps at least one weight"
    return f"{rows} of {w.shape[0]} {outputs} and {cols} of {w.shape[1]} {inputs} have no weight left"


def weight_heatmap(weight: torch.Tensor, layer: str) -> go.Figure:
    """One layer's weights as a picture (traces: go.Image, colour-bar carrier, pruned legend entry).

    Linear (out, in): one pixel per weight, rows = output neurons. Conv2d (out, in, kh, kw): the
    `filter_grid` of the (in, out) transpose, so filters run along x and input channels down y,
    shape (in*(kh+1)-1, out*(kw+1)-1): conv layers have more filters than inputs, and a wide
    picture fits a half-width column where a 760-px-tall strip of tiles would not. The weight is
    copied. The title is the layer label (its shape added when missing) and the pruned share.
    """
    w = finite_weights(weight, f"layer {layer}'s weight")
    if w.ndim not in (2, 4):
        raise ValueError(f"expected a Linear (out, in) or Conv2d (out, in, kh, kw) weight, got shape {w.shape}")
    grid = filter_grid(w.transpose(1, 0, 2, 3)) if w.ndim == 4 else w
    vmax = float(np.abs(w).max()) if w.size else 0.0
    vmax = vmax or 1.0
    zeros = float((w == 0).mean()) if w.size else 0.0
    shape = "×".join(str(n) for n in w.shape)
    name = layer_title(layer) if shape in str(layer) else f"{layer_title(layer)} ({shape})"
    image = go.Image(source=_png_uri(grid, vmax), name="weights", hoverinfo="skip" if w.ndim == 4 else None,
                     hovertemplate=None if w.ndim == 4 else "output neuron %{y}<br>input feature %{x}<extra></extra>")
    axis = dict(showgrid=False, zeroline=False, constrain="domain")
    xaxis, yaxis = (dict(axis, **_tile_ticks(w.shape[0], w.shape[3])), dict(axis, **_tile_ticks(w.shape[1], w.shape[2]))
                    ) if w.ndim == 4 else (axis, axis)
    labels = ("output channel (filter)", "input channel") if w.ndim == 4 else ("input feature", "output neuron")
    # Square pixels: the height that fills the ~500 px a half-width column leaves for the picture.
    rows, cols = grid.shape
    layout = house_layout(f"{name} · {format_percent(zeros)} pruned", *labels,
                          height=int(np.clip(500 * rows / cols + 170, 280, 760)),
                          legend=dict(yref="paper", y=1.0, x=1.0, xanchor="right", yanchor="bottom"), xaxis=xaxis, yaxis=yaxis,
                          meta=figure_meta("weight_heatmap", zeros=format_percent(zeros), unused=_unused(w)))
    return go.Figure([image, *_key_traces(vmax)], layout)
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


# Saliency row geometry. The colour bars lie horizontally under the panels they serve, in the bottom
# margin, and the titles sit on top of each panel's own (constrained) domain: neither can reach into a
# panel at any width, and no gap has to be reserved for a vertical bar's tick labels.
PANEL_GAP = 0.03             # between panel slots, in fractions of the plot width
SALIENCY_MARGIN = dict(l=10, r=10, t=52, b=46)
BAR_FILL = 0.8               # a bar covers this share of the slots it serves (the images fill less at wide sizes)


def saliency_domains() -> list[tuple[float, float]]:
    """The x-domains of the four panel slots (paper fractions); square images fill each slot's height or width."""
    width = (1.0 - 3 * PANEL_GAP) / 4
    return [(i * (width + PANEL_GAP), i * (width + PANEL_GAP) + width) for i in range(4)]


def _axis(letter: str, panel: int) -> str:
    """Plotly's name of panel `panel`'s (0-based) axis: x, x2, x3, x4."""
    return f"{letter}{panel + 1 if panel else ''}"


def _panel_titles(names: list[str]) -> list[dict]:
    """Titles on top of each panel's image (a "<br>" in one starts a second line)."""
    return [dict(text=name, xref=f"{_axis('x', i)} domain", yref=f"{_axis('y', i)} domain",
                 x=0.5, y=1.0, xanchor="center", yanchor="bottom", yshift=2, showarrow=False, font_size=FONT_SIZE - 2)
            for i, name in enumerate(names)]


def _colorbar(first: int, last: int, low: float, high: float) -> dict:
    """A horizontal colour bar for values low..high under panel slots first..last (0-based), in the bottom margin.

    A bar under one panel is short: it is labelled at its ends and 0 only, where plotly's own ticks
    (at round numbers, maybe outside the range) could leave a single label.
    """
    domains = saliency_domains()
    start, end = domains[first][0], domains[last][1]
    ticks = (dict(tickvals=[low, 0.0, high], ticktext=[f"{v:.2g}".replace("-", "\u2212") for v in (low, 0.0, high)])
             if first == last else dict(tickformat=".2~g", nticks=5))
    return dict(orientation="h", x=(start + end) / 2, xanchor="center", len=BAR_FILL * (end - start), y=-0.04,
                yanchor="top", thickness=10, ypad=0, tickfont_size=FONT_SIZE - 3, outlinewidth=0, **ticks)


def _saliency_layout(signed: bool, vmax: float, meta: dict, names: list[str]) -> dict:
    """The whole layout of a saliency row: four square panels, two colour axes, titles, in one dict."""
    layout = dict(template=TEMPLATE, height=280, font=dict(size=FONT_SIZE), margin=SALIENCY_MARGIN, meta=meta,
                  annotations=_panel_titles(names), hoverlabel=dict(font_size=FONT_SIZE))
    for i, domain in enumerate(saliency_domains()):
        x, y = _axis("x", i), _axis("y", i)
        # Narrow rows shrink the images' height: they then sit on the colour bars, titles move down with them.
        layout[f"xaxis{x[1:]}"] = dict(domain=domain, anchor=y, visible=False, scaleanchor=y,
                                               constrain="domain")
        layout[f"yaxis{y[1:]}"] = dict(domain=[0.0, 1.0], anchor=x, visible=False, autorange="reversed",
                                               constrain="domain", constraintoward="bottom")
    # Signed maps use the difference's scale, so one bar under panels 2-4 serves all three.
    layout["coloraxis"] = dict(colorscale=DIVERGING if signed else SEQUENTIAL, cmin=-vmax if signed else 0.0,
                               cmax=vmax, showscale=not signed, colorbar=_colorbar(1, 2, 0.0, vmax))
    layout["coloraxis2"] = dict(colorscale=DIVERGING, cmin=-vmax, cmax=vmax,
                                colorbar=_colorbar(1, 3, -vmax, vmax) if signed else _colorbar(3, 3, -vmax, vmax))
    return layout


def saliency_row(image: torch.Tensor, original_map: torch.Tensor, compressed_map: torch.Tensor,
                 titles: dict[str, str] | None = None) -> go.Figure:
    """Input | original map | compressed map | difference (compressed − original), in one row.

    image (H, W) or (C, H, W) with C in {1, 3}; maps (H, W). All are copied. Both maps share one
    colour scale (symmetric around 0 if either is signed, else 0..max); the difference is diverging
    on the same ±max, so a faint difference panel means the explanation barely changed.
    `titles` may override the keys "image", "original", "compressed", "difference" (kept verbatim;
    about 10 characters per line fit above a panel on a phone, 20 in a 600-px-wide row; "<br>" breaks a line).
    Axes x, x2, x3, x4 hold the panels (slots: `saliency_domains()`); the colour bars lie under them.
    """
    rgb, a, b = _display_rgb(as_array(image)), as_array(original_map), as_array(compressed_map)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"maps must be two (H, W) arrays of one shape, got {a.shape} and {b.shape}")
    signed = bool(min(np.nanmin(a), np.nanmin(b)) < 0)
    vmax = float(max(np.nanmax(np.abs(a)), np.nanmax(np.abs(b)))) or 1.0
    names = {"image": "input", "original": "original", "compressed": "compressed",
             "difference": "compressed<br>− original", **(titles or {})}
    change = float(np.nanmax(np.abs(b - a))) / vmax if a.size else 0.0
    meta = figure_meta("saliency_row", change=format_percent(change))
    hover = "row %{y}, column %{x}<br>%{z:.3g}<extra></extra>"
    # Sent as 32-bit floats (the maps' own precision; hover shows 3 digits): half the bytes of float64.
    # Plain dicts: go.Figure validates each trace once (go.Image / go.Heatmap objects were validated twice).
    data = [dict(type="image", z=rgb, hoverinfo="skip"),
            *(dict(type="heatmap", z=z.astype(np.float32), coloraxis=axis, xaxis=f"x{i}", yaxis=f"y{i}",
                   hovertemplate=hover)
              for i, z, axis in ((2, a, "coloraxis"), (3, b, "coloraxis"), (4, b - a, "coloraxis2")))]
    layout = _saliency_layout(signed, vmax, meta, [names[k] for k in ("image", "original", "compressed", "difference")])
    return go.Figure(data, layout)

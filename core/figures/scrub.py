"""The scrub board: one Plotly figure whose slider moves through precomputed frames in the browser.

Top left, accuracy and size (as % of the original's) at every stop of the scrubbed control, with
markers at the current stop; top right, one layer's weight histogram with the share of exact
zeros as a black spike; bottom, the input image, the original's saliency map and the compressed
model's. Dragging the slider plays `go.Frame`s with duration 0: nothing asks the server.

Speed (benchmarks/bench_scrub.py): a frame with `redraw=True` re-plots the whole figure (axes,
legend, slider, annotations), which cost ~65 ms per step in Chromium under load; `redraw=False`
only moves the traces of the frame, ~20 % faster. That path has two rules: every trace must be
"animatable" (scatter; heatmaps and images are not) and every trace must be in every frame (one
left out disappears). So everything that changes is a scatter: the histogram is a filled step
line, the spike a thick line, the texts are text traces, and the compressed map is a grid of
square markers; what never changes (the input and the original's map) are layout images.
Static traces travel in each frame as an empty dict; only the changing data is sent per frame.

Same contract as `core.figures`: plain inputs (read only), a `go.Figure` out, no Streamlit,
the caption in `layout.meta`. Maps are scaled to their own maximum (1 = the map's strongest
pixel): the board compares where the models look, the Saliency page compares magnitudes.
"""
from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image
from plotly.colors import sample_colorscale, unlabel_rgb

from core.figures import (COMPRESSED_COLOR, DIVERGING, FONT_SIZE, ORIGINAL_COLOR, SEQUENTIAL, as_array,
                          format_bytes, format_percent, format_ratio, house_layout)
from core.figures.maps import _display_rgb
from core.studies.scrub import LABELS, SCRUBBED, ScrubMaps, ScrubSeries, is_categorical, stop_label

SIZE_COLOR = "#7f7f7f"     # the size curve: grey, so orange stays "the compressed model's accuracy"
ZERO_COLOR = "#000000"     # exact zeros are black everywhere in the app (pruned weights in the heatmaps)
HEIGHT = 860
MARGIN = dict(t=40, b=130, l=90, r=40)
# Subplots: curve (x, y), histogram (x2, y2), headline strip (x4, y4), and three square-pixel pictures side by side:
# input (x3, y3), original map (x5, y5), compressed map (x6, y6); each picture's axes end at its edges.
CURVE_X, HIST_X = (0.0, 0.42), (0.56, 1.0)
HEAD_Y, TOP_Y, BOTTOM_Y = (0.96, 1.0), (0.58, 0.87), (0.0, 0.40)
PICTURES = (("x3", "y3", (0.0, 0.28)), ("x5", "y5", (0.36, 0.64)), ("x6", "y6", (0.72, 1.0)))
TITLE_ROOM = 0.22          # room above the pictures for their titles, in picture heights (inside the y range,
                           # or the titles hide); about 40 px at the board's height, whatever the map's size
UPSCALE = 8                # layout images are drawn smoothed by the browser: nearest-neighbour pixels first
MAX_SIDE = 16              # maps are drawn at most 16 cells a side (2x2 blocks averaged on 28x28): see _pooled
COVER = 1.35               # map markers are this much wider than a cell, so no gap shows up to 1.35x taller
# Traces whose data change between frames (all others travel as {}).
ANIMATED = (2, 3, 4, 6, 7, 8, 9, 10)
CAPTION = ("Drag the slider under the charts: every position was computed in advance, so the charts follow at "
           "once, with no waiting for the server. Top left: test accuracy (orange) and storage size (grey) at every "
           "position, the big markers show where the slider is. Top right: how the layer's weights are spread; the "
           "black spike at 0 is the share that is exactly zero. Bottom: which pixels each model's decision depends on "
           "(each map scaled to its own strongest pixel; large images are drawn in blocks of 2×2 pixels so the "
           "slider stays instant, the Saliency page shows every pixel).")


def _round(values: np.ndarray, decimals: int = 3) -> list:
    # Three decimals are far below what a screen shows and keep the frames a few kB each.
    return np.round(np.asarray(values, dtype=np.float64), decimals).tolist()


def _positions(series: ScrubSeries) -> tuple[list[float], dict]:
    """x of each stop on the curve, and the axis ticks (bits: evenly spaced, 32 after a gap)."""
    if not is_categorical(series.control):
        low, high = series.stops[0], series.stops[-1]
        pad = (high - low) * 0.06  # the first stop clear of the y axis' labels
        return [float(s) for s in series.stops], dict(range=[low - pad, high + pad / 2],
                                                      ticksuffix=SCRUBBED[series.control][1].unit,
                                                      dtick=_tick_step(low, high))
    x = [float(i) if s != 32 else i + 0.5 for i, s in enumerate(series.stops)]
    return x, dict(range=[-0.5, x[-1] + 0.5], tickvals=x, ticktext=[str(s) for s in series.stops])


def _tick_step(low: float, high: float) -> float | None:
    """A fifth of the range when that is a whole number (pruning: 20 %), else Plotly's own ticks (a share 0.05-1)."""
    step = (high - low) / 5
    return step if float(step).is_integer() else None


def _headline(series: ScrubSeries, i: int) -> str:
    change = f"{100 * (series.accuracy[i] - series.original_accuracy):+.1f}".replace("-", "\u2212")
    return (f"<b>{LABELS[series.control]} {stop_label(series.control, series.stops[i])}</b>: accuracy "
            f"{100 * series.accuracy[i]:.1f} % ({change} pts) · size {format_bytes(series.size_bytes[i])} "
            f"({format_ratio(series.ratio[i])} smaller) · {format_percent(series.sparsity[i])} of weights zero")


def _prediction(classes: Sequence[str], probabilities: np.ndarray) -> str:
    k = int(np.argmax(probabilities))
    return f"predicts {classes[k]} ({format_percent(float(probabilities[k]))})"


def _scaled(m: np.ndarray) -> np.ndarray:
    """A map divided by its largest |value| (an all-zero map stays zero)."""
    peak = float(np.abs(m).max()) if m.size else 0.0
    return m / peak if peak > 0 else np.zeros_like(m)


def _pooled(m: np.ndarray) -> np.ndarray:
    """A map averaged over k×k blocks, k the smallest that leaves at most MAX_SIDE cells a side (edges repeated).

    Every cell of the compressed map is a marker redrawn on each frame, ~25 µs apiece in Chromium:
    784 cells (28×28) took the board over its 50 ms budget, 196 keep it inside. Rank agreement is still
    computed on the full maps (core.studies.scrub); the Saliency page shows them pixel by pixel.
    """
    k = -(-max(m.shape) // MAX_SIDE)
    if k == 1:
        return m
    h, w = -(-m.shape[0] // k) * k, -(-m.shape[1] // k) * k
    padded = np.pad(m, ((0, h - m.shape[0]), (0, w - m.shape[1])), mode="edge")
    return padded.reshape(h // k, k, w // k, k).mean(axis=(1, 3))


def _size_percent(series: ScrubSeries) -> np.ndarray:
    return 100.0 * series.size_bytes / series.original_size_bytes if series.original_size_bytes else series.size_bytes


def _log_floor(hist: object) -> float:
    """log10 of the histogram axis' lower end: a little under the smallest bar of any frame."""
    values = np.concatenate([hist.original, hist.counts.ravel(), hist.zeros, [hist.zeros_original]])
    values = values[values > 0]
    return float(np.log10(values.min()) - 0.3) if values.size else -2.0


def _step(counts: np.ndarray) -> list:
    """A histogram as the y of a step line over [edge0, edges...]: closed on the axis at both ends."""
    return _round(np.concatenate([[0.0], counts, [0.0]]))


def _frame_data(series: ScrubSeries, maps: ScrubMaps, hist: object, classes: Sequence[str], x: list[float],
                i: int, floor: float) -> list[dict]:
    """The ANIMATED traces at stop i, as plain dicts with only the data that changes."""
    zeros = float(hist.zeros[i])
    spike = [floor, zeros] if zeros > floor else [None, None]
    return [dict(type="scatter", x=[x[i]], y=[round(100 * series.accuracy[i], 2)]),
            dict(type="scatter", x=[x[i]], y=[round(float(_size_percent(series)[i]), 2)]),
            dict(type="scatter", text=[_headline(series, i)]),
            dict(type="scatter", y=_step(hist.counts[i])),
            dict(type="scatter", y=spike),
            dict(type="scatter", y=[max(zeros, floor)], text=[f"<b>{format_percent(zeros / 100)}</b> exactly 0"]),
            dict(type="scatter", marker=dict(color=_round(_scaled(maps.maps[i]).ravel()))),
            dict(type="scatter", text=[f"compressed: {_prediction(classes, maps.probabilities[i])}<br>"
                                       f"rank corr. with original {maps.rank[i]:.2f}"])]


def _curve_traces(series: ScrubSeries, x: list[float], i: int) -> list[dict]:
    """Accuracy and size (% of the original's) on one 0-100 axis: a second y-axis would cost every frame."""
    acc, size = _round(100 * series.accuracy, 2), _round(_size_percent(series), 2)
    marker = dict(type="scatter", mode="markers", showlegend=False, hoverinfo="skip")
    return [dict(type="scatter", x=x, y=acc, mode="lines+markers", name="test accuracy", line_color=COMPRESSED_COLOR,
                 marker_size=6, hovertemplate="%{y:.1f} %<extra>accuracy</extra>"),
            dict(type="scatter", x=x, y=size, mode="lines", name="size, % of original",
                 customdata=_round(series.size_bytes / 1000, 1), line=dict(color=SIZE_COLOR, dash="dash", width=2),
                 hovertemplate="%{y:.1f} % (%{customdata} kB)<extra>size</extra>"),
            dict(marker, x=[x[i]], y=[acc[i]], marker=dict(size=18, color=COMPRESSED_COLOR,
                                                           line=dict(color="white", width=2))),
            dict(marker, x=[x[i]], y=[size[i]], marker=dict(size=14, color=SIZE_COLOR, symbol="diamond",
                                                            line=dict(color="white", width=2))),
            dict(type="scatter", x=[0.0], y=[0.5], mode="text", text=[""], textposition="middle right", xaxis="x4",
                 yaxis="y4", showlegend=False, hoverinfo="skip", cliponaxis=False, textfont_size=FONT_SIZE)]


def _hist_traces(hist: object, floor: float) -> list[dict]:
    """Original outline (static), compressed as a filled step line, the zero spike, and its label."""
    step_x = _round(np.concatenate([hist.edges[:1], hist.edges]), 5)
    common = dict(type="scatter", xaxis="x2", yaxis="y2")
    return [dict(common, x=step_x, y=_step(hist.original), mode="lines", name="original weights", hoverinfo="skip",
                 line=dict(color=ORIGINAL_COLOR, width=2, shape="hv")),
            dict(common, x=step_x, y=[], mode="lines", name="compressed weights", fill="tozeroy",
                 line=dict(color=COMPRESSED_COLOR, width=0, shape="hv"), fillcolor="rgba(255,127,14,0.75)",
                 hovertemplate="%{y:.2f} % of the layer<extra>compressed</extra>"),
            dict(common, x=[0.0, 0.0], y=[floor, floor], mode="lines", name="exactly zero",
                 line=dict(color=ZERO_COLOR, width=8), hovertemplate="%{y:.1f} % exactly 0<extra></extra>"),
            dict(common, x=[0.0], y=[floor], mode="text", text=[""], textposition="top right", showlegend=False,
                 hoverinfo="skip", cliponaxis=False, textfont_size=FONT_SIZE - 2)]


def _png(rgb: np.ndarray) -> str:
    big = np.repeat(np.repeat(rgb, UPSCALE, axis=0), UPSCALE, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _colored(m: np.ndarray, colorscale: str, signed: bool) -> np.ndarray:
    """A scaled map as (H, W, 3) uint8 through `colorscale` (the markers' coloraxis, so both maps match)."""
    palette = np.array([unlabel_rgb(c) for c in sample_colorscale(colorscale, np.linspace(0, 1, 256))], np.uint8)
    unit = (_scaled(m) + 1) / 2 if signed else np.clip(_scaled(m), 0, 1)
    return palette[np.rint(unit * 255).astype(int)]


def _pictures(image: torch.Tensor, maps: ScrubMaps, colorscale: str, signed: bool) -> list[dict]:
    """The input and the original's map as layout images in the pictures' axes (they never change)."""
    h, w = maps.original.shape
    place = dict(x=-0.5, y=-0.5, sizex=w, sizey=h, sizing="stretch", layer="below")
    return [dict(place, source=_png(_display_rgb(as_array(image))), xref="x3", yref="y3"),
            dict(place, source=_png(_colored(maps.original, colorscale, signed)), xref="x5", yref="y5")]


def _map_traces(maps: ScrubMaps, classes: Sequence[str]) -> list[dict]:
    """The compressed map as square markers (cell size from the figure's height), and its title as text."""
    h, w = maps.original.shape
    rows, cols = np.mgrid[0:h, 0:w]
    cell = (BOTTOM_Y[1] - BOTTOM_Y[0]) * (HEIGHT - MARGIN["t"] - MARGIN["b"]) / (h * (1 + TITLE_ROOM))
    # cliponaxis: the picture's axes end at its edges, so the oversized squares stop there.
    return [dict(type="scatter", x=cols.ravel().tolist(), y=rows.ravel().tolist(), mode="markers",
                 xaxis="x6", yaxis="y6", showlegend=False, cliponaxis=True,
                 marker=dict(symbol="square", size=round(cell * COVER, 1), coloraxis="coloraxis", line_width=0),
                 hovertemplate="block row %{y}, column %{x}<br>%{marker.color:.2f} of the map's maximum"
                               "<extra>compressed</extra>"),
            dict(type="scatter", x=[(w - 1) / 2], y=[-0.5 - 0.04 * h], mode="text", text=[""], xaxis="x6", yaxis="y6", textposition="top center", showlegend=False, hoverinfo="skip", cliponaxis=False,
                 textfont_size=FONT_SIZE - 2)]


def _slider(series: ScrubSeries, active: int) -> dict:
    """The in-figure slider: one "animate" step per frame, immediate, no duration, no transition, no redraw."""
    jump = dict(mode="immediate", frame=dict(duration=0, redraw=False), transition=dict(duration=0))
    return dict(active=active, x=0.0, len=1.0, y=-0.04, yanchor="top", pad=dict(t=10, b=0),
                currentvalue=dict(prefix=f"{LABELS[series.control]}: ", font_size=FONT_SIZE, xanchor="left"),
                steps=[dict(label=stop_label(series.control, s), method="animate", args=[[str(s)], jump])
                       for s in series.stops])


def _layout(series: ScrubSeries, maps: ScrubMaps, classes: Sequence[str], layer_label: str, axis: dict,
            floor: float, image: torch.Tensor, active: int) -> dict:
    """Axes (fixed ranges, no automargin: nothing is re-measured per frame), legend, pictures, titles, slider."""
    h, w = maps.original.shape
    signed = bool((maps.original < 0).any() or (maps.maps < 0).any())
    colorscale = DIVERGING if signed else SEQUENTIAL
    fixed, hidden = dict(automargin=False), dict(visible=False, showgrid=False, zeroline=False, automargin=False)
    title = dict(showarrow=False, font_size=FONT_SIZE - 2, x=(w - 1) / 2, y=-0.5 - 0.04 * h, yanchor="bottom")
    layout = house_layout("", "", "", height=HEIGHT, margin=MARGIN, meta={"caption": CAPTION},
                          legend=dict(y=TOP_Y[1] + 0.015, x=0.0, yanchor="bottom"),
                          xaxis=dict(axis, **fixed, domain=CURVE_X, title=dict(text=LABELS[series.control].lower())),
                          yaxis=dict(fixed, domain=TOP_Y, range=[0, 103], ticksuffix=" %",
                                     title=dict(text="accuracy, size (%)")))
    layout.pop("title")
    layout.update(
        xaxis2=dict(fixed, domain=HIST_X, anchor="y2", title=dict(text=f"{layer_label}: weight value"), zeroline=False),
        yaxis2=dict(fixed, domain=TOP_Y, anchor="x2", type="log", range=[floor, 2.05], dtick=1,
                    title=dict(text="% of the layer (log)")),
        **{f"xaxis{x[1:]}": dict(hidden, domain=domain, anchor=y, range=[-0.5, w - 0.5], scaleanchor=y,
                                 constrain="domain") for x, y, domain in PICTURES},
        **{f"yaxis{y[1:]}": dict(hidden, domain=BOTTOM_Y, anchor=x, range=[h - 0.5, -0.5 - TITLE_ROOM * h],
                                 constrain="domain", constraintoward="top") for x, y, _ in PICTURES},
        xaxis4=dict(hidden, domain=[0.0, 1.0], anchor="y4", range=[0, 1], fixedrange=True),
        yaxis4=dict(hidden, domain=HEAD_Y, anchor="x4", range=[0, 1], fixedrange=True),
        coloraxis=dict(colorscale=colorscale, cmin=-1.0 if signed else 0.0, cmax=1.0,
                       colorbar=dict(len=BOTTOM_Y[1], y=0.0, yanchor="bottom", thickness=12, outlinewidth=0)),
        images=_pictures(image, maps, colorscale, signed),
        annotations=[dict(title, xref="x3", yref="y3", text="input"),
                     dict(title, xref="x5", yref="y5", text=f"original: {_prediction(classes, maps.original_probabilities)}"
                                                             f"<br>explaining class {classes[maps.target]}")],
        sliders=[_slider(series, active)])
    return layout


def scrub_figure(series: ScrubSeries, maps: ScrubMaps, layer: str, layer_label: str, image: torch.Tensor,
                 classes: Sequence[str], active: int = 0) -> go.Figure:
    """The scrub board for `series` (one layer's histogram: key `layer`) and `maps` of `image` (C, H, W).

    `active` is the stop index the board opens at (the sidebar's own setting). Frames are named
    by their stop ("45") and carry every trace: the ANIMATED ones with their data at that stop,
    the others as {}. Inputs are read only.
    """
    if len(maps.maps) != len(series.stops):
        raise ValueError(f"maps have {len(maps.maps)} stops, the series {len(series.stops)}")
    if not 0 <= active < len(series.stops):
        raise ValueError(f"active must index a stop (0..{len(series.stops) - 1}), got {active}")
    hist = series.histograms[layer]
    shown = [_pooled(m) for m in maps.maps]
    maps = replace(maps, original=_pooled(maps.original), maps=np.stack(shown))  # what is drawn, not the numbers
    x, axis = _positions(series)
    floor = _log_floor(hist)
    data = [*_curve_traces(series, x, active), *_hist_traces(hist, 10 ** floor), *_map_traces(maps, classes)]

    def frame_data(i: int) -> list[dict]:
        changes = dict(zip(ANIMATED, _frame_data(series, maps, hist, classes, x, i, 10 ** floor)))
        return [changes.get(n, {}) for n in range(len(data))]

    for n, change in enumerate(frame_data(active)):  # the figure as sent shows the active stop
        data[n] = _merged(data[n], change)
    frames = [go.Frame(name=str(s), data=frame_data(i), traces=list(range(len(data))))
              for i, s in enumerate(series.stops)]
    return go.Figure(data=data, layout=_layout(series, maps, classes, layer_label, axis, floor, image, active),
                     frames=frames)


def _merged(trace: dict, change: dict) -> dict:
    """`trace` with `change` applied (nested dicts merged one level deep, as Plotly does for marker)."""
    out = dict(trace)
    for key, value in change.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out

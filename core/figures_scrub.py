"""The scrub board: one Plotly figure whose slider moves through precomputed frames in the browser.

Top left, the accuracy curve over every stop of the scrubbed control with the size curve on a
second axis, and markers at the current stop; top right, one layer's weight histogram (the
"spike at zero" is its own black bar); bottom, an image with the original's and the compressed
model's saliency maps. Dragging the in-figure slider plays `go.Frame`s that carry only what
changes (markers, bar heights, one map, the texts), with duration 0, so no server is asked.

Same contract as `core.figures`: plain inputs (read only), a `go.Figure` out, no Streamlit,
the caption in `layout.meta`. Maps are scaled to their own maximum (1 = the map's strongest
pixel): the board compares where the models look, the Saliency page compares magnitudes.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from core.figures import (COMPRESSED_COLOR, DIVERGING, FONT_SIZE, ORIGINAL_COLOR, SEQUENTIAL, as_array,
                          format_bytes, format_percent, format_ratio, house_layout)
from core.figures_maps import _display_rgb
from core.scrub import LABELS, ScrubMaps, ScrubSeries, stop_label

SIZE_COLOR = "#7f7f7f"     # the size curve: grey, so orange stays "the compressed model's accuracy"
ZERO_COLOR = "#000000"     # exact zeros are black everywhere in the app (pruned weights in the heatmaps)
# Three subplots only (curve, histogram, pictures): every extra axis costs time on each frame's redraw.
CURVE_X, HIST_X = (0.0, 0.42), (0.56, 1.0)
TOP_Y, BOTTOM_Y = (0.61, 1.0), (0.0, 0.36)
GAP = 4                    # blank columns between the pictures
# Traces the frames replace: accuracy marker, size marker, histogram bars, zero spike, the compressed map.
ANIMATED = (2, 3, 5, 6, 9)
CAPTION = ("Drag the slider under the charts: every position was computed in advance, so the charts follow at "
           "once, with no waiting for the server. Top left: test accuracy (orange) and storage size (grey) at every "
           "position, the big markers show where the slider is. Top right: how the layer's weights are spread; the "
           "black bar at 0 is the share that is exactly zero. Bottom: which pixels each model's decision depends on "
           "(each map scaled to its own strongest pixel).")


def _round(values: np.ndarray, decimals: int = 3) -> list:
    # Three decimals are far below what a screen shows and keep the frames a few kB each.
    return np.round(np.asarray(values, dtype=np.float64), decimals).tolist()


def _positions(series: ScrubSeries) -> tuple[list[float], dict]:
    """x of each stop on the curve, and the axis ticks (bits: evenly spaced, 32 after a gap)."""
    if series.control == "prune":
        return [float(s) for s in series.stops], dict(range=[-3, 103], ticksuffix=" %", dtick=20)
    x = [float(i) if s != 32 else i + 0.5 for i, s in enumerate(series.stops)]
    return x, dict(range=[-0.5, x[-1] + 0.5], tickvals=x, ticktext=[str(s) for s in series.stops])


def _headline(series: ScrubSeries, i: int) -> str:
    change = f"{100 * (series.accuracy[i] - series.original_accuracy):+.1f}".replace("-", "\u2212")
    return (f"<b>{LABELS[series.control]} {stop_label(series.control, series.stops[i])}</b>: accuracy "
            f"{100 * series.accuracy[i]:.1f} % ({change} pts) · size {format_bytes(series.size_bytes[i])} "
            f"({format_ratio(series.ratio[i])} smaller) · {format_percent(series.sparsity[i])} of weights zero")


def _map_title(classes: Sequence[str], probabilities: np.ndarray, rank: float | None) -> str:
    k = int(np.argmax(probabilities))
    text = f"predicts {classes[k]} ({format_percent(float(probabilities[k]))})"
    return text if rank is None else f"compressed: {text}<br>rank corr. with original {rank:.2f}"


def _annotations(series: ScrubSeries, maps: ScrubMaps, classes: Sequence[str], hist: object, i: int,
                 low: float) -> list[dict]:
    """Every annotation of the board at stop i (frames must carry the whole list); low: log10 of the y-axis floor."""
    note = dict(showarrow=False, font_size=FONT_SIZE - 2)
    w = maps.original.shape[1]
    # "y3 domain": the top of the pictures (an annotation outside its axis' range would be hidden).
    panel = dict(note, xref="x3", yref="y3 domain", y=1.0, yanchor="bottom", xanchor="center")
    return [
        dict(note, text=_headline(series, i), xref="paper", yref="paper", x=0.0, y=1.11, xanchor="left",
             yanchor="bottom", font_size=FONT_SIZE),
        # On top of the black spike (log axis: annotations take log10 of the value), so it rides with it.
        dict(note, text=f"<b>{format_percent(hist.zeros[i] / 100)}</b> exactly 0", xref="x2", yref="y2", x=0.0,
             y=float(np.log10(max(hist.zeros[i], 10 ** low))), xanchor="left", yanchor="bottom", xshift=6),
        dict(panel, text="input", x=(w - 1) / 2),
        dict(panel, text=f"original: {_map_title(classes, maps.original_probabilities, None)}<br>"
                         f"explaining class {classes[maps.target]}", x=w + GAP + (w - 1) / 2),
        dict(panel, text=_map_title(classes, maps.probabilities[i], float(maps.rank[i])), x=2 * (w + GAP) + (w - 1) / 2),
    ]


def _scaled(m: np.ndarray) -> np.ndarray:
    """A map divided by its largest |value| (an all-zero map stays zero)."""
    peak = float(np.abs(m).max()) if m.size else 0.0
    return m / peak if peak > 0 else np.zeros_like(m)


def _size_percent(series: ScrubSeries) -> np.ndarray:
    return 100.0 * series.size_bytes / series.original_size_bytes if series.original_size_bytes else series.size_bytes


def _frame_data(series: ScrubSeries, maps: ScrubMaps, hist: object, x: list[float], i: int) -> list[dict]:
    """The new state of the ANIMATED traces at stop i, as plain dicts (only what changes)."""
    return [dict(type="scatter", x=[x[i]], y=[round(100 * series.accuracy[i], 2)]),
            dict(type="scatter", x=[x[i]], y=[round(float(_size_percent(series)[i]), 2)]),
            dict(type="bar", y=_round(hist.counts[i])),
            dict(type="bar", y=[round(float(hist.zeros[i]), 3)]),
            dict(type="heatmap", z=_round(_scaled(maps.maps[i])))]


def _curve_traces(series: ScrubSeries, x: list[float], i: int) -> list[go.Scatter]:
    """Accuracy and size (% of the original's) on one 0-100 axis: a second y-axis would cost every frame."""
    acc, size = _round(100 * series.accuracy, 2), _round(_size_percent(series), 2)
    kb = _round(series.size_bytes / 1000, 1)
    return [go.Scatter(x=x, y=acc, mode="lines+markers", name="test accuracy", line_color=COMPRESSED_COLOR,
                       marker_size=6, hovertemplate="%{y:.1f} %<extra>accuracy</extra>"),
            go.Scatter(x=x, y=size, mode="lines", name="size, % of original", customdata=kb,
                       hovertemplate="%{y:.1f} % (%{customdata} kB)<extra>size</extra>",
                       line=dict(color=SIZE_COLOR, dash="dash", width=2)),
            go.Scatter(x=[x[i]], y=[acc[i]], mode="markers", showlegend=False, hoverinfo="skip",
                       marker=dict(size=18, color=COMPRESSED_COLOR, line=dict(color="white", width=2))),
            go.Scatter(x=[x[i]], y=[size[i]], mode="markers", showlegend=False, hoverinfo="skip",
                       marker=dict(size=14, color=SIZE_COLOR, symbol="diamond", line=dict(color="white", width=2)))]


def _hist_traces(hist: object, i: int) -> list:
    edges = hist.edges
    width = float(edges[1] - edges[0])
    step_x = np.concatenate([edges[:1], edges])
    step_y = np.concatenate([[0.0], hist.original, [0.0]])
    bin_hover = "%{y:.2f} % of the layer<extra>%{fullData.name}</extra>"
    return [go.Scatter(x=_round(step_x, 5), y=_round(step_y), mode="lines", name="original weights", xaxis="x2",
                       yaxis="y2", line=dict(color=ORIGINAL_COLOR, width=2, shape="hv"), hoverinfo="skip"),
            go.Bar(x=_round((edges[:-1] + edges[1:]) / 2, 5), y=_round(hist.counts[i]), width=width, xaxis="x2",
                   yaxis="y2", name="compressed weights", marker=dict(color=COMPRESSED_COLOR, opacity=0.8, line_width=0),
                   hovertemplate=bin_hover),
            go.Bar(x=[0.0], y=[round(float(hist.zeros[i]), 3)], width=width * 1.5, xaxis="x2", yaxis="y2",
                   name="exactly zero", marker=dict(color=ZERO_COLOR, line_width=0), hovertemplate=bin_hover)]


def _picture_traces(image: torch.Tensor, maps: ScrubMaps, i: int) -> list:
    """The input (an RGB image), the original's map and stop i's map, side by side on one pair of axes."""
    w = maps.original.shape[1]
    return [go.Image(z=_display_rgb(as_array(image)), xaxis="x3", yaxis="y3", hoverinfo="skip"),
            *(go.Heatmap(z=_round(_scaled(m)), x0=n * (w + GAP), dx=1, coloraxis="coloraxis", xaxis="x3", yaxis="y3",
                         name=name, hovertemplate="%{z:.2f} of the map's maximum<extra>%{fullData.name}</extra>")
              for n, m, name in ((1, maps.original, "original"), (2, maps.maps[i], "compressed")))]


def _slider(series: ScrubSeries, i: int) -> dict:
    """The in-figure slider: one "animate" step per frame, immediate, no duration, no transition."""
    jump = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    return dict(active=i, x=0.0, len=1.0, y=-0.04, yanchor="top", pad=dict(t=10, b=0),
                currentvalue=dict(prefix=f"{LABELS[series.control]}: ", font_size=FONT_SIZE, xanchor="left"),
                steps=[dict(label=stop_label(series.control, s), method="animate", args=[[str(s)], jump])
                       for s in series.stops])


def _log_floor(hist: object) -> float:
    """log10 of the histogram axis' lower end: a little under the smallest bar of any frame."""
    values = np.concatenate([hist.original, hist.counts.ravel(), hist.zeros, [hist.zeros_original]])
    values = values[values > 0]
    return float(np.log10(values.min()) - 0.3) if values.size else -2.0


def _layout(series: ScrubSeries, maps: ScrubMaps, hist: object, layer_label: str, axis: dict, low: float) -> dict:
    """The board's three subplots: curve (x, y), histogram (x2, y2, log), pictures (x3, y3, square pixels)."""
    h, w = maps.original.shape
    signed = bool((maps.original < 0).any() or (maps.maps < 0).any())
    picture = dict(visible=False, showgrid=False, zeroline=False, automargin=False)
    fixed = dict(automargin=False)  # margins are set below: automargin measures text on every frame's redraw
    layout = house_layout("", "", "", height=860, margin=dict(t=120, b=130, l=90, r=40), bargap=0,
                          barmode="overlay", meta={"caption": CAPTION}, legend=dict(y=1.02, x=0.0),
                          xaxis=dict(axis, **fixed, domain=CURVE_X, title=dict(text=LABELS[series.control].lower())),
                          yaxis=dict(fixed, domain=TOP_Y, range=[0, 103], ticksuffix=" %", title=dict(text="accuracy, size (%)")))
    layout.pop("title")
    layout.update(
        xaxis2=dict(fixed, domain=HIST_X, anchor="y2", title=dict(text=f"{layer_label}: weight value"), zeroline=False),
        yaxis2=dict(fixed, domain=TOP_Y, anchor="x2", type="log", range=[low, 2.05], dtick=1,
                    title=dict(text="% of the layer (log)")),
        xaxis3=dict(picture, domain=[0.0, 1.0], anchor="y3", range=[-0.5, 3 * w + 2 * GAP - 0.5], scaleanchor="y3",
                    constrain="domain"),
        yaxis3=dict(picture, domain=BOTTOM_Y, anchor="x3", range=[h - 0.5, -0.5], constrain="domain"),
        coloraxis=dict(colorscale=DIVERGING if signed else SEQUENTIAL, cmin=-1.0 if signed else 0.0, cmax=1.0,
                       colorbar=dict(len=0.36, y=0.0, yanchor="bottom", thickness=12, outlinewidth=0)),
        sliders=[_slider(series, 0)])
    return layout


def scrub_figure(series: ScrubSeries, maps: ScrubMaps, layer: str, layer_label: str, image: torch.Tensor,
                 classes: Sequence[str], active: int = 0) -> go.Figure:
    """The scrub board for `series` (one layer's histogram: key `layer`) and `maps` of `image` (C, H, W).

    `active` is the stop index the board opens at (the sidebar's own setting). Frames are named
    by their stop ("45"); each carries the ANIMATED traces and the annotations. Inputs are read only.
    """
    if len(maps.maps) != len(series.stops):
        raise ValueError(f"maps have {len(maps.maps)} stops, the series {len(series.stops)}")
    if not 0 <= active < len(series.stops):
        raise ValueError(f"active must index a stop (0..{len(series.stops) - 1}), got {active}")
    hist = series.histograms[layer]
    x, axis = _positions(series)
    low = _log_floor(hist)
    layout = _layout(series, maps, hist, layer_label, axis, low)
    layout["annotations"] = _annotations(series, maps, classes, hist, active, low)
    layout["sliders"][0]["active"] = active
    frames = [go.Frame(name=str(s), data=_frame_data(series, maps, hist, x, i), traces=list(ANIMATED),
                       layout=dict(annotations=_annotations(series, maps, classes, hist, i, low)))
              for i, s in enumerate(series.stops)]
    data = [*_curve_traces(series, x, active), *_hist_traces(hist, active), *_picture_traces(image, maps, active)]
    return go.Figure(data=data, layout=layout, frames=frames)

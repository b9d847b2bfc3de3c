"""Figures of the cascading model-randomization test (Adebayo et al. 2018): curve and small multiples.

Same contract as `core.figures`: plain inputs (copied), a `go.Figure` out, no Streamlit,
the student caption in `fig.layout.meta["caption"]`. Frames and maps come from
`core.explain.sanity` (`cascading_randomization`, `randomized_maps`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from core.figures import COMPRESSED_COLOR, DIVERGING, FONT_SIZE, ORIGINAL_COLOR, SEQUENTIAL, as_array, style

# The first is the page's default: the rank correlation of the maps as they are (with their sign
# when they have one; for absolute-value maps it is the |map| correlation), on the pixels where
# either map is nonzero. It falls to about 0 for every method once the model is random and the map
# follows it; the |map| version also keeps the brightness of the image in signed maps.
METRIC_LABELS = {
    "spearman": "rank correlation of the maps",
    "spearman_abs": "rank correlation of |maps|",
    "ssim": "structural similarity (SSIM)",
    "topk": "top-10 % pixel overlap",
}
_METRIC_NOTES = {
    "spearman": ("Rank correlation: do the two maps order the pixels alike (1 = same order, 0 = unrelated)? "
                 "Pixels that are zero in both maps (the black background) are left out, so they cannot make "
                 "two maps look alike; signed maps keep their sign."),
    "spearman_abs": ("Rank correlation of |maps|: the same, with the sign dropped, on the pixels where either map "
                     "is nonzero. For Gradient × Input, Integrated Gradients and Occlusion the size of a value also "
                     "follows the brightness of the image, so this stays above 0 even for a random model."),
    "ssim": "SSIM compares the pictures of |map| (1 = identical); the shared black background counts as similar.",
    "topk": ("Top-10 % overlap: the share of the 10 % most important pixels both maps pick (ties shared at "
             "random); two unrelated maps still share about 10 %."),
}

CAPTIONS = {
    "randomization": (
        "From left to right, one more layer of the model is replaced by random weights, starting at the output. "
        "Look at where the lines end: if one stays near 1 while the model is destroyed, the map does not depend "
        "on the model; a method that explains the model falls toward 0."),
    "randomization_maps": (
        "The same image's map after each randomization step (each panel on its own scale). Look for the moment "
        "the digit's shape dissolves: a map that keeps showing the digit to the end reflects the image, "
        "not the model."),
}


def _short(label: str) -> str:
    """'+ fc 3 (10×84)' -> '+ fc 3': the shapes make tick labels too long."""
    return label.split(" (")[0]


def randomization_figure(df_original: pd.DataFrame, df_compressed: pd.DataFrame | None = None,
                         metric: str = "spearman") -> go.Figure:
    """Similarity to the unrandomized map vs randomization step, mean ± std band per model.

    Frames are `cascading_randomization` outputs (copied); `metric` one of METRIC_LABELS.
    """
    if metric not in METRIC_LABELS:
        raise ValueError(f"unknown metric {metric!r}; choose one of: {', '.join(METRIC_LABELS)}")
    fig = go.Figure()
    lines = [("original", df_original, ORIGINAL_COLOR), ("compressed", df_compressed, COMPRESSED_COLOR)]
    for name, frame, color in lines:
        if frame is not None:
            _add_band(fig, frame, metric, name, color)
    style(fig, "Sanity check: maps as the model is randomized from the top", "layers re-initialized (cumulative)",
          METRIC_LABELS[metric])
    steps = df_original["step"].tolist()
    fig.update_xaxes(tickvals=steps, ticktext=[_short(s) for s in df_original["label"]])
    low = min(float(f[f"{metric}_mean"].min() - f[f"{metric}_std"].max()) for _, f, _ in lines if f is not None)
    fig.update_layout(yaxis_range=[min(-0.1, low - 0.05), 1.05])
    fig.add_hline(y=0, line_color="#999999", line_width=1)
    fig.update_layout(meta={"caption": f"{CAPTIONS['randomization']} {_METRIC_NOTES[metric]} "
                                       f"{_final_fact(lines, metric)}"})
    return fig


def _add_band(fig: go.Figure, frame: pd.DataFrame, metric: str, name: str, color: str) -> None:
    x = frame["step"].to_numpy(float)
    mean, std = frame[f"{metric}_mean"].to_numpy(float), frame[f"{metric}_std"].to_numpy(float)
    rgb = tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
    fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([mean + std, (mean - std)[::-1]]),
                             mode="lines", fill="toself", line_width=0,
                             fillcolor=f"rgba({rgb[0]},{rgb[1]},{rgb[2]},0.18)",
                             hoverinfo="skip", showlegend=False, legendgroup=name))
    fig.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers", name=f"{name} (mean ± std over images)",
                             line=dict(color=color, width=3), legendgroup=name,
                             customdata=np.stack([std, frame["label"].to_numpy(str)], axis=1),
                             hovertemplate="%{customdata[1]}<br>%{y:.2f} ± %{customdata[0]:.2f}<extra></extra>"))


def _final_fact(lines: Sequence[tuple], metric: str) -> str:
    ends = [f"{name} {float(f[f'{metric}_mean'].iloc[-1]):.2f}" for name, f, _ in lines if f is not None]
    return f"With every layer random, similarity is {' and '.join(ends)}."


def signed_note(frame: pd.DataFrame) -> str:
    """A sentence for signed methods: the signed and |map| correlations once every layer is random (from `frame`)."""
    last = frame.iloc[-1]
    return (f"With every layer random, the maps' rank correlation is {float(last['spearman_mean']):.2f}, that of "
            f"|maps| {float(last['spearman_abs_mean']):.2f}: how large this method's values are also follows how "
            "bright the image is (it is computed from the distance to black), which no random model changes; "
            "whether a pixel counts for or against the class comes from the model.")


def randomization_maps_figure(labels: Sequence[str], maps: Mapping[str, torch.Tensor] | torch.Tensor) -> go.Figure:
    """Small multiples: one column per randomization step, one row per model.

    labels: step labels (S+1) from `randomized_maps`; maps: (S+1, H, W) or a mapping of row
    name -> (S+1, H, W) (e.g. {"original": ..., "compressed": ...}). Copied. Each panel is
    scaled by its own max |value| (a random layer changes the scale by orders of
    magnitude); signed maps use the diverging scale.
    """
    rows = {"map": maps} if isinstance(maps, torch.Tensor) else dict(maps)
    arrays = {name: as_array(m) for name, m in rows.items()}
    for name, a in arrays.items():
        if a.ndim != 3 or a.shape[0] != len(labels):
            raise ValueError(f"{name}: expected ({len(labels)}, H, W) maps, got {a.shape}")
    signed = any(float(a.min()) < 0 for a in arrays.values())
    n_rows, n_cols = len(arrays), len(labels)
    fig = make_subplots(rows=n_rows, cols=n_cols, horizontal_spacing=0.01, vertical_spacing=0.06,
                        subplot_titles=[_short(l).replace("+ ", "+<br>") if r == 0 else ""  # narrow columns
                                        for r in range(n_rows) for l in labels],
                        row_titles=list(arrays) if n_rows > 1 else None)
    for r, a in enumerate(arrays.values(), start=1):
        for c in range(n_cols):
            peak = float(np.abs(a[c]).max())
            z = a[c] / peak if peak > 0 else np.zeros_like(a[c])
            fig.add_trace(go.Heatmap(z=z, coloraxis="coloraxis", hovertemplate="%{z:.2f}<extra></extra>"), r, c + 1)
    fig.update_layout(height=110 + 150 * n_rows, template="plotly_white", font=dict(size=FONT_SIZE),
                      margin=dict(l=10, r=40, t=70, b=10),
                      coloraxis=dict(colorscale=DIVERGING if signed else SEQUENTIAL, cmin=-1.0 if signed else 0.0,
                                     cmax=1.0, colorbar=dict(title=dict(text="÷ max", side="right"), thickness=10)))
    fig.update_annotations(font_size=FONT_SIZE - 3)
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", constrain="domain")
    for i in range(1, n_rows * n_cols + 1):
        fig.update_layout({f"xaxis{'' if i == 1 else i}": dict(scaleanchor=f"y{'' if i == 1 else i}")})
    fig.update_layout(meta={"caption": CAPTIONS["randomization_maps"]})
    return fig

"""Figures of what a compressed population forgets (Hooker et al. 2019): curve, classes, gallery.

Same contract as `core.figures`: plain inputs (copied), a `go.Figure` out, no Streamlit,
the student caption in `fig.layout.meta["caption"]`. The frames come from
`core.studies.population` (`pie_curve`, `class_impact`, `forgotten_examples`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from core.figures import COMPRESSED_COLOR, FONT_SIZE, OVERALL_COLOR, format_percent, style
from core.figures.maps import saliency_row

# Disparate classes get a colour AND a hatching, so the mark survives colour blindness and grey-scale.
WORSE_STYLE = ("#d62728", "/")    # Tableau red: lost significantly more than the model as a whole
BETTER_STYLE = ("#9467bd", ".")   # Tableau purple: lost significantly less
KINDS = {"worse": ("hit harder than overall (p ≤ 0.05)", *WORSE_STYLE),
         "better": ("spared: lost less than overall (p ≤ 0.05)", *BETTER_STYLE),
         "": ("no significant difference", COMPRESSED_COLOR, "")}

CAPTIONS = {
    "pie_curve": (
        "A forgotten example is a test image on which the compressed models' majority vote differs from the "
        "originals' vote. Look for where the orange line leaves zero: from there on, pruning changes answers, "
        "often on the hard, unusual images first, before average accuracy moves much."),
    "class_impact": (
        "Each bar is the change in one class's accuracy, averaged over the population; the dashed line is the "
        "change of overall accuracy. Look for hatched bars: red classes lose significantly more than the model "
        "as a whole, purple ones significantly less (Welch t-test over the models, p ≤ 0.05; with few models a "
        "large drop can still be not significant)."),
    "pie_gallery": (
        "A forgotten example: both majority votes are in the first title, the models' confidence in the "
        "original answer in the next two. Look at the last panel to see where the compressed models look "
        "differently."),
}


def pie_curve_figure(curve: pd.DataFrame, current_sparsity: float | None = None) -> go.Figure:
    """Forgotten examples (% of the test set) and accuracy lost (points) against sparsity (%).

    curve: a `pie_curve` frame (copied). A dashed vertical line marks `current_sparsity` (0..1).
    """
    x = curve["sparsity"].to_numpy(float) * 100
    rate = curve["rate"].to_numpy(float) * 100
    lost = (curve["accuracy_original"] - curve["accuracy_compressed"]).to_numpy(float) * 100
    counts = curve["forgotten"].to_numpy(int)
    fig = go.Figure([
        go.Scatter(x=x, y=rate, mode="lines+markers", name="forgotten examples (% of test set)",
                   line=dict(color=COMPRESSED_COLOR, width=3), customdata=counts,
                   hovertemplate="sparsity %{x:.0f} %<br>%{y:.1f} % forgotten (%{customdata} images)<extra></extra>"),
        go.Scatter(x=x, y=lost, mode="lines+markers", name="accuracy lost (points, mean over models)",
                   line=dict(color=OVERALL_COLOR, width=2, dash="dot"),
                   hovertemplate="sparsity %{x:.0f} %<br>%{y:.1f} points lost<extra></extra>"),
    ])
    members = curve.attrs.get("members")
    who = f" ({members} models per population)" if members else ""
    style(fig, f"Forgotten examples as sparsity grows{who}", "sparsity (% of weights pruned)",
          "% of test images / accuracy points")
    fig.update_layout(xaxis_range=[-2, 102], yaxis_rangemode="tozero")
    if current_sparsity is not None:
        fig.add_vline(x=100 * current_sparsity, line_dash="dash", line_color=OVERALL_COLOR,
                      annotation_text="current", annotation_position="top right")  # left of 0 it met the ticks
    fig.update_layout(meta={"caption": f"{CAPTIONS['pie_curve']} {_curve_fact(curve)}"})
    return fig


def _curve_fact(curve: pd.DataFrame) -> str:
    hit = curve[curve["forgotten"] > 0]
    if hit.empty:
        return "No example is forgotten at any sparsity shown."
    first = hit.iloc[0]
    return (f"The first forgotten examples appear at {format_percent(first['sparsity'])} sparsity "
            f"({int(first['forgotten'])} image{'s' if int(first['forgotten']) != 1 else ''}).")


def class_impact_figure(impact: pd.DataFrame) -> go.Figure:
    """Bars of each class's mean accuracy change (points); disparate classes coloured and hatched.

    impact: a `class_impact` frame (copied). Red "/" = hit harder than overall, purple "." =
    spared; a dashed line marks the overall change; each disparate class is annotated
    with its p-value.
    """
    names = impact["class"].astype(str).tolist()
    change = impact["change"].to_numpy(float) * 100
    kinds = impact["direction"].astype(str).tolist()
    p_values = impact["p_value"].to_numpy(float)
    fig = go.Figure(go.Bar(
        x=names, y=change, showlegend=False,
        marker=dict(color=[KINDS[k][1] for k in kinds], pattern=dict(shape=[KINDS[k][2] for k in kinds])),
        customdata=np.stack([p_values, impact["relative_change"].to_numpy(float) * 100], axis=1),
        hovertemplate="class %{x}<br>%{y:+.1f} points (%{customdata[1]:+.1f} % relative)<br>"
                      "p = %{customdata[0]:.3f}<extra></extra>",
    ))
    # Legend swatches for the kinds of bar present (one Bar trace cannot show several).
    for kind in [k for k in KINDS if k in kinds]:
        label, color, pattern = KINDS[kind]
        fig.add_trace(go.Bar(x=[None], y=[None], name=label, marker=dict(color=color, pattern_shape=pattern)))
    overall = float(impact["overall_change"].iloc[0]) * 100 if len(impact) else 0.0
    fig.add_hline(y=overall, line_dash="dash", line_color=OVERALL_COLOR, line_width=2,
                  annotation_text=f"overall {overall:+.1f}".replace("-", "\u2212"), annotation_position="bottom right")
    for name, kind, value, p in zip(names, kinds, change, p_values):
        if kind:
            fig.add_annotation(x=name, y=value, text=f"p = {p:.2g}", showarrow=False,
                               yshift=-14 if value < 0 else 14, font=dict(size=FONT_SIZE - 3, color=KINDS[kind][1]))
    style(fig, "Accuracy change per class (compressed − original)", "class", "accuracy change (points)")
    fig.update_layout(xaxis_type="category", barmode="overlay", showlegend=True)
    fig.update_layout(meta={"caption": f"{CAPTIONS['class_impact']} {_impact_fact(names, kinds)}"})
    return fig


def _impact_fact(names: Sequence[str], kinds: Sequence[str]) -> str:
    worse = [n for n, k in zip(names, kinds) if k == "worse"]
    better = [n for n, k in zip(names, kinds) if k == "better"]
    if not worse and not better:
        return "No class differs significantly from the overall change at this setting."
    parts = [f"{label}: {', '.join(group)}" for label, group in (("Hit harder", worse), ("Spared", better)) if group]
    return "; ".join(parts) + "."


def pie_gallery_row(image: torch.Tensor, original_map: torch.Tensor, compressed_map: torch.Tensor,
                    example: Mapping | pd.Series, classes: Sequence[str] | None = None) -> go.Figure:
    """One forgotten example as a `saliency_row`, its titles carrying labels, votes and confidences.

    example: one row of `forgotten_examples` (index, label, modal_original, modal_compressed,
    confidence_original, confidence_compressed, confidence_drop); classes names the labels.
    Maps are typically `population_maps` of each population for the original modal class.
    """
    def name(k: object) -> str:
        return str(classes[int(k)]) if classes is not None else str(int(k))

    original, compressed = name(example["modal_original"]), name(example["modal_compressed"])
    # Two short lines per panel: four panels share a phone's width (about 80 px each).
    titles = {
        "image": f"#{int(example['index'])}, true {name(example['label'])}<br>vote {original} → {compressed}",
        "original": f"original<br>{format_percent(example['confidence_original'])} on {original}",
        "compressed": f"compressed<br>{format_percent(example['confidence_compressed'])} on {original}",
    }
    fig = saliency_row(image, original_map, compressed_map, titles)
    drop = (f"The models' mean confidence in {original} went from {format_percent(example['confidence_original'])} "
            f"(original) to {format_percent(example['confidence_compressed'])} (compressed).")
    fig.update_layout(meta={"caption": f"{CAPTIONS['pie_gallery']} {drop}"})
    return fig

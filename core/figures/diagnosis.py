"""Figures of the Diagnosis page: confusion heatmaps, the reliability diagram, gallery tiles.

Built from `core.studies.diagnosis` results (inputs only read). Every figure carries its student
caption in `layout.meta` as the other builders do (`figure_caption`). The gallery is a list of
tiles (an upscaled picture and its caption) rather than one figure: the page puts a button under
each tile that opens it on the Saliency page, and tiles wrap on a phone.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from core.figures import COMPRESSED_COLOR, DIVERGING, ORIGINAL_COLOR, OVERALL_COLOR, as_array, house_layout
from core.metrics import Evaluation
from core.studies.diagnosis import Calibration

TILE_PX = 84  # gallery pictures are enlarged to about this many pixels (nearest neighbour: pixels stay sharp)
CAPTIONS = {
    "confusion": ("Each row is the true class, each column the answer given; the number is how many test images. "
                  "The diagonal holds the right answers; its colour is off the scale so that the mistakes show."),
    "confusion_change": ("Compressed minus original, cell by cell: red cells gained images, blue ones lost them. "
                         "Red off the diagonal is a confusion compression added; blue on it, right answers lost."),
    "reliability": ("Each point is a group of test images the model was about equally sure of: across, how sure "
                    "it was; up, how often it was right; the bigger the point, the more images. An honest model lies "
                    "on the dashed diagonal; below it, the model is surer than it is right."),
}


def confusion_heatmap(matrix: np.ndarray, classes: Sequence[str], title: str) -> go.Figure:
    """Counts (K, K), rows true class, columns predicted, as a heatmap with every count written in its cell."""
    z = as_array(matrix)
    off = z[~np.eye(len(z), dtype=bool)]
    top = float(off.max()) if off.size and off.max() > 0 else 1.0   # mistakes set the scale (see caption)
    names = [str(c) for c in classes]
    hover = "true %{y}, answered %{x}<br>%{z:.0f} images<extra></extra>"
    trace = go.Heatmap(z=z, x=names, y=names, text=z.astype(int).astype(str), texttemplate="%{text}",
                       colorscale="Blues", zmin=0, zmax=top, hovertemplate=hover,
                       colorbar=dict(title=dict(text="images", side="right"), thickness=12))
    return go.Figure([trace], _matrix_layout(title, CAPTIONS["confusion"], len(names)))


def confusion_change_heatmap(change: np.ndarray, classes: Sequence[str]) -> go.Figure:
    """The change (compressed − original) of the confusion matrix, on a diverging scale centred at 0."""
    z = as_array(change)
    off = np.abs(z[~np.eye(len(z), dtype=bool)])
    top = float(off.max()) if off.size and off.max() > 0 else 1.0
    names = [str(c) for c in classes]
    text = np.where(z == 0, "", np.char.replace(np.char.mod("%+d", z.astype(int)), "-", "\u2212"))
    hover = "true %{y}, answered %{x}<br>%{z:+.0f} images<extra></extra>"
    trace = go.Heatmap(z=z, x=names, y=names, text=text, texttemplate="%{text}", colorscale=DIVERGING,
                       zmid=0, zmin=-top, zmax=top, hovertemplate=hover,
                       colorbar=dict(title=dict(text="change", side="right"), thickness=12))
    return go.Figure([trace], _matrix_layout("Change: compressed − original", CAPTIONS["confusion_change"],
                                             len(names)))


def _matrix_layout(title: str, text: str, classes: int) -> dict:
    return house_layout(title, "answer given", "true class", height=min(620, 200 + 36 * classes), legend_rows=0,
                        xaxis=dict(type="category", side="bottom"),
                        yaxis=dict(type="category", autorange="reversed"),
                        meta={"caption": text, "facts": ""})


def reliability_diagram(original: Calibration, compressed: Calibration) -> go.Figure:
    """Accuracy against confidence per non-empty bin for both models, the diagonal, both ECEs in the legend."""
    data = [go.Scatter(x=[0, 100], y=[0, 100], mode="lines", name="honest (right as often as sure)",
                       line=dict(dash="dash", color=OVERALL_COLOR, width=2), hoverinfo="skip")]
    for name, cal, color in (("original", original, ORIGINAL_COLOR), ("compressed", compressed, COMPRESSED_COLOR)):
        full = cal.count > 0
        sizes = 6 + 18 * np.sqrt(cal.count[full] / max(int(cal.count.max()), 1))
        data.append(go.Scatter(
            # Markers only, their area by the band's images: a line would make a band of 2 images as loud as one of 900.
            x=cal.confidence[full] * 100, y=cal.accuracy[full] * 100, mode="markers",
            name=f"{name}: calibration error {cal.ece * 100:.1f} %",
            marker=dict(size=sizes, color=color, opacity=0.8, line=dict(width=1, color="white")),
            customdata=cal.count[full],
            hovertemplate=f"{name}<br>sure %{{x:.1f}} %, right %{{y:.1f}} %<br>%{{customdata}} images<extra></extra>"))
    facts = (f"Expected calibration error (15 bins): original {original.ece * 100:.1f} %, compressed "
             f"{compressed.ece * 100:.1f} %; 0 % would be perfectly honest.")
    axis = dict(range=[0, 101], tickvals=[0, 20, 40, 60, 80, 100])
    return go.Figure(data, house_layout("How sure vs how often right", "confidence (%)", "right (%)", height=480,
                                        legend_rows=3, xaxis=axis, yaxis=axis,
                                        meta={"caption": f"{CAPTIONS['reliability']} {facts}", "facts": facts}))


@dataclass(frozen=True, eq=False)
class Tile:
    """One gallery picture: test image `index`, (H', W', 3) uint8, and its caption (markdown, two lines)."""

    index: int
    picture: np.ndarray
    caption: str


def gallery_tiles(images: np.ndarray, indices: Sequence[int], original: Evaluation, compressed: Evaluation,
                  classes: Sequence[str]) -> list[Tile]:
    """Tiles for test images `indices`; images (n, C, H, W) or (n, H, W) are those images, in that order.

    The evaluations cover the whole test set. A caption reads "**#12** · a 4", then "original 4 (99 %)"
    and "compressed 9 (54 %)" on lines of their own: each model's answer and its confidence. Inputs are only read.
    """
    tiles = []
    for row, index in enumerate(indices):
        answers = []
        for name, evaluation in (("original", original), ("compressed", compressed)):
            p = int(evaluation.predictions[index])
            answers.append(f"{name} {classes[p]} ({evaluation.probabilities[index, p] * 100:.0f} %)")
        caption = f"**#{index}** · a {classes[int(original.labels[index])]}  \n" + "  \n".join(answers)
        tiles.append(Tile(int(index), _picture(as_array(images[row])), caption))
    return tiles


def _picture(image: np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) as (H', W', 3) uint8, min-max scaled, enlarged by a whole factor to about TILE_PX."""
    if image.ndim == 3:
        image = image.transpose(1, 2, 0)
    if image.ndim == 2:
        image = image[:, :, None]
    low, high = float(image.min()), float(image.max())
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    rgb = np.broadcast_to(np.rint(scaled * 255), (*image.shape[:2], 3)).astype(np.uint8)
    factor = max(1, round(TILE_PX / max(image.shape[:2])))
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


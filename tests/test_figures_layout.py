"""Figure layout that holds at every screen size: titles wrap to a phone's width, legends hang under
titles, the trade-off map scales with the window. (The browser test, tests/test_browser_layout.py,
checks the drawn result; these check the layouts the builders hand to Plotly.)"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from core import figures as F
from core.figures import maps as M
from core.figures import tradeoff as T


def test_wrap_title_breaks_between_words_and_parts_and_keeps_short_or_broken_titles():
    assert F.wrap_title("Accuracy per class") == "Accuracy per class"
    assert F.wrap_title("test accuracy (%) against sparsity") == "test accuracy (%) against<br>sparsity"
    assert F.wrap_title("conv 2 (4×3×5×5), compressed · 8 % pruned") == "conv 2 (4×3×5×5), compressed<br>8 % pruned"
    assert F.wrap_title("a<br>" + "b" * 40) == "a<br>" + "b" * 40  # the caller chose the break


def test_header_leaves_room_for_every_title_line_and_the_legend_under_it():
    title = "Share of weights that are exactly zero, per layer"
    layout = F.house_layout(title, "x", "y", height=440, legend_rows=2)
    lines = layout["title"]["text"].split("<br>")
    assert len(lines) == 2 and max(map(len, lines)) <= F.TITLE_CHARS
    assert layout["margin"]["t"] == F.header_px(layout["title"]["text"], 2)
    legend_top_px = (1 - layout["legend"]["y"]) * 440
    assert layout["legend"]["yref"] == "container" and layout["legend"]["yanchor"] == "top"
    assert legend_top_px >= F.TITLE_PAD_PX + 2 * F.TITLE_LINE_PX  # under both title lines
    assert layout["title"]["yref"] == "container"


def test_house_figures_titles_fit_a_phone():
    bars = F.sparsity_bars(["conv 1 (6×1×5×5)", "fc 1 (120×784)"], [0.0, 0.0], [0.5, 0.9], overall=0.8)
    heat = M.weight_heatmap(torch.randn(6, 1, 5, 5), "conv 1 (6×1×5×5), compressed")
    hist = F.weight_histogram(torch.randn(16, 6, 5, 5), torch.randn(16, 6, 5, 5), "conv 2 (16×6×5×5)", 32)
    for fig in (bars, heat, hist, F.per_class_accuracy(["0", "1"], np.array([0.9, 0.8]), np.array([0.9, 0.7]))):
        assert max(map(len, fig.layout.title.text.split("<br>"))) <= F.TITLE_CHARS, fig.layout.title.text


def test_saliency_titles_are_short_lines():
    fig = M.saliency_row(torch.rand(1, 6, 6), torch.rand(6, 6), torch.rand(6, 6))
    for annotation in fig.layout.annotations:  # four panels share a phone's width: about 10 characters a line
        assert max(map(len, annotation.text.split("<br>"))) <= 10, annotation.text


def _grid() -> pd.DataFrame:
    cells = [(a, b) for a in (0.0, 0.5, 0.9) for b in (2, 4, 32)]
    return pd.DataFrame({"prune_amount": [a for a, _ in cells], "weight_bits": [b for _, b in cells],
                         "accuracy": [0.98 - a / 2 - (0.3 if b == 2 else 0.0) for a, b in cells]})


def test_grid_map_is_a_heatmap_with_invisible_click_targets_and_an_outlined_cell():
    fig = T.grid_heatmap(_grid(), "accuracy", current=(0.5, 4))
    cells, heat = fig.data[0], fig.data[1]
    assert cells.name == "settings" and cells.marker.opacity == 0 and len(cells.customdata) == 9
    assert heat.type == "heatmap" and np.asarray(heat.z).shape == (3, 3)  # bits up, sparsity across
    assert list(heat.x) == ["0 %", "50 %", "90 %"] and list(heat.y) == ["2", "4", "32 (off)"]
    assert np.isclose(np.asarray(heat.z)[1, 1], 0.98 - 0.25)  # 4 bits, 50 %
    assert fig.layout.hoverdistance == -1  # a click anywhere in a cell reaches its marker
    (outline,) = fig.layout.shapes
    assert (outline.x0, outline.x1, outline.y0, outline.y1) == (0.5, 1.5, 0.5, 1.5)  # the cell (50 %, 4)
    assert list([t for t in fig.data if t.name == "current setting"][0].customdata[0]) == [0.5, 4]
    assert heat.colorbar.orientation == "h" and heat.colorbar.ticklabelposition == "outside top"

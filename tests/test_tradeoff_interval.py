"""The Trade-offs captions' "holds up to" with the 95 % interval of a 1,000-image accuracy."""
from __future__ import annotations

import pandas as pd

from core.figures.tradeoff import _grid_caption, _holds_fact
from core.stats import accuracy_interval, format_interval


def _rows(accuracies):
    return pd.DataFrame({"baseline": "global magnitude", "fine_tuned": False,
                         "prune_amount": [0.0, 0.5, 0.7, 0.9], "accuracy": accuracies})


def test_holding_means_staying_in_the_uncompressed_models_interval():
    # 98.5 % of 1,000: the 95 % Wilson interval is 97.54-99.09 %, narrower than 1 point below
    rows = _rows([0.985, 0.984, 0.9752, 0.86])
    assert _holds_fact(rows, "prune_amount", "accuracy", 0.985) == (
        "Within 1 point of the uncompressed model up to: global magnitude 70 %.")
    interval = format_interval(*accuracy_interval(0.985, 1000))
    assert interval == "97.5–99.1 %"
    assert _holds_fact(rows, "prune_amount", "accuracy", 0.985, n_test=1000) == (
        f"Within the noise of the uncompressed model (its 95 % interval: {interval}, 1,000 test images) up to: "
        "global magnitude 50 %.")


def test_a_curve_that_drops_at_once_and_the_map_caption():
    rows = _rows([0.90, 0.80, 0.70, 0.60])
    assert _holds_fact(rows, "prune_amount", "accuracy", 0.985, n_test=1000) == (
        "No curve stays within the noise of the uncompressed model (its 95 % interval: 97.5–99.1 %, "
        "1,000 test images).")
    cells = pd.DataFrame({"prune_amount": [0.0, 0.5, 0.7, 0.0], "weight_bits": [32, 32, 32, 4],
                          "accuracy": [0.985, 0.984, 0.9752, 0.97]})
    caption = _grid_caption(cells, "accuracy", "accuracy", True, n_test=1000)
    assert caption.endswith("The smallest setting within the noise of the uncompressed model (its 95 % interval: "
                            "97.5–99.1 %, 1,000 test images): 50 % sparsity at 32 bits (off).")
    assert _grid_caption(cells, "accuracy", "accuracy", True).endswith(
        "The smallest setting within 1 point of the uncompressed model: 70 % sparsity at 32 bits (off).")

"""The Global view page through AppTest: it renders for the default LeNet-5 (all four views), a slider move
changes the compressed panels, t-SNE works, an MLP says it has no filters, and a fully pruned model gets a
defined picture, never an exception (the notes for silent layers: tests/test_global_view.py). Small variants use the MLP on digits in a temporary cache."""
from __future__ import annotations

import json

import pytest

from conftest import open_app

TITLE = "What has the model learned as a whole?"



def healthy(at) -> None:
    assert not at.exception, [(e.value, *e.stack_trace) for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert [t.value for t in at.title] == [TITLE]


def charts(at) -> dict[str, dict]:
    return {e.key: json.loads(e.proto.spec) for e in at.get("plotly_chart")}


def test_the_page_shows_all_four_views_for_lenet5():
    at = open_app("global_view", prune=90)
    healthy(at)
    shown = charts(at)
    assert set(shown) == {"global_embedding", "global_silent", "global_class_maps", "global_filters"}
    names = {t.get("name") for t in shown["global_embedding"]["data"]}
    assert {"0", "9", "prediction changed"} <= names


def test_a_slider_move_changes_the_compressed_panels(small):
    at = open_app("global_view", **small)
    healthy(at)
    before = charts(at)["global_silent"]["data"][1]["y"]
    at.sidebar.slider[0].set_value(95).run()
    healthy(at)
    assert charts(at)["global_silent"]["data"][1]["y"] != before
    assert any("no convolution layer" in i.value for i in at.info)  # the MLP has no filters


def test_tsne_and_a_fully_pruned_model(small):
    at = open_app("global_view", global_view_embedding="tsne", prune=100, **small)
    healthy(at)
    assert "t-SNE" in " ".join(c.value for c in at.caption)
    assert set(charts(at)) == {"global_embedding", "global_silent", "global_class_maps"}  # no filters: an MLP

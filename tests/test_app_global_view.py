"""The Global view page through AppTest: it renders for the default LeNet-5 (all four views), a slider move
changes the compressed panels, t-SNE works, an MLP says it has no filters, and a fully pruned model gets a
defined picture, never an exception (the notes for silent layers: tests/test_global_view.py). Small variants use the MLP on digits in a temporary cache.

A click on the embedding: AppTest cannot click a Plotly chart, so `select_points` sends the selection the
browser would send (as tests/test_app_tradeoffs.py's click_grid_cell); the gallery is also drawn from a
selection put straight into session state. tests/test_browser_global_view.py clicks the real chart."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from streamlit.proto.WidgetStates_pb2 import WidgetState

import ui.cache
from core.studies import global_view

from conftest import Calls, open_app

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


def array(value) -> np.ndarray:
    """A figure's data array: plotly writes numpy arrays as base64 typed arrays ({dtype, bdata, shape})."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.asarray(value)


def select_points(at, indices: list[int]):
    """Rerun as after a box selection of the dots of test images `indices` (customdata as typed arrays)."""
    element = next(e for e in at.get("plotly_chart") if e.key == "global_embedding")
    points = []
    for curve, trace in enumerate(json.loads(element.proto.spec)["data"]):
        for k, row in enumerate(array(trace.get("customdata", []))):
            if int(row[0]) in indices:
                points.append({"curve_number": curve, "point_index": k, "point_number": k,
                               "customdata": {str(i): v for i, v in enumerate(row.tolist())}})
    selection = {"selection": {"points": points, "point_indices": [p["point_index"] for p in points], "box": [],
                               "lasso": []}}
    states = at._tree.get_widget_states()
    states.widgets.append(WidgetState(id=element.proto.id, string_value=json.dumps(selection)))
    return at._run(states)


def gallery_indices(at) -> list[int]:
    return [int(b.key.removeprefix("global_open_")) for b in at.button if b.key.startswith("global_open_")]


def test_a_selection_shows_those_images_with_both_answers_beside_the_chart(small):
    at = open_app("global_view", **small, prune=70)
    healthy(at)
    assert any("Click a dot" in c.value for c in at.caption)  # the chart's caption says how
    assert any("Click a dot" in i.value for i in at.info) and not gallery_indices(at)  # nothing picked yet
    at = select_points(at, [5, 17])
    healthy(at)
    assert gallery_indices(at) == [5, 17] and at.session_state[ui.cache.GLOBAL_SELECTION] == [5, 17]
    assert len(at.get("image")) == 2
    captions = [m.value for m in at.markdown if m.value.startswith("**#")]
    assert captions[0].startswith("**#5** · a ") and "original" in captions[0] and "compressed" in captions[0]
    at.sidebar.slider[0].set_value(80).run()  # the selection is kept across a slider move
    healthy(at)
    assert gallery_indices(at) == [5, 17]
    at.button(key="global_clear").click().run()
    assert not gallery_indices(at)


def test_the_gallery_from_session_state_and_open_on_the_saliency_page(small):
    at = open_app("global_view", **small)
    at.session_state[ui.cache.GLOBAL_SELECTION] = list(range(3, 13)) + [10 ** 6]  # one index off the test set
    at.run()
    healthy(at)
    assert gallery_indices(at) == list(range(3, 3 + ui.cache.GLOBAL_SHOWN))
    assert any("the first 6 of 10 picked" in m.value for m in at.markdown)
    at.button(key="global_open_4").click().run()
    assert not at.exception
    assert at.session_state["saliency_mode"] == "by index" and at.session_state["saliency_index"] == 4


def test_views_are_computed_once_per_setting_in_the_background(small, monkeypatch):
    counted = Calls(global_view.penultimate)
    monkeypatch.setattr(global_view, "penultimate", counted)
    at = open_app("global_view", **small, prune=43)
    healthy(at)
    first = counted.count
    assert first == 2  # the original's and the compressed model's features, in the embedding job
    at.selectbox(key="global_view_method").set_value("integrated_gradients").run()
    healthy(at)
    assert counted.count == first  # another method: new class maps, the same embedding
    at.sidebar.slider[0].set_value(44).run()
    at.sidebar.slider[0].set_value(43).run()
    healthy(at)
    assert counted.count == first + 2  # 44 % measured once; back at 43 % nothing is measured again

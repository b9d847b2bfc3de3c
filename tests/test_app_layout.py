"""Controls within reach, through AppTest: the sidebar starts with the pruning rate and the bit width,
presentation mode moves them to a strip at the top of the page (drawn once), and when a lesson step
or a click moves them the class is told so, while a move of the slider itself says nothing.

The lessons' pages use LeNet-5 on the offline digits, trained once into a temporary cache.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import model_group, open_app

ORDER = ["prune", "bits", "method", "scope", "scheme", "granularity", "dataset", "model", "present"]
CLOSED = ("dataset", "model")  # in the "Model and data set" group, closed until opened (ui.sidebar)


@pytest.fixture(scope="module")
def _model_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("layout-models")


@pytest.fixture(autouse=True)
def _models_here(monkeypatch, _model_cache):
    monkeypatch.setenv("COMPRESSION_LENS_CACHE", str(_model_cache))  # never the user's cache


def keys(block) -> list[str]:
    """Widget and container keys in the order they are drawn."""
    return [node.key for node in block if getattr(node, "key", None)]


def toasts(at) -> list[str]:
    return [t.value for t in at.toast]


def test_the_sidebar_starts_with_the_two_main_sliders():
    at = open_app("lessons")
    assert not at.exception
    shown = [key for key in keys(at.sidebar) if key in ORDER]
    assert shown == [key for key in ORDER if key not in CLOSED]  # right under the navigation: on screen at 720p
    shown = [key for key in keys(model_group(at).sidebar) if key in ORDER]
    assert shown == ORDER


def test_presentation_mode_draws_the_main_sliders_once_at_the_top_of_the_page():
    at = open_app("lessons", present=1, prune=40)
    assert not at.exception
    assert {"prune", "bits"}.isdisjoint(keys(at.sidebar))
    assert keys(at.main)[:3] == ["main_controls", "prune", "bits"]  # before the page
    assert at.slider(key="prune").value == 40
    at.slider(key="prune").set_value(60).run()  # the strip's slider is the same setting as the sidebar's
    assert at.session_state["prune"] == 60 and at.query_params["prune"] == "60"
    at.toggle(key="present").set_value(False).run()
    assert not at.exception and keys(at.sidebar)[:2] == ["prune", "bits"] and at.slider(key="prune").value == 60


def test_presentation_mode_hides_what_the_link_hides():
    at = open_app("lessons", present=1, hide="prune")
    assert not at.exception
    assert "prune" not in keys(at.main) + keys(at.sidebar) and "bits" in keys(at.main)


def test_a_lesson_step_announces_the_sliders_it_moves_and_a_slider_move_does_not():
    at = open_app("lessons", dataset="digits", model="lenet5")
    at.button(key="start_how-low-can-the-bits-go").click().run()  # step 1: 8 bits
    assert not at.exception
    assert toasts(at) == ["Bit width set to 8 bits"]
    at.button(key="lesson_next").click().run()  # step 2: 4 bits
    assert toasts(at) == ["Bit width set to 4 bits"]
    assert any(".st-key-bits" in h.proto.body for h in at.get("html"))  # the slider flashes
    at.slider(key="prune").set_value(30).run()  # the teacher's own move: nothing to announce
    assert not at.exception and toasts(at) == []


def test_both_moved_sliders_are_named_in_one_notice():
    """A map click sets both in a callback, as session state set before a run does here."""
    at = open_app("lessons", present=1)
    at.session_state["prune"], at.session_state["bits"] = 90, 4
    at.run()
    assert not at.exception
    assert toasts(at) == ["Pruning rate set to 90 %, bit width set to 4 bits"]
    assert at.slider(key="prune").value == 90 and at.query_params["bits"] == "4"
    at.run()  # told once
    assert toasts(at) == []

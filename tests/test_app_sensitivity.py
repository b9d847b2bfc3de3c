"""The Layer sensitivity page through Streamlit's AppTest (app.py, ?page=sensitivity).

The plain render uses the default model (LeNet-5 on mnist5k, cached on disk as in the app); the
search and the links use the small MLP on "digits", trained into a temporary model cache.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import ui.cache
from conftest import Calls

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 240
TITLE = "Which layers decide it?"




def open_page(**params: object) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["page"] = "sensitivity"
    for key, value in params.items():
        at.query_params[key] = str(value)
    return at.run()


def _charts(at: AppTest) -> list[str]:
    return [c.proto.id for c in at.get("plotly_chart")]


def _text(at: AppTest) -> str:
    parts = [*at.caption, *at.markdown, *at.info, *at.warning, *at.success]
    return " ".join(p.value for p in parts)


def test_default_page_renders_the_map_and_the_sqnr_bars():
    at = open_page()
    assert not at.exception, at.exception
    assert at.title[0].value == TITLE
    assert len(at.get("plotly_chart")) == 3
    assert "one layer" in _text(at) and "No plan yet" in _text(at)


def test_the_sidebar_setting_is_outlined_and_moving_it_starts_no_new_analysis(small, monkeypatch):
    calls = Calls(ui.cache.sensitivity.sensitivity_table)
    monkeypatch.setattr(ui.cache.sensitivity, "sensitivity_table", calls)
    at = open_page(**small, prune=80, bits=4)
    assert not at.exception, at.exception
    assert "Outlined: the sidebar's setting (prune 80 % and 4 bits)" in _text(at)
    first = calls.count
    at.query_params["prune"] = "50"
    at.slider(key="prune").set_value(50).run()
    assert not at.exception and calls.count == first
    assert "prune 50 % and 4 bits" in _text(at)


def test_search_finds_a_plan_that_meets_its_constraints_and_puts_it_in_the_url(small):
    at = open_page(**small, sens_drop=1, sens_floor=0.9)
    at.button(key="sens_search").click().run()
    assert not at.exception, at.exception
    plan = at.session_state["sens_plan"]
    assert plan and at.query_params["sens_plan"] in (plan, [plan])
    assert "This plan meets both constraints" in _text(at)
    assert at.dataframe[0].value["model"].tolist()[0] == "per-layer plan"


def test_size_search_compares_with_the_uniform_setting(small):
    at = open_page(**small, sens_goal="size", sens_target=8)
    at.button(key="sens_search").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert table["model"].tolist()[0] == "per-layer plan" and len(table) == 2
    assert "the most accurate uniform setting no larger than it" in _text(at)


def test_a_plan_from_a_link_is_shown_again(small):
    at = open_page(**small, sens_plan="fc1:p0.5b4,fc3:b8")
    assert not at.exception, at.exception
    assert at.text_input(key="sens_plan").value == "fc1:p0.5b4,fc3:b8"
    layers = at.dataframe[1].value
    assert layers.set_index("layer").loc["fc1", "pruned"] == "50 %"


@pytest.mark.parametrize("bad, words", [("fc1:p7", "between 0 and 1"), ("conv1;b4", "not a layer setting")])
def test_bad_plan_text_in_a_link_gets_a_notice(small, bad, words):
    at = open_page(**small, sens_plan=bad)
    assert not at.exception, at.exception
    shown = " ".join(str(e.value) for e in [*at.warning, *at.info, *at.toast] if hasattr(e, "value"))
    assert "sens_plan" in shown and words in shown
    assert at.text_input(key="sens_plan").value == ""


def test_a_plan_for_other_layers_says_so(small):
    at = open_page(**small, sens_plan="conv1:b4")
    assert not at.exception, at.exception
    assert "no layer called conv1" in " ".join(w.value for w in at.warning)


def test_structured_pruning_marks_the_classes_layer_not_applicable_and_searches(small):
    at = open_page(**small, method="structured", sens_goal="size", sens_target=4)
    assert not at.exception, at.exception
    assert "n/a: structured pruning never removes the classes' units" in _text(at)
    at.button(key="sens_search").click().run()
    assert not at.exception, at.exception
    assert not at.session_state["sens_plan"] or "fc3:p" not in at.session_state["sens_plan"]


def test_grad_cam_on_an_mlp_falls_back_with_a_notice(small):
    at = open_page(**small, sens_method="grad_cam")
    assert not at.exception, at.exception
    assert "Grad-CAM is not available here" in " ".join(w.value for w in at.warning)



def _sidebar_text(at: AppTest) -> str:
    return " ".join(str(e.value) for e in [*at.sidebar.info, *at.sidebar.warning, *at.sidebar.caption])


def test_apply_puts_the_plan_in_the_sidebar_and_the_link_and_the_overview_shows_it(small):
    plan = "fc1:p0.5b4,fc3:b8"
    at = open_page(**small, sens_plan=plan, prune=30, bits=6)
    assert not at.exception, at.exception
    at.button(key="sens_apply").click().run()
    assert not at.exception, at.exception
    assert at.session_state["plan"] == plan and at.text_input(key="plan").value == plan
    assert at.query_params["plan"] in (plan, [plan]) and at.session_state["prune"] == 0 and at.session_state["bits"] == 32
    assert "came from the Sensitivity page" in _sidebar_text(at) and "Overrides the sliders" in _sidebar_text(at)
    assert at.button(key="sens_apply").disabled  # applied: the button says so
    size = at.dataframe[0].value["size"].tolist()[0]  # the plan's size as this page measured it
    at.switch_page("pages/overview.py").run()
    assert not at.exception, at.exception
    cards = {m.label: m.value for m in at.metric}
    assert cards["Size"] == size
    assert "per-layer plan (fc1: 50 % pruned, 4 bits; fc3: 8 bits)" in " ".join(c.value for c in at.caption)
    at.button(key="plan_clear").click().run()
    assert not at.exception, at.exception
    assert at.session_state["plan"] == "" and at.query_params.get("plan") in (None, "", [""])
    assert "came from the Sensitivity page" not in _sidebar_text(at)


def test_the_sidebar_names_plan_layers_the_model_lacks(small):
    at = open_app_page(small, "overview", plan="conv1:b4,fc1:b2")
    assert not at.exception, at.exception
    assert "no layer called conv1" in _sidebar_text(at)


def open_app_page(small: dict, page: str, **params: object) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["page"] = page
    for key, value in {**small, **params}.items():
        at.query_params[key] = str(value)
    return at.run()

"""Every setting in the URL, through Streamlit's AppTest: a link restores each one into its widget,
moving a widget writes it back, bad values give a notice (never an exception), page settings
survive page switches, ?hide= hides controls, ?present=1 switches presentation mode on.

Pages that need a model run LeNet-5 on the small "digits" set, trained once into a temporary
cache shared by this file's tests (a few seconds); sidebar settings are checked on the Lessons
page, which needs no model at all.
"""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import plotly.graph_objects as go
import pytest
from conftest import open_app
from streamlit.testing.v1 import AppTest

import ui
from ui import url_state
from ui.panels import for_projector
from ui.controls import COMPRESSION
from ui.page_frame import SHARE_OPEN
from ui.sidebar import GROUP_OPEN

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 180
DIGITS = dict(dataset="digits", model="lenet5")
N_TEST_DIGITS = 360  # the digits set's fixed test split




@pytest.fixture(scope="session")
def _model_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("url-state-models")


@pytest.fixture(autouse=True)
def _digits_models_here(monkeypatch, _model_cache):
    monkeypatch.setenv("COMPRESSION_LENS_CACHE", str(_model_cache))  # never the user's cache




def healthy(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]


def _drawn(at: AppTest, key: str):
    for kind in ("selectbox", "radio", "slider", "select_slider", "number_input", "toggle", "text_input"):
        found = [w for w in getattr(at, kind) if w.key == key]
        if found:
            return found[0]
    return None


def widget(at: AppTest, key: str):
    """The widget drawn for setting `key`, whatever its kind; in a closed sidebar group (which draws nothing
    inside), once the user has opened it."""
    found = _drawn(at, key)
    if found is None and key in (*COMPRESSION, "dataset", "model"):
        at.session_state[GROUP_OPEN + (COMPRESSION[key][0] if key in COMPRESSION else "model")] = True
        found = _drawn(at.run(), key)
    if found is None:
        raise KeyError(key)
    return found


# ---------------------------------------------------------------- round trips, every setting
SIDEBAR_CASES = [  # key, value in the link, value in the widget, another value to move the widget to
    ("dataset", "digits", "digits", "mnist5k"),
    ("model", "mlp", "mlp", "lenet300"),
    ("prune", "37", 37, 80),
    ("method", "random", "random", "structured"),
    ("scope", "layer", "layer", "global"),
    ("bits", "3", 3, 6),
    ("scheme", "affine", "affine", "symmetric"),
    ("granularity", "per_tensor", "per_tensor", "per_channel"),
    ("range", "twn", "twn", "minmax"),
    ("share", "4", 4, 2),
    ("act_bits", "8", 8, 4),
    ("act_range", "histogram", "histogram", "minmax"),
    ("precision", "bf16", "bf16", "fp16"),
    ("rank", "0.5", 0.5, 0.8),
    ("rank_mode", "fraction", "fraction", "energy"),
    ("rank_scope", "global", "global", "layer"),
    ("plan", "fc1:b4", "fc1:b4", "fc1:p0.5b2"),  # a text control: the per-layer plan
]


def _registry_case(key: str) -> tuple:
    """A round-trip case for a compression control the list above does not name: built from its Control."""
    from core.compression import controls

    default = url_state.SETTINGS[key].default
    (c,) = [c for _, c in controls().values() if c.url == key]
    if c.widget == "toggle":
        return key, "1", True, False
    if c.choices:
        others = [o for o in c.choices if o != default]
        return key, str(others[len(others) // 3]), others[len(others) // 3], others[-1]
    step = c.step or (c.high - c.low) / 20
    value, other = (c.low + round((c.high - c.low) * share / step) * step for share in (0.37, 0.8))
    if float(step).is_integer() and float(c.low).is_integer():
        value, other = int(value), int(other)
    return key, f"{value:g}", value, other


SIDEBAR_CASES += [_registry_case(key) for key, setting in url_state.SIDEBAR.items()
                  if key not in {c[0] for c in SIDEBAR_CASES}]


@pytest.mark.parametrize("key, raw, value, other", SIDEBAR_CASES, ids=[c[0] for c in SIDEBAR_CASES])
def test_sidebar_settings_round_trip(key, raw, value, other):
    at = open_app("lessons", **{key: raw})  # the Lessons page needs no trained model
    healthy(at)
    assert not warnings(at)
    assert widget(at, key).value == value and at.session_state[key] == value
    assert at.query_params[key] == raw
    widget(at, key).set_value(other).run()
    healthy(at)
    assert at.query_params[key] == str(other) and at.session_state[key] == other


PAGE_CASES = [  # page, key, value in the link, value in the widget, another value, extra link settings
    ("saliency", "saliency_method", "integrated_gradients", "integrated_gradients", "grad_cam", {}),
    ("saliency", "saliency_mode", "by class", "by class", "where the models disagree", {}),
    ("saliency", "saliency_index", "7", 7, 9, {}),
    ("saliency", "saliency_class", "3", 3, 4, {"saliency_mode": "by class"}),
    ("sparsity", "sparsity_layer", "3", "3", "7", {}),
    ("tradeoffs", "sweep_method", "smoothgrad", "smoothgrad", "integrated_gradients", {}),
    ("tradeoffs", "sweep_seeds", "3", 3, 2, {}),
    ("tradeoffs", "sweep_epochs", "2", 2, 3, {}),
    ("tradeoffs", "sweep_metric", "spearman_abs", "spearman_abs", "ssim", {}),
    ("tradeoffs", "grid_metric", "agreement", "agreement", "spearman_abs", {}),
    ("sanity", "sanity_method", "grad_cam", "grad_cam", "integrated_gradients", {}),
    ("sanity", "sanity_metric", "ssim", "ssim", "topk", {}),
    ("sanity", "sanity_index", "5", 5, 6, {}),
    ("quality", "quality_method", "grad_cam", "grad_cam", "saliency", {}),
    ("global_view", "global_view_embedding", "tsne", "tsne", "pca", {}),
    ("global_view", "global_view_method", "grad_cam", "grad_cam", "saliency", {}),
    ("forgotten", "pie_size", "3", 3, 4, {}),
    ("forgotten", "pie_method", "integrated_gradients", "integrated_gradients", "input_x_gradient", {"pie_size": 3}),
    ("scrub", "scrub_control", "bits", "bits", "prune", {}),
    ("scrub", "scrub_layer", "3", "3", "9", {}),
    ("scrub", "scrub_index", "12", 12, 13, {}),
    ("scrub", "scrub_method", "input_x_gradient", "input_x_gradient", "grad_cam", {}),
    ("families", "families_metric", "agreement", "agreement", "spearman_abs_mean", {}),
    ("families", "families_method", "grad_cam", "grad_cam", "integrated_gradients", {}),
    ("families", "families_seeds", "2", 2, 3, {}),
    ("diagnosis", "diag_matrix", "original", "original", "compressed", {}),
    ("diagnosis", "diag_group", "right_both", "right_both", "wrong_same", {}),
    ("diagnosis", "diag_first", "5", 5, 6, {"diag_group": "right_both"}),
    # The teacher is LeNet-5 on digits (21,386 parameters): MLP 128-64 and MLP 32 are both smaller students.
    ("distillation", "distill_kind", "data", "data", "knowledge", {}),
    ("distillation", "distill_student", "mlp", "mlp", "mlp32", {}),
    ("distillation", "distill_t", "2", 2, 8, {}),
    ("distillation", "distill_alpha", "0.5", 0.5, 0.7, {}),
    ("distillation", "distill_subset", "10", 10, 25, {"distill_kind": "data"}),
    ("distillation", "distill_method", "integrated_gradients", "integrated_gradients", "input_x_gradient", {}),
    ("distillation", "distill_compress", "1", True, False, {}),
    ("sensitivity", "sens_metric", "agreement", "agreement", "spearman_abs", {}),
    ("sensitivity", "sens_method", "input_x_gradient", "input_x_gradient", "saliency", {}),
    ("sensitivity", "sens_goal", "size", "size", "reasons", {}),
    ("sensitivity", "sens_target", "8", 8, 4, {"sens_goal": "size"}),
    ("sensitivity", "sens_drop", "2", 2, 3, {}),
    ("sensitivity", "sens_floor", "0.8", 0.8, 0.95, {}),
    ("sensitivity", "sens_plan", "fc1:b4", "fc1:b4", "fc2:p0.5", {}),
]


@pytest.fixture
def cheap_sweeps(monkeypatch):
    """Trade-off sweeps with other methods, seeds or epochs take minutes: stop that page after its
    first three widgets (through its own "cannot sweep" notice) unless the test needs the charts."""
    def stop_after_the_first_widgets(train, sweep):
        default = url_state.SETTINGS
        if (sweep.method, len(sweep.seeds), sweep.fine_tune_epochs) != (
                default["sweep_method"].default, default["sweep_seeds"].default, default["sweep_epochs"].default):
            return "Skipped in this test: this sweep would take minutes."
        return ""
    monkeypatch.setattr(ui, "sweep_check", stop_after_the_first_widgets)


@pytest.mark.parametrize("page, key, raw, value, other, extra", PAGE_CASES, ids=[c[1] for c in PAGE_CASES])
def test_page_settings_round_trip(cheap_sweeps, page, key, raw, value, other, extra):
    at = open_app(page, **DIGITS, **extra, **{key: raw})
    healthy(at)
    assert not [w for w in warnings(at) if "Skipped" not in w]
    assert widget(at, key).value == value and at.session_state[key] == value
    assert at.query_params[key] == raw
    widget(at, key).set_value(other).run()
    healthy(at)
    link = at.query_params[key] if key in at.query_params else None
    in_link = str(other) if other != url_state.SETTINGS[key].default else None  # a default is left out
    assert at.session_state[key] == other and link == in_link
    # Another page does not draw this widget: the setting stays, in the session and in the link.
    at.switch_page("pages/lessons.py").run()
    healthy(at)
    assert at.session_state[key] == other and (at.query_params[key] if key in at.query_params else None) == in_link
    at.switch_page(f"pages/{page}.py").run()
    healthy(at)
    assert widget(at, key).value == other


def test_moving_a_widget_does_not_send_its_value_back_to_the_browser(cheap_sweeps):
    """Only settings Streamlit dropped are put back: setting a drawn widget's key on every run would
    push its value to the browser each time and undo a slider's fast moves (PageUp, PageUp, ...)."""
    at = open_app("tradeoffs", **DIGITS, sweep_seeds=2)
    for value in (30, 40):
        at.slider(key="prune").set_value(value).run()
        assert not at.slider(key="prune").proto.set_value
    at.slider(key="sweep_seeds").set_value(3).run()
    assert not at.slider(key="sweep_seeds").proto.set_value and at.session_state["sweep_seeds"] == 3


def test_every_setting_has_a_round_trip_case():
    covered = {c[0] for c in SIDEBAR_CASES} | {c[1] for c in PAGE_CASES}
    app_wide = {"page", "present", "hide", "lesson", "step", "ab"}  # below, test_lessons.py, test_app_ab.py
    assert covered | app_wide == set(url_state.SETTINGS)


def test_page_settings_at_their_default_stay_out_of_the_link():
    at = open_app("saliency", **DIGITS)
    healthy(at)
    assert "saliency_method" not in at.query_params  # short links: a missing setting means its default
    at.selectbox(key="saliency_method").set_value("grad_cam").run()
    assert at.query_params["saliency_method"] == "grad_cam"
    at.selectbox(key="saliency_method").set_value("saliency").run()
    assert "saliency_method" not in at.query_params


# ---------------------------------------------------------------- bad values: a notice in words, never an exception
BAD = [  # page, link settings, setting, value used, words the notice must contain
    ("lessons", {"method": "pruned"}, "method", "magnitude",
     "`method=pruned` in the link is not a pruning method (one of magnitude, random, structured or apoz); using magnitude."),
    ("lessons", {"scope": ""}, "scope", "global", "`scope=` in the link is not a pruning scope"),
    ("lessons", {"scheme": "log"}, "scheme", "symmetric", "`scheme=log` in the link is not a quantization scheme"),
    ("lessons", {"granularity": "per_pixel"}, "granularity", "per_channel", "using per_channel"),
    ("lessons", {"range": "percentile"}, "range", "mse", "`range=percentile` in the link is not a range setting"),
    ("lessons", {"bits": "nan"}, "bits", 32, "`bits=nan` in the link is not a bit width (one of 1, 2, 3, 4, 5, 6, 7, 8 "
     "or 32); using 32."),
    ("lessons", {"bits": "abc"}, "bits", 32, "`bits=abc` in the link is not a bit width"),
    ("lessons", {"bits": "4.5"}, "bits", 4, "`bits=4.5` in the link is not a bit width (one of 1, 2, 3, 4, 5, 6, 7, 8 "
     "or 32); using 4, the nearest."),
    ("lessons", {"bits": "12"}, "bits", 8, "using 8, the nearest"),
    ("lessons", {"prune": "55.5"}, "prune", 56, "`prune=55.5` in the link is not a pruning rate (a whole number from 0 "
     "to 100); using 56, the nearest."),
    ("lessons", {"prune": "-20"}, "prune", 0, "using 0, the nearest"),
    ("lessons", {"prune": "inf"}, "prune", 0, "`prune=inf` in the link is not a pruning rate (a whole number from 0 to "
     "100); using 0."),
    ("lessons", {"present": "maybe"}, "present", False, "`present=maybe` in the link is not presentation mode on or off"),
    ("lessons", {"hide": "method,wings"}, "hide", ("method",), "names no sidebar control called wings; hiding method."),
    ("lessons", {"lesson": "../../etc/passwd"}, "lesson", None, "`lesson=../../etc/passwd` in the link is not a lesson "
     "(the name of a lesson file in lessons/); leaving it out."),
    ("lessons", {"lesson": "explanations", "step": "99"}, "step", 5, "`step=99` in the link is past the end of this "
     "lesson; showing step 5, its last step."),
    ("lessons", {"lesson": "explanations", "step": "abc"}, "step", 1, "`step=abc` in the link is not a lesson step"),
    ("lessons", {"saliency_method": "astrology"}, "saliency_method", "saliency", "is not an explanation method"),
    ("lessons", {"saliency_index": "-4"}, "saliency_index", 0, "(a whole number, 0 or more); using 0, the nearest."),
    ("lessons", {"sweep_seeds": "9"}, "sweep_seeds", 5, "using 5, the nearest"),
    ("lessons", {"sweep_epochs": "4"}, "sweep_epochs", 3, "using 3, the nearest"),
    ("lessons", {"pie_size": "1e9"}, "pie_size", 7, "using 7, the nearest"),
    ("lessons", {"distill_alpha": "7"}, "distill_alpha", 1.0, "using 1.0, the nearest"),
    ("lessons", {"distill_t": "hot"}, "distill_t", 4, "one of 1, 2, 3"),
    ("lessons", {"sparsity_layer": "<script>"}, "sparsity_layer", None, "`sparsity_layer=<script>` in the link is not "
     "a layer name"),
    ("saliency", {**DIGITS, "saliency_index": "5000"}, "saliency_index", N_TEST_DIGITS - 1, "out of range"),
    ("saliency", {**DIGITS, "saliency_mode": "by class", "saliency_class": "12"}, "saliency_class", 9,
     "out of range"),
    ("sanity", {**DIGITS, "sanity_index": "99999"}, "sanity_index", N_TEST_DIGITS - 1, "out of range"),
    ("sparsity", {**DIGITS, "sparsity_layer": "99"}, "sparsity_layer", "0", "Layer 99 is not available"),
    ("saliency", {"dataset": "digits", "model": "mlp", "saliency_method": "grad_cam"}, "saliency_method",
     "saliency", "Grad-CAM is not available"),
]
# Python's own words, which a notice must never quote.
PYTHON_TEXT = ("invalid literal", "int()", "float", "base 10", "could not convert", "NaN", "Error", "Traceback",
               "OverflowError", "'")


@pytest.mark.parametrize("page, params, key, expected, notice", BAD,
                         ids=[f"{c[2]}={list(c[1].values())[-1]}" for c in BAD])
def test_bad_link_values_give_a_notice_in_words(cheap_sweeps, page, params, key, expected, notice):
    at = open_app(page, **params)
    healthy(at)
    assert (at.session_state[key] if key in at.session_state else None) == expected
    shown = warnings(at)
    assert any(notice in w for w in shown), shown
    assert not [w for w in shown for text in PYTHON_TEXT if text in w.replace("'s", "")], shown
    if page != "lessons":
        assert widget(at, key).value == expected


def test_a_notice_is_shown_once_and_goes_after_the_next_interaction():
    at = open_app("lessons", bits="4.5", prune="55.5")
    healthy(at)
    assert at.session_state["bits"] == 4 and at.session_state["prune"] == 56
    assert at.query_params["bits"] == "4" and at.query_params["prune"] == "56"
    shown = warnings(at)
    assert len(shown) == 2 and any("`bits=4.5`" in w for w in shown) and any("`prune=55.5`" in w for w in shown)
    at.slider(key="prune").set_value(60).run()  # the next interaction
    healthy(at)
    assert warnings(at) == [] and at.session_state["bits"] == 4
    at.select_slider(key="bits").set_value(6).run()
    assert warnings(at) == []


def test_a_notice_survives_the_page_switch_of_a_lesson_link_then_goes():
    """?lesson=&step= without a page: the first run switches to the step's page and must not lose the notice."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["lesson"], at.query_params["step"] = "magnitude-vs-random", "99"
    at.query_params["dataset"] = "digits"  # the link's own setting wins: a small model to train
    at.run()
    healthy(at)
    assert at.query_params["page"] == "tradeoffs" and at.session_state["step"] == 6
    assert [w for w in warnings(at) if "`step=99` in the link is past the end" in w]
    at.button(key="lesson_back").click().run()
    healthy(at)
    assert not [w for w in warnings(at) if "step=99" in w] and at.session_state["step"] == 5


def test_an_unknown_lesson_leaves_the_link():
    at = open_app("lessons", lesson="no-such-lesson", step=2)
    healthy(at)
    assert any("`lesson=no-such-lesson` in the link is not a lesson" in w for w in warnings(at))
    assert "lesson" not in at.query_params and "step" not in at.query_params
    assert at.session_state.lesson is None if "lesson" in at.session_state else True
    at.slider(key="prune").set_value(10).run()
    assert "lesson" not in at.query_params and warnings(at) == []


def test_unknown_page_gives_a_notice_and_the_overview():
    at = open_app("nowhere", **DIGITS)
    assert not at.exception
    assert any("`page=nowhere` in the link is not a page of this app" in w and "showing the overview" in w
               for w in warnings(at)), warnings(at)
    assert at.query_params["page"] == "overview"


# ---------------------------------------------------------------- hide= and present=
def test_hide_removes_the_named_controls_and_their_values_still_apply():
    at = open_app("sparsity", **DIGITS, prune=60, method="random", scope="layer", granularity="per_tensor",
                  hide="method,scope,granularity")
    healthy(at)
    keys = {w.key for kind in ("radio", "slider", "select_slider", "selectbox") for w in getattr(at, kind)}
    assert {"method", "scope", "granularity"}.isdisjoint(keys) and {"prune", "bits", "scheme"} <= keys
    assert "60% random pruning (layer)" in at.caption[0].value
    at.slider(key="prune").set_value(70).run()  # a rerun: the hidden controls' values must survive it
    at.select_slider(key="bits").set_value(4).run()
    healthy(at)
    assert "70% random pruning (layer), 4-bit symmetric per-tensor" in at.caption[0].value
    assert at.query_params["hide"] == "method,scope,granularity" and at.query_params["method"] == "random"


def _chart_layouts(at: AppTest) -> dict[str, dict]:
    return {e.key: json.loads(e.proto.spec)["layout"] for e in at.get("plotly_chart")}


def test_present_sets_the_flag_and_enlarges_the_charts():
    plain = open_app("overview", **DIGITS)
    at = open_app("overview", **DIGITS, present=1)
    healthy(at)
    assert at.session_state["present"] is True and at.toggle(key="present").value is True
    assert any("stMetricValue" in h.proto.body for h in at.get("html"))  # the projector CSS
    before, after = _chart_layouts(plain)["per_class"], _chart_layouts(at)["per_class"]
    assert after["font"]["size"] > before["font"]["size"] and after["height"] > before["height"]
    at.toggle(key="present").set_value(False).run()
    assert "present" not in at.query_params and not [h for h in at.get("html") if "stMetricValue" in h.proto.body]
    assert _chart_layouts(at)["per_class"]["height"] == before["height"]


def test_projector_copy_scales_every_font_and_leaves_the_figure_alone():
    fig = go.Figure(go.Bar(x=[1], y=[2], textfont=dict(size=10)),
                    layout=dict(height=400, font=dict(size=16), title=dict(text="t", font=dict(size=20)),
                                margin=dict(t=50), annotations=[dict(text="a", font=dict(size=12))]))
    before = fig.to_json()
    big = for_projector(fig, 1.5)
    assert fig.to_json() == before
    assert (big.layout.height, big.layout.font.size, big.layout.title.font.size) == (600, 24, 30)
    assert (big.layout.margin.t, big.layout.annotations[0].font.size, big.data[0].textfont.size) == (75, 18, 15)


# ---------------------------------------------------------------- the share link
def test_share_link_carries_every_setting():
    at = open_app("lessons", prune=40, bits=4, sweep_epochs=2)
    healthy(at)
    assert not at.code  # closed, the popover draws nothing (a move would resend it)
    at.session_state[SHARE_OPEN] = True  # as a click on "Share / copy link" does
    links = [c.value for c in at.run().code]
    assert len(links) == 2 and all(link.startswith("?") for link in links)  # no browser: relative
    shared = dict(parse_qsl(urlsplit(links[0]).query))
    assert shared == {k: at.query_params[k] for k in at.query_params}
    assert {shared[k] for k in ("prune", "bits", "sweep_epochs", "page")} == {"40", "4", "2", "lessons"}
    assert dict(parse_qsl(urlsplit(links[1]).query)) == {**shared, "present": "1"}
    again = open_app(shared.pop("page"), **shared)  # the link opens the same settings
    assert (again.session_state["prune"], again.session_state["bits"], again.session_state["sweep_epochs"]) == (40, 4, 2)


# ---------------------------------------------------------------- range setting and measured sparsity
def test_a_link_without_range_gets_mse_and_twn_elsewhere_says_it_uses_mse():
    at = open_app("lessons", bits=2)  # an old link: no range
    healthy(at)
    assert at.session_state["range"] == "mse" and at.query_params["range"] == "mse"
    at = open_app("lessons", bits=4, range="twn")
    healthy(at)
    assert not warnings(at) and at.session_state["range"] == "twn"  # kept: back at 2 bits it applies
    assert any("2-bit code" in c.value and "MSE" in c.value for c in at.sidebar.caption)
    at.select_slider(key="bits").set_value(2).run()
    assert not any("2-bit code" in c.value for c in at.sidebar.caption)


def test_sidebar_shows_the_measured_sparsity_under_the_pruning_slider():
    at = open_app("sparsity", **DIGITS, prune=60, method="structured")
    healthy(at)
    measured = [c.value for c in at.sidebar.caption if c.value.startswith("Measured")]
    assert len(measured) == 1, measured
    share = float(measured[0].split()[1])  # "Measured: 60.2 % of weights zero."
    assert abs(share - 60) < 1  # within half of the largest unit (64 of 21,150 weights here)
    at.select_slider(key="bits").set_value(2).run()
    at.radio(key="range").set_value("minmax").run()
    measured = [c.value for c in at.sidebar.caption if c.value.startswith("Measured")]
    assert "after rounding to 2 bits" in measured[0], measured


def test_structured_beyond_its_reach_says_where_it_stops():
    at = open_app("sparsity", **DIGITS, prune=100, method="structured")
    healthy(at)
    measured = [c.value for c in at.sidebar.caption if c.value.startswith("Measured")]
    assert len(measured) == 1 and "keeps the output classes: at most" in measured[0], measured


def test_an_older_links_name_for_a_control_still_opens_it(monkeypatch):
    # A family that renames its URL key lists the old one in its Control's old_urls (-> Setting.old_keys).
    from dataclasses import replace

    monkeypatch.setitem(url_state.SETTINGS, "prune", replace(url_state.SETTINGS["prune"], old_keys=("pruning",)))
    at = open_app("lessons", pruning=40)
    healthy(at)
    assert at.session_state["prune"] == 40 and at.query_params["prune"] == "40"
    assert "pruning" not in at.query_params


def test_every_compression_control_of_the_registry_is_a_setting_with_its_own_parser():
    from core.compression import controls

    for _, c in controls().values():
        setting = url_state.SETTINGS[c.url]
        assert setting.page is None and c.url in url_state.SIDEBAR
        if c.choices:
            assert all(setting.parse(str(option)) == option for option in c.choices)
        elif c.widget == "text":  # free text (the per-layer plan): its own reader; empty text means none
            assert setting.parse("") == setting.default
        elif c.widget != "toggle":
            assert setting.parse(str(c.high * 10)) == c.high  # clamped into range
            with pytest.raises(ValueError):
                setting.parse("banana")

"""The Distillation page through Streamlit's AppTest: it runs, its job trains the students and the result shows
(table, accuracy chart, maps), settings come from the URL with notices for bad values, a student not smaller
than the teacher gets a message and no exception, data distillation and "compress this student" work.

The MLP 128-64 on scikit-learn's 8x8 digits is the teacher, MLP 32 the student, trained into a temporary
model cache (a few seconds each).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 180
SMALL = {"model": "mlp", "dataset": "digits"}



@pytest.fixture(autouse=True)
def small(monkeypatch, small_cache):
    monkeypatch.setenv("COMPRESSION_LENS_CACHE", str(small_cache))


def open_page(**params: object) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["page"] = "distillation"
    for key, value in {**SMALL, **params}.items():
        at.query_params[key] = str(value)
    return at.run()


def healthy(at: AppTest) -> None:
    assert not at.exception, [(e.value, *e.stack_trace) for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert [t.value for t in at.title] == ["Learning from a teacher"]


def chart_keys(at: AppTest) -> list[str]:
    return [e.key for e in at.get("plotly_chart")]


def table_text(at: AppTest) -> str:
    return " ".join(df.value.to_string() for df in at.dataframe)


def test_the_page_trains_both_students_and_shows_them():
    at = open_page()
    healthy(at)
    assert "distill_accuracy" in chart_keys(at)
    assert sum(k.startswith("distill_maps_") for k in chart_keys(at)) == 4
    text = table_text(at)
    assert "teacher" in text and "distilled student (T = 4, α = 0.9)" in text and "label-only student" in text
    assert "nan" not in text.lower()
    assert any("label-only student" in m.value and "points" in m.value for m in at.markdown)
    accuracy = json.loads(next(e for e in at.get("plotly_chart") if e.key == "distill_accuracy").proto.spec)
    assert len(accuracy["data"][0]["y"]) == 3  # teacher, distilled, label-only


def test_url_settings_reach_the_page_and_bad_ones_get_notices():
    at = open_page(distill_t=3.4, distill_alpha=0.5, distill_method="sideways")
    healthy(at)
    assert (at.session_state["distill_t"], at.session_state["distill_alpha"]) == (3, 0.5)
    assert at.session_state["distill_method"] == "saliency"
    shown = " ".join(w.value for w in [*at.warning, *at.info, *at.markdown])
    assert "distill_method" in shown and "distill_t" in shown
    assert "distilled student (T = 3, α = 0.5)" in table_text(at)


def test_a_student_larger_than_the_teacher_gets_a_message():
    at = open_page(distill_student="lenet300")
    healthy(at)
    assert any("smaller than its teacher" in w.value for w in at.warning)
    assert not at.dataframe  # nothing trained, nothing shown


def test_alpha_zero_says_the_students_are_one():
    at = open_page(distill_alpha=0.0)
    healthy(at)
    assert any("α = 0" in i.value for i in at.info)


def test_compress_this_student_with_the_sidebar_setting():
    at = open_page(distill_compress=1, prune=50, bits=4)
    healthy(at)
    text = table_text(at)
    assert "distilled student, 50% magnitude pruning" in text and "nan" not in text.lower()


def test_data_distillation_compares_k_center_with_random():
    at = open_page(distill_kind="data", distill_subset=10)
    healthy(at)
    text = table_text(at)
    assert "model trained on all" in text and "k-center model" in text and "random-subset model" in text
    assert any("random-subset model" in m.value for m in at.markdown)
    at.select_slider(key="distill_subset").set_value(25).run()
    healthy(at)
    assert at.query_params["distill_subset"] == "25"

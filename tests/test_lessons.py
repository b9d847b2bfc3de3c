"""Guided lessons: the shipped TOML files parse and make sense, malformed files are reported with
their file and line, and every lesson can be walked through in the app (AppTest) with each step's
settings applied and its page opened.

The walk-throughs render the real pages, except Trade-offs and Forgotten examples: their sweeps
and model populations take minutes for LeNet-5 on mnist5k, so there the test checks the step's
settings and the page switch only (tests/test_url_state.py renders both pages with every one of
their settings, on the small digits set).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import open_app
import streamlit as st
from streamlit.navigation.page import StreamlitPage
from streamlit.testing.v1 import AppTest

from core.lessons import Lesson, LessonError, load_lessons, parse_lesson
from ui import url_state

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 180
PARSERS = url_state.lesson_parsers()
LESSONS, ERRORS = load_lessons(url_state.LESSONS_DIR, PARSERS)
HEAVY_PAGES = {"tradeoffs", "forgotten"}




# ---------------------------------------------------------------- the shipped lessons
def test_every_shipped_lesson_parses_and_validates():
    assert not ERRORS, [str(e) for e in ERRORS]
    titles = {lesson.title for lesson in LESSONS}
    assert {"Magnitude versus random pruning", "How low can the bits go?", "Pruning with and without fine-tuning",
            "Which digits does a compressed model forget?", "Do explanations survive compression?"} <= titles
    assert [lesson.order for lesson in LESSONS] == sorted(lesson.order for lesson in LESSONS)


def _sentences(text: str) -> int:
    text = re.sub(r"et al\.", "et al", text)  # an abbreviation, not the end of a sentence
    return len(re.findall(r"[.!?](?=\s|$)", text.strip()))


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_every_step_says_what_to_notice_and_opens_a_page(lesson):
    assert len(lesson.steps) >= 3
    for step in lesson.steps:
        assert 2 <= _sentences(step.text) <= 4, (step.title, step.text)
        assert step.settings.get("page") in url_state.page_names(), step.title


# ---------------------------------------------------------------- malformed files: file and line
GOOD = '''title = "A lesson"
summary = "What it is about."

[[steps]]
title = "First"
text = "Look here. Then there."
[steps.set]
page = "overview"
prune = 50
'''


def _error(source: str) -> LessonError:
    with pytest.raises(LessonError) as caught:
        parse_lesson(source, "lessons/bad.toml", PARSERS)
    return caught.value


def test_a_good_lesson_parses():
    lesson = parse_lesson(GOOD, "lessons/good.toml", PARSERS)
    assert lesson == Lesson("good", "A lesson", "What it is about.",
                            (lesson.steps[0],), 100)
    assert dict(lesson.steps[0].settings) == {"page": "overview", "prune": 50}


@pytest.mark.parametrize("source, line, words", [
    (GOOD.replace('prune = 50', 'prune = '), 9, "TOML syntax"),
    (GOOD.replace('text = "Look here. Then there."', 'text = "Look here.'), 6, "TOML syntax"),
    (GOOD.replace("prune = 50", "prunee = 50"), 9, "unknown setting 'prunee'"),
    (GOOD.replace('page = "overview"', 'page = "nowhere"'), 8, "bad value page = 'nowhere'"),
    (GOOD.replace("prune = 50", 'method = "sideways"'), 9, "bad value method = 'sideways'"),
    (GOOD.replace("prune = 50", "prune = 150"), 9, "out of range"),
    (GOOD.replace("prune = 50", "bits = 12"), 9, "out of range"),
    (GOOD.replace("prune = 50", "prune = [50, 60]"), 9, "not a list"),
    (GOOD.replace("prune = 50", 'present = true'), 9, "unknown setting 'present'"),
    (GOOD.replace('text = "Look here. Then there."\n', ""), 4, "step 1: missing 'text'"),
    (GOOD.replace('text = "Look here. Then there."', 'text = "   "'), 6, "non-empty text"),
    (GOOD.replace('text = "Look here. Then there."', 'txt = "Look here."'), 6, "unknown field 'txt'"),
    (GOOD.replace('title = "A lesson"\n', ""), 1, "missing 'title'"),
    (GOOD.replace('summary = "What it is about."', 'summary = "What." \nauthor = "me"'), 3, "unknown field 'author'"),
    (GOOD.split("[[steps]]")[0], 1, "at least one [[steps]]"),
    (GOOD + '\n[[steps]]\ntitle = "Second"\ntext = "Fine. Really."\nset = { bits = 12 }\n', 14, "step 2: bits = 12"),
    (GOOD + '\n[[steps]]\ntitle = "Second"\n', 11, "step 2: missing 'text'"),
    ('title = "A"\nsummary = "B"\n\n[settings]\nmodle = "mlp"\n\n' + GOOD.split("\n", 2)[2], 5,
     "unknown setting 'modle'"),
])
def test_malformed_lessons_name_the_file_and_the_line(source, line, words):
    err = _error(source)
    assert (err.file, err.line) == ("lessons/bad.toml", line), str(err)
    assert str(err).startswith(f"lessons/bad.toml, line {line}: ")
    assert words in str(err)


def test_a_bad_file_does_not_hide_the_others(tmp_path):
    folder = tmp_path / "lessons"
    shutil.copytree(url_state.LESSONS_DIR, folder)
    (folder / "broken.toml").write_text(GOOD.replace("prune = 50", "prune = "))
    lessons, errors = load_lessons(folder, PARSERS)
    assert [lesson.name for lesson in lessons] == [lesson.name for lesson in LESSONS]
    assert [str(e) for e in errors] == ["lessons/broken.toml, line 9: TOML syntax: Invalid value"]


# ---------------------------------------------------------------- in the app


def healthy(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.fixture
def light_heavy_pages(monkeypatch):
    """Trade-offs and Forgotten examples draw only their title here (see the module docstring)."""
    run = StreamlitPage.run

    def light_run(self):
        if self._url_path not in HEAVY_PAGES:  # (url_path is "" for the default page)
            return run(self)
        self._can_be_called = False
        st.title(self.title)

    monkeypatch.setattr(StreamlitPage, "run", light_run)


def assert_at_step(at: AppTest, lesson: Lesson, number: int) -> None:
    """Step `number` is shown, its settings (and defaults for the rest) are applied and in the link."""
    healthy(at)
    assert f"step {number} of {len(lesson.steps)}" in " ".join(c.value for c in at.caption)
    assert lesson.steps[number - 1].title in [s.value for s in at.subheader]
    settings = lesson.steps[number - 1].settings
    assert at.query_params["page"] == settings["page"]
    assert (at.query_params["lesson"], at.session_state["step"]) == (lesson.name, number)
    for key, setting in url_state.SETTINGS.items():
        if not setting.lesson or key == "page":
            continue
        expected = settings.get(key, setting.default)
        actual = at.session_state[key] if key in at.session_state else None
        if key == "sparsity_layer" and expected is None:
            continue  # no fixed default: the Sparsity page picks the first layer
        assert actual == expected, (number, key)
        if key in url_state.SIDEBAR or expected != setting.default:  # page settings at default: left out
            assert at.query_params[key] == url_state.to_text(expected), (number, key)
        else:
            assert key not in at.query_params, (number, key)


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_walk_through_every_lesson(light_heavy_pages, lesson):
    at = open_app("lessons", prune=33)  # a student's own setting, replaced by the lesson's
    healthy(at)
    at.button(key=f"start_{lesson.name}").click().run()
    assert_at_step(at, lesson, 1)
    for number in range(2, len(lesson.steps) + 1):
        at.button(key="lesson_next").click().run()
        assert_at_step(at, lesson, number)
    at.button(key="lesson_back").click().run()
    assert_at_step(at, lesson, len(lesson.steps) - 1)
    at.button(key="lesson_next").click().run()
    at.button(key="lesson_next").click().run()  # "Finish" on the last step: back to the list
    healthy(at)
    assert at.query_params["page"] == "lessons" and "lesson" not in at.query_params


def test_a_link_opens_a_lesson_step(light_heavy_pages):
    lesson = next(lesson for lesson in LESSONS if lesson.name == "magnitude-vs-random")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["lesson"], at.query_params["step"] = lesson.name, "3"
    at.run()
    assert_at_step(at, lesson, 3)  # no page and no settings in the link: the step's own
    at = open_app("weights", lesson=lesson.name, step=3, prune=20)
    healthy(at)
    assert at.query_params["page"] == "weights" and at.session_state["prune"] == 20  # the link's own win
    assert at.session_state["method"] == "random"  # the rest from the step


def test_leaving_a_lesson_keeps_the_settings():
    at = open_app("lessons")
    at.button(key="start_how-low-can-the-bits-go").click().run()
    at.button(key="lesson_leave").click().run()
    healthy(at)
    assert "lesson" not in at.query_params
    assert at.session_state["lesson"] is None and at.session_state["bits"] == 8
    assert "lesson_next" not in [b.key for b in at.button]


def test_a_malformed_lesson_file_is_named_and_the_others_still_work(monkeypatch, tmp_path):
    folder = tmp_path / "lessons"
    shutil.copytree(url_state.LESSONS_DIR, folder)
    (folder / "broken.toml").write_text(GOOD.replace("prune = 50", "prunee = 50"))
    monkeypatch.setattr(url_state, "LESSONS_DIR", folder)
    at = open_app("lessons")
    assert not at.exception
    (error,) = [e.value for e in at.error]
    assert "lessons/broken.toml, line 9: step 1: unknown setting 'prunee' (did you mean 'prune'?)" in error
    assert [s.value for s in at.subheader] == [lesson.title for lesson in LESSONS]
    at.button(key="start_how-low-can-the-bits-go").click().run()
    assert at.session_state["bits"] == 8 and at.query_params["lesson"] == "how-low-can-the-bits-go"


def test_a_link_to_a_broken_lesson_gives_a_notice(monkeypatch, tmp_path):
    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "broken.toml").write_text(GOOD.replace("prune = 50", "prune = 150"))
    monkeypatch.setattr(url_state, "LESSONS_DIR", folder)
    at = open_app(lesson="broken", step=1)
    assert not at.exception
    assert any("lessons/broken.toml, line 9: step 1: prune = 150 is out of range" in w.value for w in at.warning)
    assert at.session_state["lesson"] is None and "lesson" not in at.query_params

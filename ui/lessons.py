"""Guided lessons in the app: the list of lessons, the step shown above every page, Back / Next.

A lesson step sets every lesson-settable setting (the step's own, the lesson's, the rest at their
defaults) and opens the step's page. Settings are applied in button callbacks, the only moment
widget values may be changed; the page switch happens in the next run (st.switch_page does
nothing useful inside a callback). The figures in a step's text (`{accuracy}`, `{step2.accuracy}`)
come from the cached report of that step's own settings, whatever the sidebar shows now.
"""
from __future__ import annotations

import streamlit as st

from core import data as datasets
from core import lesson_figures
from core.lessons import Lesson, LessonError, load_lessons, parse_lesson
from ui import cache, url_state
from ui import notices as notice
from ui.setup import Setup, UploadedTrain, setup_from


# The step box stands out from the page under it: a coloured edge, slightly larger text.
STEP_CSS = """<style>
.st-key-lesson_step { border-left: 6px solid #ff4b4b; background: #fff8f6; }
.st-key-lesson_step [data-testid="stMarkdownContainer"] p { font-size: 1.15em; }
.st-key-lesson_heading { min-width: min(24rem, 100%); flex: 1 1 0; }
.st-key-lesson_heading h3 { padding: 0; }
/* During a lesson the box is the headline: the page's own title steps down. */
[data-testid="stMain"] h1 { font-size: 2rem; padding: 0.5rem 0 0.25rem; }
</style>"""


def all_lessons() -> tuple[list[Lesson], list[LessonError]]:
    """Every lesson in lessons/ (read on each call: a teacher's edit shows without a restart)."""
    return load_lessons(url_state.LESSONS_DIR, url_state.lesson_parsers())


def load(name: str) -> Lesson | LessonError:
    """One lesson by its name (file stem), or the error that makes it unusable."""
    path = url_state.LESSONS_DIR / f"{name}.toml"
    shown = f"{url_state.LESSONS_DIR.name}/{path.name}"
    try:
        return parse_lesson(path.read_text(encoding="utf-8"), shown, url_state.lesson_parsers())
    except LessonError as err:
        return err
    except (OSError, UnicodeDecodeError) as err:
        return LessonError(shown, 1, f"cannot read the file ({err})")


def _settings_of(lesson: Lesson, number: int) -> dict[str, object]:
    """Every lesson-settable setting at step `number` (1-based): the step's value or the default."""
    step = lesson.steps[number - 1]
    return {key: step.settings.get(key, setting.default)
            for key, setting in url_state.SETTINGS.items() if setting.lesson}


def step_setup(lesson: Lesson, number: int) -> Setup:
    """The Setup step `number` makes (its model, data set and compression), as the sidebar would."""
    return setup_from(_settings_of(lesson, number))


def step_text(lesson: Lesson, number: int) -> str:
    """Step `number`'s text with its placeholders filled from the reports of the steps it names.

    A model that is not trained yet trains here, with its progress bar in the step box.
    """
    text = lesson.steps[number - 1].text
    figures = {}
    for needed in sorted(lesson_figures.steps_needed(text, number)):
        setup = step_setup(lesson, needed)
        try:
            if not isinstance(setup.train, UploadedTrain):
                cache.trained_model(setup.train)
            figures[needed] = {**lesson_figures.figures(cache.report(setup)),
                               **cache.distillation_figures(setup, _settings_of(lesson, needed),
                                                            lesson_figures.names_needed(text, number, needed))}
            if needed in lesson_figures.quality_steps_needed(text, number):
                method = _settings_of(lesson, needed)["quality_method"]
                table, _, _ = cache.explanation_quality(setup, method)
                figures[needed].update(lesson_figures.quality_figures(table))
        except datasets.DatasetUnavailable:  # the sidebar has said why; the text stays readable
            figures[needed] = dict.fromkeys(lesson_figures.KNOWN, "(not available)")
    return lesson_figures.fill(text, figures, number)


def _apply(lesson: Lesson, number: int, keep: frozenset[str] = frozenset()) -> None:
    """Put step `number` into session state (except the settings in `keep`); open its page next run."""
    state = st.session_state
    for key, value in _settings_of(lesson, number).items():
        if key == "page" or key in keep:
            continue
        if value is None:  # no fixed default (the page picks, e.g. the first layer)
            url_state.forget(key)
        else:
            state[key] = value
    state["lesson"], state["step"] = lesson.name, number
    if "page" not in keep:
        state["_lesson_goto"] = _settings_of(lesson, number)["page"]


def start_lesson(name: str) -> None:
    """Callback: begin lesson `name` at its first step."""
    found = load(name)
    if isinstance(found, Lesson):
        _apply(found, 1)


def _move(delta: int) -> None:
    found = load(st.session_state.get("lesson") or "")
    if isinstance(found, Lesson):
        _apply(found, min(len(found.steps), max(1, st.session_state.get("step", 1) + delta)))


def _leave(page: str | None = None) -> None:
    st.session_state["lesson"], st.session_state["step"] = None, 1
    if page:
        st.session_state["_lesson_goto"] = page


def restore_lesson() -> None:
    """On a session's first run (before any widget): a link's ?lesson=&step= shows that step.

    Settings the link carries win; the step fills in the rest, and opens its page when the link
    names none. A lesson that no longer loads, or a step past its end, gets a notice.
    """
    state = st.session_state
    if not state.get("lesson"):
        return
    notices = state.setdefault(notice.NOTICES, [])
    found = load(state["lesson"])
    if isinstance(found, LessonError):
        notices.append(f"The lesson in the link cannot be shown, so none is open: {found}.")
        _leave()
        return
    if state["step"] > len(found.steps):
        notices.append(f"`step={state['step']}` in the link is past the end of this lesson; showing step "
                       f"{len(found.steps)}, its last step.")
        state["step"] = len(found.steps)
    _apply(found, state["step"], keep=frozenset(state.get("_url_at_start", {})))


def lesson_banner(page: str) -> None:
    """The current lesson step above the page: title, what to notice, Back / Next; nothing without a lesson."""
    state = st.session_state
    goto = state.pop("_lesson_goto", None)  # set by a Back / Next / Finish callback
    if goto and goto != page and goto in url_state.page_names():
        st.switch_page(f"pages/{goto}.py")
    if not state.get("lesson"):
        return
    found = load(state["lesson"])
    if isinstance(found, LessonError):
        st.error(f"This lesson cannot be shown: {found}", icon="🚫")
        st.button("Leave the lesson", on_click=_leave, key="lesson_leave")
        return
    number, total = min(state.get("step", 1), len(found.steps)), len(found.steps)
    step = found.steps[number - 1]
    st.html(STEP_CSS)
    # Compact, so that the chart the step talks about stays on a 720p screen: the step's title and the
    # buttons share one row (on a phone the buttons wrap onto the next), the text follows.
    with st.container(border=True, key="lesson_step", gap="small"):
        with st.container(horizontal=True, vertical_alignment="center", gap="small"):
            with st.container(key="lesson_heading", gap="small"):
                st.caption(f"Lesson: **{found.title}** · step {number} of {total}")
                st.subheader(step.title, anchor=False)
            st.button("Back", on_click=_move, args=(-1,), disabled=number == 1, key="lesson_back",
                      icon=":material/arrow_back:")
            if number < total:
                st.button("Next", on_click=_move, args=(1,), key="lesson_next", type="primary",
                          icon=":material/arrow_forward:")
            else:
                st.button("Finish", on_click=_leave, args=("lessons",), key="lesson_next", type="primary",
                          icon=":material/check:")
            st.button("Leave lesson", on_click=_leave, key="lesson_leave")
        st.markdown(step_text(found, number))
        if lesson_figures.placeholders(step.text) and state.get("_setup", None) not in (None, step_setup(found, number)):
            st.caption("The figures above are for this step's own settings; you have moved the controls since.")

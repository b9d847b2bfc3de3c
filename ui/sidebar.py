"""The shared sidebar: data set, model, compression controls, presentation mode and the share link's place.

What each control is lives in ui/controls.py; what the page fragment draws into the sidebar (the measured
sparsity, the plan's fit, the share link) and how it tells the sidebar is stale, in ui/page_frame.py.

Every setting is a query parameter (see ui/url_state.py): restored on a session's first run (bad
values clamped or ignored with a notice) and written back on every run. ?hide=a,b hides controls
(their values still apply) and ?present=1 switches presentation mode on.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import streamlit as st

import models
from core import data as datasets
from core.compression import get_step
from core.compression import ordered as ordered_steps
from ui import ab, glossary, lessons, notices, reconnect, url_state
from ui.cache import dataset
from ui.controls import CHOICES, COMPRESSION, GROUPS, MAIN, PLAN_FROM, SHORT_NAMES, label_of, step_in_session
from ui.page_frame import SHARE_OPEN, SHOWS, SLOTS, announce, moved_by_hand, share_link, shows
from ui.panels import CARDS_CSS
from ui.setup import Setup, compression_from, setup_from

# Presentation mode: larger text for a projector (Plotly figures are scaled in ui.panels.chart), slider values
# kept clear of their track, and the strip of main sliders (see _strip) pinned under the top bar.
PRESENTATION_CSS = """<style>
[data-testid="stMain"] [data-testid="stMarkdownContainer"] :is(p, li) { font-size: 1.35rem; line-height: 1.5; }
[data-testid="stMain"] [data-testid="stCaptionContainer"] :is(p, li) { font-size: 1.15rem; }
[data-testid="stMain"] [data-testid="stWidgetLabel"] p { font-size: 1.2rem; }
[data-testid="stMain"] h1 { font-size: 3rem; }
[data-testid="stMain"] [data-testid="stMetricValue"] [data-testid="stMarkdownContainer"] p { font-size: 3rem; line-height: 1.2; }
[data-testid="stMain"] [data-testid="stMetricLabel"] [data-testid="stMarkdownContainer"] p { font-size: 1.1rem; }
[data-testid="stMain"] [data-testid="stMetricDelta"] [data-testid="stMarkdownContainer"] p { font-size: 1.2rem; }
[data-testid="stMain"] button [data-testid="stMarkdownContainer"] p { font-size: 1.15rem; }
[data-testid="stMain"] .st-key-lesson_step [data-testid="stMarkdownContainer"] p { font-size: 1.5rem; }
[data-testid="stMain"] :is([data-testid="stSliderThumbValue"], [data-testid="stSliderTickBar"]) p {
  font-size: 1.1rem; line-height: 1.2; }
[data-testid="stMainBlockContainer"] { padding-top: 3.75rem; }
/* During a lesson the box is what the class reads: the page's own text steps down, so its chart stays in view. */
[data-testid="stMain"]:has(.st-key-lesson_step) [data-testid="stMarkdown"] :is(p, li) { font-size: 1.1rem; }
[data-testid="stMain"]:has(.st-key-lesson_step) .st-key-lesson_step [data-testid="stMarkdownContainer"] p {
  font-size: 1.3rem; }
@media (min-width: 640px) {  /* on a phone the two sliders stack: pinned, they would cover the page */
  .st-key-main_controls { position: sticky; top: 3.75rem; z-index: 99; background: white;
    padding: 0.6rem 0 0.2rem; border-bottom: 1px solid #e6e9ef; } }
[data-testid="stColumn"] .st-key-main_controls { position: static; border: none; padding: 0; }
</style>"""


def _check_dataset() -> None:
    """Fall back to the default data set, with a notice, when the chosen one cannot be loaded."""
    name = st.session_state["dataset"]
    try:
        dataset(name)
    except datasets.DatasetUnavailable as err:
        st.session_state["dataset"] = datasets.DEFAULT_DATASET
        st.session_state.setdefault("_notices", []).append(
            f"{err} Showing the default data set ({datasets.DEFAULT_DATASET}) instead.")


def _prepare() -> None:
    """Before any widget: settings from the URL (first run), a lesson from its link, keep all state."""
    first = not st.session_state.get("_restored")
    url_state.restore()
    if first:
        reconnect.check()  # a browser cut off from another server process: a notice says its settings came back
        _check_dataset()
        lessons.restore_lesson()
    else:
        reconnect.expire()
    url_state.keep()


def _draw(where, key: str) -> None:
    """One compression control, drawn from its Control metadata."""
    _, c = COMPRESSION[key]
    on_change, args = (moved_by_hand, (key,)) if c.main else (None, None)
    if c.widget == "slider":
        number = int if float(c.step or 1).is_integer() and float(c.low).is_integer() else float
        where.slider(c.label, number(c.low), number(c.high), key=key, step=number(c.step or 1), format=c.format,
                     on_change=on_change, args=args, help=c.help or None)
    elif c.widget == "select_slider":
        where.select_slider(c.label, c.choices, key=key, on_change=on_change, args=args, help=c.help or None,
                            format_func=lambda v, c=c: label_of(c, v))
    elif c.widget == "selectbox":
        where.selectbox(c.label, c.choices, key=key, on_change=on_change, args=args, help=c.help or None,
                        format_func=lambda v, c=c: label_of(c, v))
    elif c.widget == "toggle":
        where.toggle(c.label, key=key, on_change=on_change, args=args, help=c.help or None)
    elif c.widget == "text":
        where.text_input(c.label, key=key, on_change=on_change, args=args, help=c.help or None,
                         placeholder="e.g. conv1:p0.5b4,fc1:b2")
    else:
        where.radio(c.label, c.choices, key=key, horizontal=c.horizontal, on_change=on_change, args=args,
                    help=c.help or None, format_func=lambda v, c=c: label_of(c, v))
    if key == "prune":
        st.session_state["_sparsity_slot"] = where.empty()  # filled once the model is known: ui.page_frame


def _step_notes(where, name: str) -> None:
    """Under a step's group: what its setting does not do as named (e.g. TWN at 4 bits)."""
    step = step_in_session(name)
    for note in step.notes():
        where.caption(f":material/info: {note}")
    if name == "plan":
        _plan_extras(where, step)


def apply_plan(text: str) -> None:
    """Put a per-layer plan in the sidebar (a button's callback): the plan, and the uniform rate and bit width
    off, so that the layers it leaves out stay dense and the model is the plan's. The URL then holds it."""
    state = st.session_state
    state["plan"], state["prune"], state["bits"] = text, 0, 32
    state[PLAN_FROM] = text


def clear_plan() -> None:
    """The Clear button's callback: no per-layer plan (the sliders decide every layer again)."""
    st.session_state["plan"] = ""
    st.session_state.pop(PLAN_FROM, None)


def _plan_extras(where, step) -> None:
    """Under the plan box: why a plan is not used, where it came from, and a Clear button."""
    for problem in step.problems():
        where.warning(problem, icon="⚠️")
    if not step.active():
        return
    if st.session_state.get(PLAN_FROM) == st.session_state.get("plan"):
        where.info("This plan came from the Sensitivity page, which set the pruning rate to 0 % and the bit width "
                   "to 32 so that every layer is as the plan says. Clear it to let the sliders decide again.",
                   icon=":material/layers:")
    st.session_state["_plan_slot"] = where.empty()  # the model's own checks, once it is known: ui.page_frame
    where.button("Clear the plan", key="plan_clear", on_click=clear_plan, icon=":material/close:",
                 help="Removes the per-layer plan; every layer then follows the sliders.")


def _dataset(where, key: str = "dataset") -> None:
    where.selectbox("Data set", CHOICES["dataset"], key="dataset", on_change=_check_dataset,
                    format_func=lambda n: SHORT_NAMES.get(n, n),
                    help="  \n".join(f"**{SHORT_NAMES.get(n, n)}**: {d}" for n, d in datasets.DATASETS.items()))


def _model(where, key: str = "model") -> None:
    where.selectbox("Model", CHOICES["model"], key="model", format_func=lambda n: SHORT_NAMES.get(n, n),
                    help="  \n".join(f"**{SHORT_NAMES.get(n, n)}**: {models.describe_model(n)}"
                                     for n in CHOICES["model"]))


def _control(where, key: str) -> None:
    (_dataset if key == "dataset" else _model if key == "model" else _draw)(where, key)


GROUP_OPEN = "group_open_"  # + a step's name: session state, whether its sidebar group is open


def _groups(hidden: tuple[str, ...]) -> None:
    """The sidebar's groups of controls in order, except the controls the link hides (?hide=).

    Pruning and quantization always show their group; any other family's group is an expander, closed
    while the family is off, so unused families take one line each; the model and data set are in a closed
    expander too (every page's caption names them). A closed group draws nothing inside (opening it reruns
    the app): the browser re-renders every widget on the page at each of the 8-10 steps of a run (React
    commits; benchmarks/bench_browser.py --renders), and the closed groups' widgets were half of the
    sidebar's (issue 11 §2). Their values are kept.
    """
    names = dict(zip([get_step(n).title for n in ordered_steps()], ordered_steps()))
    for header, keys in GROUPS:
        shown = [key for key in keys if key not in hidden]
        if not shown:
            continue
        name = names.get(header)
        if name is not None and get_step(name).always_open:
            st.header(header, anchor=False)
            where = st
        else:
            if name is None:  # the model and its data set: chosen before a class, named in every page's caption
                label, active = "Model and data set", False
            else:
                active = compression_from(st.session_state).step(name).active()
                label = header + ("" if active else " (off)")
            # Streamlit names an expander by its label and start state too: when a family goes on or off (a
            # link, a lesson, Apply), its group is a new one, open exactly while the family is on.
            where = st.expander(label, expanded=active, key=GROUP_OPEN + (name or "model"), on_change="rerun")
            if not where.open:
                url_state.hold(shown)
                continue
        for key in shown:
            _control(where, key)
        if name is not None:
            _step_notes(where, name)


def _strip(shown: list[str], stacked: bool = False) -> None:
    """Presentation mode: the main sliders in a slim strip at the top of the page, where the class looks
    (side by side; `stacked`: one under the other, in a column beside the lesson box)."""
    with st.container(key="main_controls"):
        for column, key in zip([st] * len(shown) if stacked else st.columns(len(shown)), shown):
            _control(column, key)


def sidebar() -> Setup:
    """Draw the shared sidebar (compression controls first, then the model); return the setup.

    In presentation mode the two main sliders sit in a strip at the top of the page instead.
    """
    _prepare()
    for slot in SLOTS:  # this run's sidebar makes its own
        st.session_state.pop(slot, None)
    present = url_state.presenting()
    hidden = st.session_state.get("hide", ())
    st.sidebar.html(CARDS_CSS)  # once per full run: the page fragment's runs keep it
    if present:
        st.html(PRESENTATION_CSS)  # the strip of main sliders follows in ui.sidebar.strip
    # The sidebar starts collapsed in presentation mode: notices go where the class can see them.
    for notice in notices.take():  # each once: gone after the next interaction
        (st if present else st.sidebar).warning(notice, icon="⚠️")
    with st.sidebar:
        for key in MAIN:
            if key not in hidden and not present:
                _control(st, key)
        _groups(hidden)
        st.divider()
        st.toggle("Presentation mode", key="present",
                  help="Large text and charts for a projector; the sidebar starts collapsed and the pruning "
                       "rate and bit width sit at the top of the page. "
                       "In a link: ?present=1, and ?hide=method,scope hides those controls.")
        st.session_state["_share_slot"] = st.container()  # the link changes with every move: ui.page_frame.share_link
        if not st.session_state.get(SHARE_OPEN):  # open, the page fragment draws it
            share_link()
        ab.freeze_button()  # "Freeze as A" for the A/B page, and the glossary, on every page
        glossary.glossary_popover()
    url_state.sync()
    announce()
    setup = setup_from(st.session_state)
    st.session_state["_setup"] = setup
    st.session_state[SHOWS] = shows()
    return setup


def strip() -> None:
    """Presentation mode, in the full run above the page: the main sliders' strip (outside the page fragment,
    as in the sidebar); during a lesson beside a box the fragment fills with the lesson step."""
    shown = [key for key in MAIN if key not in st.session_state.get("hide", ())] if url_state.presenting() else []
    if shown and st.session_state.get("lesson"):
        # On a projector the step and the sliders it moves share one row: the page's chart stays in view.
        box, controls = st.columns([5, 2], gap="medium")
        with controls:
            _strip(shown, stacked=True)
        st.session_state["_lesson_box"] = box
    elif shown:
        _strip(shown)


def current_setup() -> Setup:
    """The setup the sidebar chose in this run; call it once, at the top of a page.

    app.py draws the sidebar before the page, and the page takes (pops) its setup. A page
    file that runs without app.py finds none: Streamlit runs a page alone while its legacy
    pages/ mode is on, from a server's start until some session has run app.py (a first
    request to /weights, say), with an auto-made menu and no page config. Such a run hands
    over to app.py, which turns st.navigation on and opens this same page through ?page=.
    """
    if "_setup" not in st.session_state:
        page = Path(inspect.stack()[1].filename).stem
        st.switch_page("app.py", query_params={**st.query_params.to_dict(), "page": page})
    return st.session_state.pop("_setup")


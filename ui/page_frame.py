"""The frame the page fragment draws around a page, and how it knows the sidebar on screen is stale.

A full run of app.py draws the navigation and the sidebar (ui/sidebar.py), keeping places (slots) in the
sidebar; then the page fragment (ui/page_run.py) fills those slots (the measured sparsity under the
pruning rate, the plan's fit, the share link) and draws the page header (the reconnect notice, the lesson
step, a toast for main controls a click moved) around the page. A main slider's callback (moved_by_hand)
reruns only that fragment; `shows()` is what the sidebar drawn by the last full run shows, so that the
fragment can ask for a full run when a page action changed any of it.
"""
from __future__ import annotations

from contextlib import nullcontext

import streamlit as st
from streamlit import config
from streamlit.errors import StreamlitAPIException
from streamlit.runtime.scriptrunner import get_script_run_ctx

from core.compression import structured_limit
from core.compression.pruning import STRUCTURED
from ui import ab, lessons, notices, reconnect, url_state
from ui.cache import compressed_model, plan_fit, zero_shares
from ui.controls import COMPRESSION, MAIN, PLAN_FROM, group_notes, label_of
from ui.panels import lazy_popover
from ui.rerun_requests import fragment_ids
from ui.setup import Setup, UploadedTrain, train_config


# A move of a main slider reruns only the page fragment (ui/page_run.py, keyed PAGE), not the navigation and the
# rest of the sidebar: the server turns the browser's request into the fragment's (ui.rerun_requests), and
# where it did not (a request that also changed something else, a first move) the slider's callback replaces
# the full run with it (st.rerun(PAGE)). The sliders stay in the full run's sidebar (drawn by the fragment, a
# map click moving them got flaky in Chromium). The measured sparsity under the pruning rate is the fragment's;
# the notes of their groups (e.g. a range setting that a bit width does not use) change at a few values only:
# then the fragment asks for a full run (shows()). Every other control (rarely moved; the data set and model
# change the sidebar itself) reruns the whole app.
PAGE = "page"  # the fragment's key
IN_PLACE = frozenset(MAIN)
SHOWS = "_sidebar_shows"  # session state: what the sidebar on screen shows (see shows())
SLOTS = ("_sparsity_slot", "_plan_slot", "_share_slot", "_lesson_box")  # where the fragment draws


def shows() -> dict[str, object]:
    """What the part of the sidebar drawn by the last full run shows: its settings and the state it reads.

    The page fragment compares it with the session after a run of its own: a page's button that changed
    any of it (Sensitivity's "Apply to the sidebar", a lesson step, A/B, a model upload, a notice) needs a
    full run, else the sidebar would show the old values."""
    state = st.session_state
    view = {key: state.get(key) for key in (*url_state.SIDEBAR, "present", "hide", "lesson")}
    view.update(_notices=len(state.get(notices.NOTICES, [])), _ab=bool(state.get(ab.KEY)),
                _plan_from=state.get(PLAN_FROM), _goto=state.get("_lesson_goto"),
                _notes=group_notes({COMPRESSION[key][0] for key in IN_PLACE}), _share=bool(state.get(SHARE_OPEN)))
    return view


def moved_by_hand(key: str) -> None:
    """A main slider's callback: only the page fragment reruns, once this session has drawn it.

    The slider's own move needs no announcement; a map click or a lesson step does (see announce)."""
    state = st.session_state
    if "_main_seen" in state:
        state["_main_seen"] = {**state["_main_seen"], key: state[key]}
    if SHOWS in state:  # the browser shows the slider's new value (a map click's move needs a full run)
        state[SHOWS] = {**state[SHOWS], key: state[key]}
    # AppTest runs a keyed rerun as Streamlit does, but its element tree then holds only the fragment's elements
    # (each at.run() starts an empty tree): under AppTest (it patches config's flag) moves rerun the whole app.
    # A server usually makes the browser's request the fragment's already (ui.rerun_requests): then this is
    # the fragment's run, and asking again would run it twice.
    if SHOWS in state and not config.get_option("global.appTest") and not _page_runs():
        try:
            st.rerun(PAGE)
        except StreamlitAPIException:  # the last full run ended before the fragment: this one is full
            pass


def _page_runs() -> bool:
    """Whether this run is the page fragment's (its callbacks run first): another fragment's run (a page
    widget's) does not redraw the page, so a main slider's move in it still asks for the page fragment."""
    ctx = get_script_run_ctx()
    return bool(ctx and ctx.fragment_ids_this_run
                and set(fragment_ids(ctx.fragment_storage, PAGE)) & set(ctx.fragment_ids_this_run))


def announce() -> None:
    """When something other than the slider itself moved a main control, queue a notice for the class.

    Compared with the values of the previous run; the notice is shown by `show_moves` after the lesson
    banner, which may switch the page (a switch would drop anything drawn before it).
    """
    state = st.session_state
    now = {key: state[key] for key in MAIN}
    before, state["_main_seen"] = state.get("_main_seen"), now
    if before is None:  # (a move of the slider itself updated _main_seen: moved_by_hand)
        return
    moved = [key for key in MAIN if before.get(key) != now[key]]
    if moved:
        state["_moves"] = moved


def _move_text(key: str, value: object) -> str:
    if key == "prune":
        return f"pruning rate set to {value} %"
    if key == "bits":
        return "bit width set to 32 (no quantization)" if value == 32 else f"bit width set to {value} bits"
    _, c = COMPRESSION[key]
    return f"{c.label.lower()} set to {label_of(c, value)}"


# A control that a click or a lesson moved flashes once, so the class sees it move.
FLASH_CSS = """<style>
@keyframes moved { from { background: #ffd5cc; } to { background: transparent; } }
%s { animation: moved 2.5s ease-out; border-radius: 0.5rem; }
</style>"""


def show_moves() -> None:
    """A toast, and a flash on the control, for main controls that a click or a lesson step moved."""
    moved = st.session_state.pop("_moves", None)
    if not moved:
        return
    text = ", ".join(_move_text(key, st.session_state[key]) for key in moved)
    st.toast(text[:1].upper() + text[1:], icon=":material/tune:")
    st.html(FLASH_CSS % ", ".join(f".st-key-{key}" for key in moved))


def _measured(setup: Setup) -> None:
    """Under the pruning slider: how many weights are zero, measured on the compressed model.

    Only once this session has the trained model (a page asked for it), so that the sidebar never
    starts a training run by itself (the Lessons page needs no model).
    """
    slot = st.session_state.get("_sparsity_slot")
    if slot is None:
        return
    if st.session_state.get("_model_ready") != setup.train:
        slot.empty()  # the fragment writes its slots on every run (Streamlit keeps their place so)
        return
    c = setup.compression
    pruned, total = zero_shares(setup)
    text = f"Measured: {pruned * 100:.1f} % of weights zero"
    if total - pruned >= 0.0005:
        bits = "the plan's bit widths" if c.step("plan").parsed() else f"{c.weight_bits} bits"
        text += f" after pruning, {total * 100:.1f} % after rounding to {bits}"
    if c.prune_method in STRUCTURED and c.prune_amount > (limit := structured_limit(compressed_model(setup))):
        text += f". Structured pruning keeps the output classes: at most {limit * 100:.1f} % here"
    slot.caption(text + ".")


def measured_early(setup: Setup) -> None:
    """The measured sparsity (and the plan's fit) at once, before the page, when the model is known."""
    st.session_state["_measured_early"] = st.session_state.get("_model_ready") == setup.train
    _measured(setup)
    _plan_fits(setup)


def after_page(setup: Setup) -> None:
    """What the sidebar can only show once the page has run (and loaded the trained model)."""
    if st.session_state.get("_model_ready") == setup.train and not st.session_state.get("_measured_early"):
        _measured(setup)
        _plan_fits(setup)


def _plan_fits(setup: Setup) -> None:
    """In the plan's group, once the page has the model: layers the plan names that this model lacks."""
    slot = st.session_state.get("_plan_slot")
    if slot is None:
        return
    if st.session_state.get("_model_ready") == setup.train and (said := plan_fit(setup)):
        slot.warning(" ".join(said), icon="⚠️")
    else:
        slot.empty()


SHARE_OPEN = "_share_open"  # session state: whether the share popover is open (its contents are drawn then)


def share_link() -> None:
    """A "Share / copy link" popover in the sidebar: the link to this exact view (st.code has a copy button).

    Its contents are drawn only while it is open (opening it reruns the app): the link changes with every
    move. Closed, the sidebar's full run draws it and a move leaves it alone (three elements fewer per move,
    issue 11 §2); open, the page fragment draws it, so its link follows each move."""
    with lazy_popover(st.session_state.get("_share_slot", st.sidebar), "Share / copy link", ":material/link:",
                      SHARE_OPEN) as open_:
        if not open_:
            return
        if isinstance(train_config(st.session_state["model"], st.session_state["dataset"]), UploadedTrain):
            st.warning("This link cannot carry your uploaded weights: whoever opens it sees the app's own "
                       "trained model at these settings, not yours.", icon=":material/upload_file:")
        st.markdown("This link opens the app with every setting as it is now:")
        st.code(url_state.link(), language=None, wrap_lines=True)
        st.markdown("The same view for a projector (large text, sidebar collapsed):")
        st.code(url_state.link(present=1), language=None, wrap_lines=True)
        if not st.context.url:
            st.caption("Add this to the app's address (for example http://localhost:8501/).")


def page_header(page: str, full: bool = True) -> None:
    """What the page fragment draws before the page: the share link and the lesson step (`full`: in a run
    of the whole app, whose sidebar drew this run's notices)."""
    url_state.keep_other_pages(page)
    reconnect.show()  # in the main area: a phone, its sidebar collapsed, shows it too
    if st.session_state.get(SHARE_OPEN):  # closed, the sidebar drew it (ui.sidebar)
        share_link()
    with st.session_state.get("_lesson_box") or nullcontext():
        lessons.lesson_banner(page)
    show_moves()
    if full:
        notices.shown()  # past any page switch: this run's notices have been seen

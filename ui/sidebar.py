"""The shared sidebar: data set, model, compression controls, presentation mode and the share link.

Every setting is a query parameter (see ui/url_state.py): restored on a session's first run (bad
values clamped or ignored with a notice) and written back on every run. ?hide=a,b hides controls
(their values still apply) and ?present=1 switches presentation mode on.
"""
from __future__ import annotations

import inspect
from contextlib import nullcontext
from pathlib import Path

import streamlit as st
from streamlit import config
from streamlit.errors import StreamlitAPIException

import models
from core import data as datasets
from core.compression import controls as compression_controls
from core.compression import get_step, structured_limit
from core.compression.pruning import STRUCTURED
from core.compression import ordered as ordered_steps
from core.compression.steps import Control
from ui import ab, glossary, lessons, notices, reconnect, url_state
from ui.cache import compressed_model, dataset, plan_fit, zero_shares
from ui.setup import Setup, UploadedTrain, compression_from, setup_from, train_config

SHORT_NAMES = {"mnist5k": "MNIST, 5k digits (offline)", "digits": "Digits 8×8 (offline)",
               "mnist": "MNIST, 70k (download)", "fashion_mnist": "Fashion-MNIST (download)",
               "cifar10": "CIFAR-10 (download)", "mlp": "MLP 128-64", "lenet300": "LeNet-300-100 (MLP)",
               "lenet5": "LeNet-5 (CNN)",
               "resnet_small": "Small ResNet (skip connections)", "separable": "Depthwise-separable CNN",
               "mlp32": "MLP 32 (small student)"}
# Every sidebar control: session-state key == URL parameter (registry: ui/url_state.py).
DEFAULTS = {key: setting.default for key, setting in url_state.SIDEBAR.items()}
CHOICES = {key: setting.options for key, setting in url_state.SIDEBAR.items() if setting.options}
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


# Where each control goes, in order. The compression controls come from the step registry
# (core/compression/steps.py): the main sliders first, right under the navigation, so that they are on
# screen at 1280x720 (in presentation mode they move to a strip at the top of the page: a widget key can
# be drawn once per run), then one group per step. A new family's controls appear here by themselves.
COMPRESSION = {c.url: (step, c) for _, (step, c) in compression_controls().items()}
MAIN = tuple(url for url, (_, c) in COMPRESSION.items() if c.main)
# Groups: the families always open (pruning, quantization) first, then the others' expanders in pipeline
# order (one line each while off), then the model.
_GROUP_ORDER = sorted(ordered_steps(), key=lambda name: not get_step(name).always_open)
GROUPS = (*((get_step(name).title, tuple(url for url, (step, c) in COMPRESSION.items() if step == name and not c.main))
            for name in _GROUP_ORDER),
          ("Model", ("dataset", "model")))


def _shown(c: Control, value: object) -> str:
    if c.labels and value in c.labels:
        return c.labels[value]
    return str(value)


# A move of a main slider reruns only the page fragment (ui/page_run.py, keyed PAGE): the slider's callback
# asks for it with st.rerun(PAGE), not the navigation and the rest of the sidebar. The sliders stay in the
# full run's sidebar: a widget a fragment drew makes the browser name that fragment in its rerun request,
# which a session that does not hold it (a browser back on another replica, or after its session expired)
# drops without a word. The measured sparsity under the pruning rate is the fragment's; the notes of their
# groups (e.g. a range setting that a bit width does not use) change at a few values only: then the fragment
# asks for a full run (shows()). Every other control (rarely moved; the data set and model change the sidebar
# itself) reruns the whole app.
PAGE = "page"  # the fragment's key
IN_PLACE = frozenset(MAIN)
SHOWS = "_sidebar_shows"  # session state: what the sidebar on screen shows (see shows())
# AppTest runs a keyed rerun as Streamlit does, but its element tree then holds only the fragment's elements
# (each at.run() starts an empty tree): there, moves rerun the whole app unless a test sets this key to True.
KEYED = "_keyed_reruns"
_SLOTS = ("_sparsity_slot", "_plan_slot", "_share_slot", "_lesson_box")  # where the fragment draws


def shows() -> dict[str, object]:
    """What the part of the sidebar drawn by the last full run shows: its settings and the state it reads.

    The page fragment compares it with the session after a run of its own: a page's button that changed
    any of it (Sensitivity's "Apply to the sidebar", a lesson step, A/B, a model upload, a notice) needs a
    full run, else the sidebar would show the old values."""
    state = st.session_state
    view = {key: state.get(key) for key in (*url_state.SIDEBAR, "present", "hide", "lesson")}
    view.update(_notices=len(state.get(notices.NOTICES, [])), _ab=bool(state.get(ab.KEY)),
                _plan_from=state.get(PLAN_FROM), _goto=state.get("_lesson_goto"),
                _notes=_notes({COMPRESSION[key][0] for key in IN_PLACE}))
    return view


def _moved_by_hand(key: str) -> None:
    """A main slider's callback: only the page fragment reruns, once this session has drawn it.

    The slider's own move needs no announcement; a map click or a lesson step does (see announce)."""
    state = st.session_state
    if "_main_seen" in state:
        state["_main_seen"] = {**state["_main_seen"], key: state[key]}
    if SHOWS in state:  # the browser shows the slider's new value (a map click's move needs a full run)
        state[SHOWS] = {**state[SHOWS], key: state[key]}
    if SHOWS in state and state.get(KEYED, not config.get_option("global.appTest")):  # (AppTest patches config's)
        try:
            st.rerun(PAGE)
        except StreamlitAPIException:  # the last full run ended before the fragment: this one is full
            pass


def _draw(where, key: str) -> None:
    """One compression control, drawn from its Control metadata."""
    _, c = COMPRESSION[key]
    on_change, args = (_moved_by_hand, (key,)) if c.main else (None, None)
    if c.widget == "slider":
        number = int if float(c.step or 1).is_integer() and float(c.low).is_integer() else float
        where.slider(c.label, number(c.low), number(c.high), key=key, step=number(c.step or 1), format=c.format,
                     on_change=on_change, args=args, help=c.help or None)
    elif c.widget == "select_slider":
        where.select_slider(c.label, c.choices, key=key, on_change=on_change, args=args, help=c.help or None,
                            format_func=lambda v, c=c: _shown(c, v))
    elif c.widget == "selectbox":
        where.selectbox(c.label, c.choices, key=key, on_change=on_change, args=args, help=c.help or None,
                        format_func=lambda v, c=c: _shown(c, v))
    elif c.widget == "toggle":
        where.toggle(c.label, key=key, on_change=on_change, args=args, help=c.help or None)
    elif c.widget == "text":
        where.text_input(c.label, key=key, on_change=on_change, args=args, help=c.help or None,
                         placeholder="e.g. conv1:p0.5b4,fc1:b2")
    else:
        where.radio(c.label, c.choices, key=key, horizontal=c.horizontal, on_change=on_change, args=args,
                    help=c.help or None, format_func=lambda v, c=c: _shown(c, v))
    if key == "prune":
        st.session_state["_sparsity_slot"] = where.empty()  # filled once the model is known: _measured


def _step(name: str):
    """Step `name` at the session's values of its controls (what its group shows)."""
    return compression_from({url: st.session_state[url] for url, (step, _) in COMPRESSION.items()
                             if step == name}).step(name)


def _notes(names: set[str]) -> dict[str, list[str]]:
    """The notes of steps `names` (as _step_notes draws them), from one config; none before the first run."""
    if not all(url in st.session_state for url in COMPRESSION):
        return {}
    return {name: _step(name).notes() for name in sorted(names)}


def _step_notes(where, name: str) -> None:
    """Under a step's group: what its setting does not do as named (e.g. TWN at 4 bits)."""
    step = _step(name)
    for note in step.notes():
        where.caption(f":material/info: {note}")
    if name == "plan":
        _plan_extras(where, step)


PLAN_FROM = "_plan_from"  # session state: the plan text the Sensitivity page applied (ui.sidebar.apply_plan)


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
    st.session_state["_plan_slot"] = where.empty()  # the model's own checks, once it is known: _plan_fits
    where.button("Clear the plan", key="plan_clear", on_click=clear_plan, icon=":material/close:",
                 help="Removes the per-layer plan; every layer then follows the sliders.")


def _plan_fits(setup: Setup) -> None:
    """In the plan's group, once the page has the model: layers the plan names that this model lacks."""
    slot = st.session_state.get("_plan_slot")
    if slot is None:
        return
    if st.session_state.get("_model_ready") == setup.train and (said := plan_fit(setup)):
        slot.warning(" ".join(said), icon="⚠️")
    else:
        slot.empty()


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


def _groups(hidden: tuple[str, ...]) -> None:
    """The sidebar's groups of controls in order, except the controls the link hides (?hide=).

    Pruning and quantization always show their group; any other family's group is an expander, closed
    while the family is off (its controls keep their values), so unused families take one line each.
    """
    names = dict(zip([get_step(n).title for n in ordered_steps()], ordered_steps()))
    for header, keys in GROUPS:
        shown = [key for key in keys if key not in hidden]
        if not shown:
            continue
        name = names.get(header)
        if name is None or get_step(name).always_open:
            st.header(header, anchor=False)
            where = st
        else:
            active = compression_from(st.session_state).step(name).active()
            where = st.expander(header + ("" if active else " (off)"), expanded=active)
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


def announce() -> None:
    """When something other than the slider itself moved a main control, queue a notice for the class.

    Compared with the values of the previous run; the notice is shown by `show_moves` after the lesson
    banner, which may switch the page (a switch would drop anything drawn before it).
    """
    state = st.session_state
    now = {key: state[key] for key in MAIN}
    before, state["_main_seen"] = state.get("_main_seen"), now
    if before is None:  # (a move of the slider itself updated _main_seen: _moved_by_hand)
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
    return f"{c.label.lower()} set to {_shown(c, value)}"


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


def sidebar() -> Setup:
    """Draw the shared sidebar (compression controls first, then the model); return the setup.

    In presentation mode the two main sliders sit in a strip at the top of the page instead.
    """
    _prepare()
    for slot in _SLOTS:  # this run's sidebar makes its own
        st.session_state.pop(slot, None)
    present = url_state.presenting()
    hidden = st.session_state.get("hide", ())
    if present:
        st.html(PRESENTATION_CSS)  # the strip of main sliders follows in page_header
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
        st.session_state["_share_slot"] = st.container()  # the link changes with every move: share_link
        ab.freeze_button()  # "Freeze as A" for the A/B page, and the glossary, on every page
        glossary.glossary_popover()
    url_state.sync()
    announce()
    setup = setup_from(st.session_state)
    st.session_state["_setup"] = setup
    st.session_state[SHOWS] = shows()
    return setup


SHARE_OPEN = "_share_open"  # session state: whether the share popover is open (its contents are drawn then)
SHARE_HEIGHT_PX = 400


def share_link() -> None:
    """A "Share / copy link" popover in the sidebar: the link to this exact view (st.code has a copy button).

    Its contents are drawn only while it is open (opening it reruns the page): the link changes with every
    move, and four elements resent per move were a sixth of what a move sends (issue 11 §2)."""
    with st.session_state.get("_share_slot", st.sidebar).popover("Share / copy link", icon=":material/link:",
                                                                  width="stretch", key=SHARE_OPEN,
                                                                  on_change="rerun") as box:
        if not box.open:
            # About the height of what it will show: the popover is placed as it opens, before its contents
            # arrive, and placed for an empty box it would open downwards, off the screen at 720p.
            st.container(height=SHARE_HEIGHT_PX, border=False)
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


def page_header(page: str, full: bool = True) -> None:
    """What the page fragment draws before the page: the share link and the lesson step (`full`: in a run
    of the whole app, whose sidebar drew this run's notices)."""
    url_state.keep_other_pages(page)
    reconnect.show()  # in the main area: a phone, its sidebar collapsed, shows it too
    share_link()
    with st.session_state.get("_lesson_box") or nullcontext():
        lessons.lesson_banner(page)
    show_moves()
    if full:
        notices.shown()  # past any page switch: this run's notices have been seen


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


"""Prepare the class: before the class arrives, train and save every model the pages and lessons use,
then measure the shared results the pages would compute on a first visit (the Trade-offs tables and
the Forgotten examples population).

The same model plan as `make warm` (core.warm.class_plan). The work runs in one shared background
job (ui.cache.class_job), so it goes on when the teacher opens another page, and any page that needs
one of its models or tables meanwhile waits for the same run. Models are saved on disk; tables and
population votes live in this server's memory, which `make warm` (another process) cannot fill.
"""
from __future__ import annotations

from dataclasses import replace

import streamlit as st

from core import warm
from core.studies import sweeps
from core.studies.sweeps import SweepConfig
from core.training import TrainConfig
from ui import url_state
from ui.cache import PreparedPopulation, PreparedTable, _table_label, class_job, on_disk, prepared
from ui.lessons import all_lessons
from ui.setup import setup_from

STARTED_KEY = "_prepare_class"


def defaults() -> dict[str, object]:
    """Every setting at the app's default (what a view does not name)."""
    return {key: setting.default for key, setting in url_state.SETTINGS.items()}


def class_views() -> list:
    """Every view a class may open: each page at its defaults, then every lesson step."""
    return warm.class_views(url_state.page_names(), all_lessons()[0])


def plan() -> list[TrainConfig]:
    """Every trained model the pages (at their defaults) and the lessons' steps need."""
    return warm.needed_models(class_views(), defaults())


def tradeoffs_sweep(values: dict) -> SweepConfig:
    """The sweep the Trade-offs page runs for these settings (as pages/tradeoffs.py builds it)."""
    return SweepConfig(base=setup_from(values).compression, method=str(values["sweep_method"]),
                       seeds=tuple(range(int(values["sweep_seeds"]))), fine_tune_epochs=int(values["sweep_epochs"]))


def table_plan() -> tuple[PreparedTable, ...]:
    """Every table the Trade-offs page starts at its defaults and at each lesson step that opens it."""
    found: dict[tuple[TrainConfig, SweepConfig], tuple[str, bool]] = {}
    for values in warm.views_on("tradeoffs", class_views(), defaults()):
        train = setup_from(values).train
        for key, table in sweeps.table_plan(tradeoffs_sweep(values)).items():
            found.setdefault((train, table), key)
    several = len({train for train, _ in found}) > 1
    return tuple((_name(key, train, table, several), train, table) for (train, table), key in found.items())


def _name(key: tuple[str, bool], train: TrainConfig, table: SweepConfig, several: bool) -> str:
    """A table as the bar names it: "layer-wise magnitude, fine-tuned, 3 seeds (MLP 128-64 on digits)"."""
    name = _table_label(*key) + (f", {len(table.seeds)} seeds" if len(table.seeds) > 1 else "")
    return f"{name} ({warm.SHORT_NAMES.get(train.model, train.model)} on {train.dataset})" if several else name


def population_plan() -> tuple[PreparedPopulation, ...]:
    """Every Forgotten examples population the page shows at its defaults and at each lesson step on it,
    with the compression settings of those views (the first sets everything but the pruning rate)."""
    found: dict[tuple, list] = {}
    for values in warm.views_on("forgotten", class_views(), defaults()):
        setup, size = setup_from(values), int(values["pie_size"])
        settings = found.setdefault((setup.train, size, replace(setup.compression, prune_amount=0.0)), [])
        if setup.compression not in settings:
            settings.append(setup.compression)
    return tuple((train, size, tuple(settings)) for (train, size, _), settings in found.items())


def _start() -> None:
    st.session_state[STARTED_KEY] = True


def prepare_panel() -> None:
    """"Prepare the class": a button, then one progress bar for every model and table, then what is ready."""
    configs, tables, populations = plan(), table_plan(), population_plan()
    if st.session_state.get(STARTED_KEY) and (configs or tables or populations):
        if not _follow(class_job(tuple(configs), tables, populations)):
            return
    missing = [cfg for cfg in configs if not on_disk(cfg)]
    measured = (tuple(configs), tables, populations) in prepared() or not (tables or populations)
    if not missing and measured:  # one quiet line: the lessons below stay in view
        shared = (f" and the {len(tables)} Trade-offs tables and the Forgotten examples population are measured"
                  if tables or populations else "")
        st.caption(f":material/check_circle: Ready for a class: the {len(configs)} trained models the pages and "
                   f"lessons use are saved on this server{shared}, so no student waits.")
        return
    with st.container(border=True, key="prepare_class"):
        st.markdown("**Before the class**")
        shared = (f"the {len(tables)} tables of the Trade-offs page and the Forgotten examples population, measured "
                  "once per server start and shared by every visitor")
        if missing:
            st.markdown(f"{len(missing)} of the {len(configs)} models the pages and lessons use are not trained yet "
                        f"({', '.join(warm.label(cfg) for cfg in missing)}). Train them now, once, then measure "
                        f"{shared}: every page opens without waiting; the bar says how long is left.")
        else:
            st.markdown(f"The {warm.counted(len(configs), 'model')} the pages and lessons use are saved. Not yet measured on this "
                        f"server: {shared}. Measure them now and those pages open without waiting.")
        st.button("Prepare the class", on_click=_start, type="primary", icon=":material/rocket_launch:",
                  key="prepare_class_button")
        st.caption("On the server, `make warm` trains the models from a terminal; the tables live in the running "
                   "app's memory, so only this button measures them.")


def _follow(job) -> bool:
    """Follow the shared preparation job with one progress bar; False (after an error box) if it failed."""
    if not job.done.is_set():
        bar = st.progress(0.0, text="Preparing the class: starting")
        while not job.done.wait(0.5):
            fraction, message = job.progress
            bar.progress(fraction, text=f"Preparing the class: {message}")
        bar.empty()
    st.session_state.pop(STARTED_KEY, None)
    try:
        job.wait()
    except Exception as err:
        class_job.clear()
        st.error(f"Preparing the class stopped: {err}. Press the button to try again.", icon="🚫")
        return False
    return True

"""Prepare the class: train and save, before the class arrives, every model the pages and lessons use.

The same plan as `make warm` (core.warm.class_plan); the work runs in one shared background job
(ui.cache.class_job), so it goes on when the teacher opens another page, and any page that needs
one of its models meanwhile waits for the same training run.
"""
from __future__ import annotations

import streamlit as st

from core import warm
from core.training import TrainConfig
from ui import url_state
from ui.cache import class_job, on_disk
from ui.lessons import all_lessons

STARTED_KEY = "_prepare_class"


def plan() -> list[TrainConfig]:
    """Every trained model the pages (at their defaults) and the lessons' steps need."""
    defaults = {key: setting.default for key, setting in url_state.SETTINGS.items()}
    return warm.class_plan(url_state.page_names(), all_lessons()[0], defaults)


def _start() -> None:
    st.session_state[STARTED_KEY] = True


def prepare_panel() -> None:
    """"Prepare the class": a button, then one progress bar for every model, then what is ready."""
    configs = plan()
    missing = [cfg for cfg in configs if not on_disk(cfg)]
    if st.session_state.get(STARTED_KEY) and configs:
        if not _follow(configs):
            return
        missing = [cfg for cfg in configs if not on_disk(cfg)]
    if not missing:  # one quiet line: the lessons below stay in view
        st.caption(f":material/check_circle: Ready for a class: the {len(configs)} trained models the pages and "
                   "lessons use are saved on this server, so no student waits for training.")
        return
    with st.container(border=True, key="prepare_class"):
        st.markdown("**Before the class**")
        st.markdown(f"{len(missing)} of the {len(configs)} models the pages and lessons use are not trained yet "
                    f"({', '.join(warm.label(cfg) for cfg in missing)}). Train them now, once, and every page opens "
                    "without waiting; the bar says how long is left.")
        st.button("Prepare the class", on_click=_start, type="primary", icon=":material/rocket_launch:",
                  key="prepare_class_button")
        st.caption("On the server, `make warm` does the same from a terminal.")


def _follow(configs: list[TrainConfig]) -> bool:
    """Follow the shared preparation job with one progress bar; False (after an error box) if it failed."""
    job = class_job(tuple(configs))
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

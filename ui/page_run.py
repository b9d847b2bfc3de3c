"""The page fragment: everything a compression setting changes, rerun alone when such a setting moves.

A full run of app.py draws the navigation and the sidebar (ui.sidebar, the main sliders included),
keeping places in it, and then `page`, a fragment keyed ui.page_frame.PAGE: into those places the measured
sparsity under the pruning rate and the share link; then the page header (lesson step), the page itself,
the URL and the prefetch of the next pruning step. A main slider's move runs only this fragment instead of
the whole app, so it no longer resends the navigation, the sidebar and its glossary (issue 11 §2: the
browser's wait from a slider release to updated charts). The decision is the server's (the browser asks for
a full run; ui.rerun_requests turns the request into this fragment's, else the slider's callback replaces
the full run with it), so a client needs nothing new (see ui.page_frame for why the sliders are not drawn
by the fragment).

A widget on the page reruns only this fragment (the browser names it); a session that does not hold it (a
browser back on another replica, or after its session expired) makes that a full run
(ui.rerun_requests). Anything that changes what the
sidebar shows (ui.page_frame.shows(): "Apply to the sidebar", a lesson step, A/B, a model upload, a notice,
a note under the quantization group that a bit width brings) is caught before and after the page: that
run becomes a full one, so the sidebar never shows old values.
"""
from __future__ import annotations

import streamlit as st

from ui import reconnect, url_state
from ui.cache import prefetch_neighbours, run_started
from ui.setup import setup_from
from ui.page_frame import PAGE, SHOWS, after_page, announce, measured_early, page_header, shows

FULL = "_full_run"  # session state: set by app.py just before it calls `page` in a full run


def _sidebar_stale() -> bool:
    """Whether the session no longer matches what the sidebar on screen shows (then a full run is due)."""
    return SHOWS in st.session_state and shows() != st.session_state[SHOWS]


@st.fragment(key=PAGE)
def page(navigation, name: str) -> None:
    """The page `name` (app.py's st.navigation) with its header and the sidebar's setting-dependent parts."""
    state = st.session_state
    full = state.pop(FULL, False)
    if not full:  # this fragment alone: what app.py's full run does before the page, for the page's part
        if _sidebar_stale():
            st.rerun()
        run_started()
        url_state.keep()
        reconnect.expire()
        url_state.sync()  # before the share link, which is read from the URL
        announce()  # a map click that moved the main sliders: the toast and the flash (not a slider's own move)
        state["_setup"] = setup_from(state)
    setup = state["_setup"]  # the page takes it (ui.current_setup)
    page_header(name, full)
    measured_early(setup)
    # The page object is the full run's (st.navigation may only be called there) and refuses a second
    # .run(); a rerun of this fragment is one, so Streamlit's own guard (page.py, _can_be_called) is reopened.
    navigation._can_be_called = True
    navigation.run()
    after_page(setup)  # the measured sparsity under the pruning slider, once the model is loaded
    url_state.sync()  # a page may have corrected a setting (e.g. a method the model does not offer)
    prefetch_neighbours(setup)  # the next pruning step's report, computed while the user looks
    if not full and _sidebar_stale():
        st.rerun()


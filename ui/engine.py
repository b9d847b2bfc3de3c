"""Where a page's heavy work runs, in one caption: shown only when LENS_RAY sends it to Ray."""
from __future__ import annotations

import streamlit as st

from core.studies import executor


def engine_caption(what: str = "The measurements on this page run") -> None:
    """A caption naming the Ray engine (a local instance and its CPUs, or the cluster's address); nothing on threads.

    what: the subject and its verb ("The students train").
    """
    try:
        chosen = executor.backend()
    except ValueError as err:  # a bad LENS_RAY_CPUS: say so, the work then fails with the same words
        st.warning(str(err))
        return
    if chosen.kind == "ray":
        st.caption(f"{what} as Ray tasks on {chosen.describe()}; the progress bar follows them as they finish.")

"""The A/B view's state: freeze the sidebar's setting as A, then compare it with the sidebar (B).

A lives in session state under "ab" (a URL setting, so it survives page switches and is in the
link) as a `core.studies.ab` word; the buttons change it in callbacks, the only moment a widget's value
(the sidebar's, when A and B swap) may be set.
"""
from __future__ import annotations

import streamlit as st

from core.studies import ab
from core import data as datasets
from ui import url_state
from ui.cache import dataset
from ui.setup import Setup, setup_from

KEY = "ab"
PARSERS = {key: setting.parse for key, setting in url_state.SIDEBAR.items()}
DEFAULTS = {key: setting.default for key, setting in url_state.SIDEBAR.items()}


def _current() -> dict[str, object]:
    return {key: st.session_state.get(key, default) for key, default in DEFAULTS.items()}


def freeze() -> None:
    """Callback: the sidebar's setting becomes A."""
    st.session_state[KEY] = ab.encode(_current(), DEFAULTS)


def clear() -> None:
    """Callback: forget A."""
    url_state.forget(KEY)


def swap() -> None:
    """Callback: the sidebar takes A's setting, and A the sidebar's."""
    frozen = frozen_values()
    if frozen is None:
        return
    freeze()
    for key, value in frozen.items():
        st.session_state[key] = value


def frozen_values() -> dict[str, object] | None:
    """A's sidebar settings, or None when nothing is frozen (the URL's word was checked on the way in)."""
    word = st.session_state.get(KEY)
    if not word:
        return None
    try:
        values = ab.decode(word, PARSERS, DEFAULTS)
        dataset(str(values["dataset"]))
    except ValueError:  # a setting's choices changed since A was frozen: drop it rather than fail
        url_state.forget(KEY)
        return None
    except datasets.DatasetUnavailable as err:  # a link's A names data this server does not have
        url_state.forget(KEY)
        st.warning(f"A cannot be shown: {err} A was dropped.", icon="⚠️")
        return None
    return values


def frozen_setup() -> Setup | None:
    """A as a Setup (training + compression), or None."""
    values = frozen_values()
    return None if values is None else setup_from(values)


def freeze_button() -> None:
    """In the sidebar: "Freeze as A", and once A exists, a line saying what it is with a link to compare."""
    with st.sidebar:
        st.button("Freeze as A", on_click=freeze, icon=":material/ac_unit:", key="ab_freeze", width="stretch",
                  help="Keep the current setting as A; change the sidebar, and the A/B page shows both side by side.")
        if st.session_state.get(KEY):
            st.page_link("pages/ab.py", label="Compare A with the sidebar (B)", icon=":material/compare:")

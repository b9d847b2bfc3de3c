"""Bring your own model: the uploader's callback validates the file (core.upload) and keeps the
weights in this session; `ui.setup.train_config` then names them, so every page explores them.

Session state: UPLOAD_KEY holds the UploadedWeights, USE_UPLOAD_KEY whether they are explored.
Validation runs in the callback because it may switch the sidebar's model (a widget key may be
set only before its widget is drawn).
"""
from __future__ import annotations

import streamlit as st

import models
from core import upload as uploads
from ui.cache import dataset
from ui.setup import UPLOAD_KEY, USE_UPLOAD_KEY

FILE_KEY = "own_model_file"        # the file uploader
TOGGLE_KEY = "own_model_use"       # the "explore my weights" toggle (mirrors USE_UPLOAD_KEY)
ERROR_KEY = "_own_model_error"
DETAIL_KEY = "_own_model_error_detail"  # the reader's own message, cleaned, for the expander


def accept_file() -> None:
    """on_change of the uploader: validate the file for the sidebar's data set; keep it or say why not."""
    file = st.session_state.get(FILE_KEY)
    if file is None:
        return
    state = st.session_state
    data = dataset(state["dataset"])
    try:
        upload = uploads.load_upload(file.getvalue(), file.name, state["dataset"], data.input_shape,
                                     data.num_classes, models.list_models(), state["model"])
    except uploads.UploadError as err:
        state[ERROR_KEY], state[DETAIL_KEY] = f"**{file.name}** was not loaded. {err}", err.detail
        return
    state.pop(ERROR_KEY, None)
    state.pop(DETAIL_KEY, None)
    state[UPLOAD_KEY], state[USE_UPLOAD_KEY] = upload, True
    state["model"] = upload.architecture  # the sidebar follows the file


def refusal() -> str | None:
    """Why the last file was refused, in the app's words (None after a good one)."""
    return st.session_state.get(ERROR_KEY)


def refusal_detail() -> str:
    """The file reader's own message about the last refusal ("" when there is none to add)."""
    return st.session_state.get(DETAIL_KEY, "") if refusal() else ""


def current() -> uploads.UploadedWeights | None:
    """This session's uploaded weights, used or not."""
    return st.session_state.get(UPLOAD_KEY)


def use_toggle() -> bool:
    """The "explore my weights" toggle; its value outlives the page (Streamlit drops undrawn widgets' state)."""
    st.session_state[TOGGLE_KEY] = st.session_state.get(USE_UPLOAD_KEY, True)
    return st.toggle("Explore my weights on every page", key=TOGGLE_KEY, on_change=_toggled)


def _toggled() -> None:
    st.session_state[USE_UPLOAD_KEY] = st.session_state[TOGGLE_KEY]


def forget() -> None:
    """Drop the upload: every page shows the built-in model again."""
    for key in (UPLOAD_KEY, USE_UPLOAD_KEY, ERROR_KEY, DETAIL_KEY):
        st.session_state.pop(key, None)


def show_upload_settings() -> None:
    """Switch the sidebar to the upload's model and data set (a callback: widget keys change before drawing)."""
    upload = current()
    if upload is not None:
        st.session_state["model"], st.session_state["dataset"] = upload.architecture, upload.dataset
        st.session_state[USE_UPLOAD_KEY] = True

"""A browser that comes back to a server process that does not hold its session: say so, once.

Streamlit's browser client reconnects its websocket by itself when the connection drops, naming the
session it had: the third entry of the Sec-WebSocket-Protocol header ("streamlit", an XSRF token,
the previous session id; streamlit/web/server/starlette/starlette_websocket.py, _parse_subprotocols).
A process that still holds that session resumes it (nothing starts afresh, nobody notices). One that
does not starts a new session, whose first run lands here. A fresh visit (a new tab, a reload, a
teacher's shared link) names no previous session, so only a browser that was really cut off sees it.

- The previous session was started by this very process: it expired (Streamlit keeps a disconnected
  session for server.disconnectedSessionTTL, 120 s by default), e.g. a phone locked for a while.
- Otherwise another process held it: the server restarted, or (behind nginx, scripts/replicas.py)
  the replica it was on died and the balancer sent this browser to another one.

Either way the settings come back from the link (ui/url_state.restore); the notice, in the main area
where a phone shows it, says so and is gone after the next interaction.

Such a new session has not run the app yet, so it holds none of its fragments, while the browser still
shows the page the old session drew: a click on anything the page fragment drew (ui/page_run.py: a
button, an expander) names that fragment, and Streamlit drops a rerun of a fragment the session does not
hold, without a word (AppSession.request_rerun). ui.rerun_requests makes that click a full run instead,
so it counts and the notice shows.
"""
from __future__ import annotations

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

RESTARTED = ("The server you were on restarted; your settings came back from the link. "
             "(An uploaded file has to be uploaded again.)")
EXPIRED = ("You were away long enough that the server let your session go; your settings came back "
           "from the link. (An uploaded file has to be uploaded again.)")
_NOTICE = "_reconnect_notice"   # session state: the notice, until a run has drawn it
_DRAWN = "_reconnect_drawn"     # ... and once drawn: dropped at the next run


def previous_session(protocol_header: str | None) -> str | None:
    """The session id a reconnecting browser names in Sec-WebSocket-Protocol (None on a fresh visit)."""
    entries = [entry.strip() for entry in (protocol_header or "").split(",")]
    return entries[2] if len(entries) >= 3 and entries[2] else None


def kind(protocol_header: str | None, session_id: str, started_here: set[str]) -> str | None:
    """Which notice a session's first run gets: RESTARTED, EXPIRED or None (a fresh visit)."""
    previous = previous_session(protocol_header)
    if previous is None or previous == session_id:
        return None
    return EXPIRED if previous in started_here else RESTARTED


def check() -> None:
    """On a session's first run: note this session as started here, and queue the notice if it reconnected."""
    from ui.cache import sessions_started  # ui.cache imports torch: only once the app needs it anyway

    ctx = get_script_run_ctx()
    if ctx is None:  # a bare run without a server
        return
    started = sessions_started()
    said = kind(st.context.headers.get("Sec-WebSocket-Protocol"), ctx.session_id, started)
    started.add(ctx.session_id)
    if said:
        st.session_state[_NOTICE] = said


def expire() -> None:
    """On later runs: the notice goes once a run has drawn it."""
    if st.session_state.pop(_DRAWN, False):
        st.session_state.pop(_NOTICE, None)


def show() -> None:
    """Draw the notice above the page (call where the page header is drawn)."""
    said = st.session_state.get(_NOTICE)
    if said:
        st.info(said, icon=":material/sync:")
        st.session_state[_DRAWN] = True

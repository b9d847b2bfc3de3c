"""How this app's server treats a browser's rerun request before Streamlit runs it: two rules, one wrap.

1. **A move of a main slider reruns only the page fragment.** The pruning rate and the bit width sit in the
   full run's sidebar (ui/sidebar.py), so the browser asks for a full run when they move. Their callback
   (ui.page_frame.moved_by_hand) could replace that run with the page fragment's (st.rerun(PAGE)) only once
   the full run had started: with runner.fastReruns Streamlit stops the session's script thread, starts a new
   one and begins the full run, about 20 ms of a move's 65 ms of server time (benchmarks/bench_browser.py
   --breakdown, issue 11 §2). Here the request itself is turned into the fragment's when the only widgets it
   changed are main sliders (`main_only`): no full run starts. The callbacks still run (Streamlit calls every
   changed widget's callback in a fragment run, wherever the widget sits), and what the fragment does before
   the page is what it did after the replaced run. Anything else changed (a button, an expander, another
   control, a page switch) keeps the full run the browser asked for.
2. **A rerun of a fragment the session does not hold is a full run** (ui/reconnect.py): a browser back from
   another replica, or after its session expired, clicks on what the page fragment drew; Streamlit would
   drop that request without a word (AppSession.request_rerun); in this app every full run draws the page
   fragment again, so a full run with the browser's widget states is what the click asked for. Automatic
   reruns (st.fragment(run_every=...)) are still dropped, as Streamlit does.

Streamlit has no setting for either: this is the one wrap of its private request path, installed once per
process (`install`, as `ui` is imported). AppTest does not go through it (it has no AppSession).
"""
from __future__ import annotations

import functools
from collections.abc import Collection, Mapping

from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.WidgetStates_pb2 import WidgetStates
from streamlit.runtime.app_session import AppSession
from streamlit.runtime.state.common import user_key_from_element_id
from streamlit.errors import StreamlitAPIException

_SEEN = "_lens_widget_states"  # on the AppSession: (page hash, {widget id: its state as bytes}) of the last request


def widget_states(states: WidgetStates) -> dict[str, bytes]:
    """The widget states of a request, by widget id, as comparable bytes."""
    return {w.id: w.SerializeToString(deterministic=True) for w in states.widgets}


def main_only(before: Mapping[str, bytes] | None, after: WidgetStates, keys: Collection[str],
              after_bytes: Mapping[str, bytes] | None = None) -> bool:
    """Whether a request's widget states differ from the last request's only in widgets keyed `keys`.

    A widget in both whose state differs is one the user moved (one per request) or one the server set (a map
    click moves a slider, a lesson step: the browser then sends its new value once); either way, when all
    of them are main sliders, the page fragment is the run to do. A widget new since the last request is
    one the page mounted (the browser registers every widget's first value), not a move, unless it is a
    pressed button (a trigger): that, or any other changed widget, keeps the full run. A widget gone is one
    no longer drawn. No last request (a session's first): keep the full run. `after_bytes`: `after` as
    widget_states() gives it, when the caller has it already (each state is then serialized once per request).
    """
    if before is None:
        return False
    moved = False
    now = after_bytes if after_bytes is not None else widget_states(after)
    for w in after.widgets:
        old = before.get(w.id)
        if old is None:
            kind = w.WhichOneof("value")
            if (kind == "trigger_value" and w.trigger_value) or kind in ("string_trigger_value", "json_trigger_value",
                                                                         "chat_input_value"):
                return False
            continue
        if old == now[w.id]:
            continue
        if user_key_from_element_id(w.id) not in keys:
            return False
        moved = True
    return moved


def fragment_ids(storage, key: str) -> list[str]:
    """The ids of the fragment keyed `key` in a session's fragment storage; [] while the session has not drawn it."""
    try:
        return storage.resolve_target(key)
    except StreamlitAPIException:
        return []


def install(page: str, main_keys: Collection[str]) -> None:
    """From now on in this process, apply both rules to every browser request (`page`: the page fragment's
    key, `main_keys`: the main sliders' keys). Installed once however often called."""
    original = AppSession.request_rerun
    if getattr(original, "_lens_rules", False):
        return

    @functools.wraps(original)
    def request_rerun(self: AppSession, client_state: ClientState | None) -> None:
        if client_state is not None and not client_state.is_auto_rerun:
            seen = getattr(self, _SEEN, None)
            now = widget_states(client_state.widget_states)
            setattr(self, _SEEN, (client_state.page_script_hash, now))
            if client_state.fragment_id and not self.has_fragment(client_state.fragment_id):
                client_state = _with_fragment(client_state, "")  # rule 2
            elif (not client_state.fragment_id and not client_state.is_history_navigation and seen is not None
                  and seen[0] == client_state.page_script_hash
                  and main_only(seen[1], client_state.widget_states, main_keys, now)):
                held = fragment_ids(self._fragment_storage, page)  # none yet: the full run draws it
                if len(held) == 1:
                    client_state = _with_fragment(client_state, held[0])  # rule 1
        original(self, client_state)

    request_rerun._lens_rules = True
    AppSession.request_rerun = request_rerun


def _with_fragment(client_state: ClientState, fragment_id: str) -> ClientState:
    """A copy of the request naming `fragment_id` ("": a full run)."""
    changed = ClientState()
    changed.CopyFrom(client_state)
    changed.fragment_id = fragment_id
    return changed

"""ui.rerun_requests: which browser requests the server turns into the page fragment's run (issue 11 §2)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from streamlit.errors import StreamlitAPIException
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.WidgetStates_pb2 import WidgetStates
from streamlit.runtime.app_session import AppSession

from ui import rerun_requests
from ui.rerun_requests import main_only, widget_states

MAIN = {"prune", "bits"}
PRUNE, BITS, METHOD, PAGE_TOGGLE, BUTTON = ("$$ID-a1-prune", "$$ID-b2-bits", "$$ID-c3-method", "$$ID-d4-show_maps",
                                           "$$ID-e5-None")


def states(**values) -> WidgetStates:
    """Widget states as the browser sends them: int sliders, a string radio, a toggle, a button's trigger."""
    out = WidgetStates()
    ids = {"prune": PRUNE, "bits": BITS, "method": METHOD, "toggle": PAGE_TOGGLE, "button": BUTTON}
    for name, value in values.items():
        w = out.widgets.add(id=ids[name])
        if isinstance(value, bool):
            setattr(w, "trigger_value" if name == "button" else "bool_value", value)
        elif isinstance(value, int):
            w.int_value = value
        else:
            w.string_value = value
    return out


BEFORE = widget_states(states(prune=50, bits=8, method="l1", toggle=False))


@pytest.mark.parametrize("after, expected", [
    (states(prune=60, bits=8, method="l1", toggle=False), True),             # the pruning slider moved
    (states(prune=50, bits=4, method="l1", toggle=False), True),             # the bit width moved
    (states(prune=60, bits=4, method="l1", toggle=False), True),             # a map click set one, the user the other
    (states(prune=50, bits=8, method="l1", toggle=False), False),            # nothing moved (a rerun as it was)
    (states(prune=50, bits=8, method="random", toggle=False), False),        # another control: a full run
    (states(prune=60, bits=8, method="random", toggle=False), False),        # ... even beside a main one
    (states(prune=50, bits=8, method="l1", toggle=True), False),             # a widget on the page
    (states(prune=60, bits=8, method="l1"), True),                           # a widget gone (no longer drawn)
    (states(prune=60, bits=8, method="l1", toggle=False, button=False), True),  # one the page just mounted
    (states(prune=50, bits=8, method="l1", toggle=False, button=True), False),  # a pressed button
])
def test_only_a_move_of_main_sliders_alone_counts(after, expected):
    assert main_only(BEFORE, after, MAIN) is expected
    assert main_only(BEFORE, after, MAIN, widget_states(after)) is expected  # serialized once by the caller


def test_a_sessions_first_request_keeps_its_full_run():
    assert main_only(None, states(prune=60), MAIN) is False


class Storage:
    def __init__(self, held: dict[str, list[str]]):
        self.held = held

    def resolve_target(self, key: str) -> list[str]:
        if key not in self.held:
            raise StreamlitAPIException(f"No fragment found for target '{key}'.")
        return self.held[key]


def request(fragment_id: str = "", page: str = "overview-hash", history: bool = False, **values) -> ClientState:
    state = ClientState(fragment_id=fragment_id, page_script_hash=page, is_history_navigation=history,
                        query_string="prune=50")
    state.widget_states.CopyFrom(states(**values))
    return state


def test_a_main_slider_move_is_turned_into_the_page_fragments_run_and_nothing_else(monkeypatch):
    asked: list[ClientState] = []
    monkeypatch.setattr(AppSession, "request_rerun", lambda self, client_state: asked.append(client_state))
    rerun_requests.install("page", MAIN)
    session = SimpleNamespace(has_fragment=lambda fragment_id: fragment_id in ("page-id", "chart-id"),
                              _fragment_storage=Storage({"page": ["page-id"]}))
    sequence = [
        request(prune=50, bits=8),                          # the session's first: nothing to compare with
        request(prune=60, bits=8),                          # a move: the page fragment's run
        request(prune=60, bits=4, method="l1"),             # the bit width, a new control mounted: the same
        request(prune=60, bits=4, method="random"),         # another control: the full run asked for
        request("chart-id", prune=60, bits=4, method="random", toggle=True),  # a page widget: as asked
        request(prune=70, bits=4, method="random", page="weights-hash"),  # another page: a full run
        request(prune=80, bits=4, method="random", page="weights-hash", history=True),  # back/forward: full
        request(prune=90, bits=4, method="random", page="weights-hash"),  # a move again: the fragment's
    ]
    for state in sequence:
        AppSession.request_rerun(session, state)
    assert [s.fragment_id for s in asked] == ["", "page-id", "page-id", "", "chart-id", "", "", "page-id"]
    moved = asked[1]
    assert moved.query_string == "prune=50" and moved.widget_states == sequence[1].widget_states  # all else kept
    assert sequence[1].fragment_id == ""  # the browser's own request is not changed


def test_a_session_without_the_page_fragment_keeps_its_full_run(monkeypatch):
    """The page fragment not drawn yet (or drawn twice, which this app never does): nothing is guessed."""
    for held in ({}, {"page": ["one", "two"]}):
        asked: list[ClientState] = []
        monkeypatch.setattr(AppSession, "request_rerun", lambda self, client_state: asked.append(client_state))
        rerun_requests.install("page", MAIN)
        session = SimpleNamespace(has_fragment=lambda fragment_id: True, _fragment_storage=Storage(held))
        for state in (request(prune=50), request(prune=60)):
            AppSession.request_rerun(session, state)
        assert [s.fragment_id for s in asked] == ["", ""]


@pytest.mark.parametrize("this_run, expected", [
    ([], False),                     # a full run: the slider's callback asks for the page fragment
    (["page-id"], True),             # the page fragment's run (the server turned the request into it)
    (["chart-id"], False),           # another fragment's run does not redraw the page: ask for it
])
def test_a_main_sliders_callback_knows_whether_the_page_fragment_is_the_run(monkeypatch, this_run, expected):
    from ui import page_frame
    ctx = SimpleNamespace(fragment_ids_this_run=this_run, fragment_storage=Storage({"page": ["page-id"]}))
    monkeypatch.setattr(page_frame, "get_script_run_ctx", lambda: ctx)
    assert page_frame._page_runs() is expected
    ctx.fragment_storage = Storage({})  # the page fragment not drawn in this session yet
    assert page_frame._page_runs() is False

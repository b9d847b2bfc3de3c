"""Replicas behind nginx (scripts/replicas.py), all on loopback: both serve the app, a browser sticks to
one, and a replica killed mid-class sends its students to the other with a notice, nobody else's.

The students here speak Streamlit's own websocket protocol (benchmarks/load_client.py), each with its own
cookie jar, as a browser does: GET the page, then open /_stcore/stream with its cookies; a reconnect
names the previous session in the subprotocol header, as Streamlit's frontend does.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import re
import shutil
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import load_client as lc  # noqa: E402
from scripts import replicas  # noqa: E402
from ui import reconnect, rerun_requests  # noqa: E402

needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None,
                                 reason="nginx is not installed (`make nginx` or `make test` installs Debian's package)")
SMALL = "model=mlp&dataset=digits"  # the small MLP on 8x8 digits: each replica trains or loads it in about a second


def _in_thread(coroutine):
    """asyncio.run on a thread of its own: a real-browser test earlier in the session leaves Playwright's
    event loop running on this one, where asyncio.run refuses to start."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


# ---------------------------------------------------------------- no server
def test_a_fresh_visit_gets_no_notice_and_a_reconnect_does():
    assert reconnect.previous_session(None) is None
    assert reconnect.previous_session("streamlit") is None
    assert reconnect.previous_session("streamlit, PLACEHOLDER_AUTH_TOKEN") is None  # a shared link, a new tab
    assert reconnect.previous_session("streamlit, tok, abc-1") == "abc-1"
    assert reconnect.kind("streamlit, tok", "new", set()) is None
    assert reconnect.kind("streamlit, tok, old", "new", set()) == reconnect.RESTARTED  # another process held it
    assert reconnect.kind("streamlit, tok, old", "new", {"old"}) == reconnect.EXPIRED  # it expired here
    assert reconnect.kind("streamlit, tok, same", "same", set()) is None


def test_a_rerun_of_a_fragment_the_session_lacks_becomes_a_full_run(monkeypatch):
    """Streamlit drops it; the app turns it into a full run with the browser's widget states (not an
    automatic rerun, and not a fragment the session holds), and wraps Streamlit once however often asked."""
    from streamlit.proto.ClientState_pb2 import ClientState
    from streamlit.runtime.app_session import AppSession

    asked: list[ClientState | None] = []
    monkeypatch.setattr(AppSession, "request_rerun", lambda self, client_state: asked.append(client_state))
    rerun_requests.install("page", {"prune"})
    rerun_requests.install("page", {"prune"})  # (ui is imported once per process; asked twice, one wrap)
    session = SimpleNamespace(has_fragment=lambda fragment_id: fragment_id == "held")  # what the wrap asks of it
    for fragment_id, auto in (("lost", False), ("held", False), ("lost", True), ("", False)):
        state = ClientState(fragment_id=fragment_id, is_auto_rerun=auto, query_string="page=overview")
        state.widget_states.widgets.add(id="w", int_value=3)
        AppSession.request_rerun(session, state)
    AppSession.request_rerun(session, None)
    assert [s.fragment_id if s else None for s in asked] == ["", "held", "lost", "", None]
    lost = asked[0]
    assert lost.query_string == "page=overview" and lost.widget_states.widgets[0].int_value == 3
    assert len(asked) == 5  # one wrap: each request passed on once


def test_the_config_listens_and_proxies_on_loopback_only(tmp_path):
    text = replicas.render_config(8501, [8601, 8602], tmp_path)
    assert not re.search(r"@[A-Z_]+@", text)  # every placeholder filled
    assert "listen 127.0.0.1:8501;" in text
    assert "server 127.0.0.1:8601 " in text and "server 127.0.0.1:8602 " in text
    addresses = set(re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", text))
    assert addresses == {"127.0.0.1"}
    for needed in ("proxy_http_version 1.1", "Upgrade $http_upgrade", "hash $lens_key consistent",
                   "proxy_next_upstream error timeout", "proxy_read_timeout 1h", "Host $http_host"):
        assert needed in text
    assert f"client_max_body_size {replicas.upload_limit_mb()}m" in text


# ---------------------------------------------------------------- two replicas behind nginx
@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    cache = tmp_path_factory.mktemp("replica-models")
    running = replicas.start(2, env={"COMPRESSION_LENS_CACHE": str(cache)})
    try:
        yield running
    finally:
        running.stop()
    assert all(r.proc.poll() is not None for r in running.replicas) and running.nginx.poll() is not None


def _get(student: lc.Student, path: str) -> str:
    """GET through the student's cookie jar; the replica that answered."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(student.jar))
    with opener.open(student.url + path, timeout=30) as response:
        response.read()
        return response.headers["X-Lens-Replica"].split(",")[-1].strip()  # after a retry: the one that answered


async def _handshake(student: lc.Student) -> str:
    async with websockets.connect(student.ws_url, subprotocols=["streamlit"],
                                  additional_headers=student.cookie_headers()) as ws:
        return ws.response.headers["X-Lens-Replica"].split(",")[-1].strip()


@needs_nginx
def test_both_replicas_serve_the_app(pair):
    for r in pair.replicas:
        assert replicas.healthy(r.url)
    with urllib.request.urlopen(pair.url + "/?page=overview", timeout=30) as response:
        assert response.status == 200 and "<title>Streamlit</title>" in response.read().decode()
    assert replicas.healthy(pair.url)


@needs_nginx
def test_a_browser_sticks_to_one_replica_and_two_can_differ(pair):
    seen: dict[str, lc.Student] = {}
    for i in range(30):  # each new jar is hashed by a random id: two replicas show up within a few
        student = lc.Student(pair.url, seed=i, cookies=True)
        student.open_page()
        paths = ["/_stcore/health", "/_stcore/host-config", "/?page=weights", "/favicon.png"] * 3
        assert {_get(student, p) for p in paths} == {student.replica}
        assert _in_thread(_handshake(student)) == student.replica  # the websocket lands there too
        seen.setdefault(student.replica, student)
        if len(seen) == 2:
            break
    assert set(seen) == {r.address for r in pair.replicas}


# ---------------------------------------------------------------- a replica killed mid-class
async def _run(ws, view: lc.View, query: str, states=(), page_hash: str = "") -> None:
    await ws.send(lc.rerun_message(query, states, page_hash, "", view.cache))
    async with asyncio.timeout(120):
        while not view.feed(await ws.recv()):
            pass
    assert not view.exceptions, view.exceptions


def _notice(view: lc.View) -> list[str]:
    return [t for t in view.texts if "your settings came back from the link" in t]


def _xsrf(student: lc.Student) -> str:
    return next((c.value for c in student.jar if c.name == "_streamlit_xsrf"), "PLACEHOLDER_AUTH_TOKEN")


async def _failover(pair: replicas.Replicas) -> None:
    students = []
    for i in range(40):  # one student on each replica
        s = lc.Student(pair.url, seed=100 + i, cookies=True)
        s.open_page(f"page=overview&{SMALL}")
        if s.replica not in {t.replica for t in students}:
            students.append(s)
        if len(students) == 2:
            break
    victim_student, bystander = students
    victim = next(r for r in pair.replicas if r.address == victim_student.replica)
    views = {}
    sockets = {}
    for s, prune in ((victim_student, 30), (bystander, 60)):
        ws = await websockets.connect(s.ws_url, subprotocols=["streamlit", _xsrf(s)], max_size=None,
                                      additional_headers=s.cookie_headers())
        view = views[s.replica] = lc.View()
        sockets[s.replica] = ws
        await _run(ws, view, f"page=overview&{SMALL}")
        await _run(ws, view, view.query_string, [lc.slider_state(view.widgets["prune"].id, prune)],
                   view.page_script_hash)
        assert view.measured()[0] == pytest.approx(prune, abs=0.5) and f"prune={prune}" in view.query_string
        assert not _notice(view)
    old = views[victim.address]
    pair.kill(victim.index)  # mid-class: SIGKILL, no goodbye
    with pytest.raises(websockets.ConnectionClosed):  # nginx closes the browser's side (after what was in flight)
        async with asyncio.timeout(30):
            while True:
                await sockets[victim.address].recv()

    # The victim's browser reconnects by itself, naming its old session; nginx sends it to the live replica.
    ws = await websockets.connect(victim_student.ws_url, subprotocols=["streamlit", _xsrf(victim_student), old.session_id],
                                  max_size=None, additional_headers=victim_student.cookie_headers())
    assert ws.response.headers["X-Lens-Replica"].split(",")[-1].strip() == bystander.replica
    back = lc.View()
    await _run(ws, back, old.query_string, page_hash=old.page_script_hash)  # the URL the browser still shows
    assert back.session_id != old.session_id
    assert _notice(back) == [reconnect.RESTARTED]
    assert back.measured()[0] == pytest.approx(30, abs=0.5)  # the view came back from the link
    await _run(ws, back, back.query_string, [lc.slider_state(back.widgets["prune"].id, 40)], back.page_script_hash)
    assert not _notice(back) and back.measured()[0] == pytest.approx(40, abs=0.5)  # once, then gone
    await ws.close()

    # Nobody else notices: the bystander's own session goes on, and a fresh visit gets no notice.
    calm = views[bystander.replica]
    await _run(sockets[bystander.replica], calm, calm.query_string,
               [lc.slider_state(calm.widgets["prune"].id, 61)], calm.page_script_hash)
    assert not _notice(calm) and calm.measured()[0] == pytest.approx(61, abs=0.5)
    await sockets[bystander.replica].close()
    newcomer = lc.Student(pair.url, seed=999, cookies=True)
    newcomer.open_page(old.query_string)  # the teacher's link, with the dead replica's settings in it
    async with websockets.connect(newcomer.ws_url, subprotocols=["streamlit", _xsrf(newcomer)], max_size=None,
                                  additional_headers=newcomer.cookie_headers()) as ws:
        fresh = lc.View()
        await _run(ws, fresh, old.query_string)
        assert not _notice(fresh) and fresh.measured()[0] == pytest.approx(30, abs=0.5)


@needs_nginx
def test_a_killed_replicas_students_land_on_the_other_with_a_notice(tmp_path):
    with replicas.start(2, env={"COMPRESSION_LENS_CACHE": str(tmp_path)}) as pair:
        _in_thread(_failover(pair))

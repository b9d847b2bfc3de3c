"""One simulated student: a Streamlit websocket session spoken in Streamlit's own protobuf messages.

How a browser talks to a Streamlit 1.67 server (read from streamlit's frontend App.tsx and
web/server/starlette/starlette_websocket.py), and what this client does the same way:

- It opens ws://host/_stcore/stream with the subprotocol header "streamlit" (the 2nd and 3rd
  entries, an XSRF token and a session id to resume, only matter for login and reconnects).
- Every script run is asked for with a BackMsg `rerun_script` (a ClientState): the query string
  (without "?"), the widget states, `page_script_hash` (which st.navigation page; "" on the first
  load, when `page_name` comes from the URL path) and the hashes of the cacheable messages the
  client already holds (the server then sends a ForwardMsg with only `ref_hash` instead).
- The server answers with ForwardMsgs: `new_session` at the start of every run, `navigation`
  (the pages and their script hashes), `page_info_changed` (the query string the app set, which
  the browser puts in its address bar and sends with the next rerun), deltas (elements; widget
  protos carry their `id`, e.g. "$$ID-...-prune" for key "prune") and `script_finished` at the end.
  FINISHED_EARLY_FOR_RERUN means another run follows: the wait is over only at the final one.
- A slider move is a rerun with the slider's state as `double_array_value` [value]; a
  select_slider's as `string_array_value` [formatted option]. A widget a fragment drew (its delta
  names the fragment in `delta.fragment_id`) is moved with that `fragment_id` in the ClientState, as
  the browser does: the server then reruns only the fragment (FINISHED_FRAGMENT_RUN_SUCCESSFULLY). The
  app's main sliders are drawn by the full run and name none: their callback reruns the page fragment
  (ui/page_run.py), decided on the server. A page switch is a rerun with the
  target's `page_script_hash`, an empty query string and the main script's widget states.
"""
from __future__ import annotations

import asyncio
import http.cookiejar
import math
import random
import re
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

MEASURED = re.compile(r"Measured: ([0-9.]+) % of weights zero")
ROUNDED = re.compile(r"after rounding to (\d+) bits")
TOLERANCE = 0.5  # percentage points: a student drags to whole percents, global magnitude pruning hits them exactly
DONE = (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR,
        ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY)


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between order statistics (numpy's default)."""
    data = sorted(values)
    if not data:
        return math.nan
    rank = (len(data) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return data[low] + (data[high] - data[low]) * (rank - low)


def summarize(values: list[float]) -> dict[str, float]:
    """n, p50, p95 and max of some waits (NaN for none)."""
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "max": max(values) if values else math.nan}


def slider_state(widget_id: str, value: float) -> WidgetState:
    return WidgetState(id=widget_id, double_array_value={"data": [float(value)]})


def select_slider_state(widget_id: str, option: str) -> WidgetState:
    return WidgetState(id=widget_id, string_array_value={"data": [option]})


def rerun_message(query_string: str, states: Iterable[WidgetState], page_script_hash: str = "",
                  page_name: str = "", cached: Iterable[str] = (), fragment_id: str = "") -> bytes:
    """The BackMsg a browser sends for a script run (`fragment_id`: of the fragment that drew the widget moved)."""
    msg = BackMsg()
    cs = msg.rerun_script
    cs.query_string = query_string.lstrip("?")
    cs.fragment_id = fragment_id
    cs.widget_states.widgets.extend(states)
    cs.page_script_hash = page_script_hash
    cs.page_name = page_name
    cs.cached_message_hashes.extend(sorted(cached))
    cs.context_info.timezone = "UTC"
    cs.context_info.locale = "en-US"
    return msg.SerializeToString()


def widget_key(widget_id: str) -> str:
    """The user key a widget id ends with ("$$ID-<hash>-prune" -> "prune"; "" without a key)."""
    return widget_id.rsplit("-", 1)[-1] if widget_id.startswith("$$ID-") else ""


@dataclass
class View:
    """What the browser would hold for the current run: widgets by key, texts, pages, query string."""
    widgets: dict[str, object] = field(default_factory=dict)  # user key -> widget proto
    fragments: dict[str, str] = field(default_factory=dict)  # user key -> the fragment that drew it ("": none)
    texts: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    pages: dict[str, str] = field(default_factory=dict)  # url path -> page_script_hash
    query_string: str = ""
    page_script_hash: str = ""
    cache: dict[str, ForwardMsg] = field(default_factory=dict)
    messages: int = 0
    bytes: int = 0
    session_id: str = ""  # the server's id for this session (a reconnecting browser names it)

    def feed(self, data: bytes) -> bool:
        """Take one ForwardMsg; True when it ends the current script run."""
        msg = ForwardMsg()
        msg.ParseFromString(data)
        self.messages += 1
        self.bytes += len(data)
        kind = msg.WhichOneof("type")
        if kind == "ref_hash":  # a message we already hold, sent by reference
            msg = self.cache.get(msg.ref_hash, msg)
            kind = msg.WhichOneof("type")
        elif msg.metadata.cacheable and msg.hash:
            self.cache[msg.hash] = msg
        if kind == "new_session":
            self.texts, self.exceptions = [], []
            self.page_script_hash = msg.new_session.page_script_hash
            self.session_id = msg.new_session.initialize.session_id or self.session_id
        elif kind == "navigation":
            self.pages = {p.url_pathname: p.page_script_hash for p in msg.navigation.app_pages}
            self.page_script_hash = msg.navigation.page_script_hash or self.page_script_hash
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            self._element(msg.delta.new_element, msg.delta.fragment_id)
        return kind == "script_finished" and msg.script_finished in DONE

    def _element(self, element, fragment_id: str = "") -> None:
        kind = element.WhichOneof("type")
        if kind is None:
            return
        proto = getattr(element, kind)
        if kind == "exception":
            self.exceptions.append(f"{proto.type}: {proto.message}")
        elif kind == "markdown":
            self.texts.append(proto.body)
        elif kind == "metric":
            self.texts.append(f"{proto.label}: {proto.body}")
        elif kind == "alert":  # st.info / st.warning (e.g. the notice after a reconnect)
            self.texts.append(proto.body)
        widget_id = getattr(proto, "id", "")
        if isinstance(widget_id, str) and widget_key(widget_id):
            self.widgets[widget_key(widget_id)] = proto
            self.fragments[widget_key(widget_id)] = fragment_id

    def measured(self) -> tuple[float | None, int | None]:
        """The sidebar's measured pruning share (percent) and, if shown, the bit width it names."""
        for text in reversed(self.texts):
            if (m := MEASURED.search(text)):
                bits = ROUNDED.search(text)
                return float(m.group(1)), int(bits.group(1)) if bits else None
        return None, None


@dataclass
class Result:
    """One interaction: its type, wait (s), bytes and messages received, and what went wrong."""
    kind: str
    wait: float
    received: int = 0
    messages: int = 0
    error: str = ""
    mismatch: str = ""
    server_cpu: float = math.nan  # seconds of server CPU during the wait, when a probe was given


class Student:
    """A student following the class script; every interaction appends a Result."""

    def __init__(self, url: str, seed: int, think: tuple[float, float] = (1.0, 2.0), timeout: float = 120.0,
                 probe: Callable[[], float] | None = None, cookies: bool = False, follow: int | None = None):
        self.url = url.rstrip("/")
        self.ws_url = url.replace("http://", "ws://").rstrip("/") + "/_stcore/stream"
        self.rng = random.Random(seed)
        # follow: a guided class, every student sets the same values (this seed's), each at its own pace
        self.values = random.Random(follow) if follow is not None else self.rng
        self.think, self.timeout = think, timeout
        self.probe = probe  # the server's CPU seconds so far (only meaningful for a student alone)
        self.view = View()
        self.states: dict[str, WidgetState] = {}
        self.results: list[Result] = []
        self.prune: float = 0.0
        self.bits: int | None = None
        # Behind a balancer (scripts/replicas.py): like a browser, GET the page first and keep its cookies
        # (the replica cookie makes the websocket land where the page came from); one jar per student.
        self.jar = http.cookiejar.CookieJar() if cookies else None
        self.replica = ""  # the replica that served the page (the balancer's X-Lens-Replica header)

    def open_page(self, query: str = "page=overview") -> dict[str, str]:
        """GET the page as a browser does before its websocket; the headers the websocket then sends."""
        if self.jar is None:
            return {}
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        with opener.open(f"{self.url}/?{query}", timeout=self.timeout) as response:
            response.read()
            self.replica = response.headers.get("X-Lens-Replica", "")
        return self.cookie_headers()

    def cookie_headers(self) -> dict[str, str]:
        """The Cookie header this student's jar sends to the server ({} without a jar or cookies)."""
        if self.jar is None:
            return {}
        request = urllib.request.Request(self.url + "/")
        self.jar.add_cookie_header(request)
        return {"Cookie": request.get_header("Cookie")} if request.has_header("Cookie") else {}

    async def _run(self, ws, kind: str, page_hash: str, page_name: str = "", query: str | None = None,
                   fragment_id: str = "") -> Result:
        before_b, before_m = self.view.bytes, self.view.messages
        cpu0 = self.probe() if self.probe else math.nan
        start = time.perf_counter()
        await ws.send(rerun_message(self.view.query_string if query is None else query, self.states.values(),
                                    page_hash, page_name, self.view.cache, fragment_id))
        error = ""
        try:
            async with asyncio.timeout(self.timeout):
                while not self.view.feed(await ws.recv()):
                    pass
        except TimeoutError:
            error = f"no script_finished within {self.timeout:.0f} s"
        result = Result(kind, time.perf_counter() - start, self.view.bytes - before_b,
                        self.view.messages - before_m, error or "; ".join(self.view.exceptions))
        result.server_cpu = self.probe() - cpu0 if self.probe else math.nan
        if not result.error:
            result.mismatch = self._check()
        self.results.append(result)
        return result

    def _check(self) -> str:
        """Whether the page shows this student's own setting (the sidebar's measured share)."""
        shown, bits = self.view.measured()
        if shown is None:
            return "no 'Measured: ...' caption"
        if abs(shown - self.prune) > TOLERANCE:
            return f"set {self.prune:.0f} %, shown {shown:.1f} %"
        if bits is not None and self.bits is not None and bits != self.bits:
            return f"set {self.bits} bits, shown {bits}"
        return ""

    async def _pause(self) -> None:
        await asyncio.sleep(self.rng.uniform(*self.think))

    def _move(self, key: str, state: WidgetState) -> None:
        self.states[key] = state

    async def session(self) -> None:
        """Open the link, move pruning four times, switch to Saliency, move the bit width twice."""
        try:
            headers = await asyncio.to_thread(self.open_page) if self.jar is not None else None
            async with websockets.connect(self.ws_url, subprotocols=["streamlit"], max_size=None,
                                          open_timeout=30, additional_headers=headers) as ws:
                await self._script(ws)
        except (OSError, websockets.WebSocketException) as exc:
            self.results.append(Result("connection", math.nan, error=f"{type(exc).__name__}: {exc}"))

    async def _script(self, ws) -> None:
        if (await self._run(ws, "open", "", query="page=overview")).error:
            return
        for _ in range(4):
            await self._pause()
            slider = self.view.widgets.get("prune")
            if slider is None:
                self.results.append(Result("prune", math.nan, error="no slider with key 'prune'"))
                return
            self.prune = self.values.choice([v for v in range(1, 100) if v != self.prune])
            self._move("prune", slider_state(slider.id, self.prune))
            await self._run(ws, "prune", self.view.page_script_hash, fragment_id=self.view.fragments["prune"])
        await self._pause()
        if "saliency" not in self.view.pages:
            self.results.append(Result("page", math.nan, error="no page 'saliency' in the navigation"))
            return
        await self._run(ws, "page", self.view.pages["saliency"], query="")
        for _ in range(2):
            await self._pause()
            select = self.view.widgets.get("bits")
            if select is None:
                self.results.append(Result("bits", math.nan, error="no select_slider with key 'bits'"))
                return
            choices = [o for o in select.options if o.strip().isdigit() and 2 <= int(o) <= 8 and int(o) != self.bits]
            self.bits = int(self.values.choice(choices))
            self._move("bits", select_slider_state(select.id, str(self.bits)))
            await self._run(ws, "bits", self.view.page_script_hash, fragment_id=self.view.fragments["bits"])

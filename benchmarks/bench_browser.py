"""The single-student browser path alone: slider key release -> page updated, app vs floor, and where the time goes.

Runs only `make bench`'s browser part (benchmarks/bench.py, b)): the Overview page, the bare one-slider
floor app (benchmarks/floor_app.py) and the content floor (benchmarks/floor_cards_app.py: the slider with
only the Overview's six cards and per-class bars, in a bare app) on servers with the same settings, presses
alternating, in `--rounds` rounds (fresh servers and browser each). Prints the medians, the ratio per round and over all presses, and
the load average. On a shared machine only ratios within one run compare.

- `--baseline REV`: a third server runs the app as committed at REV (a `git archive` in a temporary folder,
  the same model cache), its presses interleaved with the others: before/after in one run.
- `--breakdown`: per press, in the page's own clock: key release -> the rerun request leaves the browser;
  request -> first ForwardMsg handled by the page; request -> the replaced full run's `script_finished` (a
  main slider's move: Streamlit starts the full run the browser asks for, the callback replaces it with the
  page fragment's); request -> the last run's `script_finished` on the wire (the network's
  timestamp: the server's run and its sending, loopback) and handled by the page's main thread (later by
  what the page was still busy drawing); the run's ForwardMsgs (count, bytes, kinds); `script_finished`
  handled -> page updated; main-thread long tasks (> 50 ms).
- `--renders`: per press, the React commits the page made and the components they re-rendered (a fiber whose
  props changed), in all and by region (sidebar controls, navigation, main area), read through React's
  devtools hook. Unlike a time, these counts do not depend on the machine's load: they say how much of the
  page the browser redraws per move, app vs floor. The counting slows the page: with it, times do not compare.
- `--trace`: per press, how much of the wait the page's main thread was busy (Chromium's trace: the union of its
  tasks between key release and page updated), app vs floor; the rest of the wait the page idles, waiting for
  the server. Tracing slows the page: with it, times do not compare with a run without.
- `--spy FILE`: py-spy (raw collapsed stacks, GIL holders only) on the app server during the counted presses.

Run: `.venv/bin/python benchmarks/bench_browser.py --presses 30 --rounds 2 --breakdown --baseline main`.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

from benchmarks.serve import (ARM_JS, CHROMIUM, CHROMIUM_ARGS, IDLE_JS, INSTRUMENT_JS, stop_server,  # noqa: E402
                              require_chromium, start_server)

TARGET_RATIO = 1.2  # issue 11 §2

# Every websocket message in the page's clock and the main thread's long tasks (installed before Streamlit loads).
SOCKET_JS = """() => {
  const log = window.__ws = [];
  const Native = window.WebSocket;
  window.WebSocket = function (...args) {
    const ws = new Native(...args);
    ws.addEventListener('message', e => log.push(['in', performance.now(),
      e.data.byteLength ?? e.data.size ?? e.data.length]));
    const send = ws.send.bind(ws);
    ws.send = data => { log.push(['out', performance.now(), data.byteLength ?? data.length]); send(data); };
    return ws;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  window.__long = [];
  try {
    new PerformanceObserver(list => { for (const e of list.getEntries()) window.__long.push([e.startTime, e.duration]); })
      .observe({type: 'longtask', buffered: true});
  } catch (e) {}
}"""


# React's devtools hook, stood in for before React loads (the page has no devtools): per commit, the fibers whose
# props changed (re-rendered), by the region of the page they sit in. One walk of the tree per commit.
RENDERS_JS = """() => {
  const log = window.__renders = [];
  const REGIONS = {stSidebarUserContent: 'sidebar', stSidebarNav: 'navigation', stMain: 'main'};
  window.__REACT_DEVTOOLS_GLOBAL_HOOK__ = {
    isDisabled: false, supportsFiber: true, renderers: new Map(), inject() { return 1; },
    onCommitFiberUnmount() {}, onPostCommitFiberRoot() {}, checkDCE() {},
    onCommitFiberRoot(id, root) {
      const counts = {};
      const walk = (fiber, region) => {
        for (let f = fiber; f; f = f.sibling) {
          const node = f.stateNode, testid = node && node.getAttribute && node.getAttribute('data-testid');
          const here = REGIONS[testid] || region;
          if (f.alternate && f.memoizedProps !== f.alternate.memoizedProps) counts[here] = (counts[here] || 0) + 1;
          if (f.child) walk(f.child, here);
        }
      };
      walk(root.current.child, 'other');
      log.push(counts);
    },
  };
}"""


def _kind(payload: bytes) -> str:
    """A ForwardMsg's kind: 'delta:<element>' for deltas, else its type."""
    msg = ForwardMsg()
    try:
        msg.ParseFromString(payload)
    except Exception:  # noqa: BLE001 - a frame we cannot read is counted, not fatal
        return "?"
    kind = msg.WhichOneof("type") or "?"
    if kind != "delta":
        return kind
    which = msg.delta.WhichOneof("type")
    return "delta:" + ((msg.delta.new_element.WhichOneof("type") if which == "new_element" else which) or "?")


class Press:
    """One measured press: its latency and, with --breakdown, its phases and messages (ms)."""

    def __init__(self, t0: float, t1: float, socket: list, kinds: list[tuple[str, float]], long_tasks: list,
                 origin: float = 0.0, renders: list[dict[str, int]] | None = None):
        self.t0, self.latency = t0, t1 - t0  # the page's clock (ms): key release, and the wait to updated
        self.commits = len(renders or [])
        self.rendered = Counter()  # region -> fibers re-rendered over the press's commits
        for counts in renders or []:
            self.rendered.update(counts)
        out = [t for d, t, _ in socket if d == "out" and t >= t0]
        incoming = [(t, n) for d, t, n in socket if d == "in" and t >= t0]
        frames = kinds[-len(incoming):] if incoming else []
        self.kinds = [k for k, _ in frames]
        finished = [t for (t, _), k in zip(incoming, self.kinds) if k == "script_finished"]
        wire = [at - origin for k, at in frames if k == "script_finished"]  # page clock, as the network saw it
        nan = float("nan")
        self.sent = out[0] - t0 if out else nan
        self.first = incoming[0][0] - out[0] if incoming and out else nan
        # The last run's script_finished: a move of a main slider is two runs, the full one the browser asked
        # for, which Streamlit starts and the slider's callback replaces, then the page fragment's.
        self.wire = wire[-1] - out[0] if wire and out else nan
        self.finished = finished[-1] - out[0] if finished and out else nan
        self.replaced = finished[0] - out[0] if len(finished) > 1 and out else nan
        self.after = t1 - finished[-1] if finished else nan
        self.count = len(incoming)
        self.bytes = sum(n for _, n in incoming)
        self.long = sum(d for s, d in long_tasks if t0 <= s <= t1)
        self.busy = float("nan")  # ms of the wait the page's main thread worked (--trace: main_thread_busy)


def _open(browser, url: str, ready: str, probe: tuple[str, str], breakdown: bool, renders: bool = False):
    """A tab on `url`, instrumented as bench.py does; with `breakdown`, frames decoded on the Python side;
    with `renders`, React's commits counted (RENDERS_JS)."""
    tab = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    if renders:
        tab.add_init_script(f"({RENDERS_JS})()")
    kinds: list[tuple[str, float]] = []  # (kind, epoch ms) of every frame as the network saw it
    if breakdown:
        tab.add_init_script(f"({SOCKET_JS})()")
        cdp, clock = tab.context.new_cdp_session(tab), {}
        cdp.send("Network.enable")
        cdp.on("Network.webSocketWillSendHandshakeRequest",
               lambda e: clock.setdefault("offset", e["wallTime"] - e["timestamp"]))
        cdp.on("Network.webSocketFrameReceived", lambda e: kinds.append((
            _kind(base64.b64decode(e["response"]["payloadData"])) if e["response"]["opcode"] == 2 else "text",
            1000 * (e["timestamp"] + clock.get("offset", 0.0)))))
    tab.goto(url)
    tab.wait_for_selector(ready, timeout=180_000)
    tab.wait_for_function(IDLE_JS, timeout=60_000)
    tab.evaluate(INSTRUMENT_JS, list(probe))
    tab.get_by_role("slider", name="Pruning rate").focus()
    return tab, kinds


TRACE_MARK = "lens-press"  # a performance.mark at each press: ties the page's clock to the trace's


def main_thread_busy(events: list[dict], marks: list[float], presses: list[Press]) -> None:
    """Set each press's `busy`: how long, between its key release and its page updated, the renderer main
    thread of its page ran tasks (the union of their intervals). `events`: Chromium's trace; `marks`: the
    page-clock time of TRACE_MARK for each press, in the order the presses were made (so are the marks)."""
    mains = {(e["pid"], e["tid"]) for e in events if e.get("name") == "thread_name"
             and e.get("args", {}).get("name") == "CrRendererMain"}
    anchors = sorted((e["ts"], e["pid"]) for e in events if e.get("name") == TRACE_MARK)
    tasks = defaultdict(list)  # pid -> (start, end) in trace µs of the main thread's top-level tasks
    for e in events:
        if e.get("ph") == "X" and e.get("name") in ("ThreadControllerImpl::RunTask", "RunTask") \
                and (e.get("pid"), e.get("tid")) in mains:
            tasks[e["pid"]].append((e["ts"], e["ts"] + e.get("dur", 0)))
    for press, mark, (ts, pid) in zip(presses, marks, anchors):
        start, end = ts + 1000 * (press.t0 - mark), ts + 1000 * (press.t0 + press.latency - mark)
        busy, reach = 0.0, start
        for a, b in sorted(tasks[pid]):
            a, b = max(a, reach), min(b, end)
            if b > a:
                busy, reach = busy + (b - a), b
        press.busy = busy / 1000


def _press(tab, kinds: list[str], name: str, breakdown: bool, mark: list[float] | None = None) -> Press | None:
    """One ArrowRight on the slider, as bench.py presses it; None (with a note) if the page never updated."""
    tab.get_by_role("slider", name="Pruning rate").focus()  # a rerun may have re-created the element
    if breakdown:
        tab.evaluate("() => { window.__ws.length = 0; window.__long.length = 0; }")
    tab.evaluate("() => { if (window.__renders) window.__renders.length = 0; }")
    kinds.clear()
    if mark is not None:
        mark.append(tab.evaluate(f"() => performance.mark('{TRACE_MARK}').startTime"))
    tab.evaluate(ARM_JS)
    tab.keyboard.press("ArrowRight")
    try:
        tab.wait_for_function("() => window.__lat.t1 !== null", timeout=20_000)
    except PlaywrightTimeout:
        print(f"  {name}: no update within 20 s; press not counted", file=sys.stderr)
        tab.wait_for_function(IDLE_JS, timeout=60_000)
        return None
    t0, t1 = tab.evaluate("() => [window.__lat.t0, window.__lat.t1]")
    tab.wait_for_timeout(150)  # settle (and let late frames reach the Python side)
    socket, long_tasks, origin = tab.evaluate("() => [window.__ws, window.__long, performance.timeOrigin]") \
        if breakdown else ([], [], 0.0)
    return Press(t0, t1, socket, list(kinds), long_tasks, origin, tab.evaluate("() => window.__renders || []"))


def _spy(pid: int, path: str) -> subprocess.Popen:
    py_spy = Path(sys.executable).parent / "py-spy"
    sampler = subprocess.Popen([str(py_spy), "record", "--format", "raw", "-o", path, "--rate", "1000",
                                "--nonblocking", "--gil", "--pid", str(pid)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the first counted press
    return sampler


def run_round(presses: int, options: list[str], breakdown: bool, page: str, baseline: Path | None = None,
              warmup: int = 2, spy: str | None = None, renders: bool = False,
              trace: bool = False) -> dict[str, list[Press]]:
    """One round: the servers, one browser, presses alternating between the apps (app, baseline, floor)."""
    servers = {"app": start_server("app.py", options)}
    if baseline:
        servers["baseline"] = start_server("app.py", options, cwd=baseline)
    servers["content"] = start_server("benchmarks/floor_cards_app.py", options)
    servers["floor"] = start_server("benchmarks/floor_app.py", options)
    sampler = None
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            tabs = {name: _open(browser, f"{url}/?page={page}", '[data-testid="stMetric"]',
                                ('[data-testid="stMetric"]', "Sparsity"), breakdown, renders)
                    for name, (_, url) in servers.items() if name not in ("floor", "content")}
            tabs["content"] = _open(browser, servers["content"][1], '[data-testid="stMetric"]',
                                    ('[data-testid="stMetric"]', "Sparsity"), breakdown, renders)
            tabs["floor"] = _open(browser, servers["floor"][1], ".js-plotly-plot .main-svg",
                                  (".js-plotly-plot .gtitle", ""), breakdown, renders)
            results: dict[str, list[Press]] = {name: [] for name in tabs}
            marks: list[float] = []
            traced: list[Press] = []  # in the order pressed, as their marks
            for i in range(warmup + presses):
                if i == warmup and spy:
                    sampler = _spy(servers["app"][0].pid, spy)
                if i == warmup and trace:
                    browser.start_tracing(categories=["toplevel", "blink.user_timing", "__metadata"])
                # The order turns each time: an A/A run (`--baseline HEAD` on a clean tree) in a fixed order had
                # the first app 7 % slower than the same code second (97.3 vs 90.8 ms, 2 x 25 presses).
                order = list(tabs.items())
                for name, (tab, kinds) in order[i % len(order):] + order[:i % len(order)]:
                    press = _press(tab, kinds, name, breakdown, marks if trace and i >= warmup else None)
                    if i >= warmup and press is not None:
                        results[name].append(press)
                        traced.append(press)
                    elif trace and i >= warmup:
                        marks.pop()  # a press that never updated: no window to count
            if trace:
                main_thread_busy(json.loads(browser.stop_tracing())["traceEvents"], marks, traced)
            browser.close()
    finally:
        if sampler is not None:
            sampler.send_signal(2)  # py-spy writes its file on SIGINT
            sampler.wait(timeout=60)
        for proc, _ in servers.values():
            stop_server(proc)
    return results


def _median(values) -> float:
    values = [v for v in values if v == v]  # NaN out
    return statistics.median(values) if values else float("nan")


def print_breakdown(name: str, presses: list[Press]) -> None:
    replaced = _median(p.replaced for p in presses)
    print(f"  {name:<8} key->request {_median(p.sent for p in presses):4.1f} ms | request->first msg "
          f"{_median(p.first for p in presses):5.1f} | "
          + (f"request->the replaced run's script_finished {replaced:5.1f} | " if replaced == replaced else "")
          + "request->(last) script_finished on the wire "
          f"{_median(p.wire for p in presses):5.1f}, in the page {_median(p.finished for p in presses):5.1f}"
          f" | script_finished->updated {_median(p.after for p in presses):5.1f} | long tasks "
          f"{_median(p.long for p in presses):4.1f} | {_median(p.count for p in presses):.0f} msgs, "
          f"{_median(p.bytes for p in presses) / 1000:.1f} kB")
    kinds = Counter(k for p in presses for k in p.kinds)
    print("           per press: " + ", ".join(f"{k} {n / len(presses):.1f}" for k, n in kinds.most_common()))


def print_renders(name: str, presses: list[Press]) -> None:
    """Per press (median): React commits, components re-rendered in all and by region."""
    regions = sorted({region for p in presses for region in p.rendered})
    per_commit = {region: _median(p.rendered[region] / p.commits for p in presses if p.commits) for region in regions}
    print(f"  {name:<8} {_median(p.commits for p in presses):.0f} commits, "
          f"{_median(sum(p.rendered.values()) for p in presses):,.0f} components re-rendered; per commit "
          f"{sum(per_commit.values()):,.0f} (" + ", ".join(f"{r} {n:,.0f}" for r, n in per_commit.items()) + ")")


def checkout(rev: str) -> Path:
    """The project as committed at `rev`, in a temporary folder (its .venv the same venv)."""
    folder = Path(tempfile.mkdtemp(prefix="lens-baseline-"))
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def _round(r: int, names: list[str], every: dict[str, list[float]], args, baseline: Path | None) -> None:
    """One round of presses: its medians and ratios printed, its latencies added to `every`."""
    results = run_round(args.presses, args.streamlit_option, args.breakdown, args.page, baseline, spy=args.spy,
                        renders=args.renders, trace=args.trace)
    medians = {name: _median(p.latency for p in results[name]) for name in names}
    print(f"round {r + 1}: " + ", ".join(f"{name} {medians[name]:6.1f} ms" for name in names) + "; ratio "
          + ", ".join(f"{name} {medians[name] / medians['floor']:.2f}" for name in names if name != "floor")
          + f"   (load {os.getloadavg()[0]:.2f})")
    if args.breakdown:
        for name in names:
            print_breakdown(name, results[name])
    if args.renders:
        print("  per press, React's work (counted, so these times do not compare):")
        for name in names:
            print_renders(name, results[name])
    if args.trace:
        print("  per press, the page's main thread (traced, so these times do not compare with a run without):")
        for name in names:
            wait, busy = _median(p.latency for p in results[name]), _median(p.busy for p in results[name])
            print(f"  {name:<8} wait {wait:5.1f} ms: main thread busy {busy:5.1f}, idle (the server, the network) "
                  f"{_median(p.latency - p.busy for p in results[name]):5.1f}")
    for name in names:
        every[name] += [p.latency for p in results[name]]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presses", type=int, default=20, help="counted presses per app per round")
    parser.add_argument("--rounds", type=int, default=1, help="fresh servers and browser per round")
    parser.add_argument("--page", default="overview")
    parser.add_argument("--baseline", metavar="REV", help="also the app as committed at REV (e.g. main)")
    parser.add_argument("--breakdown", action="store_true", help="per-press phases and messages (see above)")
    parser.add_argument("--renders", action="store_true", help="React commits and re-renders per press (see above)")
    parser.add_argument("--trace", action="store_true", help="the page's main thread busy per press (see above)")
    parser.add_argument("--spy", metavar="FILE", help="py-spy the app server during the counted presses")
    parser.add_argument("--streamlit-option", action="append", default=[], metavar="SECTION.NAME=VALUE")
    args = parser.parse_args(argv)
    require_chromium()
    baseline = checkout(args.baseline) if args.baseline else None
    names = ["app", *(["baseline"] if baseline else []), "content", "floor"]
    every: dict[str, list[float]] = {name: [] for name in names}
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
          + (f"; baseline = {args.baseline}" if baseline else ""))
    try:
        for r in range(args.rounds):
            _round(r, names, every, args, baseline)
    finally:
        if baseline:
            shutil.rmtree(baseline, ignore_errors=True)
    medians = {name: _median(every[name]) for name in names}
    print(f"all rounds ({len(every['floor'])} presses each), median (p95):")
    for name in names:
        p95 = sorted(every[name])[int(0.95 * (len(every[name]) - 1))]
        ratio = medians[name] / medians["floor"]
        verdict = "" if name == "floor" else f"   ratio {ratio:.2f}"
        if name in ("app", "baseline"):  # the target is the app's; the content floor is a reference
            verdict += f"  <= {TARGET_RATIO}  {'ok' if ratio <= TARGET_RATIO else 'MISSED'}"
        print(f"  {name:<9} {medians[name]:6.1f} ms ({p95:6.1f}){verdict}")
    print(f"  app / content floor {medians['app'] / medians['content']:.2f}: the app's own cost over a bare app "
          "with the Overview's cards and bars (the same probe; the floor's is its chart's title)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return {**medians, "ratio": medians["app"] / medians["floor"]}


if __name__ == "__main__":
    main()

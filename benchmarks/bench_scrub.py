"""How fast the Scrub page's in-figure slider updates the board, in Debian's Chromium.

Opens the Scrub page of the real app, presses the mouse on the Plotly slider under the board
and drags it from stop to stop with real mouse events (Playwright's mouse: the same
mousedown / mousemove Chromium gets from a hand), first to the end and then back.

Per step: t0 = the mousemove event's timestamp (captured on the document); t1 = the first
moment after the next painted frame once the chart reported `plotly_animated` (a
requestAnimationFrame callback, then a task: the frame has been produced). The step counts
only if the board's headline changed to the new stop. No server is involved: the frames are
in the page. Target: median <= 50 ms.

Baselines, measured in the same run: the floor (benchmarks/floor_scrub_app.py, a bare Streamlit
app whose tiny figure has the same kind of slider and frames: Plotly's animation machinery and
Chromium's frame cost that much on this machine, at this moment), and for scale, a server round
trip for one sidebar slider move costs about 170 ms in a bare Streamlit app (REFERENCE §1).

Run alone (`.venv/bin/python benchmarks/bench_scrub.py --help`) or from benchmarks/bench.py.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
from serve import CHROMIUM, CHROMIUM_ARGS, require_chromium, start_server, stop_server  # benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MEDIAN_MS = 50.0
BOARD = ".js-plotly-plot"
IDLE_JS = """() => { const app = document.querySelector('[data-testid="stApp"]');
  return app && app.getAttribute('data-test-script-state') === 'notRunning'
    && !document.querySelector('[data-testid="stStatusWidget"]'); }"""
# Listeners on the page: mousemove (capture) arms t0, plotly_animated + next frame sets t1.
INSTRUMENT_JS = """(selector) => {
  const gd = document.querySelector(selector);
  // the board's texts are text traces (frames update them); the headline names the stop shown
  const headline = () => [...gd.querySelectorAll('.textpoint')].map(e => e.textContent).join(' | ');
  const S = window.__scrub = {armed: false, t0: null, samples: [], headline};
  document.addEventListener('mousemove', e => { if (S.armed) { S.t0 = e.timeStamp; S.armed = false; } }, true);
  gd.on('plotly_animated', () => {
    const t0 = S.t0;
    if (t0 === null) return;
    S.t0 = null;
    requestAnimationFrame(() => setTimeout(() => S.samples.push(
      {ms: performance.now() - t0, text: headline()}), 0));
  });
}"""


def _tick_positions(page) -> list[tuple[float, float]]:
    """Centres of the slider's step ticks (one per stop), in page coordinates."""
    boxes = [t.bounding_box() for t in page.locator(f"{BOARD} .slider-tick-rect").all()]
    return [(b["x"] + b["width"] / 2, b["y"] - 12) for b in boxes]  # just above the ticks: on the rail


def drag(page, steps: int, settle_ms: int) -> list[dict]:
    """Press on the first stop, then move stop by stop to the end and back until `steps` moves were made."""
    ticks = _tick_positions(page)
    if len(ticks) < 2:
        raise RuntimeError("no Plotly slider found under the board")
    order = list(range(1, len(ticks))) + list(range(len(ticks) - 2, -1, -1))
    order = (order * (steps // len(order) + 1))[:steps]
    page.mouse.move(*ticks[0])
    page.mouse.down()
    page.wait_for_timeout(300)
    page.evaluate("() => { window.__scrub.samples = []; }")  # the press itself may have moved the board
    results = []
    for n, index in enumerate(order):
        page.evaluate("() => { window.__scrub.armed = true; window.__scrub.t0 = null; }")
        page.mouse.move(*ticks[index])
        try:
            page.wait_for_function(f"() => window.__scrub.samples.length > {n}", timeout=5_000)
        except Exception:  # noqa: BLE001 (a missed frame is reported, not fatal)
            page.evaluate("() => window.__scrub.samples.push({ms: null, text: ''})")
        results.append({"stop": index, **page.evaluate(f"() => window.__scrub.samples[{n}]")})
        page.wait_for_timeout(settle_ms)
    page.mouse.up()
    return results


def run(control: str, steps: int, settle_ms: int, url: str | None = None) -> list[dict]:
    """Open the Scrub page for `control` ("prune", "bits"; "floor": the floor app) and drag its slider `steps` times."""
    from playwright.sync_api import sync_playwright

    require_chromium()
    proc = None
    if url is None or control == "floor":
        proc, url = start_server("benchmarks/floor_scrub_app.py" if control == "floor" else "app.py")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(url if control == "floor" else f"{url}/?page=scrub")
            page.wait_for_selector(f"{BOARD} .slider-tick-rect", timeout=240_000)
            page.wait_for_function(IDLE_JS, timeout=120_000)
            if control == "bits":
                radio = page.locator('[data-testid="stRadio"]').filter(has_text="The slider moves")
                radio.get_by_text("Bit width", exact=True).click()
                page.wait_for_timeout(500)
                page.wait_for_function(IDLE_JS, timeout=120_000)
                page.wait_for_function(f"document.querySelectorAll('{BOARD} .slider-tick-rect').length == 9",
                                       timeout=120_000)
            board = page.locator(BOARD).first
            board.scroll_into_view_if_needed()
            page.wait_for_timeout(800)
            page.evaluate(INSTRUMENT_JS, BOARD)
            results = drag(page, steps, settle_ms)
            browser.close()
    finally:
        stop_server(proc)
    return results


def summarize(control: str, results: list[dict], labels: list[str]) -> dict[str, float]:
    """Print median / p95 / min / max of the steps whose frame came and showed the right stop."""
    good = [r["ms"] for r in results if r["ms"] is not None and labels[r["stop"]] in r["text"]]
    missed = len(results) - len(good)
    if not good:
        print(f"{control}: no step updated the board ({missed} missed)")
        return {}
    stats = {"median": statistics.median(good), "p95": float(np.percentile(good, 95)), "min": min(good),
             "max": max(good), "n": len(good), "missed": missed}
    ok = "ok" if stats["median"] <= TARGET_MEDIAN_MS else "MISSED"
    print(f"{control:<6} {stats['n']:3d} steps  median {stats['median']:6.1f} ms  p95 {stats['p95']:6.1f}  "
          f"min {stats['min']:6.1f}  max {stats['max']:6.1f}  missed {missed}   "
          f"target median <= {TARGET_MEDIAN_MS:.0f}  {ok}")
    return stats


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="slider moves per control (at least 20)")
    parser.add_argument("--control", choices=["prune", "bits", "both"], default="both")
    parser.add_argument("--settle", type=int, default=120, help="ms between moves (a hand drags at ~5-10 stops/s)")
    parser.add_argument("--url", help="an app already running (default: start one)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from core.studies import scrub  # the stop labels, as the board writes them

    print("\nd) Scrub page: in-figure Plotly slider dragged with the mouse in Chromium, "
          "mousemove -> next painted frame after plotly_animated")
    out = {}
    for control in ["floor", *(["prune", "bits"] if args.control == "both" else [args.control])]:
        kind = "prune" if control == "floor" else control  # the floor's frames are named like the pruning board's
        labels = [f"{scrub.LABELS[kind]} {scrub.stop_label(kind, s)}" for s in scrub.stops(kind)]
        out[control] = summarize(control, run(control, max(args.steps, 20), args.settle, args.url), labels)
    floor = out["floor"].get("median")
    for control in out:
        if control != "floor" and floor and out[control]:
            print(f"{control}: {out[control]['median'] / floor:.2f}x the floor's median")
    return out


if __name__ == "__main__":
    main()

"""Server time of one step on the Trade-offs, Forgotten examples and Sanity check pages (AppTest).

Each page of the real app (default model LeNet-5 on mnist5k, default settings) is opened in
Streamlit's AppTest, which runs the whole script as the server does for a browser (sidebar,
page, every cached call, every figure serialized), and is timed per rerun:

- warm step: one ArrowRight-sized move of the Pruning rate slider (1 %), after the page's
  tables (Trade-offs) or population (Forgotten) exist, back to back; "paced step" (Forgotten):
  the same once the app's background guess of the next step has finished (a class clicking);
- bits step (Trade-offs): one move of the Bit width slider;
- map click (Trade-offs): a click on a cell of the sparsity x bit-width map (the selection
  the browser sends, as tests/test_app_tradeoffs.py does);
- lesson landing (Trade-offs): a new session opening the page at another setting.

Run alone: `.venv/bin/python benchmarks/bench_pages.py [--steps N]`; benchmarks/bench.py calls
`main()`. It also runs on an older checkout of the app (it only drives widgets), for a baseline.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
torch.set_num_threads(1)

from streamlit.proto.WidgetStates_pb2 import WidgetState  # noqa: E402
from streamlit.runtime.pages_manager import PagesManager  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

import ui.cache  # noqa: E402

logging.getLogger("streamlit").setLevel(logging.ERROR)
APP = str(ROOT / "app.py")
TARGET_STEP_S = 1.0  # issue 12: warm slider step and map click, server time
TIMEOUT = 900
_PAGES_INIT = PagesManager.__init__


def _like_a_server(self, *args, **kwargs) -> None:
    """Rerun app.py on every AppTest run, as a server does (tests/conftest.py explains why)."""
    _PAGES_INIT(self, *args, **kwargs)
    PagesManager.uses_pages_directory = False


PagesManager.__init__ = _like_a_server


def _open(page: str, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["page"] = page
    for key, value in params.items():
        at.query_params[key] = str(value)
    return at.run()


def _settle(at: AppTest) -> AppTest:
    """Rerun once every background table is measured (older checkouts have none: nothing to wait for)."""
    wait = getattr(ui.cache, "wait_for_tables", None)
    if wait is not None and wait(TIMEOUT):
        at.run()
    return at


def _timed(run, expect: tuple[str, object] | None = None) -> float:
    """Seconds of one rerun; `expect` = (slider key, value) it must show afterwards (else the step did nothing)."""
    start = time.perf_counter()
    at = run()
    seconds = time.perf_counter() - start
    if at.exception or at.error:
        raise RuntimeError([e.value for e in (*at.exception, *at.error)])
    if expect is not None:
        key, value = expect
        shown = (at.slider if key == "prune" else at.select_slider)(key=key).value
        if shown != value:
            raise RuntimeError(f"the step did not take: {key} shows {shown}, expected {value}")
    return seconds


def _click(at: AppTest, amount: float, bits: int) -> AppTest:
    """Rerun as after a click on the map cell (amount, bits) (the private AppTest API the tests use)."""
    element = next(e for e in at.get("plotly_chart") if e.key == "sweep_grid")
    (cells,) = [t for t in json.loads(element.proto.spec)["data"] if t.get("name") == "settings"]
    custom = cells["customdata"]
    if isinstance(custom, dict):
        import base64
        custom = np.frombuffer(base64.b64decode(custom["bdata"]), dtype=custom["dtype"]).reshape(-1, 2)
    custom = np.asarray(custom, dtype=float)
    (k,) = np.flatnonzero(np.isclose(custom[:, 0], amount) & (custom[:, 1] == bits))
    point = {"curve_number": 0, "point_number": int(k), "point_index": int(k),
             "customdata": {str(i): v for i, v in enumerate(custom[k].tolist())}}
    selection = {"selection": {"points": [point], "point_indices": [int(k)], "box": [], "lasso": []}}
    states = at._tree.get_widget_states()
    states.widgets.append(WidgetState(id=element.proto.id, string_value=json.dumps(selection)))
    return at._run(states)


def _prefetch_idle() -> None:
    """Wait for the app's background guesses of the next step (older checkouts may have none)."""
    for name in ("_population_prefetcher", "_prefetcher"):
        if hasattr(ui.cache, name):
            getattr(ui.cache, name)().idle(60)


def _prune_steps(at: AppTest, steps: int, start: int = 10, paced: bool = False) -> list[float]:
    """`steps` moves of +1 %, back to back (a held arrow key) or `paced` (a class clicking: the app's
    background prefetch of the next step has finished before each)."""
    times = []
    for value in range(start + 1, start + 1 + steps):
        if paced:
            _prefetch_idle()
        times.append(_timed(lambda: at.slider(key="prune").set_value(value).run(), ("prune", value)))
    return times


def tradeoffs(steps: int) -> dict[str, list[float]]:
    at = _open("tradeoffs")
    first = _timed(lambda: _settle(at))
    out = {"prune step": _prune_steps(at, steps)}
    out["bits step"] = [_timed(lambda: at.select_slider(key="bits").set_value(b).run(), ("bits", b))
                        for b in (8, 6, 4, 3, 2)[:steps]]
    cells = [(0.5, 4), (0.9, 8), (0.3, 2), (0.8, 6), (0.95, 32)][:steps]
    out["map click"] = [_timed(lambda: _click(at, a, b), ("prune", round(a * 100))) for a, b in cells]
    out["lesson landing"] = [_timed(lambda: _open("tradeoffs", prune=70, bits=4))]
    print(f"  trade-offs: first view of the page (waits for every table, after the cold ones) {first:.1f} s")
    return out


def forgotten(steps: int) -> dict[str, list[float]]:
    at = _open("forgotten")
    at.slider(key="prune").set_value(10).run()
    return {"prune step": _prune_steps(at, steps), "paced step": _prune_steps(at, steps, 30, paced=True)}


def sanity(steps: int) -> dict[str, list[float]]:
    at = _open("sanity")
    at.slider(key="prune").set_value(10).run()
    return {"prune step": _prune_steps(at, steps)}


def main(argv: list[str] | None = None) -> dict[str, dict[str, list[float]]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="slider steps per page")
    parser.add_argument("--pages", default="tradeoffs,forgotten,sanity")
    args = parser.parse_args(argv)
    print(f"Page steps (AppTest server time, LeNet-5 on mnist5k); load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    results = {}
    for page in args.pages.split(","):
        results[page] = {"tradeoffs": tradeoffs, "forgotten": forgotten, "sanity": sanity}[page](args.steps)
        for what, times in results[page].items():
            print(f"  {page:<10} {what:<15} median {statistics.median(times):6.2f} s   max {max(times):6.2f} s   "
                  f"(n={len(times)})   target <= {TARGET_STEP_S:.0f} s "
                  f"{'ok' if statistics.median(times) <= TARGET_STEP_S else 'MISSED'}")
    print(f"  load average after: {os.getloadavg()[0]:.1f}")
    return results


if __name__ == "__main__":
    main()

"""benchmarks/bench_browser.py --trace: the page's main-thread busy time per press, from a Chromium trace."""
from __future__ import annotations

from types import SimpleNamespace

from benchmarks.bench_browser import TRACE_MARK, main_thread_busy


def test_busy_time_is_the_union_of_the_main_threads_tasks_inside_each_press():
    # Two pages in renderer processes 1 and 2; each press's mark at page time 100 ms, the trace at 1,000,000 µs
    # (page 1) and 5,000,000 µs (page 2); the presses start 5 ms after their mark and last 20 ms.
    events = [
        {"name": "thread_name", "ph": "M", "pid": 1, "tid": 10, "args": {"name": "CrRendererMain"}},
        {"name": "thread_name", "ph": "M", "pid": 1, "tid": 11, "args": {"name": "Compositor"}},
        {"name": "thread_name", "ph": "M", "pid": 2, "tid": 20, "args": {"name": "CrRendererMain"}},
        {"name": TRACE_MARK, "ph": "R", "pid": 1, "tid": 10, "ts": 1_000_000},
        {"name": TRACE_MARK, "ph": "R", "pid": 2, "tid": 20, "ts": 5_000_000},
        # page 1, window [1,005,000, 1,025,000]: a task cut by the window's start (2 ms inside), two that
        # overlap (4 ms in all), one on another thread (not counted), one after the window (not counted)
        {"name": "ThreadControllerImpl::RunTask", "ph": "X", "pid": 1, "tid": 10, "ts": 1_003_000, "dur": 4_000},
        {"name": "ThreadControllerImpl::RunTask", "ph": "X", "pid": 1, "tid": 10, "ts": 1_010_000, "dur": 3_000},
        {"name": "RunTask", "ph": "X", "pid": 1, "tid": 10, "ts": 1_011_000, "dur": 3_000},
        {"name": "ThreadControllerImpl::RunTask", "ph": "X", "pid": 1, "tid": 11, "ts": 1_015_000, "dur": 5_000},
        {"name": "ThreadControllerImpl::RunTask", "ph": "X", "pid": 1, "tid": 10, "ts": 1_030_000, "dur": 5_000},
        # page 2: one task of 7 ms inside its window, another process's task at that time is page 1's
        {"name": "ThreadControllerImpl::RunTask", "ph": "X", "pid": 2, "tid": 20, "ts": 5_006_000, "dur": 7_000},
    ]
    presses = [SimpleNamespace(t0=105.0, latency=20.0), SimpleNamespace(t0=105.0, latency=20.0)]
    main_thread_busy(events, [100.0, 100.0], presses)
    assert presses[0].busy == 2.0 + 4.0
    assert presses[1].busy == 7.0

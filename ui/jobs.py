"""Long computations (training, sweeps, populations) in background threads with live progress.

A cached function cannot draw a progress bar (Streamlit replays elements created inside
cached functions, and one created outside breaks the replay). So the work runs in a
thread owned by a `Job`; `ui.cache` keeps one Job per input in a resource cache, so
thirty students asking for the same model start one training run, and every one of them
can follow the same live bar with `follow`. A job given a `journal` marks itself running on disk
(core.disk.running), so a run a stopped server left unfinished is noticed when it starts again.
"""
from __future__ import annotations

import threading
import weakref
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from core import disk

Progress = Callable[[float, str], None]
# Every worker thread this module starts (daemons: a server that stops does not wait for them), so that
# whoever must wait for them can (the test session, before the interpreter exits).
_WORKERS: "weakref.WeakSet[threading.Thread]" = weakref.WeakSet()


def _start(thread: threading.Thread) -> None:
    _WORKERS.add(thread)
    thread.start()


def live_workers() -> list[threading.Thread]:
    """The jobs' and guesses' threads still running."""
    return [t for t in list(_WORKERS) if t.is_alive()]


# Where a job marks itself running: (folder, key unique to the work, what it is in words: "a sweep of ...").
Journal = tuple[Path, str, str]


class Job:
    """Runs `work(progress)` once in a daemon thread; the result is shared and read-only.

    notice: words for the user once it is done ("A sweep of ... was interrupted (the server stopped);
    it started again."), or None.
    """

    def __init__(self, name: str, work: Callable[[Progress], Any], journal: Journal | None = None) -> None:
        self.name, self.progress = name, (0.0, "starting")
        self.result: Any = None
        self.error: BaseException | None = None
        self.notice: str | None = None
        self.done = threading.Event()
        _start(threading.Thread(target=self._run, args=(work, journal), daemon=True, name=name))

    def _run(self, work: Callable[[Progress], Any], journal: Journal | None) -> None:
        try:
            with disk.running(*journal) if journal else nullcontext() as notice:
                self.notice = notice
                self.result = work(self._update)
        except BaseException as err:  # handed to whoever waits for the job
            self.error = err
        finally:
            self.done.set()

    def _update(self, fraction: float, message: str) -> None:
        self.progress = (min(max(float(fraction), 0.0), 1.0), message)

    def wait(self) -> Any:
        """The result, once done (re-raises the job's error)."""
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.result


def follow(job: Job, label: str) -> Any:
    """Wait for `job` while drawing its live progress bar; the result, or raise the job's error."""
    if not job.done.is_set():
        bar = st.progress(0.0, text=label)
        while not job.done.wait(0.25):
            fraction, message = job.progress
            bar.progress(fraction, text=f"{label}: {message}")
        bar.empty()
    return job.wait()


class Turns:
    """Runs work one at a time in the order the tickets were taken (FIFO, unlike a bare lock).

    `ticket()` is taken on the script thread when a job is created, so the page decides
    the order (the sidebar's own table first); `run(ticket, fn)` waits for its turn.
    """

    def __init__(self) -> None:
        self._turn, self._next = 0, 0
        self._changed = threading.Condition()

    def ticket(self) -> int:
        with self._changed:
            self._next += 1
            return self._next - 1

    def run(self, ticket: int, fn: Callable[[], Any]) -> Any:
        with self._changed:
            self._changed.wait_for(lambda: self._turn == ticket)
        try:
            return fn()
        finally:
            with self._changed:
                self._turn += 1
                self._changed.notify_all()


class Prefetcher:
    """Runs `work(item)` for guessed next requests on one background thread, when it is idle.

    A request made while the worker is busy is dropped, so a loaded server never queues
    extra work; a guess that fails costs nothing (the real request will report the error).
    """

    WAIT_FOR_RUN_S = 2.0   # at most this long for the asking run's script thread to end
    SEND_GRACE_S = 0.05    # then this long for Streamlit to send that run's messages

    def __init__(self, work: Callable[[Any], Any], idle_server: Callable[[], bool] = lambda: True) -> None:
        # idle_server: False while other sessions' runs are under way (then guesses wait for a quiet moment:
        # under a class's load they would only take the GIL from real reruns)
        self._work, self._busy, self._idle_server = work, threading.Lock(), idle_server

    def __call__(self, items: list, after: threading.Thread | None = None) -> None:
        """Start the guesses; `after`: a thread to let finish first (the script run that asked, see below)."""
        if not items or not self._idle_server() or not self._busy.acquire(blocking=False):
            return
        _start(threading.Thread(target=self._run, args=(items, after), daemon=True, name="prefetch"))

    def _run(self, items: list, after: threading.Thread | None = None) -> None:
        try:
            if after is not None:
                # The asking run is not over when it asks: Streamlit's event loop is still sending its ~70
                # messages and `script_finished`, one GIL hand-over per message. A guess started at once
                # holds the GIL between those and the page waits (about 50 ms of a 120 ms slider move here,
                # benchmarks/bench_browser.py --breakdown). So: let the script thread end, then the sends.
                after.join(timeout=self.WAIT_FOR_RUN_S)
                time.sleep(self.SEND_GRACE_S)
            for item in items:
                if not self._idle_server():  # someone else's rerun started meanwhile: it goes first
                    break
                self._work(item)
        except Exception:
            pass
        finally:
            self._busy.release()

    def idle(self, timeout: float = 10.0) -> bool:
        """Wait until the worker is idle (for tests and benchmarks); False on timeout."""
        if not self._busy.acquire(timeout=timeout):
            return False
        self._busy.release()
        return True


class Activity:
    """Which sessions have a script run under way, so background guesses can yield to real reruns.

    `begin(who)` at the start of a run, `end(who)` at its end. A run that never says it ended (an
    exception, a rerun that replaced it, a closed tab) stops counting after `stale` seconds.
    `recent()` counts the sessions that started a run in the last `window` seconds: a class, not one user.
    """

    def __init__(self, stale: float = 5.0, clock: Callable[[], float] = time.monotonic, window: float = 30.0) -> None:
        self._runs: dict[str, float] = {}
        self._started: dict[str, float] = {}  # each session's latest run start, forgotten after `window`
        self._lock, self._stale, self._clock, self._window = threading.Lock(), stale, clock, window

    def begin(self, who: str) -> None:
        with self._lock:
            self._runs[who] = self._started[who] = self._clock()

    def recent(self) -> int:
        """How many sessions started a run in the last `window` seconds (this one included)."""
        now = self._clock()
        with self._lock:
            for gone in [k for k, t in self._started.items() if now - t > self._window]:
                del self._started[gone]
            return len(self._started)

    def end(self, who: str) -> None:
        with self._lock:
            self._runs.pop(who, None)

    def others(self, who: str | None = None) -> int:
        """How many sessions other than `who` are in a run now."""
        now = self._clock()
        with self._lock:
            for gone in [k for k, t in self._runs.items() if now - t > self._stale]:
                del self._runs[gone]
            return sum(k != who for k in self._runs)

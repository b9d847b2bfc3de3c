"""Long computations (training, sweeps, populations) in background threads with live progress.

A cached function cannot draw a progress bar (Streamlit replays elements created inside
cached functions, and one created outside breaks the replay). So the work runs in a
thread owned by a `Job`; `ui.cache` keeps one Job per input in a resource cache, so
thirty students asking for the same model start one training run, and every one of them
can follow the same live bar with `follow`.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

import streamlit as st

Progress = Callable[[float, str], None]


class Job:
    """Runs `work(progress)` once in a daemon thread; the result is shared and read-only."""

    def __init__(self, name: str, work: Callable[[Progress], Any]) -> None:
        self.name, self.progress = name, (0.0, "starting")
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        threading.Thread(target=self._run, args=(work,), daemon=True, name=name).start()

    def _run(self, work: Callable[[Progress], Any]) -> None:
        try:
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

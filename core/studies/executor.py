"""Where heavy work runs: on in-process threads (the default) or as Ray tasks, with the same results.

Sweeps, families, layer sensitivity, model populations and distillation hand their work to
`run_tasks(fn, items, workers, done, shared=...)`: `[fn(*shared, item) for item in items]`, in the
order of `items`, with `done(index)` called on the calling thread as each result arrives (the page's
progress bar). Which engine runs it is set by the environment variable LENS_RAY:

- unset, "", "0" or "off": `workers` in-process threads (torch frees the GIL in its kernels);
- "local": a Ray instance on this machine, started on demand once per process with
  LENS_RAY_CPUS CPUs (default: all), its dashboard off (Ray 2.60 guards its ports with a token);
- "auto", "ray://host:port" or "host:port": an existing Ray cluster (`ray.init(address=...)`),
  which gets this project's code as its working directory.

On Ray, `shared` (the models, the data, the configs) goes to the object store ONCE per call
(`ray.put`) and each worker process deserializes it once (kept for the next task of the same call);
each task runs with one torch thread and `max_retries`, so a task whose worker dies is run again.
Functions shipped to Ray must be picklable: module-level functions with plain arguments.
Models keep their registered calibration images (core.compression.set_calibration) on the workers.
Errors a task raises are re-raised here as themselves (Ray's error class derives from them).
"""
from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.compression.steps import calibration_of, set_calibration

ENV, CPUS_ENV = "LENS_RAY", "LENS_RAY_CPUS"
RETRIES = 3        # attempts after the first when a task's worker process is lost
ROOT = Path(__file__).resolve().parents[2]
# What a cluster's workers do not need of the working directory shipped to them.
EXCLUDES = [".venv", ".git", "artifacts", "**/__pycache__", "*.pt", "node_modules"]


@dataclass(frozen=True)
class Backend:
    """The engine: "threads", or "ray" on a local instance (address None) or at a cluster's address."""

    kind: str = "threads"
    address: str | None = None
    cpus: int | None = None   # a local instance's CPUs

    def describe(self) -> str:
        """In words, for a page's caption."""
        if self.kind == "threads":
            return "threads in the app's own process"
        if self.address is None:
            return f"a local Ray instance with {self.cpus} CPU{'s' if self.cpus != 1 else ''}"
        return "the Ray cluster this machine belongs to" if self.address == "auto" else \
            f"the Ray cluster at {self.address}"


def backend(environ: dict | None = None) -> Backend:
    """The engine LENS_RAY (and LENS_RAY_CPUS) asks for; raises ValueError in words for a bad CPU count."""
    env = os.environ if environ is None else environ
    value = env.get(ENV, "").strip()
    if value.lower() in ("", "0", "off", "false", "no", "threads"):
        return Backend()
    if value.lower() == "local":
        raw = env.get(CPUS_ENV, "").strip()
        if raw and not (raw.isdigit() and int(raw) >= 1):
            raise ValueError(f"{CPUS_ENV} must be a whole number of CPUs, 1 or more (got {raw!r}).")
        return Backend("ray", None, int(raw) if raw else (os.cpu_count() or 1))
    return Backend("ray", value)


def on_ray() -> bool:
    """Is heavy work configured to run on Ray? (True also for a bad LENS_RAY_CPUS: the work then says why.)"""
    try:
        return backend().kind == "ray"
    except ValueError:
        return True


_START = threading.Lock()


def start(chosen: Backend | None = None, temp_dir: str | None = None) -> None:
    """Start (or join) Ray for `chosen` (default: `backend()`), once per process; later calls return at once."""
    import ray  # only when Ray is asked for: the default install never imports it

    chosen = chosen or backend()
    with _START:
        if ray.is_initialized():
            return
        common = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if chosen.address is None:  # a fresh local instance, never an existing one found by chance
            ray.init(address="local", num_cpus=chosen.cpus, _temp_dir=temp_dir, runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}}, **common)
        else:
            ray.init(address=chosen.address, runtime_env={"working_dir": str(ROOT), "excludes": EXCLUDES},
                     **common)


def shutdown() -> None:
    """Stop this process's Ray (a local instance ends with it); nothing when Ray was not started."""
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()


def run_tasks(fn: Callable, items: Sequence, workers: int, done: Callable[[int], None],
              shared: tuple = ()) -> list:
    """[fn(*shared, item) for item in items], in order; `done(index)` on the calling thread as each arrives.

    On threads (the default) `workers` threads share `shared` as it is (read only). On Ray (LENS_RAY)
    the cluster's CPUs decide how many run at once; `shared` is put in the object store once.
    """
    items = list(items)
    if backend().kind == "ray" and items:
        return _run_ray(fn, items, done, shared)
    return run_threads(lambda item: fn(*shared, item), items, workers, done)


def run_threads(fn: Callable, items: list, workers: int, done: Callable[[int], None]) -> list:
    """[fn(item) for item in items] on `workers` threads; `done(index)` runs on the calling thread."""
    if workers <= 1 or len(items) <= 1:
        out = []
        for k, item in enumerate(items):
            out.append(fn(item))
            done(k)
        return out
    results: list = [None] * len(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(fn, item): k for k, item in enumerate(items)}
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                done(futures[future])
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results


def _run_ray(fn: Callable, items: list, done: Callable[[int], None], shared: tuple) -> list:
    import ray

    start()
    # A list around the reference: Ray passes it on unresolved, so each worker fetches it once (_shared).
    package = [ray.put((shared, _calibrations(shared)))]
    task = ray.remote(num_cpus=1, max_retries=RETRIES)(_call)
    index = {task.remote(fn, package, item): k for k, item in enumerate(items)}
    results: list = [None] * len(items)
    pending = list(index)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                results[index[ref]] = ray.get(ref)
                done(index[ref])
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise
    return results


# On a worker: the last call's shared objects, deserialized once per worker process and call.
_SHARED: dict[str, tuple] = {}


def _call(fn: Callable, package: list, item: Any) -> Any:
    """One Ray task: fn(*shared, item) with one torch thread."""
    torch.set_num_threads(1)
    return fn(*_shared(package[0]), item)


def _shared(ref) -> tuple:
    import ray

    key = ref.hex()
    if key not in _SHARED:
        shared, calibrations = ray.get(ref)
        for model, images in calibrations:  # the same objects as in `shared` (one pickle keeps identity)
            set_calibration(model, images)
        _SHARED.clear()  # keep one call's objects only
        _SHARED[key] = shared
    return _SHARED[key]


def _calibrations(shared: Any, depth: int = 3) -> list[tuple[nn.Module, torch.Tensor]]:
    """(model, images) for every model in `shared` (in lists, tuples, dicts, dataclasses) with calibration images."""
    found, seen = [], set()

    def walk(value: Any, level: int) -> None:
        if id(value) in seen or level > depth:
            return
        seen.add(id(value))
        if isinstance(value, nn.Module):
            if (images := calibration_of(value)) is not None:
                found.append((value, images))
        elif isinstance(value, (list, tuple)):
            for part in value:
                walk(part, level + 1)
        elif isinstance(value, dict):
            for part in value.values():
                walk(part, level + 1)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for field in dataclasses.fields(value):
                walk(getattr(value, field.name), level + 1)
    walk(shared, 0)
    return found

"""Threads against a local Ray instance on the same work: one sweep table and one population.

    .venv/bin/python benchmarks/bench_ray.py [--cpus 2] [--repeats 3] [--members 4]

a) Sweep: the saliency table of LeNet-5 on mnist5k (5 sparsities x 2 bit widths, 64 probes) by
   core.studies.sweeps.method_table, on 2 threads (the app's default) and as Ray tasks.
b) Population: `--members` LeNet-5 models (2 epochs each, another seed each) trained by
   core.studies.members.train_population into a temporary cache: one after the other on
   threads (as the app does today), side by side on Ray.
Runs alternate (threads, Ray, threads, Ray, ...) so a change in the machine's load hits both;
medians of `--repeats`. Ray's start and its first (cold) call are timed apart. The machine's load
average is printed before and after: on a shared machine it moves every figure.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
torch.set_num_threads(1)  # as the app does: 2 shared cores

from core.data import load_dataset  # noqa: E402
from core.studies import executor, members, population, sweeps  # noqa: E402
from core.training import TrainConfig, load_or_train  # noqa: E402

SWEEP = sweeps.SweepConfig(sparsities=(0.0, 0.5, 0.8, 0.9, 0.95), bit_widths=(32, 4), probe_size=64)
MEMBER = TrainConfig(model="lenet5", dataset="mnist5k", epochs=2)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def on(engine: str, fn) -> float:
    """fn() timed with LENS_RAY set for Ray or unset for threads."""
    if engine == "ray":
        os.environ[executor.ENV] = "local"
    else:
        os.environ.pop(executor.ENV, None)
    return timed(fn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--members", type=int, default=4)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} cores)")
    data = load_dataset("mnist5k")
    model = load_or_train(TrainConfig(), data).model  # the app's default LeNet-5 (the shared model cache)
    folder = tempfile.mkdtemp(prefix="lens-bench-ray-")
    os.environ[executor.CPUS_ENV] = str(args.cpus)
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))  # nothing written to ~/.ray
    try:
        started = timed(lambda: executor.start(executor.Backend("ray", None, args.cpus), os.path.join(folder, "t")))
        cold = on("ray", lambda: sweeps.method_table(model, data, SWEEP))
        print(f"Ray start {started:.1f} s; first sweep on Ray (workers importing torch) {cold:.1f} s")
        times = {("sweep", e): [] for e in ("threads", "ray")} | {("population", e): [] for e in ("threads", "ray")}
        for k in range(args.repeats):
            for engine in ("threads", "ray"):
                times["sweep", engine].append(on(engine, lambda: sweeps.method_table(model, data, SWEEP, workers=2)))
                configs = population.population_configs(replace(MEMBER, seed=100 * k), args.members)
                cache = Path(folder) / f"models-{engine}-{k}"
                times["population", engine].append(
                    on(engine, lambda: members.train_population(configs, data, cache_dir=cache)))
        cells = len(SWEEP.sparsities) * len(SWEEP.bit_widths)
        print(f"\n{'work':<44} {'threads':>10} {'Ray':>10} {'ratio':>7}")
        for what, label in (("sweep", f"sweep table, {cells} settings (median s)"),
                            ("population", f"population, {args.members} LeNet-5 x 2 epochs (median s)")):
            a, b = statistics.median(times[what, "threads"]), statistics.median(times[what, "ray"])
            print(f"{label:<44} {a:>10.2f} {b:>10.2f} {a / b:>6.2f}x")
        print(f"\nall runs: { {f'{w} {e}': [round(t, 2) for t in v] for (w, e), v in times.items()} }")
    finally:
        executor.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()

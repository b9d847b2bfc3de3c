"""How long one move of the low-rank slider takes on the server, with the SVDs cached and without.

A move is what the Overview computes when the "Low-rank: share kept" control changes: `compress`
(the truncation, the factor layers) and `compression_report` (the compressed model's evaluation on
the test set, the layer table; the original's evaluation precomputed, as the app caches it), on the
default model (LeNet-5 on mnist5k, trained once into the app's disk cache). Settings are random:
share kept 0.05..0.99 in the slider's steps, either mode, either scope.

- cached: the SVDs of the model come from `Context.memo` (computed once, before the timed moves):
  what the app does.
- uncached: the memo is emptied before every move, so each move also computes every layer's SVD:
  the baseline, measured in the same run on the same settings.
- off: the same work with low-rank off (the dense model's report): the floor a move cannot go under,
  most of which is evaluating the compressed model on the test set.

Printed: median and p95 of each, the ratio of the medians, the load average. Target: p95 of a
cached move <= 150 ms. Run: `.venv/bin/python benchmarks/bench_lowrank.py [--moves N]`.
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
torch.set_num_threads(1)  # as the app does: 2 shared cores

import streamlit  # noqa: E402,F401  (first, to quiet ui's "no runtime" cache warnings)

logging.getLogger("streamlit").setLevel(logging.ERROR)

import ui  # noqa: E402  (train_config: the benchmark must use the app's model)
from core.compression import CompressionConfig, compress, steps  # noqa: E402
from core.compression.lowrank import RANK_MODES, RANK_SCOPES  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.metrics import compression_report, evaluate  # noqa: E402
from core.training import load_or_train  # noqa: E402
from ui.controls import DEFAULTS  # noqa: E402

TARGET_P95_MS = 150.0


def settings(n: int, seed: int) -> list[CompressionConfig]:
    rng = random.Random(seed)
    return [CompressionConfig(rank_kept=rng.randint(5, 99) / 100, rank_mode=rng.choice(RANK_MODES),
                              rank_scope=rng.choice(RANK_SCOPES)) for _ in range(n)]


def move_ms(model, data, original_eval, cfg: CompressionConfig, cached: bool) -> tuple[float, float]:
    """(compress, whole move) in ms."""
    if not cached:
        steps._MEMO.pop(model, None)  # forget this model's SVDs: the move computes them again
    start = time.perf_counter()
    compressed = compress(model, cfg)
    middle = time.perf_counter()
    compression_report(model, compressed, cfg, data.x_test, data.y_test, original_eval=original_eval)
    return 1000.0 * (middle - start), 1000.0 * (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moves", type=int, default=60, help="timed moves per variant (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = ui.train_config(DEFAULTS["model"], DEFAULTS["dataset"])
    data = load_dataset(cfg.dataset)
    model = load_or_train(cfg, data).model.requires_grad_(False).eval()
    original_eval = evaluate(model, data.x_test, data.y_test)
    configs = settings(args.moves, args.seed)
    for cfg_ in configs[:3]:
        move_ms(model, data, original_eval, cfg_, cached=True)  # warm-up: allocator, position cache, SVDs
    times: dict[str, list[tuple[float, float]]] = {"cached": [], "uncached": [], "off": []}
    load = os.getloadavg()
    for cfg_ in configs:  # interleaved, so both variants see the same load
        for variant in ("cached", "uncached"):
            times[variant].append(move_ms(model, data, original_eval, cfg_, cached=variant == "cached"))
        times["off"].append(move_ms(model, data, original_eval, CompressionConfig(), cached=True))
    load = tuple(max(a, b) for a, b in zip(load, os.getloadavg()))
    print(f"low-rank slider move on {cfg.model} / {cfg.dataset}, {len(data.x_test):,} test images, "
          f"{args.moves} random settings; load average (higher of start, end) {' '.join(f'{v:.2f}' for v in load)}")
    medians = {}
    for part, index in (("compress", 0), ("whole move", 1)):
        for variant, pairs in times.items():
            values = [p[index] for p in pairs]
            medians[part, variant] = float(np.median(values))
            if part == "compress" and variant == "off":
                continue
            print(f"  {part:<11}{variant:<9} median {np.median(values):7.1f} ms   "
                  f"p95 {np.percentile(values, 95):7.1f} ms   max {max(values):7.1f} ms")
        print(f"  {part:<11}uncached / cached (medians): "
              f"{medians[part, 'uncached'] / medians[part, 'cached']:.2f}x")
    p95 = float(np.percentile([p[1] for p in times["cached"]], 95))
    print(f"  cached whole move p95 {p95:.1f} ms <= {TARGET_P95_MS:.0f} ms: {'ok' if p95 <= TARGET_P95_MS else 'MISSED'}")


if __name__ == "__main__":
    main()

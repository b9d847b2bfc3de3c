"""How long the cross-family comparison takes when nothing is cached, against a naive loop of the same points.

Default (the Compare families page's first view): one seed, every registered family and declared
pair, LeNet-5 on mnist5k, gradient saliency on 64 probes, 2 worker threads (as ui.cache runs it).
The naive loop measures the same points one after the other, as a script would: per point
`compress`, `compression_report` (which evaluates the original again), and the original's and the
compressed model's maps with one Captum call per probe image, compared image by image. Medians of
`repeats` runs, each after one small warm-up measurement (as a running server is warm).

Run: `.venv/bin/python benchmarks/bench_families.py [--repeats N]` (benchmarks/bench.py calls `main()`).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.compression import CompressionConfig, compress  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.explain.attribution import attribute, saliency_agreement  # noqa: E402
from core.metrics import compression_report  # noqa: E402
from core.studies.families import FamiliesConfig, Line, lines, measure_families  # noqa: E402
from core.studies.sweep_plan import probe_indices  # noqa: E402
from core.training import load_or_train  # noqa: E402
from core.warm import recipe  # noqa: E402

TARGET_S, TARGET_SPEEDUP = 10.0, 5.0


def naive(model, data, cfg: FamiliesConfig) -> int:
    """The same points measured one by one; returns how many."""
    probes = data.x_test[torch.as_tensor(probe_indices(data.y_test, cfg.probe_size))]
    points = [p for line in [*lines(cfg.base), Line("current", "", (cfg.base,))] for p in line.points]
    for point in points:
        compressed = compress(model, point)
        compression_report(model, compressed, point, data.x_test, data.y_test)
        for x in probes:
            x = x[None]
            target = model(x).argmax(1)
            saliency_agreement(attribute(compressed, x, target, cfg.method), attribute(model, x, target, cfg.method))
    return len(points)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = load_dataset("mnist5k")
    model = load_or_train(recipe("lenet5", "mnist5k"), data).model
    cfg = FamiliesConfig(base=CompressionConfig())
    small = FamiliesConfig(base=CompressionConfig(), probe_size=4)
    measure_families(model, data, small)  # warm-up: lazy imports, first kernels
    fast, slow = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        table = measure_families(model, data, cfg)
        fast.append(time.perf_counter() - start)
        start = time.perf_counter()
        count = naive(model, data, cfg)
        slow.append(time.perf_counter() - start)
    wall, base = statistics.median(fast), statistics.median(slow)
    print(f"families: {len(table) - 1} points ({count} per loop), median of {args.repeats}: "
          f"{wall:.2f} s (min {min(fast):.2f}, max {max(fast):.2f}); naive loop {base:.2f} s "
          f"(min {min(slow):.2f}, max {max(slow):.2f}); speed-up {base / wall:.1f}x")
    return {"wall": wall, "naive": base, "ratio": base / wall, "points": count}


if __name__ == "__main__":
    result = main()
    print(f"families (s) {result['wall']:.2f}  <= {TARGET_S:.0f}  {'ok' if result['wall'] <= TARGET_S else 'MISSED'}; "
          f"speed-up {result['ratio']:.1f}x  >= {TARGET_SPEEDUP:.0f}x  "
          f"{'ok' if result['ratio'] >= TARGET_SPEEDUP else 'MISSED'}")

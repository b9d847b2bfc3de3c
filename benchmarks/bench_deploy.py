"""Measured vs theory on the default model (LeNet-5 on mnist5k): what the Deployment page measures, printed.

For a few settings: the deployable files are built (`core.deploy.artifacts.build`: compress, cut out the
structurally pruned units, ONNX fp32 and int8, packed weights), then `core.deploy.latency.measure`
times original and compressed alternately in PyTorch, ONNX Runtime fp32 and int8, batch 1 and 256,
one thread, twice (to show how well a measurement repeats). Printed: median (IQR) of each cell, the
speed-ups, the PyTorch fp32 dense baseline of the same run, file sizes, params, MACs, theory's
ratios, the page's sentence, and how long the build and the timing took.

Run: `.venv/bin/python benchmarks/bench_deploy.py`.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
torch.set_num_threads(1)  # as the app does: 2 shared cores

from core.compression import CompressionConfig, compress  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.deploy import artifacts, latency  # noqa: E402
from core.metrics import compression_report  # noqa: E402
from core.training import load_or_train  # noqa: E402
from core.warm import recipe  # noqa: E402

SETTINGS = {
    "dense (nothing compressed)": CompressionConfig(),
    "structured 50 %, per layer": CompressionConfig(prune_amount=0.5, prune_method="structured", prune_scope="layer"),
    "magnitude 80 % + 4 bits": CompressionConfig(prune_amount=0.8, weight_bits=4),
    "8 bits": CompressionConfig(weight_bits=8),
}


def _cell(t: latency.Timing | None) -> str:
    return "–" if t is None else f"{t.median_ms:7.2f} ({t.iqr_ms:.2f})"


def _print(m: latency.Measurement) -> None:
    print(f"  {'runtime':<20} {'batch':>5}  {'original ms (IQR)':>18}  {'compressed ms (IQR)':>19}  speed-up")
    for batch in latency.BATCHES:
        for runtime in latency.RUNTIMES:
            key = (runtime, batch)
            print(f"  {runtime:<20} {batch:>5}  {_cell(m.original.timings.get(key)):>18}  "
                  f"{_cell(m.compressed.timings.get(key)):>19}  {m.speedup(runtime, batch):6.2f}x")


def main() -> None:
    data = load_dataset("mnist5k")
    train = recipe("lenet5", "mnist5k")
    model = load_or_train(train, data).model.eval()
    print(f"LeNet-5 on mnist5k, one torch / ONNX Runtime thread, load average {os.getloadavg()[0]:.2f}")
    started = time.perf_counter()
    original = artifacts.build(model, CompressionConfig(), train, data.x_train, data.x_test, data.y_test, 10)
    print(f"original's files built in {time.perf_counter() - started:.2f} s: {original.file_bytes}")
    for name, cfg in SETTINGS.items():
        started = time.perf_counter()
        art = artifacts.build(model, cfg, train, data.x_train, data.x_test, data.y_test, 10)
        built = time.perf_counter() - started
        rep = compression_report(model, compress(model, cfg), cfg, data.x_test, data.y_test)
        runs = [latency.measure(original, art, data.x_test, rep.compression_ratio, rep.theoretical_speedup,
                                rep.sparsity) for _ in range(2)]
        print(f"\n== {name}: built in {built:.2f} s, timed in {runs[0].seconds:.2f} s and {runs[1].seconds:.2f} s "
              f"(load {os.getloadavg()[0]:.2f})")
        print(f"  files {art.file_bytes}; Size card {rep.size_compressed_bytes:,.0f} B; params {art.params:,} "
              f"(original {original.params:,}); MACs as it runs {art.macs:,} (original {original.macs:,})")
        print(f"  theory: size {rep.compression_ratio:.2f}x, MACs {rep.theoretical_speedup:.2f}x; "
              f"measured MACs {runs[0].mac_ratio:.2f}x, files {runs[0].file_ratio:.2f}x")
        for check in art.checks:
            print(f"  {check.runtime}: accuracy {check.accuracy:.3f} vs simulated {check.simulated_accuracy:.3f}, "
                  f"agreement {check.agreement:.3f}, max logit difference {check.max_logit_difference:.2g}")
        for index, m in enumerate(runs, 1):
            baseline = m.original.timings[("PyTorch", 256)]
            print(f" run {index}: baseline PyTorch fp32 dense, batch 256: {baseline.median_ms:.2f} ms "
                  f"(IQR {baseline.iqr_ms:.2f}, {baseline.runs} runs)")
            _print(m)
        pairs = [(runs[0].compressed.timings[k], runs[1].compressed.timings[k]) for k in runs[0].compressed.timings]
        repeat = max(abs(a.median_ms / b.median_ms - 1) for a, b in pairs)
        print(f"  largest change of a compressed median between the two runs: {100 * repeat:.0f} %")
        print(f"  sentence: {latency.explain(runs[1])}")


if __name__ == "__main__":
    main()

"""How long the trade-off tables take when nothing is cached, against a naive implementation.

Cold (nothing cached; the interpreter warmed up by one small measurement first, as a
running server is): the default method's whole table (global magnitude, every sparsity x
every bit width, 13 x 9 = 117 cells, one seed, LeNet-5 on mnist5k, gradient saliency on 64
probes, no faithfulness: the page measures that only along the curves it shows), with the
originals' references; then all four tables of the default Trade-offs page one after the
other (as ui.cache runs them), 2 worker threads each. Median of `repeats`, wall and CPU.

`--naive` (or main(naive=True)) also times the default table computed naively: every cell
separately by copy.deepcopy + torch.nn.utils.prune + prune.remove + fake quantization, one
Captum call per probe image and per-image map comparison; only the test-set evaluation is
batched. Both run on one torch thread per worker (the app's setting).

Run: `.venv/bin/python benchmarks/bench_sweep.py [--naive]` (benchmarks/bench.py calls `main()`).
"""
from __future__ import annotations

import copy
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.nn.utils import prune

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import core.studies.sweeps as sweeps  # noqa: E402
from core.explain.attribution import attribute, saliency_agreement  # noqa: E402
from core.compression.quantization import quantize_weight  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.layers import prunable_layers  # noqa: E402
from core.metrics import evaluate, prediction_agreement  # noqa: E402
from core.training import TrainConfig, load_or_train  # noqa: E402


def _timed(fn, *args, **kwargs) -> tuple[float, float, object]:
    """(wall seconds, process CPU seconds, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu, out


# ------------------------------------------------------------------ naive reference
def _naive_compress(model, cfg):
    model = copy.deepcopy(model)
    layers = prunable_layers(model)
    a = float(cfg.prune_amount)
    if a > 0:
        params = [(m, "weight") for _, m in layers]
        if cfg.prune_method == "structured":
            params = params[:-1]
            for m, name in params:
                prune.ln_structured(m, name, amount=a, n=1, dim=0)
        elif cfg.prune_scope == "global":
            method = prune.RandomUnstructured if cfg.prune_method == "random" else prune.L1Unstructured
            torch.manual_seed(cfg.seed)
            prune.global_unstructured(params, pruning_method=method, amount=a)
        else:
            for m, name in params:
                prune.l1_unstructured(m, name, amount=a)
        for m, name in params:
            prune.remove(m, name)
    if cfg.quantized:
        with torch.no_grad():
            for _, m in layers:
                m.weight.copy_(quantize_weight(m.weight, cfg.weight_bits, cfg.quant_scheme, cfg.quant_granularity))
    return model


def naive_table(original, data, cfg) -> int:
    """The cells of `method_table(cfg)`, computed one by one (module docstring); returns the number of cells."""
    idx = torch.as_tensor(sweeps.probe_indices(data.y_test, cfg.probe_size))
    probes = data.x_test[idx]
    ref_eval = evaluate(original, data.x_test, data.y_test)
    with torch.no_grad():
        targets = original(probes).argmax(1)
    ref_maps = [attribute(original, probes[i:i + 1], int(targets[i]), cfg.method)[0] for i in range(len(probes))]
    cells = sweeps.table_cells(cfg)
    for amount, bits in cells:
        model = _naive_compress(original, replace(cfg.base, prune_amount=amount, weight_bits=bits))
        ev = evaluate(model, data.x_test, data.y_test)
        prediction_agreement(ev, ref_eval)
        for i in range(len(probes)):
            m = attribute(model, probes[i:i + 1], int(targets[i]), cfg.method)
            saliency_agreement(m[0], ref_maps[i])
    return len(cells)


def _cold(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of fn() with fresh references (nothing cached)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(repeats: int = 2, naive: bool = False) -> dict[str, float]:
    """Print and return the cold table timings (seconds), and the naive one with `naive`."""
    torch.set_num_threads(1)
    data = load_dataset("mnist5k")
    model = load_or_train(TrainConfig(model="lenet5", dataset="mnist5k", epochs=20), data).model
    model.requires_grad_(False)
    cfg = sweeps.SweepConfig()
    own = sweeps.table_config(cfg, "magnitude", "global")
    sweeps.measure_table(model, data, own, [(0.5, 4)])  # warm-up: first Captum / scipy calls
    print(f"Trade-off tables, cold: lenet5 on mnist5k, {cfg.method}, {cfg.probe_size} probes, "
          f"{len(sweeps.table_cells(own))} cells a table; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")

    def one() -> None:
        sweeps.method_table(model, data, own, refs=sweeps.references(model, data, cfg))

    def every() -> None:
        refs = sweeps.references(model, data, cfg)
        for table in sweeps.table_plan(cfg).values():
            sweeps.method_table(model, data, table, refs=refs)

    results = {}
    for name, fn, what in (("table", one, "the default method's table (global magnitude)"),
                           ("page", every, f"the default page's {len(sweeps.table_plan(cfg))} tables")):
        runs = [_cold(fn) for _ in range(repeats)]
        results[name] = statistics.median(r[0] for r in runs)
        results[f"{name}_cpu"] = statistics.median(r[1] for r in runs)
        print(f"  {what}: {results[name]:.2f} s wall (median of {repeats}), {results[name + '_cpu']:.2f} s CPU; "
              f"load average {os.getloadavg()[0]:.1f}")
    if naive:
        wall, cpu, cells = _timed(naive_table, model, data, own)
        results["naive"], results["ratio"] = wall, wall / results["table"]
        print(f"  naive table ({cells} cells one by one, per-image Captum): {wall:.1f} s wall, {cpu:.1f} s CPU; "
              f"{results['ratio']:.1f}x the table")
    return results


if __name__ == "__main__":
    main(naive="--naive" in sys.argv)

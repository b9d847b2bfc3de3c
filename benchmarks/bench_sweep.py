"""How long the trade-off sweep takes, against a naive implementation of the same sweep.

The default full curve sweep (every baseline's sparsity and bits curve, one seed,
LeNet-5 on mnist5k, sidebar at its defaults, gradient saliency on 64 probes) is timed
with core.sweeps (median of 3 after a warm-up, 2 worker threads and 1), then once by a
naive implementation: every row computed separately (no de-duplication), each by
copy.deepcopy + torch.nn.utils.prune + prune.remove + fake quantization, one Captum
call per image for the maps, per-image infidelity, per-image deletion/insertion loops
(one forward per image and step) and per-image map comparison; only the test-set
evaluation is batched. Both run on one torch thread per worker (the app's setting).

Run: `.venv/bin/python benchmarks/bench_sweep.py` (benchmarks/bench.py calls `main()`).
"""
from __future__ import annotations

import copy
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from torch.nn.utils import prune

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import core.sweeps as sweeps  # noqa: E402
from core.attribution import attribute, saliency_agreement  # noqa: E402
from core.compression import quantize_weight  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.faithfulness import area, black, blur, infidelity  # noqa: E402
from core.layers import prunable_layers  # noqa: E402
from core.metrics import evaluate, prediction_agreement  # noqa: E402
from core.training import TrainConfig, load_or_train  # noqa: E402

STAGES = ("compress", "evaluate", "attribute", "saliency_agreement", "deletion_insertion", "infidelity_against_random")


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


def _naive_deletion_insertion(model, x, saliency, target, steps):
    """One image (1, C, H, W), one forward per step, as RISE's reference loop does."""
    n_pixels = saliency.numel()
    order = torch.argsort(saliency.flatten(), descending=True, stable=True)
    counts = torch.round(torch.linspace(0, n_pixels, steps + 1)).long()
    start, base = blur(x), black(x)
    curves = []
    for source, fill in ((x, base), (start, x)):
        scores = []
        for k in counts:
            mask = torch.zeros(n_pixels, dtype=torch.bool)
            mask[order[:k]] = True
            img = torch.where(mask.view(1, 1, *saliency.shape), fill.expand_as(x), source)
            with torch.no_grad():
                scores.append(model(img).softmax(1)[0, target].item())
        curves.append(area(torch.tensor(scores)))
    return curves


def naive_sweep(original, data, cfg) -> int:
    """The same rows as `tradeoff_sweep`, computed one by one; returns the number of rows."""
    idx = torch.as_tensor(sweeps.probe_indices(data.y_test, cfg.probe_size))
    probes = data.x_test[idx]
    ref_eval = evaluate(original, data.x_test, data.y_test)
    with torch.no_grad():
        targets = original(probes).argmax(1)
    ref_maps = [attribute(original, probes[i:i + 1], int(targets[i]), cfg.method)[0] for i in range(len(probes))]
    specs = sweeps.curve_specs(cfg)
    for spec in specs:
        model = _naive_compress(original, spec.cfg)
        ev = evaluate(model, data.x_test, data.y_test)
        prediction_agreement(ev, ref_eval)
        for i in range(len(probes)):
            x, t = probes[i:i + 1], int(targets[i])
            m = attribute(model, x, t, cfg.method)
            saliency_agreement(m[0], ref_maps[i])
            _naive_deletion_insertion(model, x, m[0], t, cfg.deletion_steps)
            infidelity(model, x, m, targets[i:i + 1], n_samples=cfg.infidelity_samples)
    return len(specs)


# ------------------------------------------------------------------ measurements
def stage_breakdown(model, data, cfg) -> tuple[float, Counter]:
    """Wall seconds of one single-thread sweep, and the share of each stage (module functions wrapped)."""
    spent: Counter = Counter()
    saved = {name: getattr(sweeps, name) for name in STAGES}

    def wrap(name, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start
        return timed

    try:
        for name, fn in saved.items():
            setattr(sweeps, name, wrap(name, fn))
        wall, _, _ = _timed(sweeps.tradeoff_sweep, model, data, cfg, workers=1)
    finally:
        for name, fn in saved.items():
            setattr(sweeps, name, fn)
    return wall, spent


def main(repeats: int = 3) -> dict[str, float]:
    """Print and return the sweep timings (seconds) and the speed-up over the naive sweep."""
    torch.set_num_threads(1)
    data = load_dataset("mnist5k")
    model = load_or_train(TrainConfig(model="lenet5", dataset="mnist5k", epochs=20), data).model
    cfg = sweeps.SweepConfig()
    print(f"Trade-off sweep: lenet5 on mnist5k, {cfg.method}, {cfg.probe_size} probes, deletion steps "
          f"{cfg.deletion_steps}, infidelity samples {cfg.infidelity_samples}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    _, _, df = _timed(sweeps.tradeoff_sweep, model, data, cfg)  # warm-up (first Captum/scipy calls)
    unique = sweeps.computed_points(cfg)
    results = {}
    for workers in (2, 1):
        runs = [_timed(sweeps.tradeoff_sweep, model, data, cfg, workers=workers)[:2] for _ in range(repeats)]
        wall, cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        results[f"sweep_workers{workers}"] = wall
        print(f"  core.sweeps, {workers} worker(s): {wall:.2f} s wall (median of {repeats}), {cpu:.2f} s CPU, "
              f"{len(df)} rows from {unique} computed settings")
    print(f"  thread pool: 2 workers are {results['sweep_workers1'] / results['sweep_workers2']:.2f}x faster than 1")
    wall, spent = stage_breakdown(model, data, cfg)
    print(f"  where the time goes (1 worker, {wall:.2f} s): "
          + ", ".join(f"{k} {v:.2f} s" for k, v in spent.most_common()))
    naive_wall, naive_cpu, rows = _timed(naive_sweep, model, data, cfg)
    results["naive"] = naive_wall
    results["ratio"] = naive_wall / results["sweep_workers2"]
    print(f"  naive (deepcopy + torch prune + per-image Captum/deletion/infidelity, {rows} rows, no de-dup): "
          f"{naive_wall:.1f} s wall, {naive_cpu:.1f} s CPU")
    print(f"  speed-up: {results['ratio']:.1f}x (target >= 5x); target <= 5 s: "
          f"{'met' if results['sweep_workers2'] <= 5 else 'missed'}")
    tuned_cfg = sweeps.SweepConfig(fine_tune_epochs=2)
    tuned_wall, tuned_cpu, tuned = _timed(sweeps.tradeoff_sweep, model, data, tuned_cfg)
    results["fine_tune_2"] = tuned_wall
    print(f"  with fine-tuning (2 epochs, mask fixed), 2 workers: {tuned_wall:.1f} s wall, {tuned_cpu:.1f} s CPU, "
          f"{len(tuned)} rows")
    return results


if __name__ == "__main__":
    main()

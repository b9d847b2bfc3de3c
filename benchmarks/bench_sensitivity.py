"""How long the layer sensitivity analysis takes, against a naive loop of the same work.

The work (issue 9): the default model (LeNet-5 on mnist5k), every prunable layer (5) x 4 pruning
rates + 4 bit widths = 40 one-layer models, 1 seed, the default probe set (64 images, gradient
saliency), each measured for accuracy and prediction agreement on the 1,000 test images,
explanation agreement with the original's maps, and the SQNR of the layer's weights and of its
output on 256 test images. The original's references (evaluation, maps) are computed once, for
both, outside the timings.

- batched: `core.studies.sensitivity.sensitivity_table` (the original's input to every layer computed
  once on the test set, each setting runs only its layer and the layers after it; the maps run the
  layers before once and send each setting's gradient back through them, the last step through conv1
  as a flipped forward convolution; one agreement call per layer and kind against the original's maps
  prepared once), on 1 and on 2 worker threads (the app uses 2; one task per layer and kind).
- naive: one model at a time: `compress` the whole model at that setting (layer scope), copy the
  original and put that layer's weight in, `evaluate` it, `attribute` its 64 maps in one call,
  `saliency_agreement`, and one more forward with a hook for the layer's output. With
  `--per-image` also the house's older naive baseline (benchmarks/bench_sweep.py): one Captum
  call and one comparison per probe image.

Medians of `repeats` runs, wall seconds and CPU seconds of the process (all threads: on a shared machine
the steadier figure), one torch thread per worker. Both produce the same
numbers (`_check`: every cell; the mean rank correlations within 1e-5, as the batched maps' last step back
is not autograd's, see core/studies/layer_runs.py's FLIP_TOLERANCE).
Run: `.venv/bin/python benchmarks/bench_sensitivity.py [--per-image]`.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.compression import compress  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.explain.attribution import attribute, saliency_agreement  # noqa: E402
from core.layers import prunable_layers  # noqa: E402
from core.metrics import evaluate, prediction_agreement  # noqa: E402
from core.studies import sensitivity  # noqa: E402
from core.studies.sweeps import references  # noqa: E402
from core.training import TrainConfig, load_or_train  # noqa: E402


def _output(model, name, x):
    """The output of prunable layer `name` on x, through a forward hook (on this private copy)."""
    seen = {}
    handle = dict(prunable_layers(model))[name].register_forward_hook(lambda _m, _i, out: seen.setdefault("y", out))
    with torch.inference_mode():
        model(x)
    handle.remove()
    return seen["y"]


def naive_table(model, data, cfg, ref, per_image: bool = False) -> list[dict]:
    """Every cell of the analysis, one whole model at a time (module docstring)."""
    x_act = data.x_test[:sensitivity.ACTIVATION_IMAGES]
    rows = []
    for name, module in prunable_layers(model):
        clean = _output(sensitivity.with_weight(model, name, module.weight), name, x_act)
        for kind, rate, bits, _ in sensitivity.settings(cfg):
            whole = compress(model, replace(cfg.base, prune_amount=rate, weight_bits=bits, prune_scope="layer"))
            weight = dict(prunable_layers(whole))[name].weight.detach()
            twin = sensitivity.with_weight(model, name, weight)
            ev = evaluate(twin, data.x_test, data.y_test)
            if per_image:
                scores = [float(saliency_agreement(attribute(twin, ref.probes[i:i + 1], ref.target[i:i + 1],
                                                             cfg.method)[0], ref.maps[i])["spearman_abs"])
                          for i in range(len(ref.probes))]
            else:
                maps = attribute(twin, ref.probes, ref.target, cfg.method)
                scores = saliency_agreement(maps, ref.maps)["spearman_abs"].tolist()
            rows.append({"layer": name, "setting": (kind, rate, bits), "accuracy": ev.accuracy,
                         "agreement": prediction_agreement(ev, ref.evaluation),
                         "spearman_abs": sum(scores) / len(scores),
                         "weight_sqnr_db": sensitivity.sqnr_db(module.weight, weight),
                         "activation_sqnr_db": sensitivity.sqnr_db(clean, _output(twin, name, x_act))})
    return rows


CPU = {}  # name -> median CPU seconds of this process (every thread): on a shared machine, steadier than wall time


def _median(fn, repeats: int, name: str = "") -> tuple[float, object]:
    times, cpu, out = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    if name:
        CPU[name] = statistics.median(cpu)
    return statistics.median(times), out


def main(repeats: int = 3, per_image: bool = False) -> dict[str, float]:
    """Print and return the timings (seconds) and the ratios naive / batched."""
    torch.set_num_threads(1)
    data = load_dataset("mnist5k")
    model = load_or_train(TrainConfig(), data).model.requires_grad_(False)
    cfg = sensitivity.SensitivityConfig()
    ref = references(model, data, cfg.sweep)
    sensitivity.sensitivity_table(model, data, replace(cfg, rates=(0.5,), bits=(4,)), refs=ref)  # warm-up
    cells = len(prunable_layers(model)) * len(sensitivity.settings(cfg))
    print(f"Layer sensitivity: lenet5 on mnist5k, {cells} one-layer models, {cfg.method}, {len(ref[0].probes)} probes; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; medians of {repeats}")
    results = {}
    for workers in (1, 2):
        results[f"batched_{workers}"], table = _median(
            lambda: sensitivity.sensitivity_table(model, data, cfg, workers=workers, refs=ref), repeats, f"batched_{workers}")
        print(f"  batched, {workers} worker thread{'s' if workers > 1 else ''}: {results[f'batched_{workers}']:.2f} s "
              f"({CPU[f'batched_{workers}']:.2f} s CPU)")
    results["naive"], naive = _median(lambda: naive_table(model, data, cfg, ref[0]), repeats, "naive")
    _check(table, naive)
    for workers in (1, 2):
        results[f"ratio_{workers}"] = results["naive"] / results[f"batched_{workers}"]
    results["cpu_ratio"] = CPU["naive"] / CPU["batched_1"]
    print(f"  naive loop (one model at a time): {results['naive']:.2f} s ({CPU['naive']:.2f} s CPU) = "
          f"{results['ratio_1']:.1f}x the batched on 1 thread, {results['ratio_2']:.1f}x on 2; "
          f"CPU time {results['cpu_ratio']:.1f}x the batched on 1 thread")
    if per_image:
        results["naive_per_image"], _ = _median(lambda: naive_table(model, data, cfg, ref[0], True), 1)
        print(f"  naive, one Captum call per image (bench_sweep's baseline): {results['naive_per_image']:.2f} s = "
              f"{results['naive_per_image'] / results['batched_2']:.1f}x the batched on 2 threads")
    print(f"  load average afterwards {os.getloadavg()[0]:.1f}")
    return results


def _check(table, naive: list[dict]) -> None:
    """The batched table and the naive loop agree (same cells, same numbers)."""
    for row, cell in zip(table.itertuples(), naive):
        assert (row.layer, (row.kind, row.prune_amount, row.weight_bits)) == (cell["layer"], cell["setting"])
        assert row.accuracy == cell["accuracy"] and row.agreement == cell["agreement"], (row, cell)
        assert abs(row.spearman_abs - cell["spearman_abs"]) < 1e-5 and row.weight_sqnr_db == cell["weight_sqnr_db"]
        assert abs(row.activation_sqnr_db - cell["activation_sqnr_db"]) < 1e-3, (row, cell)


if __name__ == "__main__":
    main(per_image="--per-image" in sys.argv)

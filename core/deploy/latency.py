"""Measured cost beside theory: latency in PyTorch and ONNX Runtime, bytes on disk, params and MACs.

`measure` times the original's and the compressed model's deployed forms (`core.deploy.artifacts`)
in three runtimes (PyTorch; ONNX Runtime fp32 and int8 on the CPU, one thread) at batch 1 and 256.
Each runtime x batch cell alternates original and compressed runs, so a change of load on the
shared machine hits both alike and their ratio stays honest; a cell runs until its share of the
time budget is spent (at least MIN_RUNS of each), after WARMUP runs. Figures are the median and
the interquartile range (IQR) of the runs. `explain` turns one measurement into the sentence
that says why measured and theoretical ratios differ for this setting.

The caller sets torch's thread count (the app runs with one); nothing given is modified.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from core.compression import CompressionConfig
from core.deploy import onnx_export
from core.deploy.artifacts import Artifacts
from core.figures import format_percent, format_ratio

RUNTIMES = ("PyTorch", "ONNX Runtime fp32", "ONNX Runtime int8")
BATCHES = (1, 256)
BUDGET_S = 3.5      # timing of one setting, both models, every cell (the exports, about 1 s, come on top)
MIN_RUNS = 5
MAX_RUNS = 400
WARMUP = 2
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Timing:
    """Median and quartiles of one model's runs in one runtime at one batch size (milliseconds)."""

    median_ms: float
    q25_ms: float
    q75_ms: float
    runs: int

    @property
    def iqr_ms(self) -> float:
        return self.q75_ms - self.q25_ms


def summarize(seconds: list[float]) -> Timing:
    """A Timing of run durations in seconds."""
    ms = np.asarray(seconds, dtype=float) * 1000.0
    q25, median, q75 = np.percentile(ms, [25, 50, 75])
    return Timing(float(median), float(q25), float(q75), len(ms))


def time_pair(first: Callable[[], object], second: Callable[[], object], budget_s: float,
              clock: Callable[[], float] = time.perf_counter) -> tuple[Timing, Timing]:
    """Time two calls alternately until `budget_s` is spent (at least MIN_RUNS, at most MAX_RUNS each)."""
    for _ in range(WARMUP):
        first(), second()
    runs: tuple[list[float], list[float]] = ([], [])
    start = clock()
    while len(runs[0]) < MAX_RUNS and (len(runs[0]) < MIN_RUNS or clock() - start < budget_s):
        for fn, found in zip((first, second), runs):
            begin = clock()
            fn()
            found.append(clock() - begin)
    return summarize(runs[0]), summarize(runs[1])


@dataclass(frozen=True)
class Side:
    """One model as deployed: what it costs on disk and in compute, and how long it takes."""

    params: int
    macs: int                                   # per image, every weight of the dense shape (as it runs)
    units: int                                  # output units of every prunable layer but the classes'
    file_bytes: dict[str, int]                  # "ONNX fp32" | "ONNX int8" | "packed weights" -> bytes
    timings: dict[tuple[str, int], Timing]      # (runtime, batch) -> Timing


@dataclass(frozen=True)
class Measurement:
    """Original and compressed, measured in one run, beside the theoretical ratios of the Overview."""

    config: CompressionConfig
    original: Side
    compressed: Side
    theory_size_ratio: float    # Size card: fp32 original / compressed storage
    theory_mac_ratio: float     # Overview: dense MACs / MACs of the nonzero weights
    sparsity: float             # share of prunable weights that are zero
    seconds: float              # how long the timing took

    def speedup(self, runtime: str, batch: int) -> float:
        """Original's median time / compressed's (above 1: the compressed model is faster); nan if not measured."""
        a, b = self.original.timings.get((runtime, batch)), self.compressed.timings.get((runtime, batch))
        return a.median_ms / b.median_ms if a and b and b.median_ms > 0 else float("nan")

    @property
    def units_removed(self) -> float:
        """Share of the original's units (all layers but the classes') that were cut out."""
        return 1 - self.compressed.units / self.original.units if self.original.units else 0.0

    @property
    def mac_ratio(self) -> float:
        """Original's MACs / the compressed model's as it runs (a mask removes none)."""
        return self.original.macs / self.compressed.macs if self.compressed.macs else float("inf")

    @property
    def file_kind(self) -> str:
        """The compressed model's smallest faithful file: the packed weights, else (a family the packed file
        does not store) its ONNX fp32 file."""
        return "packed weights" if "packed weights" in self.compressed.file_bytes else "ONNX fp32"

    @property
    def file_ratio(self) -> float:
        """Dense fp32 ONNX file of the original / the compressed model's `file_kind` file."""
        return self.original.file_bytes["ONNX fp32"] / self.compressed.file_bytes[self.file_kind]


def _runners(art: Artifacts) -> dict[str, Callable[[Tensor], object]]:
    """One call per runtime that runs `art`'s model on a batch (ONNX Runtime sessions made once, here)."""
    model: nn.Module = art.model

    def torch_run(x: Tensor) -> object:
        with torch.inference_mode():
            return model(x)
    found: dict[str, Callable[[Tensor], object]] = {"PyTorch": torch_run}
    for runtime, blob in (("ONNX Runtime fp32", art.onnx_fp32), ("ONNX Runtime int8", art.onnx_int8)):
        if blob is not None:
            sess = onnx_export.session(blob)
            found[runtime] = lambda x, sess=sess: sess.run(["y"], {"x": x.numpy()})
    return found


def measure(original: Artifacts, compressed: Artifacts, x_test: Tensor, theory_size_ratio: float,
            theory_mac_ratio: float, sparsity: float, budget_s: float = BUDGET_S,
            progress: Progress | None = None) -> Measurement:
    """Time both models in every runtime at every batch size (test images, tiled to the batch when fewer)."""
    cells = [(r, b) for b in BATCHES for r in RUNTIMES]
    times: tuple[dict, dict] = ({}, {})
    started = time.perf_counter()
    runners = (_runners(original), _runners(compressed))
    for index, (runtime, batch) in enumerate(cells):
        if progress:
            progress(index / len(cells), f"{runtime}, batch {batch} ({index + 1} of {len(cells)})")
        a, b = runners[0].get(runtime), runners[1].get(runtime)
        if a is None or b is None:
            continue  # no int8 file for one of them: that cell stays empty
        x = _batch(x_test, batch)
        found = time_pair(lambda: a(x), lambda: b(x), budget_s / len(cells))
        times[0][(runtime, batch)], times[1][(runtime, batch)] = found
    sides = [Side(art.params, art.macs, art.units, art.file_bytes, found)
             for art, found in zip((original, compressed), times)]
    return Measurement(compressed.config, *sides, theory_size_ratio, theory_mac_ratio, sparsity,
                       time.perf_counter() - started)


def _batch(x: Tensor, size: int) -> Tensor:
    reps = -(-size // len(x))
    return x.repeat(reps, *([1] * (x.dim() - 1)))[:size].contiguous() if reps > 1 else x[:size].contiguous()


# ---------------------------------------------------------------- the sentence
def _times(value: float) -> str:
    """A speed ratio in words: 2.8 -> "2.8× faster", 0.5 -> "2.0× slower", ~1 -> "no faster"."""
    if np.isnan(value):
        return "not measured"
    if 0.95 <= value <= 1.05:
        return "about as fast (within 5 %)"
    return f"{format_ratio(value)} faster" if value > 1 else f"{format_ratio(1 / value)} slower"


def explain(m: Measurement, batch: int = 256) -> str:
    """One sentence: why the measured ratios differ from the theoretical ones for this setting (numbers from m)."""
    cfg, torch_ratio = m.config, m.speedup("PyTorch", batch)
    int8 = _int8_clause(m, batch) if cfg.quantized else ""
    if cfg.prune_amount > 0 and cfg.prune_method == "structured" and m.mac_ratio > 1.0:
        return (f"Cutting out {format_percent(m.units_removed)} of the units took away "
                f"{format_percent(1 - 1 / m.mac_ratio)} of the MACs ({format_ratio(m.mac_ratio)} fewer), yet PyTorch "
                f"runs {_times(torch_ratio)} at batch {batch}: latency follows memory traffic and the fixed cost of "
                f"every layer, not the MACs alone{int8}.")
    if cfg.prune_amount > 0 and cfg.prune_method != "structured":  # zeros made by rounding alone are no mask
        cut = (f" (only the units left with no weight at all could be cut out: {format_ratio(m.mac_ratio)} fewer MACs "
               "as it runs)") if m.mac_ratio > 1.005 else ""
        return (f"A mask removes nothing: {format_percent(m.sparsity)} of the weights are zero, so theory counts "
                f"{format_ratio(m.theory_mac_ratio)} fewer MACs, but the model still multiplies by the zeros{cut} and "
                f"PyTorch runs {_times(torch_ratio)} at batch {batch}{int8}.")
    if cfg.quantized:
        return (f"The {cfg.weight_bits}-bit weights are simulated in 32-bit floats, so the file shrinks "
                f"{format_ratio(m.file_ratio)} but PyTorch runs {_times(torch_ratio)}{int8}.")
    return (f"Nothing is removed or rounded, so both models do the same work: PyTorch measures "
            f"{_times(torch_ratio)} at batch {batch}, which is the measurement's own noise.")


def _int8_clause(m: Measurement, batch: int) -> str:
    fp32, int8 = (m.compressed.timings.get((r, batch)) for r in RUNTIMES[1:])
    if fp32 is None or int8 is None:
        return "; ONNX Runtime could not build an int8 model of it"
    ratio = fp32.median_ms / int8.median_ms
    why = (": on a model this small, quantizing and dequantizing the activations costs more than the int8 "
           "arithmetic saves") if ratio < 1 else ""
    return (f"; the real int8 model in ONNX Runtime takes {int8.median_ms:.1f} ms against {fp32.median_ms:.1f} ms "
            f"for fp32 ({_times(ratio)}){why}")

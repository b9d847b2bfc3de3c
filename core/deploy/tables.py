"""The Deployment page's tables, for people: costs on disk and in compute, latency, theory vs measured,
and the exported models against the simulation. Pure pandas; numbers come from a `Measurement`.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from collections.abc import Sequence

import numpy as np
import pandas as pd

from core.compression import CompressionConfig
from core.deploy.latency import BATCHES, RUNTIMES, Measurement, Timing
from core.deploy.onnx_export import Check
from core.figures import format_bytes, format_percent, format_ratio
from core.training import TrainConfig


def _bytes(sizes: dict[str, int], kind: str) -> str:
    return f"{format_bytes(sizes[kind])} ({sizes[kind]:,} B)" if kind in sizes else "could not be made"


def cost_table(m: Measurement, card_bytes: tuple[float, float]) -> pd.DataFrame:
    """Rows original / compressed: files on disk, the Size card's count, parameters and MACs as it runs."""
    rows = []
    for label, side, card in (("Original", m.original, card_bytes[0]), ("Compressed", m.compressed, card_bytes[1])):
        rows.append({"Model": label, "ONNX fp32 file": _bytes(side.file_bytes, "ONNX fp32"),
                     "ONNX int8 file": _bytes(side.file_bytes, "ONNX int8"),
                     "Packed weights file": _bytes(side.file_bytes, "packed weights"),
                     "Size card": format_bytes(round(card)), "Parameters": f"{side.params:,}",
                     "MACs per image (as it runs)": f"{side.macs:,}"})
    return pd.DataFrame(rows)


def format_timing(t: Timing | None) -> str:
    """"29.5 ms ± 0.8 (IQR, 21 runs)" or "not measured"."""
    if t is None:
        return "not measured"
    digits = 2 if t.median_ms < 1 else 1
    return f"{t.median_ms:.{digits}f} ms (IQR {t.iqr_ms:.{digits}f}, {t.runs} runs)"


def latency_table(m: Measurement) -> pd.DataFrame:
    """One row per runtime and batch size: both models' median (IQR) and the measured speed-up."""
    rows = []
    for batch in BATCHES:
        for runtime in RUNTIMES:
            ratio = m.speedup(runtime, batch)
            rows.append({"Runtime": runtime, "Batch": batch,
                         "Original": format_timing(m.original.timings.get((runtime, batch))),
                         "Compressed": format_timing(m.compressed.timings.get((runtime, batch))),
                         "Speed-up": "n/a" if np.isnan(ratio) else format_ratio(ratio)})
    return pd.DataFrame(rows)


def ratio_table(m: Measurement, batch: int = 256) -> pd.DataFrame:
    """Theory beside measurement: size, MACs and latency, each as original ÷ compressed."""
    rows = [{"What": "Size", "Theory": format_ratio(m.theory_size_ratio) + " (Size card)",
             "Measured": format_ratio(m.file_ratio) + f" (original's ONNX fp32 file ÷ {m.file_kind} file)"},
            *({"What": f"Size, {kind} files", "Theory": "–",
               "Measured": format_ratio(m.original.file_bytes[kind] / m.compressed.file_bytes[kind])
               + " (original's ÷ compressed's)"}
              for kind in ("ONNX fp32", "ONNX int8")
              if kind in m.original.file_bytes and kind in m.compressed.file_bytes),
            {"What": "MACs", "Theory": format_ratio(m.theory_mac_ratio) + " (nonzero weights only)",
             "Measured": format_ratio(m.mac_ratio) + " (the model as it runs)"}]
    for runtime in RUNTIMES:
        ratio = m.speedup(runtime, batch)
        rows.append({"What": f"Latency, {runtime}, batch {batch}", "Theory": format_ratio(m.theory_mac_ratio)
                     + " (if time followed MACs)", "Measured": "n/a" if np.isnan(ratio) else format_ratio(ratio)})
    return pd.DataFrame(rows)


def check_table(checks: Sequence[Check]) -> pd.DataFrame:
    """The exported models against the simulated one, on every test image."""
    return pd.DataFrame([{"Runtime": c.runtime, "Accuracy, exported": format_percent(c.accuracy),
                          "Accuracy, simulated (PyTorch)": format_percent(c.simulated_accuracy),
                          "Same answer as the simulation": f"{format_percent(c.agreement)} of {c.images:,}",
                          "Largest logit difference": f"{c.max_logit_difference:.2g}"} for c in checks])


def onnx_config(train: TrainConfig, cfg: CompressionConfig, input_shape: Sequence[int], num_classes: int,
                mean: Sequence[float], std: Sequence[float], classes: Sequence[str]) -> str:
    """The JSON that goes with the ONNX files: how to feed them and what they were made from."""
    return json.dumps({
        "format": "compression-lens-onnx/1",
        "input": {"name": "x", "shape": ["n", *map(int, input_shape)], "dtype": "float32",
                  "normalization": "x = (pixel scaled to 0..1 - mean) / std, per channel",
                  "mean": list(mean), "std": list(std)},
        "output": {"name": "y", "shape": ["n", int(num_classes)], "meaning": "logits", "classes": list(classes)},
        "int8": "ONNX Runtime static quantization, QDQ, int8 weights per channel, uint8 activations, "
                "calibrated on 256 training images",
        "train_config": asdict(train), "compression_config": asdict(cfg)}, indent=2)

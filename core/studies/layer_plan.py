"""Per-layer compression plans: one prune rate and one bit width per layer, their size and measured figures.

A `LayerPlan` (core/compression/plan.py, where the sidebar's plan step reads it) names layers by their short keys (`core.layers.layer_keys`: conv1, conv2, fc1, ...)
and is written as compact text for links: "conv1:p0.5b4,fc1:p0.9b2" (p = share of the layer's
weights pruned, b = bit width; a layer left out, or p0 / b32, stays dense fp32). Each layer is
compressed alone by `core.compression.compress` (`sensitivity.compress_layer`: pruned at its
rate with the sidebar's method, then quantized with the sidebar's scheme, granularity and range),
exactly as the sensitivity analysis compressed it. Sizes are counted by core.metrics
(`layer_stats` per bit width, `model_storage_bits`), as the Size card counts them.
"""
from __future__ import annotations

import copy
from dataclasses import replace

import torch
from torch import nn

from core.compression import CompressionConfig
from core.compression.plan import LayerPlan, LayerSetting  # noqa: F401  (the plan's text lives with its step)
from core.data import Dataset
from core.explain.attribution import attribute, saliency_agreement
from core.layers import prunable_layers
from core.metrics import FP32_BITS, evaluate, layer_stats, model_storage_bits, parameter_count, prediction_agreement
from core.studies.sensitivity import compress_layer, layer_keys, structured_applies
from core.studies.sweep_plan import SALIENCY_METRICS


def plan_problem(model: nn.Module, plan: LayerPlan, base: CompressionConfig) -> str | None:
    """Why `plan` cannot be applied to `model` (unknown layer, structured pruning of the classes), or None."""
    keys = layer_keys(model)
    if unknown := [s.layer for s in plan.settings if s.layer not in keys.values()]:
        return (f"This model has no layer called {', '.join(unknown)}; its layers are "
                f"{', '.join(keys.values())}.")
    name_of = {key: name for name, key in keys.items()}
    for s in plan.settings:
        if s.prune and not structured_applies(model, name_of[s.layer], base):
            return (f"{s.layer} is the classes' layer: structured pruning never removes its units, so it cannot "
                    "be pruned with the structured method.")
    return None


def compress_with_plan(model: nn.Module, base: CompressionConfig, plan: LayerPlan) -> nn.Module:
    """A copy of `model` with each layer compressed as `plan` says (module docstring); `model` is untouched.

    base gives the method, scheme, granularity, range and seed (its rate, bits and scope are not
    used). Raises ValueError with `plan_problem`'s message when the plan does not fit the model.
    """
    if problem := plan_problem(model, plan, base):
        raise ValueError(problem)
    twin = copy.deepcopy(model)
    keys = layer_keys(model)
    originals = dict(prunable_layers(model))
    with torch.no_grad():
        for name, module in prunable_layers(twin):
            setting = plan.of(keys[name])
            if not setting.dense:
                module.weight.copy_(compress_layer(originals[name], base, setting.prune, setting.bits))
    return twin


def plan_size_bits(compressed: nn.Module, plan: LayerPlan, base: CompressionConfig,
                   input_shape: tuple[int, ...]) -> int:
    """Storage of a model compressed by `plan`, counted as core.metrics counts it (layer_stats per bit width)."""
    keys = layer_keys(compressed)
    by_bits = {}
    for bits in {plan.of(k).bits for k in keys.values()}:
        by_bits[bits] = layer_stats(compressed, input_shape, replace(base.only("quantize"), weight_bits=bits))
    stats = [next(s for s in by_bits[plan.of(keys[name]).bits] if s.name == name)
             for name, _ in prunable_layers(compressed)]
    return model_storage_bits(compressed, stats)


def measure_plan(model: nn.Module, ref, data: Dataset, base: CompressionConfig, plan: LayerPlan,
                 method: str) -> dict:
    """A plan's figures: size_bits, original_bits, ratio, accuracy, agreement, saliency agreement means.

    ref: one of `core.studies.sweeps.references` (the original's evaluation, probes and maps). Only
    a copy of `model` is compressed.
    """
    compressed = compress_with_plan(model, base, plan)
    ev = evaluate(compressed, data.x_test, data.y_test)
    maps = attribute(compressed, ref.probes, ref.target, method)
    agreement = saliency_agreement(maps, ref.maps)
    size = plan_size_bits(compressed, plan, base, tuple(data.x_test.shape[1:]))
    original = FP32_BITS * parameter_count(model)
    return {"plan": plan.text(), "size_bits": size, "original_bits": original, "ratio": original / size if size else
            float("inf"), "accuracy": ev.accuracy, "agreement": prediction_agreement(ev, ref.evaluation),
            **{m: float(agreement[m].mean()) for m in SALIENCY_METRICS},
            "degenerate": int(agreement["degenerate"].sum())}

"""A per-layer plan (registered step "plan"): its own prune rate and bit width for each layer it names.

Written as compact text, the one field of the step and the URL's `plan`: "conv1:p0.5b4,fc1:b2" —
entries joined by commas, each a layer's short key (`core.layers.layer_keys`: conv1, conv2, fc1, ...),
a colon, then p and the share of the layer's weights pruned (0 to 1) and/or b and a bit width (1 to
8, or 32 for float). "conv1:p0.5b4" prunes half of conv1's weights, then codes them in 4 bits. The
Sensitivity page finds such plans; the sidebar takes them.

How it combines with the uniform sliders: the plan OVERRIDES them for the layers it names; the other
layers keep what the sliders (and every other step before it) made of them. A named layer is
compressed ALONE from the trained weights (`Context.source`: also when the pipeline runs in parts), pruned at its rate with the sidebar's pruning method
("per layer" scope: a rate means that share of this layer), then quantized at its width with the
sidebar's scheme, granularity and range (`compress_layer`, exactly as the sensitivity analysis
compressed it). Its storage is then that layer's code (`layer_code`), whatever the uniform bit width
or weight sharing says. A layer that low-rank factorization factored is left as the factorization
made it (its two factors are what is stored; the plan's settings were measured on the dense layer).
Recovery fine-tuning (core/compression/finetune.py) runs the steps after pruning on a retrained copy:
there the named layers are compressed from the fine-tuned weights (the plan was measured without it).

Order 45: after every step that sets stored values (prune 20, share 30, quantize 40), so that the
plan has the last word on the layers it names; before activations (50), which calibrate on the
finished weights. Bad text never raises: `problems()` says what is wrong and the plan is not used;
a layer the model does not have is named by `model_problems(model)` and skipped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from core.compression.quantization import WEIGHT_BITS, Quantize
from core.compression.steps import FP32_CODE, Context, Step, WeightCode, control, register
from core.layers import is_factored, layer_keys, prunable_layers

_ENTRY = re.compile(r"(?P<key>[a-z]+[0-9]+):(?:p(?P<p>[0-9]*\.?[0-9]+))?(?:b(?P<b>[0-9]+))?")
PLAN_HELP = ("Per-layer settings, e.g. conv1:p0.5b4,fc1:b2 (layer, then p and the share of its weights "
             "pruned from 0 to 1, and/or b and a bit width from 1 to 8 or 32). The layers it names take "
             "these settings instead of the sliders' rate and bit width, each layer pruned and quantized "
             "alone with the method, scheme and range above; the others follow the sliders. The Sensitivity "
             "page finds such plans and applies them here. Empty: off.")


@dataclass(frozen=True)
class LayerSetting:
    """How one layer is compressed: share of its weights pruned (0..1) and bit width (1..8, 32 = float)."""

    layer: str           # short key, e.g. "fc1"
    prune: float = 0.0
    bits: int = 32

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.prune) <= 1.0:
            raise ValueError(f"{self.layer}: a prune share must lie between 0 and 1, got {self.prune:g}")
        if self.bits not in WEIGHT_BITS:
            raise ValueError(f"{self.layer}: bits must be 1 to 8 or 32, got {self.bits}")

    @property
    def dense(self) -> bool:
        return float(self.prune) == 0.0 and self.bits == 32

    def text(self) -> str:
        parts = (f"p{self.prune:g}" if self.prune else "") + (f"b{self.bits}" if self.bits != 32 else "")
        return f"{self.layer}:{parts or 'b32'}"

    def words(self) -> str:
        """"fc1: 50 % pruned, 4 bits" (a dense one: "fc1: dense, 32-bit float")."""
        parts = ([f"{self.prune * 100:g} % pruned"] if self.prune else []) + \
            ([f"{self.bits} bit{'s' if self.bits > 1 else ''}"] if self.bits != 32 else [])
        return f"{self.layer}: {', '.join(parts) or 'dense, 32-bit float'}"


@dataclass(frozen=True)
class LayerPlan:
    """Per-layer settings (layers not listed are left to the other steps); frozen, so a safe cache key."""

    settings: tuple[LayerSetting, ...] = ()

    def __post_init__(self) -> None:
        keys = [s.layer for s in self.settings]
        if len(set(keys)) != len(keys):
            raise ValueError(f"a layer may appear once in a plan; {', '.join(sorted({k for k in keys if keys.count(k) > 1}))} "
                             "appear more often")

    def of(self, key: str) -> LayerSetting:
        return next((s for s in self.settings if s.layer == key), LayerSetting(key))

    def names(self, key: str) -> bool:
        return any(s.layer == key for s in self.settings)

    def text(self) -> str:
        """Compact text for a link, dense layers left out: "conv1:p0.5b4,fc1:p0.9b2" ("" = all dense)."""
        return ",".join(s.text() for s in self.settings if not s.dense)

    def words(self) -> str:
        return "; ".join(s.words() for s in self.settings)

    @classmethod
    def parse(cls, text: str) -> LayerPlan:
        """The plan written as `text()` writes it (b32 and p0 accepted); ValueError in words for anything else."""
        entries = [part.strip() for part in text.strip().split(",") if part.strip()]
        settings = []
        for entry in entries:
            match = _ENTRY.fullmatch(entry)
            if match is None or (match["p"] is None and match["b"] is None):
                raise ValueError(f"{entry!r} is not a layer setting such as conv1:p0.5b4 (layer, then p and a share "
                                 "pruned from 0 to 1 and/or b and a bit width)")
            settings.append(LayerSetting(match["key"], float(match["p"] or 0.0), int(match["b"] or 32)))
        return cls(tuple(settings))

    @classmethod
    def uniform(cls, keys: list[str], prune: float, bits: int) -> LayerPlan:
        return cls(tuple(LayerSetting(k, prune, bits) for k in keys))


def plan_text(raw: str) -> str:
    """A plan's one spelling (the URL's reader): "fc1:b4, conv1:p0.50" -> "fc1:b4,conv1:p0.5"; ValueError in words."""
    plan = LayerPlan.parse(raw)
    return ",".join(s.text() for s in plan.settings)  # dense entries kept: they override the sliders too


def compress_layer(module: nn.Module, base: Any, rate: float = 0.0, bits: int = 32) -> Tensor:
    """The weight `module` gets when it alone is pruned at `rate`, then quantized at `bits`, by `compress`.

    A new detached tensor (module untouched). base: a CompressionConfig giving the method, scheme,
    granularity, range and seed. `compress` works on a copy of a two-layer holder: the layer, then a
    1-weight stand-in for the classes' layer, so that structured pruning (which never removes the
    last layer's units) can remove this layer's units (round(rate * units) of them, as near as the
    whole-network rounding allows).
    """
    from core.compression.pipeline import compress  # the pipeline module imports this one's step first
    stand_in = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        stand_in.weight.fill_(1.0)
    # Only pruning and quantization are set layer by layer (the other families change a layer's
    # structure or the whole model's computation); APoZ needs the whole model's activations, so a layer
    # alone is ranked by weights, as structured pruning does.
    method = "structured" if base.prune_method == "apoz" else base.prune_method
    cfg = replace(base.only("prune", "quantize"), prune_amount=float(rate), weight_bits=int(bits),
                  prune_scope="layer", prune_method=method)
    return compress(nn.Sequential(module, stand_in), cfg)[0].weight.detach().clone()


def _memo_key(name: str, s: LayerSetting, cfg: Any) -> tuple:
    return ("plan", name, float(s.prune), s.bits, cfg.prune_method, cfg.seed, cfg.quant_scheme,
            cfg.quant_granularity, cfg.quant_range)


def _classes_layer(model: nn.Module, config: Any) -> str | None:
    """The last prunable layer's name when the method removes whole units (it must keep the classes), else None."""
    layers = prunable_layers(model)
    return layers[-1][0] if layers and config.prune_method in ("structured", "apoz") else None


@register("plan", order=45)
@dataclass(frozen=True)
class Plan(Step):
    """Per-layer prune rates and bit widths (module docstring): what the Sensitivity page found."""

    title = "Per-layer plan"
    summary = "Each layer named gets its own pruning rate and bit width (from the Sensitivity page)."
    pairs_with = ("prune", "quantize")

    layer_plan: str = control("", label="Per-layer plan", url="plan", widget="text", parse=plan_text, help=PLAN_HELP)

    def parsed(self) -> LayerPlan | None:
        """The plan, or None when the text is empty or not a plan (`problems` says why)."""
        try:
            plan = LayerPlan.parse(self.layer_plan)
        except ValueError:
            return None
        return plan if plan.settings else None

    def active(self) -> bool:
        return bool(self.layer_plan.strip())

    def describe(self) -> str:
        plan = self.parsed()
        return "per-layer plan not used (it cannot be read)" if plan is None else f"per-layer plan ({plan.words()})"

    def problems(self) -> list[str]:
        try:
            plan = LayerPlan.parse(self.layer_plan)
        except ValueError as err:
            return [f"The per-layer plan is not used: {err}."]
        return [] if plan.settings or not self.active() else ["The per-layer plan names no layer."]

    def notes(self) -> list[str]:
        plan = self.parsed()
        if plan is None:
            return []
        return [f"Overrides the sliders' rate and bit width for {', '.join(s.layer for s in plan.settings)} "
                f"({plan.words()}); every other layer follows the sliders."]

    def model_problems(self, model: nn.Module, config: Any) -> list[str]:
        """What in this plan does not fit `model`: layers it does not have (skipped), a structured rate for
        the classes' layer (not used: structured pruning never removes the classes)."""
        plan, keys = self.parsed(), layer_keys(model)
        if plan is None:
            return []
        said = []
        if unknown := [s.layer for s in plan.settings if s.layer not in keys.values()]:
            said.append(f"This model has no layer called {', '.join(unknown)} (its layers are "
                        f"{', '.join(keys.values())}): the plan's settings for it are not used.")
        last = _classes_layer(model, config)
        if last is not None and plan.of(keys[last]).prune:
            said.append(f"{keys[last]} is the classes' layer: structured pruning never removes its units, so the "
                        "plan's pruning rate for it is not used (its bit width is).")
        if config.step("lowrank").active():
            said.append("Low-rank factorization is on: the layers it factors keep what it made of them, and the "
                        "plan applies to the layers left dense.")
        return said

    def layer_settings(self, model: nn.Module, trained: nn.Module, config: Any) -> dict[str, LayerSetting]:
        """{module name: the setting it gets} for the layers of `model` (a compressed copy of `trained`) this plan
        sets: named, not factored, of the trained layer's shape; the classes' layer keeps its units under
        structured pruning (rate 0). What `apply` does, and what the packed file stores per layer."""
        plan = self.parsed()
        if plan is None or config is None:
            return {}
        keys, originals, last = layer_keys(trained), dict(prunable_layers(trained)), _classes_layer(trained, config)
        found = {}
        for name, module in prunable_layers(model):
            key = keys.get(name)
            if key is None or not plan.names(key) or is_factored(module) or name not in originals \
                    or originals[name].weight.shape != module.weight.shape:
                continue
            found[name] = replace(plan.of(key), prune=0.0) if name == last else plan.of(key)
        return found

    def apply(self, model: nn.Module, context: Context) -> None:
        # From the trained weights, also when the pipeline runs in parts (the rest after pruning: compress(compress(
        # m, first), rest) is compress(m, cfg)); memoized per trained model, layer and setting.
        base, trained = context.config, context.source
        originals, modules = dict(prunable_layers(trained)), dict(prunable_layers(model))
        for name, s in self.layer_settings(model, trained, base).items():
            module = modules[name]
            weight = Context(trained).memo(_memo_key(name, s, base),
                                           lambda: compress_layer(originals[name], base, s.prune, s.bits))
            module.weight.copy_(weight.to(module.weight.dtype))

    def layer_code(self, weight: Tensor, layer: str, config: Any) -> WeightCode | None:
        plan = self.parsed()
        if plan is None or not plan.names(layer):
            return None
        bits = plan.of(layer).bits
        code = Quantize(weight_bits=bits, quant_scheme=config.quant_scheme, quant_granularity=config.quant_granularity,
                        quant_range=config.quant_range).weight_code(weight)
        return code or FP32_CODE

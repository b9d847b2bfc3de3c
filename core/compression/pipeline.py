"""Compression as an ordered pipeline of registered steps, applied to a copy of a trained model.

`compress(model, cfg)` deep-copies `model` once, then runs every ACTIVE step of `cfg` on that copy
in pipeline order. The input is never touched. `CompressionConfig` is generated from the registry
(core/compression/steps.py): the flat, frozen union of every step's fields, so it is a safe cache
key, `dataclasses.replace(cfg, weight_bits=4)` works, and a field added by a new family joins the
sidebar, the URL, sweeps, lessons and export by itself.

The order, and why (each step's `order` in its @register; training-side families — distillation
and lighter architectures — make the model that enters the pipeline, so they come first):
  10 low-rank factorization  structure first: it refactors the dense weights it was trained with;
                             pruning or rounding before an SVD would factor the noise they add.
  20 pruning                 on the (possibly factored) weights, so the zeros it makes survive what follows.
  30 weight sharing          a codebook of the surviving weights (Deep Compression: prune, then share);
  40 quantization            or a uniform code of them: both set the stored values, so a setting may
                             use one of the two (sharing wins and says so); zeros stay exactly zero.
  45 per-layer plan          after every step that sets stored values: for the layers it names, its own
                             rate and bit width are the last word (each layer pruned, then quantized,
                             alone, from the original's weights, as the sensitivity analysis did);
                             the layers it leaves out keep what the steps before made of them.
  50 activations/precision   last: it changes how the finished weights compute (fake-quantized inputs,
                             fp16/bf16), calibrated on the compressed model that will run.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from core.compression import steps as registry
from core.compression.steps import FP32_CODE, Context, Step, WeightCode


def _config_fields() -> list[tuple[str, Any, dataclasses.Field]]:
    specs = []
    for name in registry.ordered():
        for f in dataclasses.fields(registry.STEPS[name]):
            specs.append((f.name, f.type, dataclasses.field(default=f.default, metadata=f.metadata)))
    return specs


def _post_init(self) -> None:
    # Each control's value is the config's field of the same name (a step's fields are the config's), checked
    # in pipeline order.
    for fname, (_, c) in registry.controls().items():
        value = getattr(self, fname)
        if c.choices and value not in c.choices:
            raise ValueError(f"{fname} must be one of {', '.join(map(str, c.choices))}; got {value!r}")
        if not c.choices and c.low is not None and not c.low <= float(value) * c.scale <= c.high:
            raise ValueError(f"{fname} must be between {c.low / c.scale:g} and {c.high / c.scale:g}, "
                             f"got {value!r}")


def _step(self, name: str) -> Step:
    """This config's settings of the step called `name` (an unknown name raises, listing the steps)."""
    cls = registry.get_step(name)
    return cls(**{f.name: getattr(self, f.name) for f in dataclasses.fields(cls)})


def _switched_on(self) -> list[Step]:
    return [step for step in (self.step(name) for name in registry.ordered()) if step.active()]


def _replaced(self) -> set[str]:
    return {name for step in _switched_on(self) for name in step.replaces}


def _pipeline(self) -> list[Step]:
    """The steps this config switches on, in pipeline order (less those another active step replaces)."""
    replaced = _replaced(self)
    return [step for step in _switched_on(self) if step.name not in replaced]


FLOAT_LEVELS = 2**16  # a code with this many values or more is a float format (fp16, bf16, fp32)


def _weight_code(self, weight: Tensor, layer: str | None = None) -> WeightCode:
    """How a compressed layer weight is stored: the code of the last active step that sets one.

    A float format (fp16 computation) is the code only where no step sets a discrete one: a 4-bit
    code computed in fp16 is still stored as 4-bit codes. layer: the prunable layer's short key
    ("conv1", core.layers.layer_keys; None: not known); a step that sets that layer on its own
    (`Step.layer_code`, the per-layer plan) decides its code instead of the others' weight codes
    (a float format still applies to a layer the plan keeps in float)."""
    codes = [code for step in self.pipeline() if (code := step.weight_code(weight)) is not None]
    discrete = [code for code in codes if code.levels < FLOAT_LEVELS]
    own = [code for step in self.pipeline() if layer is not None
           and (code := step.layer_code(weight, layer, self)) is not None]
    if own:
        floats = [code for code in codes if code.levels >= FLOAT_LEVELS]
        return own[-1] if own[-1].levels < FLOAT_LEVELS else (floats or own)[-1]
    return (discrete or codes or [FP32_CODE])[-1]


def _problems(self) -> list[str]:
    """Every active step's words for settings that make no sense (never raised), and which step
    applies where two set the same thing."""
    replaced = [f"{step.title} and {self.step(name).title.lower()} both set the stored weights: "
                f"{step.title.lower()} applies, so {self.step(name).describe()} is not used."
                for step in self.pipeline() for name in step.replaces if self.step(name).active()]
    return replaced + [text for step in self.pipeline() for text in step.problems()]


def _describe(self) -> str:
    """Every step in words, in pipeline order: the active ones' settings, "no pruning" for main ones off."""
    running, replaced = {step.name for step in self.pipeline()}, _replaced(self)
    steps = (self.step(name) for name in registry.ordered())
    return ", ".join(step.describe() if step.name in running else step.off_words for step in steps
                     if step.name in running or (step.off_words and step.name not in replaced))


def _only(self, *names: str) -> Any:
    """This config with every step not named switched back to its defaults (off), e.g. only("prune")."""
    for name in names:
        registry.get_step(name)  # unknown names raise, listing the steps
    reset = {f.name: f.default for name in registry.ordered() if name not in names
             for f in dataclasses.fields(registry.STEPS[name])}
    return dataclasses.replace(self, **reset)


def _split(self, name: str) -> tuple[Any, Any]:
    """(the steps up to and including `name`, the steps after it), each as a config with the others off.

    compress(compress(m, a), b) == compress(m, cfg) for (a, b) = cfg.split(name): what fine-tuning
    and the sweeps use to do the first part once and the rest per setting.
    """
    position = registry.get_step(name).order
    upto = [n for n in registry.ordered() if registry.STEPS[n].order <= position]
    return self.only(*upto), self.only(*[n for n in registry.ordered() if n not in upto])


def _notes(self) -> list[str]:
    return [text for step in self.pipeline() for text in step.notes()]


def _build_config() -> type:
    namespace = {
        "__post_init__": _post_init, "step": _step, "pipeline": _pipeline, "weight_code": _weight_code,
        "problems": _problems, "notes": _notes, "describe": _describe, "only": _only, "split": _split,
        # The two settings most pages speak of, by their old names.
        "quantized": property(lambda self: any(step.name == "quantize" for step in self.pipeline())),
        "range_used": property(lambda self: self.step("quantize").range_used),
    }
    cls = dataclasses.make_dataclass("CompressionConfig", _config_fields(), frozen=True, namespace=namespace)
    cls.__module__ = __name__  # picklable by reference: core.compression.pipeline.CompressionConfig
    cls.__doc__ = ("Every setting of every registered compression step; frozen, so it is a safe cache key. "
                   "Fields: " + ", ".join(f.name for f in dataclasses.fields(cls)) + ".")
    return cls


# ---------------------------------------------------------------------------- compress


def compress(model: nn.Module, cfg: Any, calibration: Tensor | None = None) -> nn.Module:
    """A compressed `copy.deepcopy` of `model`, by every active step of `cfg` in order; `model` is untouched.

    The copy keeps the input's training flag and every parameter's requires_grad (weights are
    changed in place on the copy only, under no_grad: masks and codes are constants). The result
    has no pruning hooks or masks. `calibration`: training images (N, C, H, W) for steps that
    calibrate (else those registered with `steps.set_calibration`).
    """
    compressed = copy.deepcopy(model)
    registry.set_source(compressed, model)  # a step that starts from the trained weights finds them (the plan)
    context = Context(model, calibration, cfg)
    images = calibration if calibration is not None else registry.calibration_of(model)
    if images is not None:  # a compressed copy calibrates like its source (compressed again, fine-tuned)
        registry.set_calibration(compressed, images)
    with torch.no_grad():
        for step in cfg.pipeline():
            step.apply(compressed, context)
    return compressed


# Built once every step module is imported: core/compression/__init__.py imports them before this one.
CompressionConfig = _build_config()

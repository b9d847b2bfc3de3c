"""Activations and low precision (registered step "activations"): how the finished weights compute.

Two settings, either or both:

- **Activation bits** (2..8; 32 = off): the input of every prunable layer (Linear, Conv2d) is
  fake-quantized per tensor, affine, to [0, 2^b - 1], with a scale and zero point from
  calibration on training images (`context.calibration()`, the first CALIBRATION_IMAGES). Post-ReLU
  inputs are non-negative, so their zero point is 0 and all 2^b codes cover [0, max]; the image
  fed to the first layer may be negative, and its zero point takes that in. The ranges come from
  `torch.ao.quantization` observers: "minmax" (MinMaxObserver: the whole range seen) or
  "histogram" (HistogramObserver: the range that minimizes the quantization error of the
  histogram of values seen, so rare large activations are clipped). The observer's error search
  is set to the bit width in use (`dst_nbins = 2^b`: by default it searches for 8 bits).
- **Precision** ("fp32" = off, "fp16", "bf16"): the model's parameters and every computation are
  in that dtype. Inputs are cast to it on the way in and outputs back to float32 on the way out,
  so every page, metric and Captum see a float32 model (REFERENCE §9: both run on this CPU, slower
  than fp32; they are precision experiments, not speed-ups).

Both are forward hooks on the pipeline's compressed copy (never on a shared model): a pre-hook per
layer for the fake quantization, a pre-hook and a hook on the copy itself for the casts. The hooks
are small picklable objects, so deep copies of the result carry their own. Fake quantization
simulates integers in float: `torch.fake_quantize_per_tensor_affine` passes gradients by the
straight-through estimator (inside the range), so Captum still explains the model.

Calibration runs once per original model, observer, and the weights it sees (a digest of the
compressed copy's tensors, so the settings before this step are in the key), through
`context.memo`; the scale and zero point for each bit width are cached too.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.ao.quantization import HistogramObserver, MinMaxObserver

from core.compression.steps import Context, Step, WeightCode, control, register
from core.layers import prunable_layers

ACT_OFF = 32
ACT_BITS = (2, 3, 4, 5, 6, 7, 8, ACT_OFF)
OBSERVERS = ("minmax", "histogram")
PRECISIONS = ("fp32", "fp16", "bf16")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CALIBRATION_IMAGES = 512   # training images the observers see (registered by core.training)
_BATCH = 256
_OBSERVER_CLASSES = {"minmax": MinMaxObserver, "histogram": HistogramObserver}
FLOAT16_CODE = WeightCode(levels=2**16)

ACT_HELP = ("Bits of every layer's input (the activations), rounded to 2^b levels over a range measured on "
            "training images. Weights are set by the controls above; W4A8 means 4-bit weights and 8-bit "
            "activations. 32: activations stay floats.")
OBSERVER_HELP = ("How the activation range is measured on training images. **Min–max**: the whole range seen. "
                 "**Histogram**: the range with the smallest rounding error over the values seen (rare large "
                 "activations are clipped).")
PRECISION_HELP = ("The number format every weight and computation uses. fp16: 16-bit floats (10-bit mantissa); "
                  "bf16: 16-bit floats with fp32's range but an 8-bit mantissa. On this computer both are slower "
                  "than fp32: they show what the precision does, not a speed-up.")


def observer(kind: str, bits: int) -> torch.ao.quantization.ObserverBase:
    """A fresh per-tensor affine observer for codes [0, 2^bits - 1] ("minmax" or "histogram")."""
    made = _OBSERVER_CLASSES[kind](dtype=torch.quint8, qscheme=torch.per_tensor_affine,
                                   quant_min=0, quant_max=2**bits - 1)
    if kind == "histogram":
        made.dst_nbins = 2**bits  # its error search assumes 8-bit codes unless told the bit width
    return made


def calibrate(model: nn.Module, images: Tensor, kind: str) -> dict[str, dict[str, Tensor]]:
    """Observer statistics of every prunable layer's input of `model` over `images` (N, C, H, W).

    Returns {layer name: observer state_dict}; the bit width does not change them (only the qparams
    computed from them). `model` is run under no_grad with temporary hooks, all removed again.
    """
    observers = {name: observer(kind, 8) for name, _ in prunable_layers(model)}
    handles = [module.register_forward_pre_hook(_Observe(observers[name])) for name, module in prunable_layers(model)]
    try:
        with torch.no_grad():
            for start in range(0, len(images), _BATCH):
                model(images[start:start + _BATCH])
    finally:
        for handle in handles:
            handle.remove()
    return {name: {k: v.clone() for k, v in obs.state_dict().items()} for name, obs in observers.items()}


def qparams(state: dict[str, Tensor], kind: str, bits: int) -> tuple[float, int]:
    """(scale, zero point) at `bits` of an observer with calibrated `state` (from `calibrate`)."""
    made = observer(kind, bits)
    made.load_state_dict(state)
    scale, zero_point = made.calculate_qparams()
    return float(scale.reshape(-1)[0]), int(zero_point.reshape(-1)[0])


class _Observe:
    """Forward pre-hook: show the layer's input to an observer; the input goes on unchanged."""

    def __init__(self, seen: nn.Module) -> None:
        self.seen = seen

    def __call__(self, _module: nn.Module, args: tuple) -> None:
        self.seen(args[0].detach().float())


class FakeQuantInput:
    """Forward pre-hook: the layer's input fake-quantized to (scale, zero point, [0, qmax])."""

    def __init__(self, scale: float, zero_point: int, qmax: int) -> None:
        self.scale, self.zero_point, self.qmax = scale, zero_point, qmax

    def __call__(self, _module: nn.Module, args: tuple) -> tuple:
        x = args[0]
        coded = torch.fake_quantize_per_tensor_affine(x.float(), self.scale, self.zero_point, 0, self.qmax)
        return (coded.to(x.dtype), *args[1:])


class CastInputs:
    """Forward pre-hook on a model: floating inputs cast to its dtype."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def __call__(self, _module: nn.Module, args: tuple) -> tuple:
        return tuple(a.to(self.dtype) if isinstance(a, Tensor) and a.is_floating_point() else a for a in args)


class CastOutput:
    """Forward hook on a model: its output back to float32, so the rest of the app sees fp32."""

    def __call__(self, _module: nn.Module, _args: tuple, output: Any) -> Any:
        return output.to(torch.float32) if isinstance(output, Tensor) else output


def _undo(model: nn.Module) -> None:
    """Remove this step's hooks from `model` (the pipeline's copy) and bring it back to float32."""
    for module in model.modules():
        for hooks in (module._forward_pre_hooks, module._forward_hooks):
            for key in [k for k, hook in hooks.items() if isinstance(hook, (FakeQuantInput, CastInputs, CastOutput))]:
                del hooks[key]
    model.to(torch.float32)  # exact: fp16 and bf16 values are fp32 values


def _digest(model: nn.Module) -> str:
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


@register("activations", order=50)
@dataclass(frozen=True)
class Activations(Step):
    """Fake-quantized layer inputs after calibration, and fp16/bf16 computation."""

    title = "Activations and precision"
    summary = ("Every layer's input rounded to 2^b levels (calibrated on training images), and the model "
               "computed in 16-bit floats.")

    act_bits: int = control(ACT_OFF, label="Activation bits", url="act_bits", widget="select_slider",
                            choices=ACT_BITS, labels={ACT_OFF: "32 (float, off)"}, stops=ACT_BITS, unit="-bit",
                            stop_labels={ACT_OFF: "32-bit (off)"}, help=ACT_HELP)
    act_observer: str = control("minmax", label="Activation range", url="act_range", choices=OBSERVERS,
                                horizontal=True, labels={"minmax": "Min–max", "histogram": "Histogram (clipped)"},
                                help=OBSERVER_HELP)
    precision: str = control("fp32", label="Number format", url="precision", choices=PRECISIONS, horizontal=True,
                             labels={"fp32": "fp32 (off)", "fp16": "fp16", "bf16": "bf16"}, help=PRECISION_HELP)

    def active(self) -> bool:
        return self.act_bits != ACT_OFF or self.precision != "fp32"

    def describe(self) -> str:
        parts = []
        if self.act_bits != ACT_OFF:
            parts.append(f"{self.act_bits}-bit activations ({'min–max' if self.act_observer == 'minmax' else 'histogram'}"
                         " range)")
        if self.precision != "fp32":
            parts.append(f"{self.precision} computation")
        return ", ".join(parts)

    def sweep_points(self) -> tuple[dict[str, Any], ...]:
        return tuple({"act_bits": b} for b in (8, 6, 5, 4, 3, 2))

    def notes(self) -> list[str]:
        out = []
        if self.act_bits == ACT_OFF and self.act_observer != "minmax":
            out.append("The activation range is used only when activation bits are set (below 32).")
        if self.precision != "fp32":
            out.append("16-bit floats run slower than fp32 on this computer: they show what the precision "
                       "does, not a speed-up.")
        return out

    def apply(self, model: nn.Module, context: Context) -> None:
        _undo(model)  # a model this step already made (compressed again): start from its float32 self
        if self.act_bits != ACT_OFF:
            self._quantize_inputs(model, context)
        if self.precision != "fp32":
            model.to(DTYPES[self.precision])
            model.register_forward_pre_hook(CastInputs(DTYPES[self.precision]))
            model.register_forward_hook(CastOutput())

    def _quantize_inputs(self, model: nn.Module, context: Context) -> None:
        kind, bits, digest = self.act_observer, self.act_bits, _digest(model)
        stats = context.memo(("act-stats", kind, digest),
                             lambda: calibrate(model, context.calibration()[:CALIBRATION_IMAGES], kind))
        codes = context.memo(("act-qparams", kind, bits, digest),
                             lambda: {name: qparams(state, kind, bits) for name, state in stats.items()})
        for name, module in prunable_layers(model):
            scale, zero_point = codes[name]
            module.register_forward_pre_hook(FakeQuantInput(scale, zero_point, 2**bits - 1))

    def weight_code(self, weight: Tensor) -> WeightCode | None:
        """fp16/bf16 weights are 16-bit floats where no earlier step codes them (see pipeline)."""
        return FLOAT16_CODE if self.precision != "fp32" else None

"""Which code each stored layer of a packed file is written in, and the weights its codes are read from.

Without a per-layer plan every stored layer (core.layers.stored_layers) is written by the setting's one
coder (`packed_codes.coder_of`: the step that sets the stored values). With one (core/compression/plan.py,
order 45), each layer the plan sets (`Plan.layer_settings`: named, not factored) is written in its own code,
the one the Size card counts for it (`cfg.weight_code(w, layer=key)`, i.e. the plan's `layer_code`):
- a width b of 1 to 8: "uniform" codes at b bits, with the setting's scheme, granularity and range (the
  plan quantizes so), their scales computed from the layer as the plan pruned it (`compress_layer` at the
  layer's rate, 32 bits), zeros in a mask or as positions when that is smaller, as for any layer;
- 32: its raw bits, fp32 (or fp16/bf16 when the activations step computes in those, as the card counts).
Every other stored layer (a layer the plan does not name or does not reach, each factor of a low-rank layer)
keeps the setting's coder, exactly as without a plan. A plan's layer in uniform codes has its width in its
layout ("weight_bits"; the others are at the setting's), so the loader reads every layer at its own width.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from core.compression import CompressionConfig, compress
from core.compression.plan import LayerSetting, compress_layer
from core.compression.steps import WeightCode, source_of
from core.deploy.packed_codes import coder_of
from core.layers import is_factored, layer_keys, prunable_layers, stored_layers


@dataclass(frozen=True)
class StoredLayer:
    """How one stored layer is written (`packed_codes.encode_layer`'s arguments): the Size card's code, the
    coder, for "uniform" codes the weight as quantization left it (float32, before any fp16/bf16 casting)
    and the weight quantization started from (its scales come from it), and a plan's layer's own width
    (None: the setting's)."""

    code: WeightCode
    coder: str
    coded: Tensor | None = None
    before: Tensor | None = None
    bits: int | None = None


def planned(final: nn.Module, cfg: CompressionConfig, trained: nn.Module) -> dict[str, LayerSetting]:
    """{layer name: its plan setting} for the layers of `final` (= compress(trained, cfg)) the plan sets; {} without."""
    if "plan" not in {step.name for step in cfg.pipeline()}:
        return {}
    return cfg.step("plan").layer_settings(final, source_of(trained), cfg)


def stored(original: nn.Module, cfg: CompressionConfig,
           calibration: Tensor | None) -> tuple[nn.Module, dict[str, StoredLayer]]:
    """(compress(original, cfg, calibration), {stored layer name: how it is written}); `original` only read."""
    final = compress(original, cfg, calibration)
    plan = planned(final, cfg, original)
    coder, float_coder = coder_of(cfg), coder_of(cfg.only("activations"))
    own = {name: s for name, s in plan.items() if s.bits != 32}  # the plan's layers in uniform codes
    coded, before = _levels(original, final, cfg, calibration, own, coder == "uniform")
    prunable = dict(prunable_layers(final))
    keys = {name: key for name, key in layer_keys(final).items() if not is_factored(prunable[name])}
    found = {}
    for name, module in stored_layers(final):
        code = cfg.weight_code(module.weight.detach(), layer=keys.get(name))  # the Size card's (core.metrics)
        if name in own:
            layer = StoredLayer(code, "uniform", coded[name], before[name], own[name].bits)
        elif name in plan:
            layer = StoredLayer(code, float_coder)
        else:
            layer = StoredLayer(code, coder, coded.get(name), before.get(name))
        found[name] = layer
    return final, found


def _levels(original: nn.Module, final: nn.Module, cfg: CompressionConfig, calibration: Tensor | None,
            own: dict[str, LayerSetting], uniform: bool) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """({stored layer: weight as quantization (or the plan) left it}, {stored layer: weight it started from}),
    filled where uniform codes need them: every layer when the setting quantizes uniformly, the plan's own."""
    if not uniform and not own:
        return {}, {}
    weights = lambda model: {n: m.weight.detach() for n, m in stored_layers(model)}  # noqa: E731
    last = cfg.pipeline()[-1].name
    upto_plan = cfg.split("plan")[0]  # quantization and the plan set the stored values; only activations follow
    coded = weights(final if last in ("quantize", "plan") else compress(original, upto_plan, calibration))
    before = weights(compress(original, cfg.split("share")[0], calibration)) if uniform else {}
    trained = dict(prunable_layers(source_of(original)))
    # The plan quantizes each of its layers alone from the trained weights, pruned at the layer's rate first.
    before.update({name: compress_layer(trained[name], cfg, s.prune, 32) for name, s in own.items()})
    return coded, before

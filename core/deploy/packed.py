"""The compressed weights stored as the Size card counts them, and a loader that rebuilds them bit-exactly.

Every registered family is stored as the storage accounting (core.metrics.layer_stats) counts it:
- each STORED layer (core.layers.stored_layers; a low-rank layer's two factors, each on its own) in the
  cheapest layout of its setting's code (core/deploy/packed_codes.py): packed b-bit quantization codes
  with their scales and zero points, weight sharing's b-bit indices (of the nonzeros, with a mask, when
  combined with pruning, as Deep Compression) with the layer's float32 codebook, fp16/bf16 weights as their
  16 raw bits, fp32 weights as their 32; a layer a per-layer plan sets in ITS code (its own width, its
  pruning as a mask or positions, scales per the setting's granularity: core/deploy/packed_layers.py);
- biases and every other parameter as float32 (the Size card counts 32 bits each);
- the rank of every factored layer (in the header), so the loader rebuilds the two thinner layers;
- the activations step's ranges: one float32 scale and int32 zero point per fake-quantized layer input,
  and its fp16/bf16 number format, so the rebuilt model is the same simulated model.

Container: safetensors (no pickle), every setting and the per-layer layout in the header's metadata.
File bytes = the Size card's bytes + under 1 byte of rounding per bit stream (at most 2 per stored layer:
codes, and a mask or positions) + `overhead(blob)`: safetensors' header (8 bytes of length, then JSON:
at most HEADER_BASE bytes of settings and HEADER_PER_LAYER a stored layer; measured 1.4-8.4 kB on the
registered models) + what the card does not count: the activation ranges (8 bytes a layer) and buffers
(none in the registered models). `max_overhead` is that bound.

`pack` needs the trained model and the config; `unpack` only the file and the registries. A file that is
not one, cut short, from a newer version, or naming a step or control this version lacks raises
`PackedFileError` (a ValueError) in words, never anything else.
"""
from __future__ import annotations

import dataclasses
import json
import struct
from dataclasses import asdict

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

import models
from core.compression import CompressionConfig
from core.compression import steps as registry
from core.compression.activations import ACT_OFF, DTYPES, CastInputs, CastOutput, FakeQuantInput
from core.compression.lowrank import factor_layer
from core.deploy import packed_codes as codes
from core.deploy import packed_layers
from core.deploy.packed_codes import pack_bits, unpack_bits  # noqa: F401  (the bit streams, for callers)
from core.layers import is_factored, prunable_layers, stored_layers
from core.training import TrainConfig

FORMAT_NAME = "compression-lens-packed"
VERSION = 3
# Version 1: pruning and quantization only, without activation ranges; 2: one code width for every layer
# (3 writes a uniform layer's width in its layout: a per-layer plan's layers each have their own).
FORMAT = f"{FORMAT_NAME}/{VERSION}"
ACT = "@activations"  # tensor names of the activation ranges (no module name starts with "@")
# The steps whose stored form this file writes; a family added later is refused, in words, until it is here.
PACKED_STEPS = ("lowrank", "prune", "share", "quantize", "plan", "activations")


HEADER_BASE, HEADER_PER_LAYER = 1200, 600  # bytes: the header's documented bound (see the docstring)


def max_overhead(stored: int, inputs: int = 0) -> int:
    """The most bytes a packed file of `stored` stored layers and `inputs` fake-quantized layer inputs adds
    to the Size card's: the header, the activation ranges, under 2 bytes of rounding a stored layer."""
    return HEADER_BASE + (HEADER_PER_LAYER + 2) * stored + 8 * inputs


class PackedFileError(ValueError):
    """A file `unpack` cannot read, with the reason in words (shown as such on the Export page)."""


# Registered steps this file knows and does not write yet, each with the reason in words (none today).
NOT_PACKED: dict[str, str] = {}


def packable(cfg: CompressionConfig) -> str | None:
    """Why this setting cannot be packed (a family whose stored form this file does not write), or None."""
    others = [step for step in cfg.pipeline() if step.name not in PACKED_STEPS]
    if not others:
        return None
    why = "; ".join(NOT_PACKED.get(step.name, f"{step.title.lower()} is new to it") for step in others)
    return (f"The packed file cannot store this setting yet ({why}). Download the ONNX file or the dense "
            "weights instead.")


def pack(original: nn.Module, cfg: CompressionConfig, train: TrainConfig, input_shape: tuple[int, ...],
         num_classes: int, calibration: Tensor | None = None) -> bytes:
    """`compress(original, cfg, calibration)` as packed safetensors bytes (module docstring); `original` only read.

    Raises ValueError (`packable`'s words) for a setting with a family this file does not store.
    """
    if (problem := packable(cfg)) is not None:
        raise ValueError(problem)
    final, stored = packed_layers.stored(original, cfg, calibration)
    layouts, tensors, written = [], {}, set()
    for name, module in stored_layers(final):
        weight, layer = module.weight.detach(), stored[name]
        layout, found = codes.encode_layer(name, weight, layer.code, layer.coder, cfg, coded=layer.coded,
                                           before=layer.before, bits=layer.bits)
        if not torch.equal(codes.decode_layer(layout, found, cfg).to(weight.dtype), weight):
            raise ValueError(f"layer {name}: its weights are not the codes of this setting (was it compressed so?)")
        layouts.append(layout)
        tensors.update({f"{name}.{kind}": t for kind, t in found.items()})
        written.add(f"{name}.weight")
    parameters = {name for name, _ in final.named_parameters()}
    uncounted = []
    for key, value in final.state_dict().items():
        if key not in written:
            tensors[key] = value.detach().to(torch.float32 if value.is_floating_point() else value.dtype).clone()
            if key not in parameters:
                uncounted.append(key)  # a buffer: the Size card counts parameters only
    for key, value in _activation_ranges(final, cfg).items():
        tensors[key] = value
        uncounted.append(key)
    factored = {name: m.rank for name, m in prunable_layers(final) if is_factored(m)}
    meta = {"format": FORMAT, "architecture": train.model, "dataset": train.dataset,
            "input_shape": json.dumps([int(s) for s in input_shape]), "num_classes": str(int(num_classes)),
            "train_config": json.dumps(asdict(train), sort_keys=True),
            "compression_config": json.dumps(asdict(cfg), sort_keys=True),
            "steps": json.dumps([step.name for step in cfg.pipeline()]), "factored": json.dumps(factored),
            "layers": json.dumps(layouts), "uncounted": json.dumps(uncounted)}
    return safetensors_save({k: t.contiguous() for k, t in tensors.items()}, metadata=meta)


def _activation_ranges(model: nn.Module, cfg: CompressionConfig) -> dict[str, Tensor]:
    """The fake quantization of every prunable layer's input: its scales (float32) and zero points (int32)."""
    if cfg.act_bits == ACT_OFF or "activations" not in {step.name for step in cfg.pipeline()}:
        return {}
    hooks = [next(h for h in m._forward_pre_hooks.values() if isinstance(h, FakeQuantInput))
             for _, m in prunable_layers(model)]
    return {f"{ACT}.scale": torch.tensor([h.scale for h in hooks], dtype=torch.float32),
            f"{ACT}.zero_point": torch.tensor([h.zero_point for h in hooks], dtype=torch.int32)}


# ---------------------------------------------------------------- reading
def header(blob: bytes) -> tuple[int, dict]:
    """(bytes of the safetensors header, its JSON) of a packed file; PackedFileError when there is none."""
    if len(blob) < 8:
        raise PackedFileError(f"the file is {len(blob)} bytes long: too short to be a packed weights file")
    (length,) = struct.unpack("<Q", blob[:8])
    if 8 + length > len(blob):
        raise PackedFileError("the file is cut short: its header says it is longer than it is (truncated?)")
    try:
        found = json.loads(blob[8:8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PackedFileError("this is not a packed Compression Lens file (no safetensors header)") from None
    if not isinstance(found, dict):
        raise PackedFileError("this is not a packed Compression Lens file (its header is not a table)")
    return 8 + length, found


def overhead(blob: bytes) -> int:
    """Bytes of the file the Size card does not count: the header (8-byte length and JSON: settings, layout),
    the activation ranges and any buffers."""
    size, found = header(blob)
    uncounted = json.loads(found.get("__metadata__", {}).get("uncounted", "[]"))
    return size + sum(found[k]["data_offsets"][1] - found[k]["data_offsets"][0] for k in uncounted if k in found)


def unpack(blob: bytes) -> tuple[nn.Module, CompressionConfig, dict[str, str]]:
    """(the compressed model rebuilt from a packed file, in eval mode, its config, the file's metadata).

    Raises PackedFileError, in words, for anything that is not a packed file this version can read."""
    meta = header(blob)[1].get("__metadata__") or {}
    version = _version(meta)
    cfg = _config(meta)
    try:
        tensors = safetensors_load(blob)
    except Exception as err:  # safetensors' own error type (a Rust panic for some damage)
        raise PackedFileError(f"the file's tensors cannot be read (cut short or damaged): {err}") from None
    try:
        model = models.create_model(meta["architecture"], tuple(json.loads(meta["input_shape"])),
                                    int(meta["num_classes"]))
        layers, factored = json.loads(meta["layers"]), json.loads(meta.get("factored", "{}"))
    except (KeyError, ValueError, TypeError) as err:
        raise PackedFileError(f"the file does not say which model it holds ({err})") from None
    if version == 1 and cfg.act_bits != ACT_OFF:
        raise PackedFileError("this older file (format 1) does not hold its activation ranges: export it again")
    _factor(model, factored)
    state = {k: t for k, t in tensors.items() if k in model.state_dict()}
    for layout in layers:
        state[f"{layout['name']}.weight"] = _weight(layout, tensors, cfg, version)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise PackedFileError(f"the file's tensors do not fit a {meta['architecture']} ({err})") from None
    _activations(model, cfg, tensors)
    return model.eval(), cfg, meta


def _version(meta: dict[str, str]) -> int:
    name, _, number = str(meta.get("format", "")).partition("/")
    if name != FORMAT_NAME or not number.isdigit():
        raise PackedFileError(f"not a packed Compression Lens file (format {meta.get('format')!r}, expected {FORMAT})")
    if int(number) > VERSION:
        raise PackedFileError(f"this file was written by a newer Compression Lens (format version {number}); this "
                              f"one reads versions 1 to {VERSION}")
    return int(number)


def _config(meta: dict[str, str]) -> CompressionConfig:
    """The file's CompressionConfig; unknown steps or controls, or values out of range, in words."""
    unknown = [name for name in json.loads(meta.get("steps", "[]")) if name not in registry.STEPS]
    if unknown:
        raise PackedFileError(f"the file's setting uses a compression step this version does not have: "
                              f"{', '.join(map(repr, unknown))} (it has {', '.join(registry.ordered())})")
    try:
        settings = json.loads(meta["compression_config"])
    except (KeyError, ValueError):
        raise PackedFileError("the file does not hold its compression settings") from None
    fields = {f.name for f in dataclasses.fields(CompressionConfig)}
    if not isinstance(settings, dict):
        raise PackedFileError("the file's compression settings are not a table of controls")
    if extra := sorted(set(settings) - fields):
        raise PackedFileError(f"the file's settings name controls this version does not know: {', '.join(extra)}")
    try:
        return CompressionConfig(**settings)
    except (TypeError, ValueError) as err:
        raise PackedFileError(f"the file's compression settings are not valid here: {err}") from None


def _factor(model: nn.Module, factored: dict[str, int]) -> None:
    """Replace each named layer by the factored shell of its rank (weights come from the file)."""
    modules = dict(model.named_modules())
    for name, rank in factored.items():
        layer = modules.get(name)
        if layer is None or not isinstance(layer, (nn.Linear, nn.Conv2d)):
            raise PackedFileError(f"the file factors a layer {name!r} the model does not have")
        out, inner = layer.weight.shape[0], layer.weight[0].numel()
        # factor_layer builds the two layers exactly as the low-rank step does; a zero SVD gives their shapes.
        shell = factor_layer(layer, (torch.zeros(out, rank), torch.ones(rank), torch.zeros(rank, inner)), int(rank))
        if shell is None:
            raise PackedFileError(f"layer {name}: rank {rank} in the file would not make it smaller")
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, shell)


def _weight(layout: dict, tensors: dict[str, Tensor], cfg: CompressionConfig, version: int) -> Tensor:
    name = layout.get("name", "?")
    if version == 1:  # no coder in the layout: fp32 or uniform codes
        layout = {**layout, "coder": "raw32" if cfg.weight_bits == 32 else "uniform", "has_zero": True}
    prefix = f"{name}."
    own = {k[len(prefix):]: t for k, t in tensors.items() if k.startswith(prefix) and "." not in k[len(prefix):]}
    try:
        return codes.decode_layer(layout, own, cfg)
    except (KeyError, ValueError, RuntimeError, IndexError) as err:
        raise PackedFileError(f"layer {name}: the stored weights are damaged ({err})") from None


def _activations(model: nn.Module, cfg: CompressionConfig, tensors: dict[str, Tensor]) -> None:
    """What the activations step adds, from the file: fake-quantized inputs and the number format."""
    if cfg.act_bits != ACT_OFF:
        layers = prunable_layers(model)
        scale, zero = tensors.get(f"{ACT}.scale"), tensors.get(f"{ACT}.zero_point")
        if scale is None or zero is None or len(scale) != len(layers) or len(zero) != len(layers):
            raise PackedFileError("the file's activation ranges are missing or do not fit the model")
        for (_, module), s, z in zip(layers, scale.tolist(), zero.tolist()):
            module.register_forward_pre_hook(FakeQuantInput(s, int(z), 2**cfg.act_bits - 1))
    if cfg.precision != "fp32":
        model.to(DTYPES[cfg.precision])
        model.register_forward_pre_hook(CastInputs(DTYPES[cfg.precision]))
        model.register_forward_hook(CastOutput())


# ---------------------------------------------------------------- in words
def contents(cfg: CompressionConfig) -> str:
    """What the packed file of this setting holds, in words (the Export page's caption)."""
    running, coder = {step.name for step in cfg.pipeline()}, codes.coder_of(cfg)
    values = {"codebook": f"{cfg.share_bits}-bit indices into each layer's table of up to {2 ** cfg.share_bits} "
                          "shared fp32 values, with the table",
              "uniform": f"{cfg.weight_bits}-bit codes with their scales"
                         f"{' and zero points' if cfg.quant_scheme == 'affine' else ''}",
              "raw16": f"{cfg.precision} weights (16 bits each)", "raw32": "fp32 weights"}
    parts = [values[coder]]
    if "plan" in running and (plan := cfg.step("plan").parsed()) is not None:
        zero_points = " and zero points" if cfg.quant_scheme == "affine" else ""
        parts = [f"each layer the per-layer plan names in its own code ({plan.words()}): codes of its width with "
                 f"their scales{zero_points}, its zeros as a mask or positions where that is smaller, a 32-bit "
                 f"layer as {values[codes.coder_of(cfg.only('activations'))]}", f"the other layers as {values[coder]}"]
    if "lowrank" in running:
        parts.append("every low-rank layer as its two factors")
    if "prune" in running:
        parts.append("a sparsity mask or the nonzeros' positions where that is smaller than storing zeros")
    if cfg.act_bits != ACT_OFF:
        parts.append(f"the {cfg.act_bits}-bit activation ranges (a scale and zero point per layer)")
    return ", ".join(parts) + ", fp32 biases"


def check(blob: bytes, reference: nn.Module, x: Tensor) -> tuple[bool, str]:
    """(whether a packed file rebuilds `reference`, in words): same logits on `x`, `torch.equal`, or why not.

    `reference` (eval mode) is only read; a file unpack refuses gives (False, its reason)."""
    try:
        model, cfg, meta = unpack(blob)
    except PackedFileError as err:
        return False, f"This file cannot be loaded: {err}."
    with torch.no_grad():
        same = torch.equal(model(x), reference(x))
    what = f"a {meta['architecture']} with {cfg.describe()}"
    if same:
        return True, f"The file rebuilds {what}: its logits on {len(x)} test images equal this setting's, bit for bit."
    return False, f"The file holds {what}, which is not this page's model: its logits on {len(x)} test images differ."

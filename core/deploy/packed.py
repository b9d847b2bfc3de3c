"""The compressed weights stored as the Size card counts them, and a loader that rebuilds them bit-exactly.

For each prunable layer the encoding `core.metrics.weight_storage_bits` chose (the cheapest):
  "dense":  every weight's b-bit code (zeros stored as a value) + the scales (and zero points),
  "mask":   a bitmask of the n positions + each nonzero's code + the qparams of non-empty channels,
  "index":  each nonzero's flat position (ceil(log2 n) bits) + its code + the same qparams.
A nonzero's code needs only the nonzero levels (a ternary or binary nonzero is its sign, 1 bit);
fp32 weights are their raw 32 bits. Scales are float32, affine zero points int32, biases (and any
other parameter) float32 as they are. Codes, masks and positions are packed bit streams (numpy
`packbits`), one per layer and kind, so each rounds up to whole bytes.

Container: safetensors (no pickle; `safetensors.torch.load` reads it), every setting and the
per-layer layout in the header's metadata. The file is the Size card's bits, rounded up to bytes
per stream, plus safetensors' header (8 bytes of length, then JSON): `overhead` says how much.

`pack` needs the trained model and the config (the scales come from the pruned weights, as
`compress` computes them); `unpack` needs only the file and the model registry.
"""
from __future__ import annotations

import json
import struct
from dataclasses import asdict, replace

import numpy as np
import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

import models
from core.compression import CompressionConfig, compress
from core.compression.quantization import level_count, quantization_params, range_used
from core.layers import prunable_layers
from core.metrics import FP32_BITS, ceil_log2, side_bits
from core.training import TrainConfig

FORMAT = "compression-lens-packed/1"


# ---------------------------------------------------------------- bit streams
def pack_bits(values: np.ndarray, width: int) -> np.ndarray:
    """Unsigned integers `values` (< 2**width) as one big-endian bit stream of len * width bits, in bytes."""
    if width == 0 or values.size == 0:
        return np.zeros(0, np.uint8)
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    bits = (values.astype(np.uint64)[:, None] >> shifts) & np.uint64(1)
    return np.packbits(bits.astype(np.uint8).ravel())


def unpack_bits(stream: np.ndarray, width: int, count: int) -> np.ndarray:
    """The `count` integers of `width` bits in `stream` (`pack_bits`'s inverse), as uint64."""
    if width == 0 or count == 0:
        return np.zeros(count, np.uint64)
    bits = np.unpackbits(stream)[:count * width].reshape(count, width).astype(np.uint64)
    return (bits << np.arange(width - 1, -1, -1, dtype=np.uint64)).sum(1, dtype=np.uint64)


# ---------------------------------------------------------------- one layer
def _codes(pruned: Tensor, weight: Tensor, cfg: CompressionConfig) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(integer codes q, scale, zero point, zero code) of the compressed `weight`, per row (R, n)."""
    bits = cfg.weight_bits
    scale, zero, _, _ = quantization_params(pruned, bits, cfg.quant_scheme, cfg.quant_granularity, cfg.quant_range)
    rows = weight.detach().reshape(weight.shape[0], -1)
    s = scale.reshape(-1, 1) if scale.dim() else scale
    z = zero.reshape(-1, 1) if zero.dim() else zero
    if bits == 1 or range_used(bits, cfg.quant_range) == "twn":
        q = torch.sign(rows).to(torch.int64)
    else:
        q = torch.round(rows / s).to(torch.int64) + z
    return q, scale, zero, torch.broadcast_to(z, rows.shape)


def _rebuild(q: Tensor, scale: Tensor, zero: Tensor) -> Tensor:
    """Float weights (R, n) from codes, as torch's fake quantization computes them: (q - z) * s."""
    s = scale.reshape(-1, 1) if scale.dim() else scale
    z = zero.reshape(-1, 1) if zero.dim() else zero
    return (q - z).to(torch.float32) * s


def _value_code(q: Tensor, cfg: CompressionConfig) -> Tensor:
    """Dense code 0..L-1 of every weight (zeros included)."""
    if cfg.weight_bits == 1:
        return (q > 0).to(torch.int64)
    if _sign_code(cfg):
        return q + 1
    return q if cfg.quant_scheme == "affine" else q + (2 ** (cfg.weight_bits - 1) - 1)


def _nonzero_code(q: Tensor, zero_code: Tensor, cfg: CompressionConfig) -> Tensor:
    """Code 0..L-2 of a nonzero among the nonzero levels (the zero level skipped); a sign at 1 bit / ternary."""
    if _sign_code(cfg):
        return (q > 0).to(torch.int64)
    base = q if cfg.quant_scheme == "affine" else q + (2 ** (cfg.weight_bits - 1) - 1)
    return base - (q > zero_code).to(torch.int64)


def _encoding(n: int, z: int, u: int, v: int, i: int, all_q: int, kept_q: int, dense_ok: bool) -> tuple[str, int]:
    """The cheapest encoding and its bits, in the order and with the sums of `weight_storage_bits`."""
    options = [("mask", z * u + n + kept_q), ("index", z * (u + i) + kept_q)]
    if dense_ok:
        options.append(("dense", n * v + all_q))
    return min(options, key=lambda option: option[1])


def _quantized_parts(name: str, rows: Tensor, pruned: Tensor, cfg: CompressionConfig,
                     encoding: str) -> tuple[Tensor, dict[str, Tensor]]:
    """(the codes to store, the scales and zero points of the stored channels) of quantized weights (R, n)."""
    nonzero = rows.ne(0)
    q, scale, zero, zero_code = _codes(pruned, rows, cfg)
    if not torch.equal(_rebuild(q, scale, zero).masked_fill(~nonzero, 0.0), rows.to(torch.float32)):
        raise ValueError(f"layer {name}: the weights are not the codes of this setting (was it compressed so?)")
    keep = nonzero.any(1) if encoding != "dense" else torch.ones(rows.shape[0], dtype=torch.bool)
    if cfg.quant_granularity == "per_tensor":
        keep = keep.any().reshape(1)
    codes = _value_code(q, cfg).flatten() if encoding == "dense" else _nonzero_code(q, zero_code, cfg)[nonzero]
    tensors = {"scale": scale.reshape(-1)[keep].to(torch.float32)}
    if cfg.quant_scheme == "affine" and not _sign_code(cfg):
        tensors["zero_point"] = zero.reshape(-1)[keep].to(torch.int32)
    return codes, tensors


def _pack_layer(name: str, weight: Tensor, pruned: Tensor, cfg: CompressionConfig) -> tuple[dict, dict[str, Tensor]]:
    """(the layer's layout for the metadata, its tensors) for the compressed `weight`."""
    bits = cfg.weight_bits
    rows = weight.detach().reshape(weight.shape[0], -1)
    code = cfg.weight_code(rows)  # the Size card's code (core.metrics.coded_storage_bits)
    levels, has_zero = code.levels, code.has_zero
    v, u = ceil_log2(levels), ceil_log2(levels - has_zero)
    n, nonzero = rows.numel(), rows.ne(0)
    z, i = int(nonzero.sum()), ceil_log2(rows.numel())
    all_q, kept_q = side_bits(rows, code)
    encoding, size = _encoding(n, z, u, v, i, all_q, kept_q, has_zero or z == n)
    layout = {"name": name, "shape": list(weight.shape), "encoding": encoding, "bits": size, "nonzero": z,
              "value_bits": v, "nonzero_bits": u, "index_bits": i}
    if bits == FP32_BITS:  # raw float32 bits: 32 per stored weight
        raw = rows.contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
        codes, tensors, width = (raw.flatten() if encoding == "dense" else raw[nonzero]), {}, 32
    else:
        codes, tensors = _quantized_parts(name, rows, pruned, cfg, encoding)
        width = v if encoding == "dense" else u
    streams = {"codes": pack_bits(codes.numpy(), width)}
    flat = torch.nonzero(nonzero.flatten()).flatten().numpy()
    if encoding == "mask":
        streams["mask"] = np.packbits(nonzero.flatten().numpy())
    elif encoding == "index":
        streams["index"] = pack_bits(flat, i)
    out = {f"{name}.{k}": torch.from_numpy(s) for k, s in streams.items() if s.size}
    out.update({f"{name}.{k}": t.contiguous() for k, t in tensors.items() if t.numel()})
    return layout, out


# The steps whose codes this file stores; any other family in a setting makes `pack` refuse, in words.
PACKED_STEPS = ("prune", "quantize")


def packable(cfg: CompressionConfig) -> str | None:
    """Why this setting cannot be packed (a family whose stored form this file does not write yet), or None."""
    # Activation ranges are not weights: W4A8 stores the same weight codes as W4 (16-bit numbers would not).
    others = [step.title.lower() for step in cfg.pipeline() if step.name not in PACKED_STEPS
              and not (step.name == "activations" and getattr(step, "precision", "fp32") == "fp32")]
    if not others:
        return None
    return (f"The packed file stores pruning masks and uniform quantization codes; this setting also uses "
            f"{' and '.join(others)}, whose stored form (factors, codebooks, 16-bit numbers) it does not write "
            "yet. Download the ONNX file or the dense weights instead.")


def pack(original: nn.Module, cfg: CompressionConfig, train: TrainConfig, input_shape: tuple[int, ...],
         num_classes: int) -> bytes:
    """`compress(original, cfg)` as packed safetensors bytes (see the module docstring); `original` only read.

    Raises ValueError (`packable`'s words) for a setting with a family this file does not store.
    """
    if (problem := packable(cfg)) is not None:
        raise ValueError(problem)
    compressed = compress(original, cfg)
    pruned = compress(original, replace(cfg, weight_bits=FP32_BITS)) if cfg.quantized else compressed
    pruned_layers = dict(prunable_layers(pruned))
    layouts, tensors, packed_names = [], {}, set()
    for name, module in prunable_layers(compressed):
        layout, found = _pack_layer(name, module.weight, pruned_layers[name].weight, cfg)
        layouts.append(layout)
        tensors.update(found)
        packed_names.add(f"{name}.weight")
    for key, value in compressed.state_dict().items():
        if key not in packed_names:
            tensors[key] = value.detach().to(torch.float32).contiguous().clone()
    meta = {"format": FORMAT, "architecture": train.model, "dataset": train.dataset,
            "input_shape": json.dumps([int(s) for s in input_shape]), "num_classes": str(int(num_classes)),
            "train_config": json.dumps(asdict(train), sort_keys=True),
            "compression_config": json.dumps(asdict(cfg), sort_keys=True), "layers": json.dumps(layouts)}
    return safetensors_save(tensors, metadata=meta)


# ---------------------------------------------------------------- loading
def header(blob: bytes) -> tuple[int, dict]:
    """(bytes of the safetensors header, its JSON) of a packed file."""
    (length,) = struct.unpack("<Q", blob[:8])
    return 8 + length, json.loads(blob[8:8 + length])


def overhead(blob: bytes) -> int:
    """Bytes of the file that are not tensor data: the 8-byte length and the JSON header (settings, layout)."""
    return header(blob)[0]


def unpack(blob: bytes) -> tuple[nn.Module, CompressionConfig, dict[str, str]]:
    """(the compressed model rebuilt from a packed file, in eval mode, its config, the file's metadata)."""
    meta = header(blob)[1].get("__metadata__", {})
    if meta.get("format") != FORMAT:
        raise ValueError(f"not a packed Compression Lens file (format {meta.get('format')!r}, expected {FORMAT})")
    cfg = CompressionConfig(**json.loads(meta["compression_config"]))
    tensors = safetensors_load(blob)
    model = models.create_model(meta["architecture"], tuple(json.loads(meta["input_shape"])), int(meta["num_classes"]))
    state = {k: t for k, t in tensors.items() if k in model.state_dict()}
    for layout in json.loads(meta["layers"]):
        state[f"{layout['name']}.weight"] = _unpack_layer(layout, tensors, cfg)
    model.load_state_dict(state)
    return model.eval(), cfg, meta


def _unpack_layer(layout: dict, tensors: dict[str, Tensor], cfg: CompressionConfig) -> Tensor:
    name, shape, encoding = layout["name"], layout["shape"], layout["encoding"]
    n, z = int(np.prod(shape)), layout["nonzero"]
    stream = lambda kind: tensors.get(f"{name}.{kind}", torch.zeros(0, dtype=torch.uint8)).numpy()  # noqa: E731
    if encoding == "dense":
        positions = np.arange(n)
    elif encoding == "mask":
        positions = np.flatnonzero(np.unpackbits(stream("mask"))[:n])
    else:
        positions = unpack_bits(stream("index"), layout["index_bits"], z).astype(np.int64)
    width = layout["value_bits"] if encoding == "dense" else layout["nonzero_bits"]
    rows = shape[0]
    flat = torch.zeros(n, dtype=torch.float32)
    if cfg.weight_bits == FP32_BITS:
        values = unpack_bits(stream("codes"), 32, len(positions)).astype(np.uint32).view(np.float32)
        flat[torch.from_numpy(positions)] = torch.from_numpy(values)
        return flat.view(shape)
    codes = torch.from_numpy(unpack_bits(stream("codes"), width, len(positions)).astype(np.int64))
    row_of = torch.from_numpy(positions // (n // rows)) if rows else torch.zeros(0, dtype=torch.int64)
    scale, zero = _row_qparams(tensors, name, rows, encoding, row_of, cfg)
    q = _codes_to_q(codes, zero, cfg, dense=encoding == "dense")
    flat[torch.from_numpy(positions)] = (q - zero).to(torch.float32) * scale
    return flat.view(shape)


def _row_qparams(tensors: dict[str, Tensor], name: str, rows: int, encoding: str, row_of: Tensor,
                 cfg: CompressionConfig) -> tuple[Tensor, Tensor]:
    """Each stored weight's scale and zero point (per channel: of its row, among the stored channels)."""
    scale = tensors.get(f"{name}.scale", torch.zeros(0))
    zero = tensors.get(f"{name}.zero_point", torch.zeros(0, dtype=torch.int32)).to(torch.int64)
    if cfg.quant_granularity == "per_tensor":
        slot = torch.zeros_like(row_of)
    elif encoding == "dense":
        slot = row_of
    else:  # only channels with a nonzero are stored, in order: a weight's slot is its row's rank among them
        kept = torch.zeros(rows, dtype=torch.bool)
        kept[row_of] = True
        slot = (torch.cumsum(kept.to(torch.int64), 0) - 1)[row_of]
    return scale[slot], (zero[slot] if zero.numel() else torch.zeros_like(slot))


def _codes_to_q(codes: Tensor, zero: Tensor, cfg: CompressionConfig, dense: bool) -> Tensor:
    """The integer levels q of the stored codes (`_value_code` / `_nonzero_code` inverted)."""
    if _sign_code(cfg) and (cfg.weight_bits == 1 or not dense):
        return codes * 2 - 1  # a sign: 0 -> -1, 1 -> +1
    if _sign_code(cfg):
        return codes - 1      # ternary dense: 0, 1, 2 -> -1, 0, +1
    offset = 0 if cfg.quant_scheme == "affine" else 2 ** (cfg.weight_bits - 1) - 1
    base = codes if dense else codes + (codes >= zero + offset).to(torch.int64)  # the zero level was skipped
    return base - offset


def _sign_code(cfg: CompressionConfig) -> bool:
    """Binary or ternary: a nonzero is stored as its sign, and there is no zero point."""
    return cfg.weight_bits == 1 or level_count(cfg.weight_bits, cfg.quant_scheme, cfg.quant_range)[0] == 3

"""One stored layer's weights as the Size card counts them: codes, side information, bit streams.

A stored layer (core.layers.stored_layers: a Linear/Conv2d, or one factor of a low-rank layer) is
coded by `core.metrics.coded_storage_bits` with the setting's `cfg.weight_code(weight)`: n weights,
z nonzeros, i = ceil(log2 n) position bits, v = ceil(log2 L) bits a value, u bits a nonzero value.
The cheapest of three layouts is taken, in the accounting's order and with its sums:
  "mask":   a bitmask of the n positions + each nonzero's code + the side information of non-empty groups,
  "index":  each nonzero's flat position (i bits) + its code + the same side information,
  "dense":  every weight's code (zeros stored as a value) + the side information of every group.
What a code is, by coder (which step set the stored values):
  "raw32"     fp32 weights: their raw 32 bits (no side information),
  "raw16"     fp16 / bf16 computation (the activations step's precision): the raw 16 bits of each weight,
  "uniform"   uniform quantization: the integer level (a ternary or binary nonzero is its sign, 1 bit;
              an affine nonzero one of the 2^b - 1 levels but zero's) + per group a float32 scale (and
              an int32 zero point for affine codes); at the setting's width, or at the layer's own
              ("weight_bits" in its layout) for a layer a per-layer plan sets (core/deploy/packed_layers.py),
  "codebook"  weight sharing: the index into the layer's codebook (zero, if the layer has zeros, is one
              more value of a dense code) + the codebook itself, float32, one per tensor.
Codes, masks and positions are big-endian bit streams (numpy `packbits`), so each rounds up to whole bytes.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from core.compression import CompressionConfig
from core.compression.quantization import level_count, quantization_params, range_used
from core.compression.steps import WeightCode
from core.metrics import ceil_log2, side_bits

CODERS = ("raw32", "raw16", "uniform", "codebook")
RAW_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


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
    bits = np.unpackbits(stream)[:count * width]
    if bits.size < count * width:
        raise ValueError(f"a bit stream holds {bits.size} bits, {count * width} expected")
    bits = bits.reshape(count, width).astype(np.uint64)
    return (bits << np.arange(width - 1, -1, -1, dtype=np.uint64)).sum(1, dtype=np.uint64)


def coder_of(cfg: CompressionConfig) -> str:
    """Which coder stores this setting's weights: the step that sets the stored values (see the docstring)."""
    running = {step.name for step in cfg.pipeline()}
    if "share" in running:  # sharing replaces quantization when both are set
        return "codebook"
    if "quantize" in running:
        return "uniform"
    return "raw16" if "activations" in running and cfg.precision != "fp32" else "raw32"


# ---------------------------------------------------------------- encoding
def encode_layer(name: str, weight: Tensor, code: WeightCode, coder: str, cfg: CompressionConfig,
                 coded: Tensor | None = None, before: Tensor | None = None,
                 bits: int | None = None) -> tuple[dict, dict[str, Tensor]]:
    """(layout for the file's metadata, {kind: tensor}) of one stored layer's final `weight`.

    `code` is the Size card's (`cfg.weight_code(weight, layer=...)`). For "uniform": `coded` is the weight
    as quantization left it (float32; differs from `weight` only after fp16/bf16 casting), `before` the
    weight quantization started from (its scales come from it) and `bits` the layer's own width (a
    per-layer plan's; None: the setting's `cfg.weight_bits`). Nothing given is modified.
    """
    if bits is not None and bits != cfg.weight_bits:
        cfg = replace(cfg, weight_bits=int(bits))
    rows = weight.detach().reshape(weight.shape[0], -1)
    v, u = ceil_log2(code.levels), ceil_log2(code.levels - code.has_zero)
    n, nonzero = rows.numel(), rows.ne(0)
    z, i = int(nonzero.sum()), ceil_log2(n)
    all_side, kept_side = side_bits(rows, code)
    options = [("mask", z * u + n + kept_side), ("index", z * (u + i) + kept_side)]
    if code.has_zero or z == n:
        options.append(("dense", n * v + all_side))
    encoding, size = min(options, key=lambda option: option[1])  # first of equals, as the accounting
    dense = encoding == "dense"
    layout = {"name": name, "shape": list(weight.shape), "coder": coder, "encoding": encoding, "bits": size,
              "nonzero": z, "value_bits": v, "nonzero_bits": u, "index_bits": i,
              "has_zero": bool(code.has_zero)}
    if coder in ("raw32", "raw16"):
        width, mask = (32, 0xFFFFFFFF) if coder == "raw32" else (16, 0xFFFF)
        raw = rows.contiguous().view(torch.int32 if width == 32 else torch.int16).to(torch.int64) & mask
        codes, side = (raw.flatten() if dense else raw[nonzero]), {}
        if coder == "raw16":
            layout["dtype"] = "fp16" if weight.dtype == torch.float16 else "bf16"
    elif coder == "codebook":
        codes, side = _codebook_parts(rows, nonzero, code, dense)
    else:
        codes, side = _uniform_parts(coded.reshape(rows.shape), before, nonzero, cfg, dense)
        if bits is not None:
            layout["weight_bits"] = int(bits)  # a per-layer plan's layer in its own width (else the setting's)
    streams = {"codes": pack_bits(codes.numpy(), v if dense else u)}
    if encoding == "mask":
        streams["mask"] = np.packbits(nonzero.flatten().numpy())
    elif encoding == "index":
        streams["index"] = pack_bits(torch.nonzero(nonzero.flatten()).flatten().numpy(), i)
    out = {kind: torch.from_numpy(s) for kind, s in streams.items() if s.size}
    out.update({kind: t.contiguous() for kind, t in side.items() if t.numel()})
    return layout, out


def _codebook_parts(rows: Tensor, nonzero: Tensor, code: WeightCode, dense: bool) -> tuple[Tensor, dict[str, Tensor]]:
    """Indices into the layer's codebook (its distinct nonzero values, float32) and the codebook, if kept."""
    values = rows.to(torch.float32)
    codebook, inverse = torch.unique(values[nonzero], return_inverse=True)
    if codebook.numel() > code.levels - code.has_zero:
        raise ValueError(f"{codebook.numel()} distinct values where the setting stores {code.levels - code.has_zero}")
    if not dense:
        return inverse.to(torch.int64), {"codebook": codebook}
    index = torch.zeros(rows.shape, dtype=torch.int64)
    index[nonzero] = inverse.to(torch.int64) + int(code.has_zero)  # 0 is the zero value, when there is one
    return index.flatten(), {"codebook": codebook}


def _uniform_parts(coded: Tensor, before: Tensor, nonzero: Tensor, cfg: CompressionConfig,
                   dense: bool) -> tuple[Tensor, dict[str, Tensor]]:
    """Integer codes and the scales (and zero points) of the stored groups of quantized weights (R, n)."""
    q, scale, zero, zero_code = _levels(before, coded.to(torch.float32), cfg)
    keep = torch.ones(coded.shape[0], dtype=torch.bool) if dense else nonzero.any(1)
    if cfg.quant_granularity == "per_tensor":
        keep = keep.any().reshape(1)
    codes = _value_code(q, cfg).flatten() if dense else _nonzero_code(q, zero_code, cfg)[nonzero]
    side = {"scale": scale.reshape(-1)[keep].to(torch.float32)}
    if cfg.quant_scheme == "affine" and not sign_code(cfg):
        side["zero_point"] = zero.reshape(-1)[keep].to(torch.int32)
    return codes, side


def _levels(before: Tensor, rows: Tensor, cfg: CompressionConfig) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(integer levels q, scale, zero point, zero level) of quantized weights `rows` (R, n), per row."""
    bits = cfg.weight_bits
    scale, zero, _, _ = quantization_params(before, bits, cfg.quant_scheme, cfg.quant_granularity, cfg.quant_range)
    s = scale.reshape(-1, 1) if scale.dim() else scale
    z = zero.reshape(-1, 1) if zero.dim() else zero
    if bits == 1 or range_used(bits, cfg.quant_range) == "twn":
        q = torch.sign(rows).to(torch.int64)
    else:
        q = torch.round(rows / s).to(torch.int64) + z
    return q, scale, zero, torch.broadcast_to(z, rows.shape)


def _value_code(q: Tensor, cfg: CompressionConfig) -> Tensor:
    """Dense code 0..L-1 of every weight (zeros included)."""
    if cfg.weight_bits == 1:
        return (q > 0).to(torch.int64)
    if sign_code(cfg):
        return q + 1
    return q if cfg.quant_scheme == "affine" else q + (2 ** (cfg.weight_bits - 1) - 1)


def _nonzero_code(q: Tensor, zero_code: Tensor, cfg: CompressionConfig) -> Tensor:
    """Code 0..L-2 of a nonzero among the nonzero levels (the zero level skipped); a sign at 1 bit / ternary."""
    if sign_code(cfg):
        return (q > 0).to(torch.int64)
    base = q if cfg.quant_scheme == "affine" else q + (2 ** (cfg.weight_bits - 1) - 1)
    return base - (q > zero_code).to(torch.int64)


def sign_code(cfg: CompressionConfig) -> bool:
    """Binary or ternary: a nonzero is stored as its sign, and there is no zero point."""
    return cfg.weight_bits == 1 or level_count(cfg.weight_bits, cfg.quant_scheme, cfg.quant_range)[0] == 3


# ---------------------------------------------------------------- decoding
def decode_layer(layout: dict, tensors: dict[str, Tensor], cfg: CompressionConfig) -> Tensor:
    """The float32 weight (layout's shape) of one stored layer; `tensors` maps kind -> tensor (missing: empty).

    Raises ValueError when the streams do not hold what the layout says (a damaged file)."""
    shape, encoding, coder = layout["shape"], layout["encoding"], layout["coder"]
    if coder == "uniform" and layout.get("weight_bits", cfg.weight_bits) != cfg.weight_bits:
        cfg = replace(cfg, weight_bits=int(layout["weight_bits"]))  # a per-layer plan's layer, in its own width
    n, z = int(np.prod(shape)), int(layout["nonzero"])
    stream = lambda kind: tensors.get(kind, torch.zeros(0, dtype=torch.uint8)).numpy()  # noqa: E731
    if encoding == "dense":
        positions = np.arange(n)
    elif encoding == "mask":
        mask = np.unpackbits(stream("mask"))[:n]
        positions = np.flatnonzero(mask)
        if mask.size < n or positions.size != z:
            raise ValueError("its sparsity mask does not match its layout")
    else:
        positions = unpack_bits(stream("index"), layout["index_bits"], z).astype(np.int64)
        if positions.size and positions.max() >= n:
            raise ValueError("a weight position lies outside the layer")
    width = layout["value_bits"] if encoding == "dense" else layout["nonzero_bits"]
    codes = unpack_bits(stream("codes"), width, len(positions))
    flat = torch.zeros(n, dtype=torch.float32)
    where = torch.from_numpy(positions)
    if coder == "raw32":
        flat[where] = torch.from_numpy(codes.astype(np.uint32).view(np.float32).copy())
    elif coder == "raw16":
        raw = torch.from_numpy(codes.astype(np.uint16).view(np.int16).copy())
        flat[where] = raw.view(RAW_DTYPES[layout["dtype"]]).to(torch.float32)
    elif coder == "codebook":
        flat[where] = _from_codebook(torch.from_numpy(codes.astype(np.int64)), tensors, layout, encoding == "dense")
    elif coder == "uniform":
        flat[where] = _from_levels(torch.from_numpy(codes.astype(np.int64)), tensors, shape[0], n, where, encoding, cfg)
    else:
        raise ValueError(f"unknown coder {coder!r}")
    return flat.view(shape)


def _from_codebook(codes: Tensor, tensors: dict[str, Tensor], layout: dict, dense: bool) -> Tensor:
    """Float values of codebook indices (a dense code's 0 is the zero value when the layer has zeros)."""
    codebook = tensors.get("codebook", torch.zeros(0))
    table = torch.cat([torch.zeros(1), codebook]) if dense and layout["has_zero"] else codebook
    if codes.numel() and int(codes.max()) >= table.numel():
        raise ValueError("a codebook index points past its codebook")
    return table[codes]


def _from_levels(codes: Tensor, tensors: dict[str, Tensor], rows: int, n: int, where: Tensor, encoding: str,
                 cfg: CompressionConfig) -> Tensor:
    """Float values (q - z) * s of uniform codes at flat positions `where`."""
    row_of = where // (n // rows) if rows else torch.zeros(0, dtype=torch.int64)
    scale = tensors.get("scale", torch.zeros(0))
    zero = tensors.get("zero_point", torch.zeros(0, dtype=torch.int32)).to(torch.int64)
    if cfg.quant_granularity == "per_tensor":
        slot = torch.zeros_like(row_of)
    elif encoding == "dense":
        slot = row_of
    else:  # only channels with a nonzero are stored, in order: a weight's slot is its row's rank among them
        kept = torch.zeros(rows, dtype=torch.bool)
        kept[row_of] = True
        slot = (torch.cumsum(kept.to(torch.int64), 0) - 1)[row_of]
    if slot.numel() and (int(slot.max()) >= scale.numel() or (zero.numel() and int(slot.max()) >= zero.numel())):
        raise ValueError("it has fewer scales than its stored channels")
    s, zp = scale[slot], (zero[slot] if zero.numel() else torch.zeros_like(slot))
    q = _codes_to_q(codes, zp, cfg, dense=encoding == "dense")
    return (q - zp).to(torch.float32) * s


def _codes_to_q(codes: Tensor, zero: Tensor, cfg: CompressionConfig, dense: bool) -> Tensor:
    """The integer levels q of the stored codes (`_value_code` / `_nonzero_code` inverted)."""
    if sign_code(cfg) and (cfg.weight_bits == 1 or not dense):
        return codes * 2 - 1  # a sign: 0 -> -1, 1 -> +1
    if sign_code(cfg):
        return codes - 1      # ternary dense: 0, 1, 2 -> -1, 0, +1
    offset = 0 if cfg.quant_scheme == "affine" else 2 ** (cfg.weight_bits - 1) - 1
    base = codes if dense else codes + (codes >= zero + offset).to(torch.int64)  # the zero level was skipped
    return base - offset

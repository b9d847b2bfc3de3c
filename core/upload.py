"""Bring your own weights: read, validate and load a state_dict for a registered architecture.

Accepted: safetensors files, and torch state_dicts saved with `torch.save` (the zip format
of torch >= 1.6, usually .pt/.pth), read with `torch.load(weights_only=True)`. Nothing in an
upload is ever executed: safetensors holds only a JSON header and raw tensor bytes, and the
`weights_only` unpickler refuses every global outside torch's allowlist (a pickle that would
call `open` or `os.system` raises instead). Raw pickles and legacy torch files are refused
before any unpickler sees them.

A state_dict is accepted only if it is a flat dict of tensors whose names and shapes match
`models.create_model(arch, input_shape, num_classes).state_dict()` exactly, with float dtypes
and finite values. Every refusal is an `UploadError` whose message is meant for the user.
"""
from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from safetensors.torch import load as safetensors_load
from torch import Tensor, nn

import models

MAX_BYTES = 20 * 1024 * 1024                  # 20 MB: LeNet-300-100 on CIFAR-10 is under 4 MB
EXTENSIONS = (".safetensors", ".pt", ".pth")
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_ZIP_MAGIC = b"PK\x03\x04"                    # torch.save's default container since torch 1.6
_SHOWN = 4                                    # names listed in a message before "and N more"


class UploadError(ValueError):
    """An upload was refused; str(err) says why, in words for the person who uploaded it.

    `detail` is the reader's own technical message (for the curious, shown folded away), cleaned
    by `technical_detail`; "" when the app's words say everything.
    """

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Sentences of torch's refusal that tell the reader how to load the file anyway (weights_only=False,
# allowlisting the global): advice to switch the safety off, which this app never gives.
_UNSAFE_ADVICE = re.compile(r"weights_only|safe_globals|trust|can still be loaded|documentation of torch\.load",
                            re.IGNORECASE)


def technical_detail(message: str) -> str:
    """A reader's error message without terminal colour codes and without advice to load unsafely."""
    text = _ANSI.sub("", message)
    sentences = re.split(r"(?<=[.!?])\s+|\n+", text)
    kept = [s.strip() for s in sentences if s.strip() and not _UNSAFE_ADVICE.search(s)]
    return " ".join(kept)


@dataclass(frozen=True, eq=False)
class UploadedWeights:
    """Validated weights for `architecture` on `dataset`: float32 CPU copies in the model's key order.

    digest is `state_digest(state)` (sha256 hex), which names these weights in caches.
    metadata is the safetensors header metadata ({} for torch files).
    """

    architecture: str
    dataset: str
    state: dict[str, Tensor]
    digest: str
    filename: str
    size_bytes: int
    metadata: dict[str, str] = field(default_factory=dict)


def _names(names: Sequence[str]) -> str:
    names = sorted(names)
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(repr(n) for n in names[:_SHOWN]) + more


def read_weights(blob: bytes, filename: str, max_bytes: int = MAX_BYTES) -> tuple[object, dict[str, str]]:
    """The object stored in an uploaded file, and its safetensors metadata ({} for torch files).

    The format is decided by the bytes, not the name (the name must still end in one of
    EXTENSIONS). Raises UploadError for anything else, including every unpickling failure.
    """
    if not filename.lower().endswith(EXTENSIONS):
        raise UploadError(f"{filename!r} is not a weights file: upload a {', '.join(EXTENSIONS)} file.")
    if len(blob) > max_bytes:
        raise UploadError(f"The file is {len(blob) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.")
    if blob.startswith(_ZIP_MAGIC):
        return _torch_state(blob), {}
    header = _safetensors_header(blob)
    if header is None:
        raise UploadError("This is neither a safetensors file nor a state_dict saved with torch.save "
                          "(raw pickles and legacy torch files are refused: they can carry code).")
    try:
        state = safetensors_load(blob)
    except Exception as err:  # the Rust parser rejects inconsistent offsets, dtypes, truncation
        raise UploadError("The safetensors file is damaged or incomplete: its header does not match the data "
                          "after it. Save it again, or upload it again if the upload was cut short.",
                          technical_detail(str(err))) from err
    metadata = header.get("__metadata__") or {}
    return state, {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}


def _torch_state(blob: bytes) -> object:
    try:
        return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError for forbidden globals, RuntimeError for broken zips
        detail = technical_detail(str(err)) or type(err).__name__
        wanted = re.search(r"GLOBAL ([\w.]+)", _ANSI.sub("", str(err)))
        if isinstance(err, pickle.UnpicklingError) or wanted:
            what = f" (`{wanted.group(1)}`)" if wanted else ""
            raise UploadError(f"The torch file was refused: besides tensors it asks to rebuild other Python "
                              f"objects{what}, and this app only ever reads tensors. Nothing in the file was run. "
                              "Save the weights alone, with `torch.save(model.state_dict(), 'my.pt')`, or as "
                              "safetensors.", detail) from err
        raise UploadError("The torch file is damaged or incomplete: it cannot be read as a torch.save archive. "
                          "Save it again, or upload it again if the upload was cut short.", detail) from err


def _safetensors_header(blob: bytes) -> dict | None:
    """The JSON header of a safetensors file (8-byte little-endian length, then JSON), or None.

    Read by hand because safetensors' Python API reads metadata only from files on disk.
    """
    if len(blob) < 10:
        return None
    (length,) = struct.unpack("<Q", blob[:8])
    if not 2 <= length <= len(blob) - 8 or blob[8:9] != b"{":
        return None
    try:
        header = json.loads(blob[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return header if isinstance(header, dict) else None


def expected_shapes(architecture: str, input_shape: Sequence[int], num_classes: int) -> dict[str, tuple[int, ...]]:
    """Every tensor name an upload for `architecture` must hold, with its shape, in the model's order."""
    model = models.create_model(architecture, tuple(input_shape), num_classes)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def check_state_dict(obj: object, architecture: str, input_shape: Sequence[int], num_classes: int) -> dict[str, Tensor]:
    """`obj` as float32 copies in the model's key order, if it fits `architecture` exactly; else UploadError.

    The checks, in order: a flat dict of str -> Tensor; the same names; the same shapes;
    float dtypes; finite values. `obj` is not modified.
    """
    if not isinstance(obj, dict):
        raise UploadError(f"Expected a state_dict (a dict of tensors), found a {type(obj).__name__}.")
    nested = [k for k, v in obj.items() if isinstance(v, dict)]
    if nested:
        raise UploadError(f"Expected a flat dict of tensors, but {_names(nested)} holds a dict: "
                          "save `model.state_dict()` itself, not a checkpoint around it.")
    odd = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if odd:
        raise UploadError(f"Every entry must be a tensor; {_names(odd)} is not.")
    expected = models.create_model(architecture, tuple(input_shape), num_classes).state_dict()
    missing, unexpected = set(expected) - set(obj), set(obj) - set(expected)
    if missing or unexpected:
        parts = ([f"missing {_names(missing)}"] if missing else []) + (
            [f"unexpected {_names(unexpected)}"] if unexpected else [])
        raise UploadError(f"The tensor names do not match {architecture}: {'; '.join(parts)}.")
    shapes = [f"{k} is {tuple(obj[k].shape)}, expected {tuple(v.shape)}" for k, v in expected.items()
              if obj[k].shape != v.shape]
    if shapes:
        raise UploadError(f"Wrong shapes for {architecture}: " + "; ".join(shapes[:_SHOWN]) + ".")
    not_float = [f"{k} ({obj[k].dtype})" for k in expected if obj[k].dtype not in FLOAT_DTYPES]
    if not_float:
        raise UploadError(f"Weights must be floating point; {', '.join(not_float[:_SHOWN])} is not.")
    broken = [k for k in expected if not torch.isfinite(obj[k]).all()]
    if broken:
        raise UploadError(f"{_names(broken)} contains NaN or infinite values.")
    return {k: obj[k].detach().to("cpu", torch.float32).contiguous().clone() for k in expected}


def match_architecture(obj: object, input_shape: Sequence[int], num_classes: int, candidates: Sequence[str],
                       preferred: str) -> tuple[str, dict[str, Tensor]]:
    """The first of `preferred`, then `candidates`, that `obj` fits, with the checked state.

    When none fits, the UploadError is the one for `preferred` (the user's chosen model),
    which names the exact mismatch.
    """
    order = [preferred, *(c for c in candidates if c != preferred)]
    first_error = None
    for architecture in order:
        try:
            return architecture, check_state_dict(obj, architecture, input_shape, num_classes)
        except UploadError as err:
            first_error = first_error or err
            if not isinstance(obj, dict) or any(not isinstance(v, Tensor) for v in obj.values()):
                break  # not a state_dict at all: no architecture will do
    raise first_error


def state_digest(state: dict[str, Tensor]) -> str:
    """sha256 (hex) over every name, dtype, shape and byte, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def load_upload(blob: bytes, filename: str, dataset: str, input_shape: Sequence[int], num_classes: int,
                candidates: Sequence[str], preferred: str, max_bytes: int = MAX_BYTES) -> UploadedWeights:
    """Read, validate and name an uploaded file for one of `candidates` on `dataset`; UploadError if refused."""
    obj, metadata = read_weights(blob, filename, max_bytes)
    try:
        architecture, state = match_architecture(obj, input_shape, num_classes, candidates, preferred)
    except UploadError as err:
        made_for = metadata.get("dataset")
        if made_for and made_for != dataset:
            raise UploadError(f"{err} (The file says it was made for the {made_for!r} data set; "
                              f"this view uses {dataset!r}.)") from err
        raise
    return UploadedWeights(architecture=architecture, dataset=dataset, state=state, digest=state_digest(state),
                           filename=filename, size_bytes=len(blob), metadata=metadata)


def build_model(upload: UploadedWeights, input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """A fresh model of the upload's architecture holding its weights, in eval mode (the upload is copied)."""
    model = models.create_model(upload.architecture, tuple(input_shape), num_classes)
    model.load_state_dict({k: v.clone() for k, v in upload.state.items()}, strict=True)
    return model.eval()

"""Every deployable file of one setting, built once: the model as it runs, ONNX fp32 and int8, packed weights.

`build(original, cfg, ...)` compresses a copy (`core.compression.compress`), cuts out the units
structured pruning emptied (`core.deploy.shrink`), exports the result to ONNX fp32 and int8, packs
the compressed weights as the Size card counts them, and checks both ONNX files against the
simulated PyTorch model on the whole test set. The original (`CompressionConfig()`) goes through
the same path, so both columns of the Deployment page are measured alike. Nothing given is modified.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from core.compression import CompressionConfig, compress
from core.deploy import onnx_export, packed
from core.deploy.shrink import counts, cut_empty_units
from core.layers import prunable_layers
from core.training import TrainConfig

FILE_KINDS = ("ONNX fp32", "ONNX int8", "packed weights")


@dataclass(frozen=True, eq=False)
class Artifacts:
    """One setting's deployable model and files (bytes), with what they cost and how they compare.

    model: the model as deployed (the shrunk one after structured pruning), eval mode, shared: read only.
    params / macs: of that model as it runs (every weight of its dense shape; see shrink.counts);
    units: outputs of its prunable layers but the classes'.
    checks: the ONNX files against the simulated PyTorch model on the whole test set.
    notes: what of the setting the files cannot carry as such, in words.
    """

    config: CompressionConfig
    model: nn.Module
    onnx_fp32: bytes
    onnx_int8: bytes | None
    packed: bytes | None  # None: a family the packed file does not store yet (see notes)
    params: int
    macs: int
    units: int
    checks: tuple[onnx_export.Check, ...]
    notes: tuple[str, ...]

    @property
    def file_bytes(self) -> dict[str, int]:
        """Bytes on disk of each file (the int8 one is missing when it could not be made)."""
        sizes = {"ONNX fp32": len(self.onnx_fp32)}
        if self.packed is not None:
            sizes["packed weights"] = len(self.packed)
        if self.onnx_int8 is not None:
            sizes["ONNX int8"] = len(self.onnx_int8)
        return sizes


def build(original: nn.Module, cfg: CompressionConfig, train: TrainConfig, x_train: Tensor, x_test: Tensor,
          y_test: Tensor, num_classes: int) -> Artifacts:
    """The Artifacts of `cfg` applied to `original` (eval mode; read only), checked on (x_test, y_test)."""
    input_shape = tuple(x_test.shape[1:])
    simulated = compress(original, cfg).eval()
    deployed = cut_empty_units(simulated, input_shape)
    fp32 = onnx_export.onnx_fp32(deployed, input_shape)
    notes = list(onnx_export.export_notes(cfg))
    checks = [onnx_export.check(fp32, "ONNX Runtime fp32", simulated, x_test, y_test)]
    try:
        source = fp32 if cfg.precision == "fp32" else onnx_export.onnx_fp32(deployed, input_shape, float32=True)
        int8 = onnx_export.onnx_int8(source, onnx_export.calibration_images(x_train))
        checks.append(onnx_export.check(int8, "ONNX Runtime int8", simulated, x_test, y_test))
    except Exception as err:  # ONNX Runtime's quantizer refuses some graphs (e.g. nothing left to quantize)
        int8 = None
        notes.append(f"ONNX Runtime could not quantize this model to int8 ({type(err).__name__}: {err}).")
    macs, params = counts(deployed, input_shape)
    units = sum(m.weight.shape[0] for _, m in prunable_layers(deployed)[:-1])
    problem = packed.packable(cfg)
    blob = None if problem else packed.pack(original, cfg, train, input_shape, num_classes)
    if problem:
        notes.append(problem)
    return Artifacts(cfg, deployed.requires_grad_(False), fp32, int8, blob, params, macs, units,
                     tuple(checks), tuple(notes))


"""The compressed model as ONNX files (fp32 and int8) run by ONNX Runtime, checked against the simulation.

- `onnx_fp32`: `torch.onnx.export` (the TorchScript exporter, `dynamo=False`; input "x" with a
  dynamic batch axis, output "y" = logits) straight into memory. The file holds the simulated
  weights as they are: b-bit levels stored as float32, pruned weights as stored zeros.
- `onnx_int8`: ONNX Runtime's static quantization (`quantize_static`, QDQ format, int8 weights
  per channel, uint8 activations) calibrated on training images through a `CalibrationDataReader`.
  ONNX Runtime picks its own 8-bit grid: our b-bit levels are requantized, so the int8 model is
  not the simulation, and `check` says by how much.
- `check`: an exported model against the simulated PyTorch one on a whole labelled set:
  accuracy of each and agreement of their predictions (`Check`).
- `session`: a CPU InferenceSession with one intra-op and one inter-op thread.

Files are built in memory or in a temporary folder that is removed; no model given is modified.
"""
from __future__ import annotations

import copy
import io
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from torch import Tensor, nn

from core.compression import CompressionConfig
from core.compression.activations import ACT_OFF, CastInputs, CastOutput, FakeQuantInput

OPSET = 17
CALIBRATION_IMAGES = 256
CALIBRATION_BATCH = 32
RUN_BATCH = 256


def onnx_fp32(model: nn.Module, input_shape: tuple[int, ...], float32: bool = False) -> bytes:
    """The model (read only: a copy is exported) as ONNX fp32 bytes, batch size free. A bf16 model (and with
    `float32`, an fp16 one: ONNX Runtime's quantizer takes float32 graphs only) is computed in float32."""
    twin = _exportable(copy.deepcopy(model).eval(), float32)
    buffer = io.BytesIO()
    # The TorchScript exporter (dynamo=False) warns that it is legacy; it is the one checked here (REFERENCE §9).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(twin, (torch.zeros(1, *input_shape),), buffer, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=OPSET, dynamo=False)
    return buffer.getvalue()


class _FakeQuantOps:
    """Forward pre-hook computing what `FakeQuantInput` does with ONNX's elementary operators.

    ONNX's QuantizeLinear only takes 8-bit ranges, so torch's exporter refuses fake quantization to
    [0, 2^b - 1] for b < 8. This is torch's fake_quantize kernel written out, the same numbers:
    (clamp(round(x * (1 / s)) + z, 0, qmax) - z) * s, rounding half to even as both do.
    """

    def __init__(self, hook: FakeQuantInput) -> None:
        self.inverse = torch.tensor(1.0 / hook.scale, dtype=torch.float32)  # as the kernel: 1 / s in float32
        self.scale = torch.tensor(hook.scale, dtype=torch.float32)
        self.zero, self.qmax = float(hook.zero_point), float(hook.qmax)

    def __call__(self, _module: nn.Module, args: tuple) -> tuple:
        x = args[0]
        coded = (torch.round(x.float() * self.inverse) + self.zero).clamp(0.0, self.qmax)
        return ((coded - self.zero) * self.scale).to(x.dtype), *args[1:]


def _exportable(model: nn.Module, float32: bool = False) -> nn.Module:
    """`model` (a copy) with fake-quantized inputs below 8 bits computed by elementary operators, and a
    bf16 model brought to float32 (exact for its weights): ONNX Runtime's CPU has no bf16 Conv or Gemm."""
    bf16 = any(p.dtype == torch.bfloat16 or (float32 and p.dtype == torch.float16) for p in model.parameters())
    for module in model.modules():
        for hooks in (module._forward_pre_hooks, module._forward_hooks):
            for key, hook in list(hooks.items()):
                if isinstance(hook, FakeQuantInput) and hook.qmax != 255:
                    hooks[key] = _FakeQuantOps(hook)
                elif bf16 and isinstance(hook, (CastInputs, CastOutput)):
                    del hooks[key]
    return model.to(torch.float32) if bf16 else model


def onnx_codebook(fp32: bytes, max_values: int = 256) -> bytes:
    """`fp32` (ONNX bytes) with every weight of at most `max_values` distinct values (weight sharing's) stored
    as uint8 indices into a float32 table: Cast(indices) -> Gather(table) rebuilds it in the graph.

    The same numbers as `fp32` (Gather copies the table's values), about 4x smaller for the shared weights;
    ONNX Runtime may fold the Gather when it loads the file, so it runs as fast as the fp32 one, no faster.
    Tensors of one dimension (biases) and other dtypes stay as they are.
    """
    model = onnx.load_from_string(fp32)
    graph = model.graph
    kept, nodes = [], []
    for init in graph.initializer:
        values = numpy_helper.to_array(init)
        table, index = np.unique(values, return_inverse=True)
        if values.dtype != np.float32 or values.ndim < 2 or len(table) > max_values:
            kept.append(init)
            continue
        kept += [numpy_helper.from_array(table.astype(np.float32), f"{init.name}.codebook"),
                 numpy_helper.from_array(index.reshape(values.shape).astype(np.uint8), f"{init.name}.indices")]
        nodes += [onnx.helper.make_node("Cast", [f"{init.name}.indices"], [f"{init.name}.indices_int"],
                                        to=onnx.TensorProto.INT32),
                  onnx.helper.make_node("Gather", [f"{init.name}.codebook", f"{init.name}.indices_int"], [init.name],
                                        axis=0)]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + rest)
    onnx.checker.check_model(model)
    return model.SerializeToString()


class _Images(CalibrationDataReader):
    """Feeds calibration images to ONNX Runtime's quantizer in batches."""

    def __init__(self, images: Tensor) -> None:
        self._batches = iter([{"x": images[i:i + CALIBRATION_BATCH].numpy()}
                              for i in range(0, len(images), CALIBRATION_BATCH)])

    def get_next(self) -> dict | None:
        return next(self._batches, None)


def calibration_images(x_train: Tensor, count: int = CALIBRATION_IMAGES, seed: int = 0) -> Tensor:
    """`count` training images chosen at random (fixed seed), float32, contiguous (x_train not changed)."""
    order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed))[:count]
    return x_train[order].detach().to(torch.float32).contiguous()


def onnx_int8(fp32: bytes, calibration: Tensor) -> bytes:
    """`fp32` (ONNX bytes) statically quantized to int8 (QDQ), calibrated on `calibration` (N, C, H, W)."""
    quant_logger = logging.getLogger("onnxruntime.quantization")
    with tempfile.TemporaryDirectory(prefix="compression-lens-onnx-") as folder:
        source, target = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(fp32)
        level = logging.getLogger().level
        try:  # the quantizer logs a hint (run quant_pre_process first) on the root logger: not for the app's log
            logging.getLogger().setLevel(logging.ERROR)
            quant_logger.setLevel(logging.ERROR)
            quantize_static(str(source), str(target), _Images(calibration), quant_format=QuantFormat.QDQ,
                            per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
        finally:
            logging.getLogger().setLevel(level)
        return target.read_bytes()


def session(blob: bytes) -> ort.InferenceSession:
    """An ONNX Runtime CPU session of `blob` with one thread (the machine's cores are shared)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(blob, sess_options=options, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, x: Tensor, batch: int = RUN_BATCH) -> np.ndarray:
    """Logits (N, K) of the session on x (N, C, H, W), in batches of `batch`."""
    images = x.detach().to(torch.float32).numpy()
    return np.concatenate([sess.run(["y"], {"x": images[i:i + batch]})[0] for i in range(0, len(images), batch)])


@dataclass(frozen=True)
class Check:
    """An exported model beside the simulated one on the same labelled images (fractions 0..1)."""

    runtime: str            # "ONNX Runtime fp32" | "ONNX Runtime int8"
    images: int
    accuracy: float         # of the exported model
    simulated_accuracy: float
    agreement: float        # share of images where both predict the same class
    max_logit_difference: float


def check(blob: bytes, runtime: str, simulated: nn.Module, x: Tensor, y: Tensor) -> Check:
    """Run `blob` in ONNX Runtime and the simulated model (eval mode, read only) in PyTorch on (x, y)."""
    exported = run(session(blob), x)
    with torch.inference_mode():
        reference = torch.cat([simulated(x[i:i + RUN_BATCH]) for i in range(0, len(x), RUN_BATCH)]).numpy()
    labels = torch.as_tensor(y).numpy()
    mine, theirs = exported.argmax(1), reference.argmax(1)
    return Check(runtime, len(labels), float((mine == labels).mean()), float((theirs == labels).mean()),
                 float((mine == theirs).mean()), float(np.abs(exported - reference).max()))


def export_notes(cfg: CompressionConfig) -> list[str]:
    """What of this setting the ONNX files cannot carry as such, in words (empty: everything is real)."""
    notes = []
    if cfg.prune_amount > 0 and cfg.prune_method != "structured":
        notes.append("Unstructured pruning is only a mask here: ONNX Runtime has no sparse kernel for these layers, "
                     "so the files store the zeros and multiply by them (no smaller, no faster).")
    if cfg.quantized:
        notes.append(f"{cfg.weight_bits}-bit weights have no ONNX Runtime kernel: the fp32 file stores the "
                     f"{cfg.weight_bits}-bit levels as 32-bit floats (the same model), and the int8 file lets "
                     "ONNX Runtime requantize them onto its own 8-bit grid (a slightly different model: see the "
                     "agreement).")
    for step in cfg.pipeline():
        if step.name == "lowrank":
            notes.append("Low-rank layers are exported as they are stored: two smaller layers each (real savings).")
        elif step.name == "share":
            notes.append(f"Weight sharing has no ONNX Runtime kernel: the ONNX files hold each of the "
                         f"{2 ** cfg.share_bits} shared values per layer as ordinary 32-bit weights (the same "
                         "model, no smaller); the Export page's *ONNX, shared values* file stores them as uint8 "
                         "indices into a table (Gather), and the packed weights file as b-bit indices and the codebook.")
        elif step.name == "activations" and cfg.act_bits != ACT_OFF:
            notes.append(f"{cfg.act_bits}-bit activations are simulated: the fp32 file rounds every layer's input "
                         "with ordinary float operators (the same model), the int8 file uses ONNX Runtime's own "
                         "8-bit activation ranges instead.")
        elif step.name not in ("prune", "quantize", "activations"):
            notes.append(f"{step.title} is simulated: the ONNX files compute its values with ordinary float "
                         "operations, not with a kernel of its own (no smaller, no faster for it).")
        if step.name == "activations" and cfg.precision == "fp16":
            notes.append("fp16 computation is exported as fp16 weights with casts; ONNX Runtime's CPU kernels "
                         "give it no speed-up here (its sums are rounded differently: see the agreement). The int8 "
                         "file is quantized from the same weights computed in fp32 (the quantizer takes fp32 only).")
        elif step.name == "activations" and cfg.precision == "bf16":
            notes.append("ONNX Runtime's CPU has no bf16 kernels: the ONNX files compute the bf16 weights in fp32 "
                         "(a slightly different model from the bf16 simulation: see the agreement).")
    return notes

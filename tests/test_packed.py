"""The packed weights file for every compression family and the pairs the pipeline allows: the loader
rebuilds the compressed model bit for bit (weights and logits `torch.equal`), the file is the Size card's
size plus the overhead core.deploy.packed documents, bad files are refused in words, inputs unchanged.
Also: ONNX fp32 of the low-rank and weight-shared models matches PyTorch to 1e-5.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import nn

import models
from core.compression import CompressionConfig, compress
from core.compression import steps as registry
from core.data import load_dataset
from core.deploy import onnx_export, packed
from core.layers import is_factored, prunable_layers, stored_layers
from core.metrics import compression_report, layer_stats, model_storage_bits
from core.training import TrainConfig, load_or_train
from core.warm import recipe

SHAPE = (1, 8, 8)

FAMILIES = {
    "lowrank energy": dict(rank_kept=0.6),
    "lowrank global rank": dict(rank_kept=0.3, rank_mode="fraction", rank_scope="global"),
    "share 4": dict(share_bits=4),
    "share 1": dict(share_bits=1),
    "fp16": dict(precision="fp16"),
    "bf16": dict(precision="bf16"),
    "act 4 minmax": dict(act_bits=4),
    "act 8 histogram": dict(act_bits=8, act_observer="histogram"),
}
PAIRS = {
    "prune + share": dict(prune_amount=0.5, share_bits=3),
    "prune 95 + share (positions)": dict(prune_amount=0.95, share_bits=2),
    "prune 100 + share": dict(prune_amount=1.0, share_bits=4),
    "lowrank + quantize": dict(rank_kept=0.7, weight_bits=4),
    "lowrank + prune + quantize affine": dict(rank_kept=0.7, prune_amount=0.3, weight_bits=3, quant_scheme="affine"),
    "lowrank + structured": dict(rank_kept=0.8, prune_amount=0.4, prune_method="structured"),
    "lowrank + share": dict(rank_kept=0.6, share_bits=3),
    "W4A8": dict(weight_bits=4, act_bits=8),
    "W2 ternary A4 per tensor": dict(weight_bits=2, act_bits=4, quant_granularity="per_tensor"),
    "W8 + bf16": dict(weight_bits=8, quant_scheme="affine", precision="bf16"),
    "share + fp16": dict(share_bits=5, precision="fp16"),
    "prune + fp16": dict(prune_amount=0.7, precision="fp16"),
    "share and quantize (sharing applies)": dict(share_bits=3, weight_bits=4),
    "everything": dict(rank_kept=0.5, prune_amount=0.5, prune_method="structured", share_bits=2, act_bits=6,
                       precision="fp16"),
}
SETTINGS = {**FAMILIES, **PAIRS}


def _random(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return models.create_model(name, SHAPE, 10).eval()


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained_mlp(digits):
    train = recipe("mlp", "digits")
    return train, load_or_train(train, digits).model.eval()


def _card_bytes(compressed: nn.Module, cfg: CompressionConfig) -> float:
    """The Size card's bytes (core.metrics, as compression_report computes size_compressed_bits)."""
    return model_storage_bits(compressed, layer_stats(compressed, SHAPE, cfg)) / 8


def _round_trip(model: nn.Module, cfg: CompressionConfig, train: TrainConfig, x: torch.Tensor) -> bytes:
    before = _state(model)
    blob = packed.pack(model, cfg, train, SHAPE, 10, calibration=x)
    rebuilt, read_cfg, meta = packed.unpack(blob)
    compressed = compress(model, cfg, calibration=x).eval()
    assert read_cfg == cfg and meta["architecture"] == train.model and not rebuilt.training
    assert list(rebuilt.state_dict()) == list(compressed.state_dict())
    for (key, expected), found in zip(compressed.state_dict().items(), rebuilt.state_dict().values()):
        assert expected.dtype == found.dtype and torch.equal(expected, found), key
    with torch.no_grad():
        assert torch.equal(rebuilt(x), compressed(x))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # input unchanged
    # Size: the card's bytes + under one byte per bit stream (codes, and a mask or positions) + the overhead.
    stored = len(stored_layers(compressed))
    padding = len(blob) - packed.overhead(blob) - _card_bytes(compressed, cfg)
    assert 0 <= padding < 2 * stored
    uncounted = packed.overhead(blob) - packed.header(blob)[0]
    assert uncounted == (8 * len(prunable_layers(compressed)) if cfg.act_bits != 32 else 0)  # activation ranges
    assert packed.header(blob)[0] <= packed.HEADER_BASE + packed.HEADER_PER_LAYER * stored
    inputs = len(prunable_layers(compressed)) if cfg.act_bits != 32 else 0
    assert len(blob) - _card_bytes(compressed, cfg) <= packed.max_overhead(stored, inputs)  # the documented bound
    return blob


@pytest.mark.parametrize("name", ["mlp", "lenet5"])
@pytest.mark.parametrize("settings", SETTINGS.values(), ids=list(SETTINGS))
def test_every_family_and_pair_rebuilds_bit_exactly_at_the_size_cards_size(name, settings):
    model = _random(name)
    _round_trip(model, CompressionConfig(**settings), TrainConfig(model=name, dataset="digits"),
                torch.randn(64, *SHAPE, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("name", models.list_models())
@pytest.mark.parametrize("settings", [PAIRS["everything"], PAIRS["lowrank + prune + quantize affine"],
                                      dict(prune_amount=0.5, prune_method="structured", share_bits=4, act_bits=4)],
                         ids=["everything", "lowrank+prune+affine", "structured+share+act4"])
def test_every_registered_model_rebuilds_bit_exactly(name, settings):
    _round_trip(_random(name), CompressionConfig(**settings), TrainConfig(model=name, dataset="digits"),
                torch.randn(32, *SHAPE, generator=torch.Generator().manual_seed(4)))


@pytest.mark.parametrize("settings", SETTINGS.values(), ids=list(SETTINGS))
def test_the_trained_digits_mlp_rebuilds_bit_exactly(settings, trained_mlp, digits):
    train, model = trained_mlp
    _round_trip(model, CompressionConfig(**settings), train, digits.x_train[:256])


def test_the_size_is_the_compression_reports_size(trained_mlp, digits):
    train, model = trained_mlp
    cfg = CompressionConfig(prune_amount=0.5, share_bits=3)
    blob = packed.pack(model, cfg, train, SHAPE, 10)
    compressed = compress(model, cfg)
    report = compression_report(model, compressed, cfg, digits.x_test, digits.y_test)
    assert 0 <= len(blob) - packed.overhead(blob) - report.size_compressed_bytes < 2 * 3


def test_sharing_stores_indices_of_the_nonzeros_and_a_codebook():
    cfg = CompressionConfig(prune_amount=0.5, share_bits=3)
    blob = packed.pack(_random("mlp"), cfg, TrainConfig("mlp", "digits"), SHAPE, 10)
    tensors, layouts = safetensors_load(blob), json.loads(packed.header(blob)[1]["__metadata__"]["layers"])
    assert not any(k.endswith(".weight") for k in tensors)
    for layout in layouts:
        name = layout["name"]
        assert layout["coder"] == "codebook" and layout["encoding"] in ("mask", "index")
        assert tensors[f"{name}.codebook"].dtype == torch.float32 and tensors[f"{name}.codebook"].numel() == 8
        assert layout["nonzero_bits"] == 3  # a nonzero is its 3-bit index: zeros live in the mask
        assert tensors[f"{name}.codes"].numel() == -(-layout["nonzero"] * 3 // 8)


def test_lowrank_stores_the_factors_and_their_ranks():
    cfg = CompressionConfig(rank_kept=0.5, weight_bits=4)
    model = _random("lenet5")
    blob = packed.pack(model, cfg, TrainConfig("lenet5", "digits"), SHAPE, 10)
    meta = packed.header(blob)[1]["__metadata__"]
    factored = json.loads(meta["factored"])
    compressed = compress(model, cfg)
    assert factored == {n: m.rank for n, m in prunable_layers(compressed) if is_factored(m)} and factored
    names = [layout["name"] for layout in json.loads(meta["layers"])]
    assert names == [n for n, _ in stored_layers(compressed)] and any(n.endswith(".first") for n in names)
    rebuilt, _, _ = packed.unpack(blob)
    assert all(is_factored(m) == (n in factored) for n, m in prunable_layers(rebuilt))


def test_16_bit_weights_are_their_16_bits():
    blob = packed.pack(_random("mlp"), CompressionConfig(precision="bf16"), TrainConfig("mlp", "digits"), SHAPE, 10)
    layouts = json.loads(packed.header(blob)[1]["__metadata__"]["layers"])
    assert {(layout["coder"], layout["dtype"], layout["value_bits"]) for layout in layouts} == {("raw16", "bf16", 16)}
    weights = sum(int(np.prod(layout["shape"])) for layout in layouts)
    assert sum(t.numel() for k, t in safetensors_load(blob).items() if k.endswith(".codes")) == 2 * weights


def test_every_registered_family_is_packable_and_an_unknown_one_is_refused_in_words():
    assert set(registry.ordered()) <= set(packed.PACKED_STEPS) | set(packed.NOT_PACKED)
    assert packed.packable(CompressionConfig(rank_kept=0.5, share_bits=2, precision="bf16", act_bits=4)) is None
    assert packed.packable(CompressionConfig(weight_bits=4, layer_plan="fc1:p0.5b2")) is None  # tests/test_packed_plan.py

    class Newcomer:
        name, title = "newcomer", "Newcomer"

    class Config:
        def pipeline(self):
            return [Newcomer()]
    assert "newcomer" in packed.packable(Config()) and "ONNX" in packed.packable(Config())


# ---------------------------------------------------------------- bad files
def _rewritten(blob: bytes, **changes: str) -> bytes:
    meta = dict(packed.header(blob)[1]["__metadata__"])
    meta.update(changes)
    return safetensors_save(dict(safetensors_load(blob)), metadata=meta)


@pytest.fixture(scope="module")
def good() -> bytes:
    return packed.pack(_random("mlp"), CompressionConfig(prune_amount=0.5, weight_bits=4, act_bits=8),
                       TrainConfig("mlp", "digits"), SHAPE, 10, calibration=torch.randn(32, *SHAPE))


def _refused(blob: bytes, words: str) -> None:
    with pytest.raises(packed.PackedFileError, match=words):
        packed.unpack(blob)


def test_cut_short_files_are_refused_in_words(good):
    _refused(good[:5], "too short")
    _refused(good[:100], "cut short")
    _refused(good[:-7], "cut short or damaged")


def test_files_that_are_not_packed_files_are_refused_in_words(good):
    _refused(bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)), "not a packed|cut short")
    _refused(b"\x02\x00\x00\x00\x00\x00\x00\x00[]", "not a table")
    _refused(safetensors_save({"a": torch.zeros(2)}), "not a packed Compression Lens file")
    _refused(_rewritten(good, format="someone-else/1"), "not a packed Compression Lens file")


def test_a_file_from_the_future_or_naming_unknown_steps_is_refused_in_words(good):
    _refused(_rewritten(good, format="compression-lens-packed/9"), "newer Compression Lens .format version 9")
    _refused(_rewritten(good, steps=json.dumps(["prune", "hashing"])), "step this version does not have: 'hashing'")
    settings = json.loads(packed.header(good)[1]["__metadata__"]["compression_config"])
    _refused(_rewritten(good, compression_config=json.dumps({**settings, "hash_bits": 4})), "does not know: hash_bits")
    _refused(_rewritten(good, compression_config=json.dumps({**settings, "weight_bits": 13})), "not valid")
    _refused(_rewritten(good, architecture="transformer"), "which model")
    _refused(_rewritten(good, factored=json.dumps({"99": 3})), "does not have")


def test_damaged_streams_are_refused_in_words(good):
    tensors, meta = dict(safetensors_load(good)), packed.header(good)[1]["__metadata__"]
    codes = {k: t[: len(t) // 2] if k.endswith(".codes") else t for k, t in tensors.items()}
    _refused(safetensors_save(codes, metadata=meta), "damaged")
    _refused(safetensors_save({k: t for k, t in tensors.items() if not k.startswith("@")}, metadata=meta),
             "activation ranges")


def test_a_format_1_file_still_loads():
    cfg = CompressionConfig(prune_amount=0.5, weight_bits=3)
    model = _random("mlp")
    blob = packed.pack(model, cfg, TrainConfig("mlp", "digits"), SHAPE, 10)
    meta = packed.header(blob)[1]["__metadata__"]
    old = [{k: v for k, v in layout.items() if k not in ("coder", "has_zero")} for layout in json.loads(meta["layers"])]
    v1 = {k: v for k, v in meta.items() if k not in ("steps", "factored", "uncounted")}
    v1.update(format="compression-lens-packed/1", layers=json.dumps(old))
    rebuilt, _, _ = packed.unpack(safetensors_save(dict(safetensors_load(blob)), metadata=v1))
    assert all(torch.equal(a, b) for a, b in zip(compress(model, cfg).state_dict().values(),
                                                 rebuilt.state_dict().values()))


# ---------------------------------------------------------------- ONNX of the families
@pytest.mark.parametrize("name", ["mlp", "lenet5"])
@pytest.mark.parametrize("settings", [dict(rank_kept=0.6), dict(rank_kept=0.5, weight_bits=4), dict(share_bits=4),
                                      dict(prune_amount=0.5, share_bits=3), dict(act_bits=4), dict(act_bits=3,
                                                                                                    weight_bits=4)],
                         ids=["lowrank", "lowrank+q4", "share", "prune+share", "act4", "W4A3"])
def test_onnx_fp32_of_the_families_matches_pytorch_to_1e5(name, settings):
    x = torch.randn(16, *SHAPE, generator=torch.Generator().manual_seed(2))
    model = compress(_random(name), CompressionConfig(**settings), calibration=x).eval()
    before = _state(model)
    out = onnx_export.run(onnx_export.session(onnx_export.onnx_fp32(model, SHAPE)), x)
    with torch.no_grad():
        np.testing.assert_allclose(out, model(x).numpy(), rtol=1e-5, atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(h.__class__.__name__ != "_FakeQuantOps" for m in model.modules() for h in m._forward_pre_hooks.values())


def test_a_bf16_model_exports_in_fp32_and_says_so():
    x = torch.randn(16, *SHAPE, generator=torch.Generator().manual_seed(3))
    model = compress(_random("lenet5"), CompressionConfig(precision="bf16")).eval()
    out = onnx_export.run(onnx_export.session(onnx_export.onnx_fp32(model, SHAPE)), x)
    with torch.no_grad():
        reference = model(x).numpy()
    assert np.abs(out - reference).max() < 0.05 and (out.argmax(1) == reference.argmax(1)).mean() >= 0.9
    assert next(model.parameters()).dtype == torch.bfloat16  # the model given is still bf16
    assert any("no bf16 kernels" in n for n in onnx_export.export_notes(CompressionConfig(precision="bf16")))


@pytest.mark.parametrize("name", ["mlp", "lenet5"])
@pytest.mark.parametrize("settings", [dict(share_bits=4), dict(prune_amount=0.5, share_bits=3),
                                      dict(rank_kept=0.6, share_bits=2)], ids=["share", "prune+share", "lowrank+share"])
def test_the_codebook_onnx_file_gathers_the_same_weights_from_indices(name, settings):
    import onnx
    x = torch.randn(16, *SHAPE, generator=torch.Generator().manual_seed(5))
    model = compress(_random(name), CompressionConfig(**settings)).eval()
    fp32 = onnx_export.onnx_fp32(model, SHAPE)
    shared = onnx_export.onnx_codebook(fp32)
    graph = onnx.load_from_string(shared).graph
    assert {n.op_type for n in graph.node} >= {"Gather", "Cast"}
    assert any(i.data_type == onnx.TensorProto.UINT8 for i in graph.initializer)
    assert len(shared) < len(fp32) / 2.5  # one byte an index instead of four
    np.testing.assert_array_equal(onnx_export.run(onnx_export.session(shared), x),
                                  onnx_export.run(onnx_export.session(fp32), x))
    with torch.no_grad():
        np.testing.assert_allclose(onnx_export.run(onnx_export.session(shared), x), model(x).numpy(), rtol=1e-5,
                                   atol=1e-5)


def test_check_says_whether_a_file_is_this_model_in_words(good):
    x = torch.randn(8, *SHAPE, generator=torch.Generator().manual_seed(6))
    rebuilt = packed.unpack(good)[0]
    same, words = packed.check(good, rebuilt, x)
    assert same and "bit for bit" in words and "mlp" in words
    other, words = packed.check(good, _random("mlp", seed=1), x)
    assert not other and "not this page's model" in words
    bad, words = packed.check(good[:50], rebuilt, x)
    assert not bad and words.startswith("This file cannot be loaded: the file is cut short")

"""Unit tests of core.deploy: the shrunk model computes what the masked one does, ONNX files match
PyTorch, the packed file rebuilds the compressed model bit-exactly at the Size card's size, and the
latency sentence follows the measurement (timings faked: timing is never asserted).
"""
from __future__ import annotations

import copy
import math
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load as safetensors_load
from torch import nn

import models
from core.compression import CompressionConfig, compress
from core.data import load_dataset
from core.deploy import artifacts, latency, onnx_export, packed
from core.deploy.shrink import ShiftedLayer, counts, cut_empty_units, shrink
from core.layers import prunable_layers
from core.metrics import compression_report
from core.training import TrainConfig, load_or_train
from core.warm import recipe

SHAPE = (1, 8, 8)
# The shrunk model's logits against the masked model's: the same sums in another order (and the
# removed units' constant folded into a bias) differ only by float32 rounding.
SHRINK_TOL = dict(rtol=1e-5, atol=1e-5)


def _random(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return models.create_model(name, SHAPE, 10).eval()


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained_mlp(digits):
    cfg = recipe("mlp", "digits")
    return cfg, load_or_train(cfg, digits).model.eval()


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ---------------------------------------------------------------- shrink
@pytest.mark.parametrize("name", ["mlp", "lenet5"])
@pytest.mark.parametrize("amount,scope", [(0.3, "global"), (0.5, "layer"), (0.9, "layer"), (1.0, "global")])
def test_shrunk_model_computes_the_masked_models_outputs(name, amount, scope):
    model = _random(name)
    before = _state(model)
    cfg = CompressionConfig(prune_amount=amount, prune_method="structured", prune_scope=scope)
    masked, small = compress(model, cfg), shrink(model, cfg, SHAPE)
    x = torch.randn(16, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(small(x), masked(x), **SHRINK_TOL)
    assert counts(small, SHAPE)[1] < counts(masked, SHAPE)[1]  # really smaller
    assert _unchanged(model, before)
    last = prunable_layers(small)[-1][1]
    assert last.weight.shape[0] == 10  # the classes stay


def test_lenet5_on_padded_convs_folds_the_removed_filters_as_a_shift():
    cfg = CompressionConfig(prune_amount=0.5, prune_method="structured", prune_scope="layer")
    small = shrink(_random("lenet5"), cfg, SHAPE)
    # conv 1 lost filters: conv 2 (padded) sees their constant planes through its zero border, which
    # differs at the edges, so it cannot be a bias; the fc layer after Flatten gets it in its bias.
    assert isinstance(small[3], ShiftedLayer) and small[3].shift.shape == (1, 8, 4, 4)
    shapes = [tuple(m.weight.shape) for _, m in prunable_layers(small)]
    assert shapes[:2] == [(3, 1, 5, 5), (8, 3, 5, 5)] and shapes[2][1] == 8 * 2 * 2  # 8 filters x 2x2 positions
    assert shapes[-1][0] == 10


def test_a_removed_units_bias_is_folded_into_the_next_bias_by_hand():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -1.0], [0.0, 0.0]]))  # unit 1 removed: outputs relu(3) = 3
        net[0].bias.copy_(torch.tensor([0.5, 3.0]))
        net[2].weight.copy_(torch.tensor([[4.0, 2.0]]))
        net[2].bias.copy_(torch.tensor([1.0]))
    small = cut_empty_units(net, (2,))
    assert small[0].weight.shape == (1, 2) and small[2].weight.shape == (1, 1)
    assert small[2].bias.item() == 1.0 + 2.0 * 3.0  # 7: the removed unit's constant times its weight
    x = torch.tensor([[2.0, 1.0]])
    assert small(x).item() == net(x).item() == 4.0 * 1.5 + 7.0


def test_counts_are_the_hand_computed_macs_and_params():
    assert counts(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), (4,)) == (4 * 3 + 3 * 2, 12 + 3 + 6 + 2)
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2))  # 4x4 -> 2x2 positions
    assert counts(conv, (1, 4, 4)) == (2 * 9 * 4 + 8 * 2, 18 + 2 + 16 + 2)


def test_unstructured_settings_keep_their_shape():
    model = _random("mlp")
    small = shrink(model, CompressionConfig(prune_amount=0.5), SHAPE)
    assert counts(small, SHAPE) == counts(model, SHAPE)


# ---------------------------------------------------------------- ONNX
def test_onnx_fp32_matches_pytorch_to_1e5_at_any_batch():
    model = shrink(_random("lenet5"), CompressionConfig(prune_amount=0.5, prune_method="structured",
                                                        prune_scope="layer", weight_bits=4), SHAPE)
    before = _state(model)
    sess = onnx_export.session(onnx_export.onnx_fp32(model, SHAPE))
    assert _unchanged(model, before) and not model.training
    for n in (1, 3, 7):
        x = torch.randn(n, *SHAPE)
        with torch.no_grad():
            expected = model(x).numpy()
        np.testing.assert_allclose(onnx_export.run(sess, x), expected, rtol=1e-5, atol=1e-5)


def test_int8_model_is_checked_on_the_whole_test_set(trained_mlp, digits):
    _, model = trained_mlp
    fp32 = onnx_export.onnx_fp32(model, SHAPE)
    folder = Path(tempfile.gettempdir())
    leftovers = set(folder.glob("compression-lens-onnx-*"))
    int8 = onnx_export.onnx_int8(fp32, onnx_export.calibration_images(digits.x_train))
    assert set(folder.glob("compression-lens-onnx-*")) == leftovers  # its temporary folder is gone
    assert len(int8) < len(fp32) / 2
    fp, q = (onnx_export.check(b, r, model, digits.x_test, digits.y_test) for b, r in ((fp32, "fp32"), (int8, "int8")))
    assert fp.images == q.images == len(digits.y_test)
    assert fp.agreement == 1.0 and fp.accuracy == fp.simulated_accuracy and fp.max_logit_difference < 1e-4
    # ONNX Runtime's docs expect static int8 to cost a trained CNN/MLP about a point of accuracy, if any.
    assert q.agreement >= 0.95 and abs(q.accuracy - q.simulated_accuracy) <= 0.03


def test_export_notes_say_what_is_only_simulated():
    assert onnx_export.export_notes(CompressionConfig()) == []
    notes = " ".join(onnx_export.export_notes(CompressionConfig(prune_amount=0.5, weight_bits=4)))
    assert "only a mask" in notes and "4-bit weights have no ONNX Runtime kernel" in notes
    assert onnx_export.export_notes(CompressionConfig(prune_amount=0.5, prune_method="structured")) == []


# ---------------------------------------------------------------- packed weights
def test_bit_packing_by_hand():
    assert packed.pack_bits(np.array([1, 2, 3]), 2).tolist() == [0b01101100]
    values = np.array([0, 5, 7, 1, 6])
    assert packed.unpack_bits(packed.pack_bits(values, 3), 3, 5).tolist() == values.tolist()
    assert packed.pack_bits(np.array([1, 2]), 0).size == 0


SETTINGS = [CompressionConfig(),
            *(CompressionConfig(prune_amount=a, weight_bits=b) for a in (0.0, 0.5, 1.0) for b in (1, 2, 3, 8, 32)),
            CompressionConfig(prune_amount=0.5, prune_method="structured", weight_bits=3),
            CompressionConfig(prune_amount=0.5, prune_method="structured", prune_scope="layer"),
            CompressionConfig(prune_amount=0.3, weight_bits=2, quant_range="twn", quant_scheme="affine"),
            CompressionConfig(prune_amount=0.3, weight_bits=4, quant_scheme="affine", quant_granularity="per_tensor"),
            CompressionConfig(prune_amount=0.9, prune_method="random", weight_bits=8, quant_scheme="affine"),
            CompressionConfig(prune_amount=0.6, weight_bits=1, quant_granularity="per_tensor")]


@pytest.mark.parametrize("name", ["mlp", "lenet5"])
@pytest.mark.parametrize("cfg", SETTINGS, ids=lambda c: f"{c.prune_method[:6]}{c.prune_amount:g}-{c.weight_bits}b"
                         f"-{c.quant_scheme[:3]}-{c.quant_granularity[4:7]}-{c.quant_range}")
def test_packed_file_rebuilds_the_model_bit_exactly_at_the_size_cards_size(name, cfg):
    model = _random(name)
    before = _state(model)
    train = TrainConfig(model=name, dataset="digits")
    blob = packed.pack(model, cfg, train, SHAPE, 10)
    rebuilt, read_cfg, meta = packed.unpack(blob)
    compressed = compress(model, cfg)
    assert read_cfg == cfg and meta["architecture"] == name
    for (key, expected), (key2, found) in zip(compressed.state_dict().items(), rebuilt.state_dict().items()):
        assert key == key2 and torch.equal(expected, found), key
    assert _unchanged(model, before)
    # The file is the Size card's bits rounded up to whole bytes per bit stream (at most two streams
    # per layer: codes, and a mask or positions), plus safetensors' header (8 + JSON bytes).
    x = torch.zeros(2, *SHAPE)
    card = compression_report(model, compressed, cfg, x, torch.zeros(2, dtype=torch.int64)).size_compressed_bits / 8
    layers = len(prunable_layers(model))
    padding = len(blob) - packed.overhead(blob) - card
    assert 0 <= padding < 2 * layers
    # The header: settings (~700 B) and per-layer layout and tensor entries (~350 B a layer).
    assert packed.overhead(blob) <= 1000 + 500 * layers


def test_packed_file_keeps_no_dense_weights():
    blob = packed.pack(_random("mlp"), CompressionConfig(prune_amount=0.5, weight_bits=2), TrainConfig("mlp", "digits"),
                       SHAPE, 10)
    tensors = safetensors_load(blob)
    assert not any(k.endswith(".weight") for k in tensors)
    assert tensors["1.codes"].dtype == torch.uint8


def test_a_dense_safetensors_file_is_refused_in_words():
    from core import export
    dense = export.weights_safetensors(_random("mlp"), TrainConfig("mlp", "digits"), CompressionConfig(), SHAPE, 10)
    with pytest.raises(ValueError, match="not a packed Compression Lens file"):
        packed.unpack(dense)


# ---------------------------------------------------------------- artifacts and latency
def test_artifacts_of_a_setting(trained_mlp, digits):
    train, model = trained_mlp
    before = _state(model)
    cfg = CompressionConfig(prune_amount=0.5, prune_method="structured", prune_scope="layer", weight_bits=8)
    art = artifacts.build(model, cfg, train, digits.x_train, digits.x_test, digits.y_test, 10)
    assert _unchanged(model, before)
    assert [c.runtime for c in art.checks] == ["ONNX Runtime fp32", "ONNX Runtime int8"]
    assert art.checks[0].agreement == 1.0
    assert set(art.file_bytes) == {"ONNX fp32", "ONNX int8", "packed weights"}
    assert (art.macs, art.params) == counts(art.model, SHAPE) and art.units < 128 + 64


def test_summarize_gives_median_and_quartiles():
    t = latency.summarize([0.001, 0.002, 0.003, 0.004, 0.005])
    assert (t.median_ms, t.q25_ms, t.q75_ms, t.runs) == pytest.approx((3.0, 2.0, 4.0, 5))
    assert t.iqr_ms == pytest.approx(2.0)


def test_time_pair_alternates_within_its_budget():
    now, calls = [0.0], []
    clock = lambda: now[0]  # noqa: E731

    def step(name, seconds):
        def run():
            calls.append(name)
            now[0] += seconds
        return run
    a, b = latency.time_pair(step("a", 0.01), step("b", 0.03), budget_s=1.0, clock=clock)
    assert calls[:6] == ["a", "b"] * 3 and a.runs == b.runs == 25  # 25 pairs of 40 ms fill one second
    assert (a.median_ms, b.median_ms) == pytest.approx((10.0, 30.0))
    a, _ = latency.time_pair(step("a", 10.0), step("b", 10.0), budget_s=1.0, clock=clock)
    assert a.runs == latency.MIN_RUNS


def _fake(cfg: CompressionConfig, orig_ms: dict, comp_ms: dict, macs=(1000, 300), units=(100, 50),
          sparsity=0.5, theory_macs=3.3) -> latency.Measurement:
    def side(ms, mac, unit):
        return latency.Side(10, mac, unit, {"ONNX fp32": 4000, "packed weights": 1000},
                            {k: latency.Timing(v, v * 0.9, v * 1.1, 9) for k, v in ms.items()})
    return latency.Measurement(cfg, side(orig_ms, macs[0], units[0]), side(comp_ms, macs[1], units[1]), 4.0,
                               theory_macs, sparsity, 1.0)


def _ms(torch_ms, fp32_ms, int8_ms, batch=256):
    return {("PyTorch", batch): torch_ms, ("ONNX Runtime fp32", batch): fp32_ms, ("ONNX Runtime int8", batch): int8_ms}


def test_the_sentence_for_structured_pruning_quotes_units_macs_and_latency():
    m = _fake(CompressionConfig(prune_amount=0.5, prune_method="structured"), _ms(30, 8, 16), _ms(15, 4, 8),
              macs=(1000, 300))
    text = latency.explain(m)
    assert "Cutting out 50 % of the units" in text and "70 % of the MACs (3.3× fewer)" in text
    assert "2.0× faster at batch 256" in text and text.endswith(".") and ". " not in text  # one sentence
    assert m.speedup("PyTorch", 256) == 2.0 and math.isnan(m.speedup("PyTorch", 1))


def test_the_sentence_for_a_mask_says_it_removes_nothing():
    m = _fake(CompressionConfig(prune_amount=0.8), _ms(30, 8, 16), _ms(30, 8, 16), macs=(1000, 1000), sparsity=0.8,
              theory_macs=5.0)
    text = latency.explain(m)
    assert text.startswith("A mask removes nothing: 80 % of the weights are zero") and "5.0× fewer MACs" in text
    assert "about as fast" in text and "could be cut out" not in text


def test_the_sentence_for_int8_on_a_tiny_model_names_dequantization():
    m = _fake(CompressionConfig(weight_bits=4), _ms(30, 8, 16), _ms(30, 7.7, 15.8), macs=(1000, 1000), sparsity=0.0)
    text = latency.explain(m)
    assert "4-bit weights are simulated" in text and "shrinks 4.0×" in text
    assert "15.8 ms against 7.7 ms for fp32 (2.1× slower)" in text and "dequantizing" in text
    faster = latency.explain(_fake(CompressionConfig(weight_bits=8), _ms(30, 8, 16), _ms(30, 8, 4),
                                   macs=(1000, 1000), sparsity=0.01))  # zeros from rounding: not a mask
    assert faster.startswith("The 8-bit weights are simulated")
    assert "2.0× faster" in faster and "dequantizing" not in faster


def test_the_sentence_without_compression_calls_the_difference_noise():
    text = latency.explain(_fake(CompressionConfig(), _ms(30, 8, 16), _ms(29, 8, 16), macs=(1000, 1000), sparsity=0))
    assert text.startswith("Nothing is removed or rounded") and "noise" in text


def test_measure_fills_every_cell(trained_mlp, digits):
    train, model = trained_mlp
    build = lambda cfg: artifacts.build(model, cfg, train, digits.x_train, digits.x_test[:64],  # noqa: E731
                                        digits.y_test[:64], 10)
    original, compressed = build(CompressionConfig()), build(CompressionConfig(prune_amount=0.5,
                                                                               prune_method="structured"))
    seen = []
    m = latency.measure(original, compressed, digits.x_test, 1.0, 1.0, 0.5, budget_s=0.2,
                        progress=lambda f, msg: seen.append(f))
    cells = {(r, b) for r in latency.RUNTIMES for b in latency.BATCHES}
    assert set(m.original.timings) == set(m.compressed.timings) == cells
    assert all(t.runs >= latency.MIN_RUNS for t in m.compressed.timings.values())
    assert seen == sorted(seen) and len(seen) == len(cells)
    assert m.units_removed > 0 and m.mac_ratio > 1 and isinstance(latency.explain(m), str)


@pytest.mark.parametrize("settings", [{"rank_kept": 0.6}, {"share_bits": 4}, {"precision": "fp16"},
                                      {"precision": "bf16"}, {"act_bits": 4}],
                         ids=["lowrank", "share", "fp16", "bf16", "act4"])
def test_every_family_exports_its_packed_weights_and_onnx_files(settings, trained_mlp, digits):
    train, model = trained_mlp
    before = _state(model)
    cfg = CompressionConfig(prune_amount=0.3, **settings)
    art = artifacts.build(model, cfg, train, digits.x_train, digits.x_test, digits.y_test, 10)
    assert _unchanged(model, before)
    assert art.packed is not None and set(art.file_bytes) == {"ONNX fp32", "ONNX int8", "packed weights"}
    rebuilt, read_cfg, _ = packed.unpack(art.packed)
    with torch.no_grad():
        assert read_cfg == cfg and torch.equal(rebuilt(digits.x_test), compress(model, cfg).eval()(digits.x_test))
    assert art.checks[0].agreement >= 0.99  # the ONNX file carries the simulated model (bf16: computed in fp32)
    assert art.notes  # what the ONNX files cannot carry as such, in words


def test_activation_ranges_alone_keep_the_weights_packable():
    assert packed.packable(CompressionConfig(weight_bits=4, act_bits=8)) is None
    assert packed.packable(CompressionConfig(prune_amount=0.5, weight_bits=2)) is None

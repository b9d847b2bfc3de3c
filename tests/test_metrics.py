"""Unit tests of core.metrics: hand-computed sizes, MACs and accuracies; inputs unchanged."""
import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from core.compression import CompressionConfig
from core.metrics import (
    compression_report,
    evaluate,
    layer_stats,
    layer_table,
    model_storage_bits,
    parameter_count,
    prediction_agreement,
    weight_storage_bits,
)
from models import create_model


def _linear_4_2() -> nn.Sequential:
    """Flatten + Linear(4, 2) whose weight (2x4) has exactly 3 zeros: n = 8, nnz = 5."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0.0, -2.0, 0.5], [0.0, 3.0, 0.0, -1.0]]))
        model[1].bias.copy_(torch.tensor([0.1, -0.1]))
    return model.eval()


def _classifier() -> nn.Sequential:
    """Logits = (x0, x1, 0, -10): class 0 or 1 by the larger input, class 2 if both < 0, class 3 never."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 4))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]))
        model[1].bias.copy_(torch.tensor([0.0, 0.0, 0.0, -10.0]))
    return model.eval()


X = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-1.0, -1.0], [3.0, 1.0], [0.0, 5.0]]).reshape(5, 1, 1, 2)
Y = torch.tensor([0, 1, 2, 1, 0])  # predictions will be 0, 1, 2, 0, 1: three right


def _snapshot(model: nn.Module) -> tuple:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [(p.requires_grad) for p in model.parameters()]
    return state, flags, model.training


def _assert_unchanged(model: nn.Module, snapshot: tuple) -> None:
    state, flags, training = snapshot
    now = model.state_dict()
    assert now.keys() == state.keys()
    assert all(torch.equal(now[k], v) for k, v in state.items())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert model.training == training
    for module in model.modules():  # no hooks left behind
        assert not module._forward_hooks and not module._forward_pre_hooks and not module._backward_hooks


# ---------------------------------------------------------------- evaluation


def test_evaluate_accuracy_and_per_class_by_hand():
    ev = evaluate(_classifier(), X, Y)
    assert ev.predictions.tolist() == [0, 1, 2, 0, 1]
    assert ev.predictions.dtype == np.int64 and ev.labels.dtype == np.int64
    assert ev.accuracy == pytest.approx(3 / 5)
    # class 0: samples 0 (right) and 4 (wrong); class 1: 1 (right), 3 (wrong); class 2: 2 (right); class 3: none
    assert ev.per_class_accuracy.tolist() == [0.5, 0.5, 1.0, 0.0]
    assert ev.per_class_count.tolist() == [2, 2, 1, 0]
    assert ev.probabilities.shape == (5, 4) and ev.probabilities.dtype == np.float32
    np.testing.assert_allclose(ev.probabilities.sum(axis=1), 1.0, rtol=1e-6)
    # sample 0: logits (2, 0, 0, -10)
    expected = math.exp(2) / (math.exp(2) + 2 + math.exp(-10))
    assert ev.probabilities[0, 0] == pytest.approx(expected, rel=1e-6)
    assert not ev.predictions.flags.writeable and not ev.probabilities.flags.writeable


def test_evaluate_batches_agree_and_inputs_unchanged():
    model = _classifier()
    model.train()  # evaluate must not flip modes: a train-mode model stays in train mode
    for p in model.parameters():
        p.requires_grad_(False)  # shared models may arrive like this
    snap, x, y = _snapshot(model), X.clone(), Y.clone()
    whole = evaluate(model, X, Y)
    batched = evaluate(model, X, Y, batch_size=2)
    assert batched.predictions.tolist() == whole.predictions.tolist()
    np.testing.assert_array_equal(batched.probabilities, whole.probabilities)
    _assert_unchanged(model, snap)
    assert torch.equal(X, x) and torch.equal(Y, y)


def test_evaluate_accepts_numpy_labels_and_rejects_bad_ones():
    assert evaluate(_classifier(), X, Y.numpy()).accuracy == pytest.approx(0.6)
    with pytest.raises(ValueError):
        evaluate(_classifier(), X, Y[:4])
    with pytest.raises(ValueError):
        evaluate(_classifier(), X, torch.tensor([0, 1, 2, 3, 4]))  # 4 is not a class of a 4-output model


def test_prediction_agreement():
    model = _classifier()
    ev = evaluate(model, X, Y)
    assert prediction_agreement(ev, ev) == 1.0
    swapped = copy.deepcopy(model)
    with torch.no_grad():
        swapped[1].weight[[0, 1]] = swapped[1].weight[[1, 0]].clone()  # predicts 1, 0, 2, 1, 0
    assert prediction_agreement(ev, evaluate(swapped, X, Y)) == pytest.approx(1 / 5)


# ---------------------------------------------------------------- storage


def test_weight_storage_picks_cheapest_encoding_by_hand():
    w = _linear_4_2()[1].weight  # n = 8, nnz = 5, index bits = ceil(log2 8) = 3; both rows have a nonzero
    # 32 bits: dense 8*32 = 256, bitmask 5*32 + 8 = 168, CSR 5*(32+3) = 175 -> bitmask
    assert weight_storage_bits(w, 32, "symmetric", "per_channel") == 168
    # 2 bits symmetric is ternary: a nonzero under the mask is its sign, 1 bit (the old count charged 2).
    # dense 8*2 + 64 = 80, bitmask 5*1 + 8 + 64 = 77, CSR 5*(1+3) + 64 = 84 -> bitmask; 2 fp32 scales
    assert weight_storage_bits(w, 2, "symmetric", "per_channel") == 77
    # 2 bits affine has 4 levels, 3 of them nonzero: 2 bits each. dense 16 + 2*(32+32) = 144,
    # bitmask 10 + 8 + 128 = 146, CSR 25 + 128 = 153 -> dense
    assert weight_storage_bits(w, 2, "affine", "per_channel") == 144
    # TWN is ternary for either scheme, with no zero point
    assert weight_storage_bits(w, 2, "affine", "per_channel", "twn") == 77
    # 8 bits: 255 levels, 254 nonzero -> 8 bits; dense 64, bitmask 40 + 8 = 48, CSR 5*11 = 55 -> bitmask
    assert weight_storage_bits(w, 8, "symmetric", "per_channel") == 48 + 2 * 32  # one scale per output row
    assert weight_storage_bits(w, 8, "symmetric", "per_tensor") == 48 + 32  # one scale
    assert weight_storage_bits(w, 8, "affine", "per_channel") == 48 + 2 * 32 + 2 * 32  # + zero points
    assert weight_storage_bits(w, 8, "affine", "per_tensor") == 48 + 32 + 32
    # 1 bit: zero is not a binary value, so no dense; bitmask 5 + 8 = 13, CSR 5*4 = 20; scales only
    assert weight_storage_bits(w, 1, "symmetric", "per_channel") == 13 + 64
    assert weight_storage_bits(w, 1, "affine", "per_channel") == 13 + 64
    assert weight_storage_bits(torch.ones(2, 4), 1, "symmetric", "per_tensor") == 8 + 32  # dense 1 bit each
    # dense 4 bits affine: every channel's scale and zero point (8*4 + 2*64 = 160 < bitmask 168)
    assert weight_storage_bits(torch.ones(2, 4), 4, "affine", "per_channel") == 160


def test_weight_storage_of_ternary_binary_and_an_empty_channel_by_hand():
    # Row 0: six ±0.5 and two zeros; row 1: all zero. n = 16, nnz = 6, index bits 4.
    w = torch.zeros(2, 8)
    w[0] = torch.tensor([0.5, -0.5, 0.5, 0.0, 0.0, 0.5, -0.5, 0.5])
    # ternary: dense 16*2 + 2 scales = 96; bitmask 6*1 + 16 + ONE scale (row 1 has nothing) = 54;
    # CSR 6*(1+4) + 32 = 62 -> 54
    assert weight_storage_bits(w, 2, "symmetric", "per_channel") == 54
    assert weight_storage_bits(w, 2, "symmetric", "per_channel", "twn") == 54
    # binary: a nonzero is its sign too; no dense (zeros are not binary values) -> 54
    assert weight_storage_bits(w, 1, "symmetric", "per_channel") == 54
    # affine 2 bits: nonzero 2 bits, scale + zero point of row 0 only: bitmask 12 + 16 + 64 = 92,
    # CSR 36 + 64 = 100, dense 32 + 128 = 160 -> 92
    assert weight_storage_bits(w, 2, "affine", "per_channel") == 92
    # per tensor 4 bits affine: nonzero 4 bits: bitmask 24 + 16 + 64 = 104, CSR 48 + 64 = 112, dense 64 + 64
    assert weight_storage_bits(w, 4, "affine", "per_tensor") == 104


def test_weight_storage_csr_and_all_zero():
    w = torch.zeros(1, 64)
    w[0, 5] = 1.0  # n = 64, nnz = 1, index 6 bits: dense 2048, bitmask 32 + 64 = 96, CSR 1*(32+6) = 38
    assert weight_storage_bits(w, 32, "symmetric", "per_channel") == 38
    assert weight_storage_bits(torch.zeros(3, 3), 32, "symmetric", "per_channel") == 0  # CSR of nothing
    # Regression (issue 7 §6): nothing to store costs nothing, no scale or zero point either
    # (this used to be 64 bits, so a 100 %-pruned 1-bit model was larger than the fp32 one).
    for bits in (1, 2, 4, 8):
        for scheme in ("symmetric", "affine"):
            for granularity in ("per_channel", "per_tensor"):
                assert weight_storage_bits(torch.zeros(3, 3), bits, scheme, granularity) == 0
    with pytest.raises(ValueError):
        weight_storage_bits(w, 16, "symmetric", "per_channel")


def test_layer_stats_of_linear_by_hand():
    model = _linear_4_2()
    snap = _snapshot(model)
    (s,) = layer_stats(model, (1, 1, 4), CompressionConfig(weight_bits=8, quant_scheme="affine", quant_granularity="per_tensor"))
    assert (s.name, s.kind, s.shape, s.params, s.nonzero, s.bits) == ("1", "linear", (2, 4), 8, 5, 8)
    assert s.sparsity == pytest.approx(3 / 8)
    assert s.size_bits == (48 + 32 + 32) + 2 * 32  # weight + fp32 bias
    assert s.dense_size_bits == (8 + 2) * 32
    assert (s.dense_macs, s.remaining_macs) == (8, 5)  # in*out, and nonzero weights
    assert model_storage_bits(model, [s]) == s.size_bits
    _assert_unchanged(model, snap)


def test_non_prunable_parameters_count_fp32():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.PReLU()).eval()  # PReLU: 1 parameter
    assert parameter_count(model) == 8 + 2 + 1
    stats = layer_stats(model, (1, 1, 4))
    assert model_storage_bits(model, stats) == 32 * 11  # dense fp32 = params * 4 bytes


# ---------------------------------------------------------------- MACs


def test_conv_macs_by_hand():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1)).eval()
    with torch.no_grad():
        model[0].weight[0].zero_()  # 9 of the 18 weights
    snap = _snapshot(model)
    (s,) = layer_stats(model, (1, 4, 4))
    assert s.kind == "conv" and s.dense_macs == 4 * 4 * 18 == 288
    assert s.remaining_macs == 4 * 4 * 9
    _assert_unchanged(model, snap)


def test_lenet5_macs_on_28x28_by_hand():
    model = create_model("lenet5", (1, 28, 28), 10).eval()
    stats = layer_stats(model, (1, 28, 28))
    assert [s.dense_macs for s in stats] == [
        28 * 28 * 6 * 1 * 25,  # conv1 keeps 28x28 (padding 2): 117,600
        14 * 14 * 16 * 6 * 25,  # conv2 after the first pool: 470,400
        16 * 7 * 7 * 120,  # 94,080
        120 * 84,
        84 * 10,
    ]
    assert sum(s.dense_macs for s in stats) == 693_000


# ---------------------------------------------------------------- report


def _lenet5_and_data():
    torch.manual_seed(0)
    model = create_model("lenet5", (1, 12, 12), 3).eval()
    x = torch.randn(20, 1, 12, 12)
    y = torch.arange(20) % 3
    return model, x, y


def test_report_of_dense_copy_is_neutral():
    model, x, y = _lenet5_and_data()
    snap, x0, y0 = _snapshot(model), x.clone(), y.clone()
    report = compression_report(model, copy.deepcopy(model), CompressionConfig(), x, y)
    params = parameter_count(model)
    assert report.total_params == params
    assert report.size_original_bytes == params * 4 == report.size_compressed_bytes
    assert report.compression_ratio == 1.0 and report.theoretical_speedup == 1.0
    assert report.agreement == 1.0 and report.sparsity == 0.0 and report.accuracy_change == 0.0
    assert report.dense_macs == report.remaining_macs
    _assert_unchanged(model, snap)
    assert torch.equal(x, x0) and torch.equal(y, y0)


def test_report_of_pruned_and_quantized_sizes():
    model, x, y = _lenet5_and_data()
    snap = _snapshot(model)
    pruned = copy.deepcopy(model)
    for _, module in [(n, m) for n, m in pruned.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]:
        prune.l1_unstructured(module, "weight", amount=0.5)  # masks left in place: weight_orig + weight_mask
    cfg = CompressionConfig(prune_amount=0.5, prune_scope="layer", weight_bits=4)
    original_eval = evaluate(model, x, y)
    report = compression_report(model, pruned, cfg, x, y, original_eval=original_eval)
    assert report.original is original_eval
    assert report.total_params == parameter_count(model)
    layers = report.compressed_layers
    assert report.sparsity == pytest.approx(1 - sum(s.nonzero for s in layers) / report.prunable_params)
    assert 0.49 < report.sparsity < 0.51
    assert report.size_compressed_bits == sum(s.size_bits for s in layers)
    assert report.compression_ratio == report.size_original_bits / report.size_compressed_bits > 5
    assert report.theoretical_speedup == pytest.approx(report.dense_macs / report.remaining_macs)
    table = layer_table(report)
    assert list(table["layer"]) == [s.name for s in layers] and (table["bits"] == 4).all()
    assert table.loc[0, "shape"] == "6x1x5x5"
    assert table["size_original_bytes"].sum() == report.size_original_bytes  # lenet5: every parameter is in a layer
    _assert_unchanged(model, snap)


def test_report_everything_pruned_gives_infinite_speedup():
    model, x, y = _lenet5_and_data()
    empty = copy.deepcopy(model)
    with torch.no_grad():
        for module in empty.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                module.weight.zero_()
    report = compression_report(model, empty, CompressionConfig(prune_amount=1.0), x, y)
    assert report.remaining_macs == 0 and report.theoretical_speedup == float("inf")
    assert report.sparsity == 1.0
    assert report.size_compressed_bits == 32 * sum(s.bias_params for s in report.compressed_layers)
    # Regression: at 100 % pruning every bit width is the biases alone (1 bit was once twice 32 bits).
    for bits in (1, 2, 8):
        quantized = compression_report(model, empty, CompressionConfig(prune_amount=1.0, weight_bits=bits), x, y)
        assert quantized.size_compressed_bits == report.size_compressed_bits


def test_report_rejects_mismatched_original_eval():
    model, x, y = _lenet5_and_data()
    with pytest.raises(ValueError):
        compression_report(model, model, CompressionConfig(), x, y, original_eval=evaluate(model, x, (y + 1) % 3))


def test_the_readable_layer_table_names_layers_as_the_charts_do():
    from core.layers import layer_labels
    from core.export import readable_layer_table

    model, x, y = _lenet5_and_data()
    pruned = copy.deepcopy(model)
    with torch.no_grad():
        pruned[0].weight[:3] = 0.0  # half of conv 1's six filters: 75 of 150 weights
    report = compression_report(model, pruned, CompressionConfig(prune_amount=0.5), x, y)
    table = readable_layer_table(report)
    assert list(table["Layer"]) == list(layer_labels(model).values())
    assert table.loc[0, "Layer"] == "conv 1 (6×1×5×5)" and table["Layer"].iloc[-1].startswith("fc 3 (3×")
    assert table.loc[0, "Zero in the original"] == "0 %" and table.loc[0, "Zero after compression"] == "50 %"
    assert table.loc[1, "Zero after compression"] == "0 %"
    assert table.loc[0, "Weights"] == "150" and table.loc[0, "Bits per weight"] == "32 (float)"
    assert table.loc[0, "Size, original"] == "624 B"  # (150 weights + 6 biases) x 4 bytes
    dense, left = (int(table.loc[0, c].replace(",", "")) for c in ("MACs per image, original",
                                                                   "MACs per image, compressed"))
    assert left * 2 == dense
    assert not any("_" in column for column in table.columns)

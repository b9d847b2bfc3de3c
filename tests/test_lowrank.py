"""core.compression.lowrank: Eckart–Young, counted weights and MACs, off is off, factored = truncated dense."""
import copy

import pytest
import torch
from torch import nn

from core.compression import CompressionConfig, compress
from core.compression.finetune import compress_fine_tuned
from core.compression.lowrank import LowRank, factor_layer, layer_svds, truncation_ranks
from core.compression.steps import Context
from core.data import load_dataset
from core.layers import FactoredConv2d, FactoredLinear, layer_labels, prunable_layers, stored_layers, weight_of
from core.metrics import compression_report, layer_stats, weight_sparsity
from core.training import TrainConfig, train

torch.manual_seed(0)


def _mlp() -> nn.Module:
    """Flatten, Linear(64, 40), ReLU, Linear(40, 10): 8x8 inputs."""
    g = torch.Generator().manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 40), nn.ReLU(), nn.Linear(40, 10)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return model


def _cnn() -> nn.Module:
    """Conv(1, 8, 3, stride 1, padding 1), ReLU, Conv(8, 12, 3, stride 2, padding 1), flatten, Linear(12·4·4, 5)."""
    g = torch.Generator().manual_seed(2)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, stride=2, padding=1),
                          nn.ReLU(), nn.Flatten(), nn.Linear(12 * 4 * 4, 5)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return model


def _truncated(weight: torch.Tensor, rank: int) -> torch.Tensor:
    u, s, vh = torch.linalg.svd(weight.flatten(1).double(), full_matrices=False)
    return ((u[:, :rank] * s[:rank]) @ vh[:rank]).view(weight.shape)


@pytest.mark.parametrize("rank", [1, 3, 10, 24])
def test_frobenius_error_is_the_discarded_energy(rank):
    """Eckart–Young: ||W - W_r||_F = sqrt(sum_{i>r} sigma_i^2), for the factored layer's effective weight."""
    layer = _mlp()[1]
    svd = layer_svds(nn.Sequential(layer), ["0"])["0"]
    factored = factor_layer(layer, svd, rank)
    s = torch.linalg.svdvals(layer.weight.detach().double())
    error = torch.linalg.norm(factored.weight.double() - layer.weight.detach().double())
    assert float(error) == pytest.approx(float(s[rank:].pow(2).sum().sqrt()), rel=1e-4)


def test_factored_layers_have_the_counted_weights_and_macs():
    """By hand: Linear(64, 40) at rank 5: 5·(64+40) = 520 weights, as many MACs; bias 40 on the second."""
    model = _mlp()
    cfg = CompressionConfig(rank_kept=0.2, rank_mode="fraction")   # fc 1: ceil(0.2·40) = 8; fc 2: 2
    compressed = compress(model, cfg)
    fc1, fc2 = compressed[1], compressed[3]
    assert isinstance(fc1, FactoredLinear) and (fc1.rank, fc2.rank) == (8, 2)
    assert fc1.first.bias is None and fc1.second.bias.shape == (40,)
    stats = layer_stats(compressed, (1, 8, 8), cfg)
    assert [s.params for s in stats] == [8 * (64 + 40), 2 * (40 + 10)]
    assert [s.remaining_macs for s in stats] == [8 * (64 + 40), 2 * (40 + 10)]
    assert [s.dense_macs for s in stats] == [64 * 40, 40 * 10]  # the unfactored layers
    assert [s.shape for s in stats] == [(40, 64), (10, 40)] and [s.rank for s in stats] == [8, 2]
    assert [s.size_bits for s in stats] == [32 * (8 * 104 + 40), 32 * (2 * 50 + 10)]
    assert sum(p.numel() for p in compressed.parameters()) == 8 * 104 + 40 + 2 * 50 + 10


def test_factored_conv_has_the_counted_weights_and_macs():
    """Conv(8, 12, 3, stride 2) at rank 4: first Conv(8, 4, 3) + second Conv(4, 12, 1); 4·4 output positions."""
    model = _cnn()
    svd = layer_svds(model, ["2"])["2"]
    factored = factor_layer(model[2], svd, 4)
    assert isinstance(factored, FactoredConv2d)
    assert factored.first.weight.shape == (4, 8, 3, 3) and factored.second.weight.shape == (12, 4, 1, 1)
    assert (factored.first.stride, factored.first.padding) == ((2, 2), (1, 1)) and factored.first.bias is None
    twin = copy.deepcopy(model)
    twin[2] = factored
    stats = {s.name: s for s in layer_stats(twin, (1, 8, 8))}
    positions = 4 * 4
    assert stats["2"].params == 4 * 8 * 9 + 12 * 4
    assert stats["2"].remaining_macs == positions * (4 * 8 * 9 + 12 * 4)
    assert stats["2"].dense_macs == positions * 12 * 8 * 9 and stats["2"].rank == 4


def test_factored_model_computes_the_truncated_dense_model():
    """The factored conv and Linear layers give the dense model's output with the truncated weights
    (same biases), to float32 rounding: max |difference| <= 1e-5 of the largest |output| (outputs of
    these random-weight layers reach the thousands; the SVD is float32, the reference float64)."""
    model = _cnn()
    cfg = CompressionConfig(rank_kept=0.5, rank_mode="fraction")
    compressed = compress(model, cfg)
    dense = copy.deepcopy(model)
    with torch.no_grad():
        for name, layer in prunable_layers(dense):
            rank = getattr(dict(prunable_layers(compressed))[name], "rank", None)
            if rank is not None:
                layer.weight.copy_(_truncated(layer.weight, rank).float())
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    got, want = compressed(x).detach(), dense(x).detach()
    assert float((got - want).abs().max()) <= 1e-5 * float(want.abs().max())
    for name, layer in prunable_layers(dense):  # the effective weight shown on the pages is that weight
        torch.testing.assert_close(weight_of(compressed, name), layer.weight.detach(), rtol=0, atol=1e-4)


def test_off_is_bit_identical_and_inputs_are_unchanged():
    model = _cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    off = compress(model, CompressionConfig(rank_kept=1.0))
    assert not CompressionConfig(rank_kept=1.0).step("lowrank").active()
    assert off.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(off.state_dict()[k], v) for k, v in model.state_dict().items())
    compress(model, CompressionConfig(rank_kept=0.3, prune_amount=0.5, weight_bits=4))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [type(m) for m in model.modules()] == [type(m) for m in _cnn().modules()]


def test_rank_zero_keeps_rank_one_and_says_so():
    spectra = [torch.tensor([3.0, 2.0, 1.0]), torch.tensor([1.0, 0.0])]
    for mode in ("energy", "fraction"):
        for scope in ("layer", "global"):
            assert truncation_ranks(spectra, 0.0, mode, scope) == [1, 1]
    assert truncation_ranks([torch.zeros(4)], 0.5) == [1]  # an all-zero layer: no energy to keep, rank 1
    assert LowRank(rank_kept=0.0).problems() and not LowRank(rank_kept=0.5).problems()
    model = _mlp()
    step = LowRank(rank_kept=0.0)
    twin = copy.deepcopy(model)
    step.apply(twin, Context(model))  # no exception; every layer keeps rank 1
    assert [m.rank for _, m in prunable_layers(twin)] == [1, 1]


def test_energy_and_global_thresholds_by_hand():
    s = torch.tensor([2.0, 1.0, 1.0])  # energies 4, 1, 1 of 6
    assert truncation_ranks([s], 4 / 6) == [1] and truncation_ranks([s], 0.7) == [2]
    assert truncation_ranks([s], 5 / 6) == [2]  # reached exactly: no extra rank from rounding
    assert truncation_ranks([s], 0.5, "fraction") == [2]  # ceil(0.5 * 3)
    # global: energies 9, 4 (layer a) and 1, 1 (layer b) of 15; 13/15 kept by the two of a
    a, b = torch.tensor([3.0, 2.0]), torch.tensor([1.0, 1.0])
    assert truncation_ranks([a, b], 13 / 15, scope="global") == [2, 1]  # b keeps its 1 at least
    assert truncation_ranks([a, b], 14 / 15, scope="global") == [2, 1]
    assert truncation_ranks([a, b], 0.5, "fraction", "global") == [2, 1]


def test_a_layer_that_would_grow_stays_dense():
    model = _mlp()
    svd = layer_svds(model, ["1"])["1"]
    assert isinstance(factor_layer(model[1], svd, 24), FactoredLinear)  # 24·(64+40) = 2496 < 64·40 = 2560
    assert factor_layer(model[1], svd, 25) is None                      # 25·104 = 2600 ≥ 2560: left dense
    compressed = compress(model, CompressionConfig(rank_kept=0.8, rank_mode="fraction"))  # ranks 32 and 8
    assert all(type(a) is type(b) and torch.equal(a.weight, b.weight)
               for (_, a), (_, b) in zip(prunable_layers(compressed), prunable_layers(model)))  # 8·50 ≥ 400 too
    assert LowRank(rank_kept=0.8).notes()  # the sidebar says that such layers stay dense


def test_pruning_and_quantization_act_on_the_factors_and_the_report_pairs_layers():
    model = _cnn()
    cfg = CompressionConfig(rank_kept=0.6, rank_mode="fraction", prune_amount=0.5, weight_bits=4)
    compressed = compress(model, cfg)
    stored = stored_layers(compressed)
    assert any(name.endswith(".first") for name, _ in stored)
    total = sum(m.weight.numel() for _, m in stored)
    zeros = sum(int((m.weight == 0).sum()) for _, m in stored)
    assert zeros == round(0.5 * total) and weight_sparsity(compressed) == pytest.approx(zeros / total)
    for _, m in stored:  # 4-bit symmetric per channel: at most 15 values per row
        assert all(len(torch.unique(row)) <= 15 for row in m.weight.detach().flatten(1))
    x, y = torch.randn(20, 1, 8, 8), torch.randint(0, 5, (20,))
    report = compression_report(model, compressed, cfg, x, y)
    assert [s.name for s in report.compressed_layers] == [s.name for s in report.original_layers]
    assert report.prunable_params == total and report.sparsity == pytest.approx(zeros / total)
    assert layer_labels(compressed) == layer_labels(model)
    assert report.remaining_macs < report.dense_macs and report.size_compressed_bits < report.size_original_bits


def test_svds_are_computed_once_per_model(monkeypatch):
    from core.compression import lowrank
    calls = []
    original = lowrank.layer_svds
    monkeypatch.setattr(lowrank, "layer_svds", lambda *a: calls.append(1) or original(*a))
    model = _mlp()
    for kept in (0.9, 0.5, 0.2):
        compress(model, CompressionConfig(rank_kept=kept))
    assert len(calls) == 1


@pytest.fixture(scope="module")
def trained():
    data = load_dataset("digits")
    return data, train(TrainConfig(model="lenet5", dataset="digits", epochs=3), data)


def test_fine_tuning_trains_the_factors_at_a_fixed_rank(trained):
    data, model = trained
    cfg = CompressionConfig(rank_kept=0.5, rank_mode="fraction")
    plain = compress(model, cfg)
    assert torch.equal(compress_fine_tuned(model, cfg, data.x_train, data.y_train, epochs=0)(data.x_test[:8]),
                       plain(data.x_test[:8]))
    tuned = compress_fine_tuned(model, cfg, data.x_train, data.y_train, epochs=1)
    ranks = lambda m: [getattr(layer, "rank", None) for _, layer in prunable_layers(m)]  # noqa: E731
    assert ranks(tuned) == ranks(plain) and any(r is not None for r in ranks(tuned))
    assert not all(torch.equal(a.weight, b.weight) for (_, a), (_, b) in zip(stored_layers(plain), stored_layers(tuned)))
    assert not tuned.training


def test_pointwise_conv_equals_torch_conv():
    from core.layers import PointwiseConv2d
    fast = PointwiseConv2d(3, 5, 1)
    plain = nn.Conv2d(3, 5, 1)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(4, 3, 6, 7, requires_grad=True)
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-6)
    (grad,) = torch.autograd.grad(fast(x).sum(), x)  # Captum needs the gradient
    torch.testing.assert_close(grad, torch.autograd.grad(plain(x).sum(), x)[0], rtol=1e-5, atol=1e-6)


def test_grad_cam_and_sanity_see_a_factored_conv_by_its_original_name():
    from core.explain.attribution import describe_grad_cam, grad_cam_layer
    from core.explain.sanity import cascade
    model = _cnn()
    compressed = compress(model, CompressionConfig(rank_kept=0.5, rank_mode="fraction"))
    assert isinstance(compressed[2], FactoredConv2d)
    assert grad_cam_layer(compressed) == grad_cam_layer(model) == ("3", True)  # the ReLU after conv 2
    assert "conv 2 (12×8×3×3)" in describe_grad_cam(compressed)
    steps = [(name, [m.weight.detach().clone() for m in (twin[2].first, twin[2].second)])
             for _, name, _, twin in cascade(compressed)]
    assert [name for name, _ in steps] == ["", "5", "2", "0"]  # output layer first, by original names
    (_, before), (_, after) = steps[1], steps[2]
    assert not any(torch.equal(a, b) for a, b in zip(before, after))  # both factors were re-initialized


def test_describe_in_words():
    assert LowRank(rank_kept=0.9).describe() == "low-rank (90% of the energy kept, per layer)"
    assert LowRank(rank_kept=0.999, rank_mode="fraction", rank_scope="global").describe() == (
        "low-rank (99.9% of the rank kept, global)")
    assert CompressionConfig(rank_kept=0.57).describe().startswith("low-rank (57% of the energy kept, per layer), ")


def test_the_weights_file_holds_the_factors_as_stored():
    from safetensors.torch import load
    from core import export
    from core.upload import UploadError, check_state_dict
    model = _cnn()
    cfg = CompressionConfig(rank_kept=0.5, rank_mode="fraction")
    compressed = compress(model, cfg)
    state = load(export.weights_safetensors(compressed, TrainConfig(), cfg, (1, 8, 8), 5))
    assert {"2.first.weight", "2.second.weight", "2.second.bias"} <= set(state) and "2.weight" not in state
    assert state["2.first.weight"].shape == (6, 8, 3, 3) and state["2.second.weight"].shape == (12, 6, 1, 1)
    with pytest.raises(UploadError, match="unexpected"):  # a factored file is refused in words, not a crash
        check_state_dict(state, "lenet5", (1, 8, 8), 5)


def test_the_layer_tables_show_the_rank():
    from core import export
    from core.metrics import layer_table
    model = _mlp()
    x, y = torch.randn(10, 1, 8, 8), torch.randint(0, 10, (10,))
    cfg = CompressionConfig(rank_kept=0.2, rank_mode="fraction")  # fc 1 keeps 8 of 40, fc 2 2 of 10
    report = compression_report(model, compress(model, cfg), cfg, x, y)
    assert list(export.readable_layer_table(report)["Rank kept"]) == ["8 of 40", "2 of 10"]
    assert list(layer_table(report)["rank"]) == [8, 2] and list(layer_table(report)["full_rank"]) == [40, 10]
    dense = CompressionConfig(rank_kept=0.8, rank_mode="fraction")  # both layers would grow: kept dense
    report = compression_report(model, compress(model, dense), dense, x, y)
    assert list(export.readable_layer_table(report)["Rank kept"]) == ["all 40 (dense)", "all 10 (dense)"]
    off = compression_report(model, compress(model, CompressionConfig()), CompressionConfig(), x, y)
    assert "Rank kept" not in export.readable_layer_table(off).columns


def test_the_report_adds_the_low_rank_scrub_board_only_when_low_rank_is_on():
    from core import export
    data = load_dataset("digits")
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).eval()
    headings = {}
    for name, cfg in (("off", CompressionConfig()), ("on", CompressionConfig(rank_kept=0.5))):
        compressed = compress(model, cfg)
        report = compression_report(model, compressed, cfg, data.x_test, data.y_test)
        headings[name] = [h for h, _ in export.comparison_figures(model, compressed, report, data, images=(0,))]
    assert headings["on"] == [*headings["off"], "Scrub: low-rank: share kept"]

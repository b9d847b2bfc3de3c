"""core.compression.sharing: k-means weight sharing, its storage, its cache and its fine-tuning."""
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from torch import nn

from core.compression import CompressionConfig, compress, sharing
from core.compression.finetune import SharedWeight, compress_fine_tuned, fine_tune_codebooks
from core.data import load_dataset
from core.layers import prunable_layers
from core.metrics import coded_storage_bits, compression_report, layer_stats
from core.training import TrainConfig, train


@pytest.fixture(scope="module")
def setup():
    data = load_dataset("digits")
    return data, train(TrainConfig(model="lenet5", dataset="digits", epochs=3), data)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("bits", [1, 2, 4])
@pytest.mark.parametrize("amount", [0.0, 0.6])
def test_layers_match_scikit_learn_kmeans_with_linear_init(setup, bits, amount):
    _, model = setup
    before = _state(model)
    pruned = compress(model, CompressionConfig(prune_amount=amount))
    shared = compress(model, CompressionConfig(prune_amount=amount, share_bits=bits))
    assert _same(before, model.state_dict())  # input untouched
    for (name, p), (_, s) in zip(prunable_layers(pruned), prunable_layers(shared)):
        w, out = p.weight.detach().reshape(-1), s.weight.detach().reshape(-1)
        assert torch.equal(w == 0, out == 0)  # zeros stay exactly zero, and no new ones
        values = w[w != 0].numpy().reshape(-1, 1)
        k = 2**bits
        assert torch.unique(out[out != 0]).numel() <= k
        if len(np.unique(values)) <= k:
            continue  # a tiny layer is its own codebook
        init = np.linspace(values.min(), values.max(), k, dtype=np.float32).reshape(-1, 1)
        reference = KMeans(n_clusters=k, init=init, n_init=1).fit(values)
        expected = reference.cluster_centers_[reference.labels_, 0].astype(np.float32)
        np.testing.assert_array_equal(out[out != 0].numpy(), expected, err_msg=name)


def test_storage_by_hand():
    # 16 weights, 8 of them zero, 1-bit sharing: two shared values.
    weight = torch.tensor([0.0, 1.0, 0.0, 3.0] * 4).view(4, 4)
    step = CompressionConfig(share_bits=1).step("share")
    code = step.weight_code(weight)
    assert (code.levels, code.has_zero, code.params_per_group, code.groups) == (3, True, 64, "tensor")
    # dense: 16 x 2 bits (3 values) + 2 x 32 = 96; bitmask: 8 x 1 + 16 + 64 = 88; CSR: 8 x (1 + 4) + 64 = 104
    assert coded_storage_bits(weight, code) == 88
    dense = torch.tensor([1.0, 3.0] * 8).view(4, 4)  # no zeros: 16 x 1 bit + 64 = 80
    code = step.weight_code(dense)
    assert (code.levels, code.has_zero) == (2, False) and coded_storage_bits(dense, code) == 80
    # 4-bit sharing of a layer using all 16 values, no zeros: 64 x 4 + 16 x 32 = 768
    full = torch.arange(1, 17, dtype=torch.float32).repeat(4).view(8, 8)
    code = CompressionConfig(share_bits=4).step("share").weight_code(full)
    assert (code.levels, code.params_per_group) == (16, 512) and coded_storage_bits(full, code) == 768
    # a layer left with fewer values than 2^b stores only those: 3 values, 8-bit sharing
    code = CompressionConfig(share_bits=8).step("share").weight_code(weight)
    assert (code.levels, code.params_per_group) == (3, 64)


def test_model_storage_counts_indices_and_codebooks(setup):
    data, model = setup
    cfg = CompressionConfig(share_bits=3)
    shared = compress(model, cfg)
    for stat, (_, module) in zip(layer_stats(shared, data.input_shape, cfg), prunable_layers(shared)):
        n = module.weight.numel()
        used = torch.unique(module.weight).numel()
        assert used <= 8
        assert stat.size_bits == n * (used - 1).bit_length() + used * 32 + 32 * module.bias.numel()


def test_sharing_wins_over_quantization_and_says_so(setup):
    _, model = setup
    both = CompressionConfig(share_bits=2, weight_bits=4)
    only = CompressionConfig(share_bits=2)
    assert _same(compress(model, both).state_dict(), compress(model, only).state_dict())
    assert [s.name for s in both.pipeline()] == ["share"] and not both.quantized
    problems = both.problems()
    assert len(problems) == 1 and "weight sharing applies" in problems[0] and "4-bit" in problems[0]
    assert "quantization" not in both.describe() and "2-bit weight sharing" in both.describe()
    w = prunable_layers(compress(model, both))[0][1].weight
    assert both.weight_code(w) == only.weight_code(w)
    assert CompressionConfig(share_bits=2).problems() == [] and CompressionConfig(weight_bits=4).quantized


def test_kmeans_is_cached_and_sharing_twice_changes_nothing(setup, monkeypatch):
    _, model = setup
    calls = []
    real = sharing.cluster
    monkeypatch.setattr(sharing, "cluster", lambda *a: calls.append(1) or real(*a))
    cfg = CompressionConfig(share_bits=5, prune_amount=0.3)
    first = compress(model, cfg)
    count = len(calls)
    assert count > 0
    assert _same(compress(model, cfg).state_dict(), first.state_dict()) and len(calls) == count  # reused
    compress(model, CompressionConfig(share_bits=5, prune_amount=0.4))
    assert len(calls) > count  # another pruning setting: new weights, new clusters
    assert _same(compress(first, CompressionConfig(share_bits=5)).state_dict(), first.state_dict())


@pytest.mark.parametrize("cfg", [CompressionConfig(share_bits=1), CompressionConfig(share_bits=8, prune_amount=1.0),
                                 CompressionConfig(share_bits=1, prune_amount=1.0),
                                 CompressionConfig(share_bits=1, prune_amount=0.99, prune_method="structured")])
def test_extreme_settings_give_finite_numbers(setup, cfg):
    data, model = setup
    shared = compress(model, cfg)
    assert torch.isfinite(shared(data.x_test)).all()
    report = compression_report(model, shared, cfg, data.x_test, data.y_test)
    assert np.isfinite(report.size_compressed_bytes) and report.size_compressed_bytes > 0
    assert 0.0 <= report.compressed.accuracy <= 1.0 and np.isfinite(report.compression_ratio)


def test_centroid_gradient_is_the_sum_of_its_weights_gradients():
    weight = torch.tensor([[0.5, 0.0, -1.0], [0.5, -1.0, 0.0]])
    shared = SharedWeight(weight)
    codebook = shared.right_inverse(weight).requires_grad_(True)  # [-1.0, 0.5]
    rebuilt = shared(codebook)
    assert torch.equal(rebuilt, weight)
    upstream = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    (rebuilt * upstream).sum().backward()
    assert torch.equal(codebook.grad, torch.tensor([3.0 + 5.0, 1.0 + 4.0]))  # zeros get no centroid


def test_centroid_fine_tuning_keeps_assignments_and_zeros(setup):
    data, model = setup
    cfg = CompressionConfig(share_bits=2, prune_amount=0.5)
    shared = compress(model, cfg)
    before = _state(shared)
    tuned = fine_tune_codebooks(shared, data.x_train, data.y_train, epochs=1)
    assert _same(before, shared.state_dict()) and tuned.state_dict().keys() == before.keys()
    for (_, a), (_, b) in zip(prunable_layers(shared), prunable_layers(tuned)):
        wa, wb = a.weight.detach().reshape(-1), b.weight.detach().reshape(-1)
        assert torch.equal(wa == 0, wb == 0)
        # same partition of the weights: equal values before are equal after, and vice versa
        _, ia = torch.unique(wa, return_inverse=True)
        _, ib = torch.unique(wb, return_inverse=True)
        assert torch.equal(ia, ib) or len(torch.unique(wb)) < len(torch.unique(wa))
        assert not torch.equal(wa, wb)  # it did train
        assert not hasattr(b, "parametrizations") and not b._forward_pre_hooks
    end = compress_fine_tuned(model, cfg, data.x_train, data.y_train, epochs=1)
    assert all(torch.unique(m.weight[m.weight != 0]).numel() <= 4 for _, m in prunable_layers(end))


def test_a_layer_without_weights_left_is_all_zeros():
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.zero_()
    assert torch.equal(sharing.share_weight(layer.weight, 3), torch.zeros(2, 3))


def test_stored_codes_rebuild_the_weights(setup):
    _, model = setup
    shared = compress(model, CompressionConfig(share_bits=3, prune_amount=0.7))
    for name, (codebook, indices) in sharing.stored_codes(shared).items():
        weight = dict(prunable_layers(shared))[name].weight
        assert codebook.numel() <= 8 and indices.dtype == torch.uint8
        assert torch.equal(torch.cat([torch.zeros(1), codebook])[indices.long()], weight)

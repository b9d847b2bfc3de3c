"""core.compression.finetune: the mask stays fixed, the input is untouched, accuracy recovers."""
import pytest
import torch

from core.compression import CompressionConfig, compress
from core.data import load_dataset
from core.compression.finetune import compress_fine_tuned, fine_tune
from core.layers import prunable_layers
from core.training import TrainConfig, accuracy, train


@pytest.fixture(scope="module")
def setup():
    data = load_dataset("digits")
    model = train(TrainConfig(model="lenet300", dataset="digits", epochs=10), data)
    return data, model


def _zeros(model):
    return [(m.weight == 0) for _, m in prunable_layers(model)]


def test_mask_is_held_and_input_untouched(setup):
    data, model = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = compress(model, CompressionConfig(prune_amount=0.9))
    tuned = fine_tune(pruned, data.x_train, data.y_train, epochs=2)
    for a, b in zip(_zeros(pruned), _zeros(tuned)):
        assert torch.equal(a, b)  # exactly the pruned weights are zero, no more, no fewer
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert "weight_orig" not in "".join(tuned.state_dict()) and not tuned.training
    assert all(not m._forward_pre_hooks for m in tuned.modules())
    assert not any(torch.equal(a.weight, b.weight) for (_, a), (_, b)
                   in zip(prunable_layers(pruned), prunable_layers(tuned)))  # it did train


def test_fine_tuning_recovers_accuracy_at_high_sparsity(setup):
    data, model = setup
    cfg = CompressionConfig(prune_amount=0.95)
    plain = accuracy(compress(model, cfg), data.x_test, data.y_test)
    tuned = accuracy(compress_fine_tuned(model, cfg, data.x_train, data.y_train, epochs=3), data.x_test, data.y_test)
    assert tuned > plain + 0.05


def test_quantization_after_fine_tuning_keeps_zeros_and_levels(setup):
    data, model = setup
    cfg = CompressionConfig(prune_amount=0.8, weight_bits=2, quant_granularity="per_tensor")
    out = compress_fine_tuned(model, cfg, data.x_train, data.y_train, epochs=1)
    zeros = sum((m.weight == 0).sum().item() for _, m in prunable_layers(out))
    assert zeros >= 0.8 * sum(m.weight.numel() for _, m in prunable_layers(out)) - 1
    for _, m in prunable_layers(out):
        assert torch.unique(m.weight).numel() <= 3  # ternary: -s, 0, s


def test_zero_epochs_is_plain_compression(setup):
    data, model = setup
    cfg = CompressionConfig(prune_amount=0.5, weight_bits=4)
    a, b = compress(model, cfg), compress_fine_tuned(model, cfg, data.x_train, data.y_train, epochs=0)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_straight_through_estimator_rounds_forward_and_passes_gradients_back():
    from core.compression.finetune import StraightThrough
    from core.compression.quantization import quantize_weight

    weight = torch.tensor([[0.3, 0.0, -0.7], [0.1, 0.9, 0.0]])
    code = CompressionConfig(weight_bits=2, quant_granularity="per_tensor").step("quantize")
    ste = StraightThrough(weight, code)
    latent = weight.clone().requires_grad_(True)
    out = ste(latent)
    assert torch.equal(out, quantize_weight(weight, 2, "symmetric", "per_tensor", "mse"))
    upstream = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    (out * upstream).sum().backward()
    assert torch.equal(latent.grad, upstream * (weight != 0))  # the identity, except where pruned


def test_quantization_aware_fine_tuning_keeps_zeros_and_codes_and_recovers(setup):
    data, model = setup
    cfg = CompressionConfig(prune_amount=0.8, weight_bits=2, quant_granularity="per_tensor", quant_range="minmax")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned_zeros = _zeros(compress(model, cfg.only("prune")))
    aware = compress_fine_tuned(model, cfg, data.x_train, data.y_train, epochs=2, quantization_aware=True)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    for zeros, (_, m) in zip(pruned_zeros, prunable_layers(aware)):
        assert (m.weight[zeros] == 0).all() and torch.unique(m.weight).numel() <= 3
        assert not hasattr(m, "parametrizations")
    plain = accuracy(compress(model, cfg), data.x_test, data.y_test)
    assert accuracy(aware, data.x_test, data.y_test) > plain + 0.05

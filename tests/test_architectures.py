"""The lighter architectures (models/resnet.py, models/separable.py): shapes, MACs of depthwise convs by
hand, Grad-CAM's layer, uploads, and structured pruning of coupled channels (a residual stream, the
inputs of a depthwise conv) checked against Torch-Pruning's dependency graph and its real shrinking."""
from __future__ import annotations

import pytest
import torch
import torch_pruning as tp
from torch import nn

from core import upload
from core.compression import CompressionConfig, compress, set_calibration, structured_limit
from core.compression.units import relu_after, unit_groups
from core.explain.attribution import METHODS, attribute, grad_cam_layer, methods_for
from core.layers import prunable_layers
from core.metrics import layer_stats
from models import create_model, list_models

NEW = ["resnet_small", "separable"]
SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]  # digits, MNIST, CIFAR-10


def _model(name: str, shape=(1, 8, 8), classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, shape, classes).eval()


def _images(shape=(1, 8, 8), n: int = 16) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(1))


def _zero_share(model: nn.Module) -> float:
    layers = prunable_layers(model)
    return sum(int((m.weight == 0).sum()) for _, m in layers) / sum(m.weight.numel() for _, m in layers)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", NEW)
def test_new_models_give_logits_and_refuse_tiny_inputs(name, shape):
    assert name in list_models()
    assert _model(name, shape, 10)(torch.zeros(2, *shape)).shape == (2, 10)
    with pytest.raises(ValueError, match="8x8"):
        create_model(name, (1, 4, 4), 10)


def test_depthwise_macs_are_positions_times_weights_by_hand():
    model = _model("separable", (1, 8, 8))
    stats = {s.name: s for s in layer_stats(model, (1, 8, 8))}
    # Depthwise conv 3 (16 filters of 1x3x3) on the 4x4 map after one pool: every one of the
    # 16 channels x 16 positions needs 9 multiply-adds: 2304 (a dense 16->16 conv would need 16x that).
    assert stats["3"].shape == (16, 1, 3, 3) and stats["3"].dense_macs == 16 * 16 * 9
    # Pointwise conv 5 (32x16x1x1) on 4x4: 32 outputs x 16 positions x 16 inputs.
    assert stats["5"].dense_macs == 32 * 16 * 16
    # Depthwise conv 8 (32x1x3x3) on 2x2: 32 channels x 4 positions x 9.
    assert stats["8"].dense_macs == 32 * 4 * 9
    # Cross-check against counting the products of a grouped conv directly: out elements x (in/groups) x k x k.
    conv = model[3]
    assert stats["3"].dense_macs == 16 * 4 * 4 * (conv.in_channels // conv.groups) * 9


@pytest.mark.parametrize("name", NEW)
def test_grad_cam_explains_the_last_conv_after_its_relu(name):
    model = _model(name)
    layer, after_relu = grad_cam_layer(model)
    assert (layer, after_relu) == {"resnet_small": ("block2.relu2", True), "separable": ("11", True)}[name]
    assert "grad_cam" in methods_for(model)


@pytest.mark.parametrize("name", NEW)
def test_every_attribution_method_runs_and_leaves_the_model_unchanged(name):
    model = _model(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = _images(n=2)
    for method in METHODS:
        maps = attribute(model, x, None, method)
        assert maps.shape == (2, 8, 8) and torch.isfinite(maps).all(), method
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("name", NEW)
def test_an_upload_of_each_new_model_is_recognised_as_that_model(name):
    state = _model(name).state_dict()
    found, checked = upload.match_architecture(state, (1, 8, 8), 3, list_models(), preferred="lenet5")
    assert found == name and checked.keys() == state.keys()


# ------------------------------------------------------------------ coupled channels


def _traced_groups(model: nn.Module, shape) -> set[tuple[str, ...]]:
    """Torch-Pruning's groups of layers whose output channels go together (the last layer ignored)."""
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, *shape))
    names = {module: name for name, module in model.named_modules()}
    last = prunable_layers(model)[-1][1]
    outs = (tp.prune_conv_out_channels, tp.prune_linear_out_channels, tp.prune_depthwise_conv_out_channels)
    return {tuple(sorted({names[dep.target.module] for dep, _ in group if dep.handler in outs}))
            for group in graph.get_all_groups(ignored_layers=[last], root_module_types=[nn.Conv2d, nn.Linear])}


@pytest.mark.parametrize("name", ["lenet5", "mlp", *NEW])
def test_declared_couplings_match_torch_pruning_dependency_graph(name):
    model = _model(name)
    declared = {tuple(sorted(g.layers)) for g in unit_groups(model)}
    assert declared == _traced_groups(model, (1, 8, 8))
    assert {n for g in unit_groups(model) for n in g.layers} == {n for n, _ in prunable_layers(model)[:-1]}


@pytest.mark.parametrize("name", NEW)
def test_every_unit_of_the_new_models_has_a_relu(name):
    model = _model(name)
    assert set(relu_after(model)) == {n for n, _ in prunable_layers(model)[:-1]}


def _removed(model: nn.Module, out: nn.Module) -> dict[str, torch.Tensor]:
    """Per prunable layer, the indices of its output rows that are entirely zero in `out`."""
    return {name: (layer.weight.flatten(1) == 0).all(1).nonzero().flatten() for name, layer in prunable_layers(out)}


@pytest.mark.parametrize("method", ["structured", "apoz"])
@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("name", NEW)
def test_a_removed_channel_is_zero_in_every_coupled_layer(name, scope, method):
    model = _model(name)
    set_calibration(model, _images())
    for amount in (0.2, 0.5, 0.8):
        out = compress(model, CompressionConfig(prune_amount=amount, prune_method=method, prune_scope=scope))
        removed = _removed(model, out)
        for group in unit_groups(model):
            sets = [set(removed[n].tolist()) for n in group.layers]
            assert all(s == sets[0] for s in sets), (group, sets)
        assert removed[prunable_layers(model)[-1][0]].numel() == 0  # never the classes


@pytest.mark.parametrize("method", ["structured", "apoz"])
@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("name", NEW)
def test_structured_rate_is_the_share_of_weights_on_the_new_models(name, scope, method):
    model = _model(name, (1, 28, 28), 10)
    set_calibration(model, _images((1, 28, 28)))
    total = sum(m.weight.numel() for _, m in prunable_layers(model))
    groups = unit_groups(model)
    # As for the other models: within half a unit (global), half a unit per group (per layer).
    slack = (max(g.size for g in groups) / 2 if scope == "global" else sum(g.size for g in groups) / 2) + 0.5
    for amount in (0.1, 0.3, 0.5, 0.7, 0.9):
        amount *= structured_limit(model)  # what structured pruning can reach: all but the classes' layer
        out = compress(model, CompressionConfig(prune_amount=amount, prune_method=method, prune_scope=scope))
        assert abs(_zero_share(out) * total - amount * total) <= slack, amount
    full = compress(model, CompressionConfig(prune_amount=1.0, prune_method=method, prune_scope=scope))
    assert _zero_share(full) == pytest.approx(structured_limit(model))


@pytest.mark.parametrize("name", NEW)
def test_coupled_pruning_equals_the_model_with_those_channels_physically_removed(name):
    # Structured pruning zeroes weights and keeps biases (the rate counts weights). With the removed
    # units' biases zeroed as well, a removed channel is exactly 0 everywhere, so the pruned model must
    # compute what Torch-Pruning's really shrunk model (channels deleted from every dependent layer) does.
    model = _model(name, (1, 28, 28), 10)
    # Per layer: every group loses the same share, so none is emptied (a conv with 0 filters cannot run).
    amount = 0.5 * structured_limit(model)
    out = compress(model, CompressionConfig(prune_amount=amount, prune_method="structured", prune_scope="layer"))
    removed = _removed(model, out)
    assert all(0 < removed[g.layers[0]].numel() < g.count for g in unit_groups(model))
    layers = dict(prunable_layers(out))
    with torch.no_grad():
        for layer_name, idxs in removed.items():
            layers[layer_name].bias[idxs] = 0.0
    shrunk = _model(name, (1, 28, 28), 10)
    shrunk.load_state_dict(out.state_dict())
    graph = tp.DependencyGraph().build_dependency(shrunk, example_inputs=torch.zeros(1, 1, 28, 28))
    modules = dict(shrunk.named_modules())
    for group in unit_groups(model):  # one pruning group per coupled set: Torch-Pruning follows the coupling
        idxs = removed[group.layers[0]].tolist()
        if idxs:
            graph.get_pruning_group(modules[group.layers[0]], tp.prune_conv_out_channels, idxs=idxs).prune()
    before = sum(m.weight.numel() for _, m in prunable_layers(model))
    assert sum(m.weight.numel() for _, m in prunable_layers(shrunk)) < before  # channels really gone
    x = _images((1, 28, 28), 8)
    with torch.no_grad():
        torch.testing.assert_close(shrunk(x), out(x), rtol=0, atol=1e-5)  # float sums in another order


def test_inputs_unchanged_by_coupled_and_apoz_pruning():
    model = _model("resnet_small")
    set_calibration(model, _images())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for method in ("structured", "apoz"):
        compress(model, CompressionConfig(prune_amount=0.6, prune_method=method))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_a_coupled_layer_replaced_by_a_sequential_resolves_to_its_last_layer():
    # As a factoring step would leave it: the stem becomes conv (r filters) -> conv (8 filters).
    model = _model("resnet_small")
    stem = model.stem
    model.stem = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Conv2d(3, stem.out_channels, 1))
    groups = {g.layers for g in unit_groups(model)}
    assert ("stem.1", "block1.conv2") in groups and ("stem.0",) in groups
    model.coupled_channels = (("missing", "block1.conv2"),)  # instance attribute: a stale declaration
    assert ("block1.conv2",) in {g.layers for g in unit_groups(model)}

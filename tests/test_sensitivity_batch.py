"""The sensitivity analysis's shared work (core/studies/layer_runs.py) gives the same numbers.

- The table equals a straightforward measurement (each layer compressed alone, the whole model evaluated
  and explained with Captum), every number bit for bit but the activation SQNR (relative 1e-6) and the
  rank correlations of maps whose last step back is `input_gradient` (below), on the
  small MLP on digits (the app tests' model), an untrained LeNet-5, the separable CNN and resnet_small
  (no nn.Sequential: the whole-model path), for gradient methods (batched maps) and Integrated Gradients.
- The batched gradient maps equal Captum's (`attribute`) on the whole model, bit for bit, but when the model
  starts with a convolution whose input gradient `layer_runs.input_gradient` computes (lenet5): then within
  FLIP_TOLERANCE of each map's largest value, with the same zero pixels, and the table's rank correlations
  within FLIP_TOLERANCE (a reordered float32 sum can swap two nearly tied pixels).
- The layers' inputs computed once equal each layer's own prefix; the model and the data are never modified.
"""
from __future__ import annotations

import math
import pickle
from dataclasses import replace

import pytest
import torch

from core.data import load_dataset
from core.explain.attribution import attribute, saliency_agreement
from core.layers import prunable_layers
from core.metrics import evaluate, prediction_agreement
from core.studies import layer_runs, sensitivity
from core.studies.sweeps import references
from core.training import TrainConfig, load_or_train
from models import create_model

CFG = sensitivity.SensitivityConfig(probe_size=16, rates=(0.5, 0.95), bits=(8, 2))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _untrained(name: str, data) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, tuple(data.x_train.shape[1:]), 10).eval()


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _unchanged(model, state, data, x_test) -> bool:
    return all(torch.equal(model.state_dict()[k], v) for k, v in state.items()) and torch.equal(data.x_test, x_test)


def _assert_straightforward(model, data, cfg, table) -> None:
    """Every row of `table` equals the straightforward measurement: the layer compressed alone
    (`compress_layer`), the whole model evaluated and explained with Captum (`attribute`)."""
    ref = references(model, data, cfg.sweep)[0]
    x = data.x_test[:sensitivity.ACTIVATION_IMAGES]
    rows = iter(table.itertuples())
    for name, module in prunable_layers(model):
        for kind, rate, bits, _ in sensitivity.settings(cfg):
            row = next(rows)
            assert (row.layer, row.kind, row.prune_amount, row.weight_bits) == (name, kind, rate, bits)
            weight = sensitivity.compress_layer(module, cfg.base, rate, bits)
            twin = sensitivity.with_weight(model, name, weight)
            ev = evaluate(twin, data.x_test, data.y_test)
            agreement = saliency_agreement(attribute(twin, ref.probes, ref.target, cfg.method), ref.maps)
            assert row.accuracy == ev.accuracy and row.agreement == prediction_agreement(ev, ref.evaluation)
            expected = float(agreement["spearman_abs"].mean())
            assert row.spearman_abs == expected or (_flipped(model, cfg.method) and  # a near tie may swap
                                                    abs(row.spearman_abs - expected) <= layer_runs.FLIP_TOLERANCE)
            assert row.weight_sqnr_db == sensitivity.sqnr_db(module.weight, weight)
            outputs = [_output(m, name, x) for m in (model, twin)]
            assert row.activation_sqnr_db == sensitivity.sqnr_db(*outputs) or \
                math.isclose(row.activation_sqnr_db, sensitivity.sqnr_db(*outputs), rel_tol=1e-6)
    assert next(rows, None) is None


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients"])
def test_small_mlp_table_equals_the_straightforward_measurement(small, digits, method):
    model = load_or_train(TrainConfig(model=small["model"], dataset=small["dataset"]), digits).model
    state, x_test = _state(model), digits.x_test.clone()
    cfg = replace(CFG, method=method)
    _assert_straightforward(model, digits, cfg, sensitivity.sensitivity_table(model, digits, cfg))
    assert _unchanged(model, state, digits, x_test)


@pytest.mark.parametrize("name", ["lenet5", "separable"])
@pytest.mark.parametrize("method", ["input_x_gradient", "integrated_gradients"])
def test_cnn_table_equals_the_straightforward_measurement(digits, name, method):
    model = _untrained(name, digits)
    state, x_test = _state(model), digits.x_test.clone()
    cfg = replace(CFG, method=method)
    _assert_straightforward(model, digits, cfg, sensitivity.sensitivity_table(model, digits, cfg, workers=1))
    assert _unchanged(model, state, digits, x_test)


def test_resnet_table_equals_the_straightforward_measurement(digits):
    """Residual blocks: whole models (360 test images: two chunks, which the old hook got wrong)."""
    model = _untrained("resnet_small", digits)
    state, x_test = _state(model), digits.x_test.clone()
    _assert_straightforward(model, digits, CFG, sensitivity.sensitivity_table(model, digits, CFG))
    assert _unchanged(model, state, digits, x_test)


def _output(model, name, x):
    seen = {}

    def keep(_module, _inputs, out) -> None:  # returns None: the layer's output stays as it is
        seen.setdefault("y", out)

    handle = model.get_submodule(name).register_forward_hook(keep)
    with torch.inference_mode():
        model(x)
    handle.remove()
    return seen["y"]


def _flipped(model, method: str) -> bool:
    """Do the batched maps take their last step back by `layer_runs.input_gradient` (not Captum's autograd)?"""
    return method in layer_runs.GRADIENT_METHODS and layer_runs.flippable(next(iter(model.children())))


def _same_maps(model, maps, expected) -> bool:
    """Bit for bit Captum's maps; within FLIP_TOLERANCE of each map's largest value when the last step back is
    `input_gradient` (the same float32 sums in another order)."""
    if not layer_runs.flippable(next(iter(model.children()))):
        return torch.equal(maps, expected)
    scale = expected.abs().amax(dim=(1, 2), keepdim=True)
    return bool(((maps - expected).abs() <= layer_runs.FLIP_TOLERANCE * scale).all()) and \
        torch.equal(maps == 0, expected == 0)


def test_input_gradient_is_autograds(digits):
    """The flipped forward convolution is the convolution's input gradient (padding 0 to kernel - 1, several
    channels), within FLIP_TOLERANCE of autograd's, and `flippable` refuses what it cannot compute."""
    torch.manual_seed(0)
    for cin, cout, k, p in ((1, 6, 5, 2), (3, 4, 3, 0), (2, 5, 3, 2)):
        conv = torch.nn.Conv2d(cin, cout, k, padding=p)
        x = torch.randn(4, cin, 9, 9, requires_grad=True)
        g = torch.randn_like(conv(x))
        (expected,) = torch.autograd.grad(conv(x), x, g)
        got = layer_runs.input_gradient(conv, g)
        assert layer_runs.flippable(conv) and got.shape == expected.shape
        assert (got - expected).abs().max() <= layer_runs.FLIP_TOLERANCE * expected.abs().max()
    for conv in (torch.nn.Conv2d(1, 2, 3, stride=2), torch.nn.Conv2d(2, 2, 3, groups=2),
                 torch.nn.Conv2d(1, 2, 3, dilation=2), torch.nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"),
                 torch.nn.Conv2d(1, 2, 3, padding=3), torch.nn.Conv2d(1, 2, 3, padding="same"), torch.nn.Linear(2, 2)):
        assert not layer_runs.flippable(conv), conv


@pytest.mark.parametrize("name", ["lenet5", "separable", "mlp"])
@pytest.mark.parametrize("method", layer_runs.GRADIENT_METHODS)
def test_batched_gradient_maps_equal_captums(digits, name, method):
    model = _untrained(name, digits)
    state = _state(model)
    probes, target = digits.x_test[:12], torch.arange(12) % 10
    probes_before = probes.clone()
    for layer, module in prunable_layers(model):
        weights = [sensitivity.compress_layer(module, CFG.base, 0.9, 32),
                   sensitivity.compress_layer(module, CFG.base, 0.0, 2)]
        maps = layer_runs.gradient_maps(model, layer, weights, probes, target, method)
        expected = torch.cat([attribute(sensitivity.with_weight(model, layer, w), probes, target, method)
                              for w in weights])
        assert maps.dtype == torch.float32 and _same_maps(model, maps, expected), (name, layer)
    assert _unchanged(model, state, digits, digits.x_test) and torch.equal(probes, probes_before)
    assert layer_runs.gradient_maps(model, prunable_layers(model)[0][0], [], probes, target, "occlusion") is None


def test_gradient_maps_decline_residual_models(digits):
    model = _untrained("resnet_small", digits)
    assert layer_runs.gradient_maps(model, "stem", [model.stem.weight], digits.x_test[:4], 0, "saliency") is None


@pytest.mark.parametrize("name", ["lenet5", "separable", "mlp"])
def test_layer_inputs_are_each_layers_own_prefix(digits, name):
    model = _untrained(name, digits)
    names = [n for n, _ in prunable_layers(model)]
    inputs = layer_runs.layer_inputs(model, names, digits.x_test)
    assert set(inputs) == set(names)
    for layer in names:
        prefix = layer_runs.split(model, layer)[0]
        with torch.inference_mode():
            own = [prefix(digits.x_test[i:i + layer_runs.CHUNK]) for i in range(0, len(digits.x_test), layer_runs.CHUNK)]
        assert len(own) == len(inputs[layer]) and all(torch.equal(a, b) for a, b in zip(own, inputs[layer]))
    assert layer_runs.layer_inputs(_untrained("resnet_small", digits), ["stem"], digits.x_test) == {}


def test_shared_inputs_are_computed_once_and_travel_computed(digits):
    """SharedInputs: the first child's input is the test set itself (None), the others layer_inputs' (computed
    once, also when two threads ask at once), and a pickled copy (Ray's) carries the same tensors."""
    from concurrent.futures import ThreadPoolExecutor
    model = _untrained("lenet5", digits)
    names = [n for n, _ in prunable_layers(model)]
    expected = layer_runs.layer_inputs(model, names, digits.x_test)
    shared = layer_runs.SharedInputs(model, names, digits.x_test)
    assert shared.get(names[0]) is None
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(shared.get, names[1:3])
    assert first is shared.get(names[1]) and second is shared.get(names[2])
    copy = pickle.loads(pickle.dumps(shared))
    for layer in names[1:]:
        assert all(torch.equal(a, b) for a, b in zip(copy.get(layer), expected[layer]))
    assert copy.get(names[0]) is None


def test_relu_moves_after_the_pooling_with_the_same_numbers():
    chain = layer_runs.fast_chain([torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.ReLU(inplace=True), torch.nn.MaxPool2d(2)])
    assert [type(m).__name__ for m in chain] == ["MaxPool2x2", "ReLU", "ReLU", "MaxPool2x2"]
    x = torch.randn(3, 2, 9, 9)
    assert torch.equal(torch.nn.Sequential(*chain)(x.clone()),
                       torch.nn.Sequential(torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.ReLU(), torch.nn.MaxPool2d(2))(x))


def test_outcomes_on_onednn_tensors_equal_the_plain_ones(digits, monkeypatch):
    """A convolution's settings evaluated on oneDNN tensors (core.fast_inference) give every number the plain
    tensors give, and when the per-shape check says they would not, the plain path runs."""
    model = _untrained("lenet5", digits)
    labels, reference = torch.as_tensor(digits.y_test).long(), torch.zeros(len(digits.y_test), dtype=torch.long)
    for layer, module in prunable_layers(model)[:2]:
        weights = [sensitivity.compress_layer(module, CFG.base, rate, bits) for rate, bits in ((0.5, 32), (0.0, 2))]
        fast = layer_runs.outcomes(model, layer, weights, digits.x_test, labels, reference)
        with monkeypatch.context() as patch:
            seen = []
            patch.setattr(layer_runs, "onednn_agrees", lambda *args: seen.append(1) or False)
            plain = layer_runs.outcomes(model, layer, weights, digits.x_test, labels, reference)
        assert seen and fast == plain, layer

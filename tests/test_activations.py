"""core.compression.activations: fake-quantized layer inputs after calibration, fp16/bf16 computation."""
import copy
import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.ao.quantization import HistogramObserver, MinMaxObserver

from core.compression import CompressionConfig, activations, compress, set_calibration
from core.compression.steps import calibration_of
from core.data import load_dataset
from core.explain.attribution import attribute, methods_for
from core.layers import prunable_layers
from core.metrics import compression_report, layer_stats
from core.training import TrainConfig, load_or_train, train

ROOT = Path(__file__).resolve().parents[1]
T10K = [ROOT.parent / "shared" / "data" / "mnist-t10k", ROOT.parents[1] / "shared" / "data" / "mnist-t10k"]


@pytest.fixture(scope="module")
def small():
    data = load_dataset("digits")
    model = train(TrainConfig(model="lenet5", dataset="digits", epochs=3), data)
    set_calibration(model, data.x_train[:300])
    return data, model


@pytest.fixture(scope="module")
def default():
    data = load_dataset("mnist5k")
    return data, load_or_train(TrainConfig(), data).model


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _layer_inputs(model, x):
    """{layer: (input before its pre-hooks, input the layer computes with)} for one forward of x."""
    seen, handles = {}, []
    for name, module in prunable_layers(model):
        handles.append(module.register_forward_pre_hook(
            lambda _m, a, n=name: seen.setdefault(n, [a[0].detach().clone(), None]) and None, prepend=True))
        handles.append(module.register_forward_pre_hook(lambda _m, a, n=name: seen[n].__setitem__(1, a[0].detach())))
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return seen


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("kind", ["minmax", "histogram"])
def test_fake_quantization_equals_torch_reference_with_observer_qparams(small, bits, kind):
    data, model = small
    before, images = _state(model), data.x_train[:300].clone()
    quantized = compress(model, CompressionConfig(act_bits=bits, act_observer=kind))
    assert _same(before, model.state_dict()) and torch.equal(images, data.x_train[:300])
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())  # the shared model
    # The reference: the observer itself, fed the ORIGINAL model's layer inputs in the same batches.
    reference = {}
    for start in range(0, 300, 256):
        for name, (raw, _) in _layer_inputs(model, images[start:start + 256]).items():
            obs = reference.setdefault(name, (MinMaxObserver if kind == "minmax" else HistogramObserver)(
                dtype=torch.quint8, quant_min=0, quant_max=2**bits - 1))
            if kind == "histogram":
                obs.dst_nbins = 2**bits
            obs(raw)
    for name, (raw, used) in _layer_inputs(quantized, data.x_test[:50]).items():
        scale, zero_point = reference[name].calculate_qparams()
        expected = torch.fake_quantize_per_tensor_affine(raw, float(scale), int(zero_point), 0, 2**bits - 1)
        assert torch.equal(used, expected), name
        assert torch.unique(used).numel() <= 2**bits
        if name != prunable_layers(model)[0][0]:
            assert int(zero_point) == 0  # post-ReLU inputs: codes start at 0


def test_calibration_is_cached_per_setting_before_the_step(small, monkeypatch):
    _, model = small
    calls = []
    real = activations.calibrate
    monkeypatch.setattr(activations, "calibrate", lambda *a: calls.append(1) or real(*a))
    cfg = CompressionConfig(act_bits=6, act_observer="histogram", prune_amount=0.15)
    compress(model, cfg)
    compress(model, cfg)
    compress(model, CompressionConfig(act_bits=3, act_observer="histogram", prune_amount=0.15))
    assert len(calls) == 1  # another bit width reuses the statistics
    compress(model, CompressionConfig(act_bits=6, act_observer="histogram", prune_amount=0.25))
    assert len(calls) == 2  # other weights before the step: calibrated again


@pytest.mark.parametrize("cfg", [CompressionConfig(act_bits=2), CompressionConfig(act_bits=8, weight_bits=4),
                                 CompressionConfig(precision="fp16"), CompressionConfig(precision="bf16"),
                                 CompressionConfig(act_bits=4, precision="fp16", share_bits=3)])
def test_captum_explains_every_such_model(small, cfg):
    data, model = small
    x = data.x_test[:4].clone()
    compressed = compress(model, cfg)
    maps = attribute(compressed, x, None, "saliency")
    assert maps.dtype == torch.float32 and torch.isfinite(maps).all() and (maps.abs().sum((1, 2)) > 0).all()
    for method in methods_for(compressed):
        assert torch.isfinite(attribute(compressed, x, None, method)).all(), method
    assert torch.equal(x, data.x_test[:4])
    out = compressed(x)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_deep_copies_and_pickles_keep_their_hooks(small):
    data, model = small
    compressed = compress(model, CompressionConfig(act_bits=3, precision="bf16"))
    expected = compressed(data.x_test[:20])
    for twin in (copy.deepcopy(compressed), pickle.loads(pickle.dumps(compressed))):
        assert torch.equal(twin(data.x_test[:20]), expected)
    assert torch.equal(compress(compressed, CompressionConfig())(data.x_test[:20]), expected)
    again = compress(compressed, CompressionConfig(act_bits=3, precision="bf16"))  # re-done, not stacked
    hooks = sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in again.modules())
    assert hooks == len(prunable_layers(again)) + 2 and torch.isfinite(again(data.x_test[:20])).all()


def _agreement(model, x, dtype):
    low = compress(model, CompressionConfig(precision=dtype))
    with torch.no_grad():
        return (low(x).argmax(1) == model(x).argmax(1)).float().mean().item()


def test_fp16_agrees_with_fp32_on_the_default_test_set(default):
    data, model = default
    assert _agreement(model, data.x_test, "fp16") >= 0.999
    assert _agreement(model, data.x_test, "bf16") >= 0.99


def _t10k():
    folder = next((p for p in T10K if (p / "t10k-images-idx3-ubyte.gz").exists()), None)
    if folder is None:
        pytest.skip("the MNIST t10k files are not on this machine")
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    return torch.from_numpy(images.astype(np.float32) / 255.0)


def test_fp16_agrees_with_fp32_on_real_mnist_t10k(default):
    data, model = default
    pixels = _t10k()
    x = (pixels - data.mean[0]) / data.std[0]
    assert len(x) == 10_000 and _agreement(model, x, "fp16") >= 0.999


def test_storage_of_16_bit_weights_and_codes_under_them(small):
    data, model = small
    for cfg, bits in ((CompressionConfig(precision="fp16"), 16), (CompressionConfig(precision="bf16", weight_bits=4), 4),
                      (CompressionConfig(act_bits=8), 32)):
        stats = layer_stats(compress(model, cfg), data.input_shape, cfg)
        assert all(s.bits == bits for s in stats), cfg.describe()
    stats = layer_stats(compress(model, CompressionConfig(precision="fp16")), data.input_shape,
                        CompressionConfig(precision="fp16"))
    assert all(s.size_bits == 16 * s.params + 32 * s.bias_params for s in stats)


@pytest.mark.parametrize("cfg", [CompressionConfig(act_bits=2, prune_amount=1.0),
                                 CompressionConfig(act_bits=2, share_bits=1, prune_amount=1.0, precision="bf16"),
                                 CompressionConfig(act_bits=2, weight_bits=1, act_observer="histogram")])
def test_extreme_settings_give_finite_numbers(small, cfg):
    data, model = small
    compressed = compress(model, cfg)
    assert torch.isfinite(compressed(data.x_test)).all()
    report = compression_report(model, compressed, cfg, data.x_test, data.y_test)
    assert np.isfinite(report.size_compressed_bytes) and 0.0 <= report.compressed.accuracy <= 1.0
    assert torch.isfinite(attribute(compressed, data.x_test[:2], None, "saliency")).all()


def test_calibration_images_come_with_every_trained_model(tmp_path):
    data = load_dataset("digits")
    cfg = TrainConfig(model="lenet300", dataset="digits", epochs=1)
    for _ in range(2):  # trained, then loaded from disk
        model = load_or_train(cfg, data, cache_dir=tmp_path).model
        assert torch.equal(calibration_of(model), data.x_train[:activations.CALIBRATION_IMAGES])
    bare = train(cfg, data)
    with pytest.raises(ValueError, match="calibration images"):
        compress(bare, CompressionConfig(act_bits=8))
    assert compress(bare, CompressionConfig(act_bits=8), calibration=data.x_train[:64]) is not None


def test_scrub_walks_the_new_controls_at_16_bit_precision(small):
    from core.studies import scrub

    data, model = small
    for control in ("act_bits", "share"):
        series = scrub.scrub_series(model, CompressionConfig(precision="bf16"), control, data.x_test, data.y_test)
        assert len(series.accuracy) == len(scrub.stops(control)) and np.isfinite(series.size_bytes).all()

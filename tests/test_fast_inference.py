"""The inference view: 2x2 max pooling as strided maxima gives the same outputs and changes nothing."""
import pytest
import torch
from torch import nn

from core.fast_inference import MaxPool2x2, answers_on_rows, inference_view
from core.metrics import evaluate
from models import create_model, list_models

torch.set_num_threads(1)


@pytest.mark.parametrize("shape", [(3, 4, 8, 8), (2, 6, 7, 9), (1, 1, 2, 2), (5, 3, 28, 28)])
def test_pool_matches_torch(shape):
    x = torch.randn(shape)
    x[0, 0, 0, :2] = 0.5  # a tied window
    assert torch.equal(MaxPool2x2()(x), nn.MaxPool2d(2)(x))


def test_pool_propagates_nan():
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 1] = float("nan")
    out = MaxPool2x2()(x)
    assert torch.isnan(out[0, 0, 0, 0]) and torch.isnan(nn.MaxPool2d(2)(x)[0, 0, 0, 0])
    assert torch.equal(out[0, 0, 1:, 1:], torch.zeros(1, 1))


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("size", [8, 28])
def test_view_same_logits_and_model_untouched(name, size):
    torch.manual_seed(0)
    model = create_model(name, (1, size, size), 10).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modules = [(n, type(m), m) for n, m in model.named_modules()]
    view = inference_view(model)
    x = torch.randn(20, 1, size, size)
    with torch.inference_mode():
        assert torch.equal(view(x), model(x))
    assert [(n, type(m), m) for n, m in model.named_modules()] == modules  # same objects, same types
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(isinstance(m, MaxPool2x2) for m in model.modules())
    has_pool = any(type(m) is nn.MaxPool2d for m in model.modules())
    assert (view is model) == (not has_pool)
    if has_pool:  # parameters are shared, not copied
        assert {id(p) for p in view.parameters()} == {id(p) for p in model.parameters()}
        assert not any(type(m) is nn.MaxPool2d for m in view.modules())


def test_other_pools_are_kept():
    model = nn.Sequential(nn.MaxPool2d(3), nn.MaxPool2d(2, padding=1), nn.MaxPool2d(2, ceil_mode=True))
    assert inference_view(model) is model
    assert isinstance(inference_view(nn.MaxPool2d(2)), MaxPool2x2)


def test_evaluate_matches_plain_forward():
    torch.manual_seed(1)
    model = create_model("lenet5", (1, 28, 28), 10).eval()
    x, y = torch.randn(300, 1, 28, 28), torch.randint(0, 10, (300,))
    ev = evaluate(model, x, y)
    with torch.inference_mode():
        logits = torch.cat([model(x[:256]), model(x[256:])])  # evaluate's batches of 256
    assert (ev.predictions == logits.argmax(1).numpy()).all()
    assert torch.equal(torch.from_numpy(ev.probabilities.copy()), torch.softmax(logits, 1))


@pytest.mark.parametrize("name", ["lenet5", "mlp", "resnet_small"])
def test_answers_on_rows_are_evaluate_s_bit_for_bit(name):
    torch.manual_seed(2)
    model = create_model(name, (1, 28, 28), 10).eval()
    x, y = torch.randn(700, 1, 28, 28), torch.randint(0, 10, (700,))
    ev = evaluate(model, x, y)
    x_before, weights = x.clone(), {k: v.clone() for k, v in model.state_dict().items()}
    for rows in ([0, 1, 2, 3], [250, 255, 256, 300], [699], [512, 3, 698, 3]):
        predictions, probabilities = answers_on_rows(model, x, rows)
        assert predictions.tolist() == ev.predictions[rows].tolist()
        assert torch.equal(probabilities, torch.from_numpy(ev.probabilities[rows].copy()))
    assert answers_on_rows(model, x, [])[0].numel() == 0
    assert torch.equal(x, x_before) and all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


def test_onednn_chain_gives_the_plain_numbers():
    """LeNet-5's conv1 and what follows it on oneDNN tensors: the layer's output and the logits bit for bit,
    on 256 and on 8 images (agreement checked per shape); only Conv2d layers with zero padding take it."""
    from core.fast_inference import onednn_agrees, onednn_parts
    from core.studies.layer_runs import fast_chain
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch has no oneDNN")
    torch.manual_seed(0)
    model = create_model("lenet5", (1, 28, 28), 10).eval()
    layer, after = model[0], nn.Sequential(*fast_chain(list(model)[1:]))
    parts = onednn_parts(layer, list(after))
    assert [type(m) for m in parts[0]] == [nn.MaxPool2d, nn.ReLU, nn.Conv2d, nn.MaxPool2d, nn.ReLU]
    for n in (256, 8):
        x = torch.rand(n, 1, 28, 28)
        with torch.inference_mode():
            assert onednn_agrees(layer, parts, after, x)
            fast = layer(x.to_mkldnn())
            assert torch.equal(fast.to_dense(), layer(x))
            assert torch.equal(parts[1](parts[0](fast).to_dense()), after(layer(x)))
    assert onednn_parts(nn.Linear(2, 2), []) is None
    assert onednn_parts(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), []) is None
    assert onednn_parts(nn.Conv2d(1, 2, 3, padding="same"), []) is None

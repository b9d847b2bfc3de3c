"""Cascading model randomization (Adebayo et al. 2018) on tiny models, with known answers."""
from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from core.compression import CompressionConfig, compress
from core.figures.sanity import randomization_figure, randomization_maps_figure
from core.explain.sanity import cascade, cascading_randomization, randomized_maps


def tiny_cnn(seed: int = 0) -> nn.Module:
    """Conv(1, 2, 3) - ReLU - Flatten - Linear(32, 8) - ReLU - Linear(8, 3) on 1x4x4 images."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(32, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


def tiny_mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(2))


def frozen_snapshot(model: nn.Module) -> dict:
    return {"state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "grad": [p.requires_grad for p in model.parameters()], "training": model.training}


def assert_untouched(model: nn.Module, before: dict) -> None:
    after = model.state_dict()
    assert all(torch.equal(before["state"][k], after[k]) for k in after)
    assert [p.requires_grad for p in model.parameters()] == before["grad"]
    assert model.training == before["training"]
    assert all(p.grad is None for p in model.parameters())
    for m in model.modules():
        assert not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks)


def test_step_zero_is_one_and_later_steps_fall(images):
    frame = cascading_randomization(tiny_cnn(), images, method="saliency")
    assert frame["step"].tolist() == [0, 1, 2, 3]
    assert frame["layer"].tolist() == ["", "5", "3", "0"]                 # from the output layer down
    assert frame["label"].tolist() == ["none", "+ fc 2 (3×8)", "+ fc 1 (8×32)", "+ conv 1 (2×1×3×3)"]
    for metric in ("spearman_abs", "spearman", "ssim", "topk"):
        assert frame.loc[0, f"{metric}_mean"] == pytest.approx(1.0)
        assert frame.loc[0, f"{metric}_std"] == pytest.approx(0.0)
    assert (frame["spearman_abs_mean"][1:] < 1.0).all()
    assert not frame.isna().any().any()


def test_linear_model_known_answer():
    """A linear model's saliency is |W[target]|: after re-init it is |W'[target]| from our generator."""
    model = tiny_mlp()
    labels, maps = randomized_maps(model, torch.ones(1, 2, 2), target=1, method="saliency", seed=5)
    expected = torch.empty(2, 4)
    nn.init.kaiming_uniform_(expected, a=math.sqrt(5), generator=torch.Generator().manual_seed(5))
    assert labels == ["none", "+ fc 1 (2×4)"]
    assert torch.allclose(maps[0], model[1].weight.detach()[1].abs().view(2, 2))
    assert torch.allclose(maps[1], expected[1].abs().view(2, 2))


def test_fully_randomized_maps_differ(images):
    labels, maps = randomized_maps(tiny_cnn(), images[0], method="saliency")
    assert maps.shape == (4, 4, 4) and len(labels) == 4
    assert not torch.allclose(maps[0], maps[-1])


def test_shared_model_untouched_and_global_rng_unchanged(images):
    model = tiny_cnn()
    for p in model.parameters():
        p.requires_grad_(False)            # shared models may arrive frozen
    before = frozen_snapshot(model)
    x = images.clone()
    rng = torch.get_rng_state()
    cascading_randomization(model, images, method="saliency")
    randomized_maps(model, images[0], method="grad_cam")
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(images, x)
    assert_untouched(model, before)


def test_reproducible_per_seed(images):
    model = tiny_cnn()
    a = cascading_randomization(model, images, seed=3)
    b = cascading_randomization(model, images, seed=3)
    c = cascading_randomization(model, images, seed=4)
    assert a.equals(b)
    assert not a["spearman_abs_mean"].equals(c["spearman_abs_mean"])


def test_target_defaults_to_unrandomized_prediction(images):
    model = tiny_cnn()
    with torch.no_grad():
        predicted = model(images).argmax(1)
    assert cascading_randomization(model, images).equals(cascading_randomization(model, images, predicted))
    with torch.inference_mode():                   # a target made under inference_mode must work too
        frozen_target = model(images).argmax(1)
    assert cascading_randomization(model, images).equals(cascading_randomization(model, images, frozen_target))


def test_compressed_model_keeps_its_zero_pattern():
    pruned = compress(tiny_cnn(), CompressionConfig(prune_amount=0.5))
    zeros = {name: (m.weight == 0).clone() for name, m in pruned.named_modules() if hasattr(m, "weight")}
    *_, (_, _, _, twin) = list(cascade(pruned, seed=0))
    for name, module in twin.named_modules():
        if name in zeros:
            assert torch.equal(module.weight == 0, zeros[name])
            assert not torch.equal(module.weight, dict(pruned.named_modules())[name].weight)


def test_grad_cam_on_mlp_raises_clear_error():
    with pytest.raises(ValueError, match="convolutional"):
        cascading_randomization(tiny_mlp(), torch.ones(1, 1, 2, 2), method="grad_cam")
    with pytest.raises(ValueError, match="convolutional"):
        randomized_maps(tiny_mlp(), torch.ones(1, 2, 2), method="grad_cam")


def test_randomization_figures(images):
    model = tiny_cnn()
    original = cascading_randomization(model, images)
    compressed = cascading_randomization(compress(model, CompressionConfig(prune_amount=0.5)), images)
    fig = randomization_figure(original, compressed, metric="ssim")
    assert len(fig.data) == 4                                   # band + line per model
    assert list(fig.data[1].y) == pytest.approx(original["ssim_mean"].tolist())
    assert "near 1" in fig.layout.meta["caption"] and "Look" in fig.layout.meta["caption"]
    with pytest.raises(ValueError):
        randomization_figure(original, metric="pearson")
    labels, maps = randomized_maps(model, images[0])
    grid = randomization_maps_figure(labels, {"original": maps, "compressed": maps * 2})
    assert len(grid.data) == 2 * len(labels)
    assert max(abs(float(v)) for row in grid.data[0].z for v in row) == pytest.approx(1.0)
    assert grid.layout.meta["caption"]


def test_ig_on_a_black_background_does_not_pass_for_its_zeros():
    # Integrated Gradients is exactly zero on black pixels. Over every pixel those shared zeros kept
    # the rank correlation near 1 under full randomization; on the pixels nonzero in either map, the
    # default (signed) measure falls for a random model, and the page's default is that measure.
    x = torch.full((8, 1, 4, 4), -1.0)  # black background, five bright pixels per image
    generator = torch.Generator().manual_seed(0)
    x[:, 0, 1:3, 1:3] = torch.rand(8, 2, 2, generator=generator) + 0.5
    x[:, 0, 0, 1] = torch.rand(8, generator=generator) + 0.5
    frame = cascading_randomization(tiny_cnn(), x, method="integrated_gradients", n_steps=8)
    _, maps = randomized_maps(tiny_cnn(), x[0], method="integrated_gradients", n_steps=8)
    old = spearmanr(maps[0].abs().flatten(), maps[-1].abs().flatten()).statistic  # every pixel
    assert old > 0.6                                         # 11 of 16 pixels are zero in both maps
    assert frame["spearman_mean"].iloc[-1] < 0.0 and frame["spearman_abs_mean"].iloc[-1] < 0.0
    assert not frame.isna().any().any()
    fig = randomization_figure(frame)
    assert fig.layout.yaxis.title.text == "rank correlation of the maps"
    assert "zero in both maps" in fig.layout.meta["caption"]
    from core.figures.sanity import signed_note
    note = signed_note(frame)
    assert f"{frame['spearman_mean'].iloc[-1]:.2f}" in note and f"{frame['spearman_abs_mean'].iloc[-1]:.2f}" in note

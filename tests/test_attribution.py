"""Attribution maps (hand-computed answers on linear models) and map agreement."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn
from torch.nn.utils import prune

from core.explain.attribution import (
    METHOD_LABELS,
    METHODS,
    attribute,
    describe_grad_cam,
    describe_method,
    grad_cam_layer,
    is_signed,
    methods_for,
    saliency_agreement,
)
from models import create_model

W = torch.tensor([[1.0, -2.0, 3.0, -4.0], [0.5, 0.25, -1.0, 2.0]])


def linear_model() -> nn.Module:
    """f(x) = W x + b on a 1x2x2 image: every gradient is a row of W."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.copy_(W)
        model[1].bias.copy_(torch.tensor([0.1, -0.1]))
    return model.eval()


def linear_inputs() -> torch.Tensor:
    return torch.tensor([[[[0.5, -1.0], [2.0, 0.0]]], [[[-0.5, 1.5], [1.0, -2.0]]]])


def lenet(size: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("lenet5", (1, size, size), 10).eval()


def images(n: int, size: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


# --- known answers on linear models -------------------------------------------------


def test_saliency_is_abs_weight_of_target():
    x = linear_inputs()
    maps = attribute(linear_model(), x, 0, "saliency")
    assert torch.equal(maps, W[0].abs().reshape(1, 2, 2).expand(2, 2, 2))


def test_target_tensor_and_predicted_class():
    model, x = linear_model(), linear_inputs()
    maps = attribute(model, x, torch.tensor([0, 1]), "saliency")
    assert torch.equal(maps[0], W[0].abs().reshape(2, 2))
    assert torch.equal(maps[1], W[1].abs().reshape(2, 2))
    predicted = model(x).argmax(dim=1)
    assert torch.equal(attribute(model, x, None, "saliency"), attribute(model, x, predicted, "saliency"))


def test_input_x_gradient_is_w_times_distance_from_black():
    # Pixel space: attribution = w * (x - black), black = each image's minimum (-1.0 and -2.0 here).
    x = linear_inputs()
    maps = attribute(linear_model(), x, 1, "input_x_gradient")
    expected = torch.tensor([[[0.5 * 1.5, 0.25 * 0.0], [-1.0 * 3.0, 2.0 * 1.0]],
                             [[0.5 * 1.5, 0.25 * 3.5], [-1.0 * 3.0, 2.0 * 0.0]]])
    assert torch.allclose(maps, expected, atol=1e-6)
    # the black pixel of each image gets exactly 0, and the map sums to f(x) - f(black) (a linear model)
    assert maps[0, 0, 1] == 0 and maps[1, 1, 1] == 0
    black = x.amin(dim=(1, 2, 3), keepdim=True).expand_as(x)
    drop = linear_model()(x)[:, 1] - linear_model()(black)[:, 1]
    assert torch.allclose(maps.flatten(1).sum(1), drop.detach(), atol=1e-6)
    # an explicit baseline replaces black: 0 gives Captum's plain gradient x input
    plain = attribute(linear_model(), x, 1, "input_x_gradient", baseline=torch.zeros(1, 1, 1, 1))
    assert torch.allclose(plain, W[1].reshape(1, 2, 2) * x[:, 0], atol=1e-6)


def test_black_is_the_black_pixel_of_every_shipped_test_image():
    # black() reads black off each image: right only if every image has a black pixel.
    from core.data import load_dataset

    for name in ("digits", "mnist5k"):
        data = load_dataset(name)
        expected = torch.tensor([-m / s for m, s in zip(data.mean, data.std)]).view(1, -1, 1, 1)
        from core.explain.attribution import black
        assert torch.allclose(black(data.x_test), expected.expand(len(data.x_test), -1, 1, 1), atol=1e-5), name


def test_integrated_gradients_completeness_from_black_baseline():
    x = linear_inputs()
    black = x.amin(dim=(1, 2, 3), keepdim=True)
    maps = attribute(linear_model(), x, 0, "integrated_gradients", n_steps=8)
    assert torch.allclose(maps, ((x - black) * W[0].reshape(1, 1, 2, 2))[:, 0], atol=1e-5)


def test_smoothgrad_of_linear_model_is_abs_weight():
    maps = attribute(linear_model(), linear_inputs(), 0, "smoothgrad", nt_samples=4)
    assert torch.allclose(maps, W[0].abs().reshape(1, 2, 2).expand(2, 2, 2))


def test_occlusion_single_window_gets_whole_score_drop():
    # On 2x2 the window is 2x2: one occlusion, every pixel gets f(x) - f(black).
    x = linear_inputs()
    black = x.amin(dim=(1, 2, 3), keepdim=True)
    drop = ((x - black).flatten(1) * W[0]).sum(dim=1)
    maps = attribute(linear_model(), x, 0, "occlusion")
    assert maps.shape == (2, 2, 2)
    assert torch.allclose(maps, drop[:, None, None].expand(2, 2, 2), atol=1e-5)


def test_grad_cam_on_one_by_one_conv_is_relu_of_mean_weight_times_input():
    # conv = identity, so A = x and Grad-CAM = relu(mean(w_c) * x) at input resolution.
    conv = nn.Conv2d(1, 1, kernel_size=1)
    head = nn.Linear(16, 2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
        head.weight.copy_(torch.linspace(-1.0, 2.0, 32).reshape(2, 16))
    model = nn.Sequential(conv, nn.Flatten(), head).eval()
    x = images(3, 4)
    maps = attribute(model, x, 1, "grad_cam")
    expected = torch.relu(head.weight[1].mean() * x[:, 0]).detach()
    assert maps.shape == (3, 4, 4) and maps.dtype == torch.float32
    assert torch.allclose(maps, expected, atol=1e-6)


def test_grad_cam_uses_the_rectified_feature_maps_after_the_last_conv():
    # conv = identity, then ReLU: A = relu(x), so Grad-CAM = relu(mean(w_c) * relu(x)). With a negative
    # mean weight the pre-ReLU choice would light up the negative pixels instead (relu(alpha * x)).
    conv, head = nn.Conv2d(1, 1, kernel_size=1), nn.Linear(16, 2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
        head.weight.copy_(torch.linspace(-2.0, 1.0, 32).reshape(2, 16))
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), head).eval()
    x = images(3, 4)
    alpha = head.weight[0].mean().item()
    assert alpha < 0
    maps = attribute(model, x, 0, "grad_cam")
    assert torch.allclose(maps, torch.relu(alpha * torch.relu(x[:, 0])), atol=1e-6)
    assert not torch.allclose(maps, torch.relu(alpha * x[:, 0]), atol=1e-3)
    assert grad_cam_layer(model) == ("1", True) and grad_cam_layer(lenet(28)) == ("4", True)
    text = describe_grad_cam(lenet(28))
    assert "conv 2 (16×6×5×5)" in text and "after its ReLU" in text
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())


def test_grad_cam_tiny_conv_model_is_non_negative():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)).eval()
    maps = attribute(model, images(2, 6), None, "grad_cam")
    assert maps.shape == (2, 6, 6) and (maps >= 0).all()


def test_grad_cam_on_mlp_raises_helpful_error():
    with pytest.raises(ValueError, match="Grad-CAM needs a convolutional model"):
        attribute(linear_model(), linear_inputs(), 0, "grad_cam")
    assert "grad_cam" not in methods_for(linear_model())
    assert methods_for(lenet(8)) == list(METHODS)


def test_unknown_method_lists_choices():
    with pytest.raises(ValueError, match="integrated_gradients"):
        attribute(linear_model(), linear_inputs(), 0, "deeplift")
    with pytest.raises(ValueError, match="saliency"):
        describe_method("nope")


def test_labels_and_descriptions_cover_every_method():
    assert set(METHOD_LABELS) == set(METHODS)
    for method in METHODS:
        sentence = describe_method(method)
        assert sentence.endswith(".") and sentence.count(". ") == 0


# --- every method on LeNet-5: shape, dtype, no side effects --------------------------


def snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "hooks": [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.modules()
        ],
    }


def assert_untouched(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after["state"].keys() == before["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), key
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["hooks"] == before["hooks"]
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("size", [8, 28])
@pytest.mark.parametrize("frozen", [False, True], ids=["grad", "frozen"])
def test_all_methods_on_lenet5_leave_model_and_inputs_untouched(size, frozen):
    model = lenet(size)
    if frozen:
        model.requires_grad_(False)
    x = images(2, size)
    x_before = x.clone()
    before = snapshot(model)
    assert all(h == (0, 0, 0) for h in before["hooks"])
    for method in METHODS:
        maps = attribute(model, x, None, method)
        assert maps.shape == (2, size, size) and maps.dtype == torch.float32, method
        assert torch.isfinite(maps).all(), method
        assert not maps.requires_grad, method
        assert torch.equal(x, x_before) and not x.requires_grad, method
        assert_untouched(model, before)


def test_works_inside_no_grad():
    model, x = lenet(8), images(2, 8)
    expected = {m: attribute(model, x, 3, m) for m in METHODS}
    with torch.no_grad():
        for method in METHODS:
            assert torch.allclose(attribute(model, x, 3, method), expected[method]), method


def test_grad_cam_on_model_with_live_pruning_masks():
    # prune.* leaves `weight` a non-leaf tensor, which plain copy.deepcopy refuses.
    model = lenet(8)
    prune.l1_unstructured(model[3], "weight", amount=0.5)
    before = snapshot(model)
    maps = attribute(model, images(2, 8), 0, "grad_cam")
    assert maps.shape == (2, 8, 8)
    assert_untouched(model, before)


def test_concurrent_calls_match_sequential_ones():
    model, x = lenet(8), images(2, 8)
    expected = {m: attribute(model, x, 1, m) for m in METHODS}
    results: dict[tuple[int, str], torch.Tensor] = {}

    def work(worker: int) -> None:
        for method in METHODS:
            results[worker, method] = attribute(model, x, 1, method)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (worker, method), maps in results.items():
        assert torch.allclose(maps, expected[method], atol=1e-6), (worker, method)


def test_smoothgrad_reproducible_and_global_rng_unchanged():
    model, x = lenet(8), images(2, 8)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = attribute(model, x, 0, "smoothgrad")
    second = attribute(model, x, 0, "smoothgrad")
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first, second)
    assert not torch.equal(first, attribute(model, x, 0, "smoothgrad", seed=1))


# --- saliency_agreement ------------------------------------------------------------------


def test_agreement_with_itself_and_its_negation():
    a = images(3, 6)[:, 0]
    same = saliency_agreement(a, a)
    for key in ("spearman_abs", "spearman", "topk", "ssim"):
        assert torch.allclose(same[key], torch.ones(3)), key
    assert not same["degenerate"].any()
    neg = saliency_agreement(a, -a)
    assert torch.allclose(neg["spearman"], -torch.ones(3))
    assert torch.allclose(neg["spearman_abs"], torch.ones(3))
    assert torch.allclose(neg["ssim"], torch.ones(3)) and torch.allclose(neg["topk"], torch.ones(3))


def test_agreement_constant_maps_are_defined_and_flagged():
    ones, twos, zeros = torch.ones(4, 4), 2 * torch.ones(4, 4), torch.zeros(4, 4)
    ramp = torch.arange(16.0).reshape(4, 4)
    both_equal = saliency_agreement(ones, ones)
    assert both_equal["spearman"] == 1.0 and both_equal["spearman_abs"] == 1.0 and both_equal["degenerate"]
    both_differ = saliency_agreement(ones, twos)
    assert both_differ["spearman"] == 0.0 and both_differ["degenerate"]
    one_constant = saliency_agreement(ramp, zeros)
    assert one_constant["spearman"] == 0.0 and one_constant["spearman_abs"] == 0.0 and one_constant["degenerate"]
    for result in (both_equal, both_differ, one_constant, saliency_agreement(zeros, zeros)):
        for key, value in result.items():
            assert value.shape == () and not torch.isnan(value.float()).any(), key


def test_agreement_hand_computed_small_case():
    a = torch.tensor([[4.0, 3.0], [2.0, 1.0]])
    b = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
    # ranks a: 4 3 2 1, b with average ties: 1 4 2.5 2.5; centred: (1.5, .5, -.5, -1.5)
    # and (-1.5, 1.5, 0, 0) -> rho = -1.5 / sqrt(5 * 4.5)
    result = saliency_agreement(a, b, k=2)
    assert result["spearman"].item() == pytest.approx(-1.5 / 22.5**0.5)
    assert result["spearman"].item() == pytest.approx(spearmanr(a.flatten(), b.flatten()).statistic)
    # top-2 of a: pixels {0, 1}; of b: 3 at pixel 1, then 2 at pixels 2 and 3 -> lower index 2
    assert result["topk"].item() == pytest.approx(0.5)
    assert not result["degenerate"]


def test_agreement_topk_ties_are_shared_not_taken_by_index():
    a = torch.zeros(10, 10)
    a[0, :10] = 1.0  # ten tied maxima: k = 10 takes exactly them
    b = torch.zeros(10, 10)
    b[0, :5] = 1.0  # five maxima; the other 5 places go to 5 of the 95 tied zeros, each with p = 5/95
    assert saliency_agreement(a, b)["topk"].item() == pytest.approx((5 + 5 * 5 / 95) / 10)
    # k = 5: b's five are certain, a's ten tied maxima share 5 places (p = 1/2 each)
    assert saliency_agreement(a, b, k=5)["topk"].item() == pytest.approx(0.5)
    c = torch.zeros(10, 10)
    c[9, 9] = 1.0  # one sure pixel (not in a's top 10), 9 places among 99 zeros of which 10 are a's
    assert saliency_agreement(a, c)["topk"].item() == pytest.approx(10 * 9 / 99 / 10)


def test_agreement_does_not_depend_on_pixel_order():
    # Grad-CAM-like maps: most pixels exactly zero, blocks of equal values. Any permutation of
    # the pixels (the same for both maps) must give the same scores (the old top-k took ties by index).
    gen = torch.Generator().manual_seed(0)
    a = torch.relu(torch.randn(4, 8, 8, generator=gen)).round()  # values 0, 1, 2, 3: many ties
    b = torch.relu(torch.randn(4, 8, 8, generator=gen)).round()
    perm = torch.randperm(64, generator=gen)
    shuffled = [m.flatten(1)[:, perm].reshape(4, 8, 8) for m in (a, b)]
    before, after = saliency_agreement(a, b), saliency_agreement(*shuffled)
    for key in ("spearman_abs", "spearman", "topk", "degenerate"):
        assert torch.allclose(before[key].float(), after[key].float(), atol=1e-6), key


def test_agreement_leaves_out_pixels_zero_in_both_maps():
    # Two maps that share 90 zeros and rank their 10 nonzero pixels in opposite order.
    a, b = torch.zeros(100), torch.zeros(100)
    a[:10] = torch.arange(1.0, 11.0)
    b[:10] = torch.arange(10.0, 0.0, -1.0)
    old = spearmanr(a, b).statistic  # over every pixel: the shared zeros make it look good
    assert old > 0.8
    result = saliency_agreement(a.view(10, 10), b.view(10, 10))
    assert result["spearman_abs"].item() == pytest.approx(-1.0) and result["spearman"].item() == pytest.approx(-1.0)
    assert not result["degenerate"]
    # maps equal on their support: 1 either way
    assert saliency_agreement(a.view(10, 10), a.view(10, 10))["spearman_abs"].item() == pytest.approx(1.0)
    # different supports: the union counts a pixel zero in one map and not in the other
    c = torch.zeros(100)
    c[[0, 1, 2, 50]] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    d = torch.zeros(100)
    d[[0, 1, 2, 60]] = torch.tensor([1.0, 2.0, 3.0, 0.5])
    union = [0, 1, 2, 50, 60]
    # ranks on the union: c 2 3 4 5 1, d 3 4 5 1 2; centred (-1 0 1 2 -2).(0 1 2 -2 -1) = 0
    expected = spearmanr(c[union], d[union]).statistic
    assert expected == pytest.approx(0.0, abs=1e-12) and spearmanr(c, d).statistic > 0.5
    assert saliency_agreement(c.view(10, 10), d.view(10, 10))["spearman_abs"].item() == pytest.approx(expected)


def test_agreement_degenerate_supports_are_defined():
    zeros, one_pixel = torch.zeros(4, 4), torch.zeros(4, 4)
    one_pixel[1, 2] = 3.0
    cases = {
        "both all zero": (zeros, zeros, 1.0),          # identical maps
        "one pixel each, equal": (one_pixel, one_pixel, 1.0),
        "one pixel vs none": (one_pixel, zeros, 0.0),  # the union is one pixel: no ranking
        "constant on the support": (torch.ones(4, 4), torch.arange(16.0).view(4, 4), 0.0),
    }
    for name, (a, b, value) in cases.items():
        result = saliency_agreement(a, b)
        assert result["degenerate"], name
        assert result["spearman_abs"].item() == value and result["spearman"].item() == value, name
        assert not any(torch.isnan(v.float()).any() for v in result.values()), name


def test_agreement_batch_matches_scipy_and_shapes():
    gen = np.random.default_rng(0)
    a = torch.from_numpy(gen.normal(size=(5, 8, 8))).float()
    b = a + 0.7 * torch.from_numpy(gen.normal(size=(5, 8, 8))).float()
    a_before = a.clone()
    result = saliency_agreement(a, b)
    assert set(result) == {"spearman_abs", "spearman", "topk", "ssim", "degenerate"}
    for key, value in result.items():
        assert value.shape == (5,), key
    assert result["degenerate"].dtype == torch.bool
    for i in range(5):
        expected = spearmanr(a[i].abs().flatten(), b[i].abs().flatten()).statistic
        assert result["spearman_abs"][i].item() == pytest.approx(expected, abs=1e-6)
        single = saliency_agreement(a[i], b[i])
        assert single["ssim"].item() == pytest.approx(result["ssim"][i].item())
    assert ((result["ssim"] > 0) & (result["ssim"] < 1)).all()
    assert torch.equal(a, a_before)


def test_agreement_rejects_bad_shapes():
    with pytest.raises(ValueError):
        saliency_agreement(torch.zeros(3, 3), torch.zeros(4, 4))
    with pytest.raises(ValueError):
        saliency_agreement(torch.zeros(3, 3), torch.zeros(3, 3), k=0)


def test_agreement_ssim_single_window_by_hand():
    # Maps smaller than 7x7 use one window over the whole map: SSIM is the plain formula.
    a = torch.tensor([[1.0, 2.0, 0.0], [4.0, 1.0, 3.0], [0.0, 2.0, 2.0]])
    b = torch.tensor([[0.0, 1.0, 1.0], [2.0, 2.0, 3.0], [1.0, 0.0, 1.0]])
    x, y = (a / 4.0).numpy().ravel(), (b / 3.0).numpy().ravel()
    mx, my = x.mean(), y.mean()
    vx, vy, cov = x.var(), y.var(), ((x - mx) * (y - my)).mean()
    c1, c2 = 0.01**2, 0.03**2
    expected = (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert saliency_agreement(a, b)["ssim"].item() == pytest.approx(expected, rel=1e-5)


def test_target_made_under_inference_mode_is_accepted():
    from models import create_model

    torch.manual_seed(0)
    model = create_model("lenet5", (1, 8, 8), 10).eval()
    x = torch.randn(3, 1, 8, 8)
    with torch.inference_mode():
        target = model(x).argmax(1)
    maps = attribute(model, x, target, "saliency")
    assert maps.shape == (3, 8, 8)


def test_signed_methods_are_the_ones_whose_maps_can_be_negative():
    from models import create_model

    torch.manual_seed(0)
    model = create_model("lenet5", (1, 8, 8), 10).eval()
    x = torch.randn(2, 1, 8, 8)
    for method in METHODS:
        maps = attribute(model, x, None, method)
        if not is_signed(method):
            assert maps.min() >= 0, method
    assert is_signed("integrated_gradients") and not is_signed("saliency")


# ---------------------------------------------------------------- the reference ranked once
def _maps_with_ties_and_zeros(generator: torch.Generator, n: int, signed: bool) -> torch.Tensor:
    """Maps of few distinct values (many ties), with zero pixels; some rows all zero, some constant."""
    maps = torch.randint(0, 4, (n, 6, 7), generator=generator).to(torch.float32)
    if signed:
        maps = maps - 1.5 * torch.randint(0, 2, maps.shape, generator=generator)
    maps[0] = 0.0
    maps[1] = 2.0
    return maps


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("full_reference", [False, True])
def test_agreement_with_the_reference_ranked_once_gives_the_pairwise_numbers(signed, full_reference):
    """agreement_with_reference (the sensitivity analysis') = the pairwise saliency_agreement on the repeated
    reference, exactly, on maps with ties, zeros, all-zero and constant rows (the pairwise one is checked
    against scipy and hand-computed answers above; its ranks against scipy's in tests/test_ranks.py)."""
    from core.explain.agreement import agreement_with_reference, saliency_agreement

    generator = torch.Generator().manual_seed(7 + signed + 2 * full_reference)
    reference = _maps_with_ties_and_zeros(generator, 8, signed)
    if full_reference:  # no zero pixel: the ranks are taken once
        reference = reference.abs() + 0.5 * (reference == 0)
    maps = torch.cat([_maps_with_ties_and_zeros(generator, 8, signed) for _ in range(5)])
    maps[9] = reference[1]  # an exact copy of its reference
    before = (maps.clone(), reference.clone())
    fast = agreement_with_reference(maps, reference, k=5)
    pairwise = saliency_agreement(maps, reference.repeat(5, 1, 1), k=5)
    assert fast.keys() == pairwise.keys()
    for key in pairwise:
        assert torch.equal(fast[key], pairwise[key]), key
    assert torch.equal(maps, before[0]) and torch.equal(reference, before[1])
    with pytest.raises(ValueError, match="reference"):
        agreement_with_reference(maps[:7], reference)

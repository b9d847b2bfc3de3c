"""Unit tests of the layer sensitivity analysis, per-layer plans and their searches (core.studies).

Known answers: an SQNR worked out by hand; one-layer compression equal to the pipeline's own
layer-wise result and leaving every other tensor bit-identical; the batched table equal to the
straightforward per-model measurement. The searches run on a tiny model with a known answer: its
middle layer (fc2) is obviously insensitive. Its first 256 rows are an identity matrix (values 0
and 1: every pruning rate here keeps the ones, every bit width codes them exactly), its other 256
rows are small random weights behind a bias of -1000 (dead units: ReLU gives 0 whatever they are
compressed to). So compressing fc2 in any way changes no output and no gradient, while it holds
most of the weights: every search must squeeze it to its smallest size first, and the
constraints must keep holding.
"""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from core.compression import CompressionConfig, compress
from core.compression.quantization import quantize_weight
from core.data import load_dataset
from core.explain.attribution import attribute, saliency_agreement
from core.layers import prunable_layers
from core.metrics import compression_report, evaluate, prediction_agreement
from core.studies import plan_search, sensitivity
from core.studies.layer_plan import LayerPlan, LayerSetting, compress_with_plan, measure_plan, plan_problem
from core.studies.sensitivity import SensitivityConfig, compress_layer, sqnr_db, with_weight
from core.studies.sweeps import references

WIDE = 256


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def tiny(digits) -> nn.Module:
    """fc1 (64 -> 256), the insensitive fc2 (256 -> 512, module docstring), fc3 (512 -> 10); fc1, fc3 trained."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, WIDE), nn.ReLU(), nn.Linear(WIDE, 2 * WIDE), nn.ReLU(),
                          nn.Linear(2 * WIDE, 10))
    with torch.no_grad():
        model[3].weight.copy_(torch.cat([torch.eye(WIDE), torch.empty(WIDE, WIDE).uniform_(-0.01, 0.01)]))
        model[3].bias.copy_(torch.cat([torch.zeros(WIDE), torch.full((WIDE,), -1000.0)]))
    model[3].requires_grad_(False)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(60):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(digits.x_train), digits.y_train).backward()
        optimizer.step()
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def cfg() -> SensitivityConfig:
    return SensitivityConfig(probe_size=16)


@pytest.fixture(scope="module")
def table(tiny, digits, cfg):
    return sensitivity.sensitivity_table(tiny, digits, cfg)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ SQNR and one-layer compression
def test_sqnr_of_a_known_quantization_by_hand():
    w = torch.tensor([[1.0, 0.5, -0.25, 0.1]])
    # 2-bit symmetric, min-max range, one scale: ternary with step 1; 0.5 rounds half to even, to 0.
    q = quantize_weight(w, 2, "symmetric", "per_tensor", "minmax")
    assert torch.equal(q, torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    signal, error = 1 + 0.25 + 0.0625 + 0.01, 0.25 + 0.0625 + 0.01
    assert sqnr_db(w, q) == pytest.approx(10 * math.log10(signal / error))  # 6.128 dB
    assert sqnr_db(w, w) == math.inf
    assert sqnr_db(torch.zeros(3), torch.zeros(3)) == math.inf


def test_one_layer_compression_is_the_pipelines_own(tiny):
    """Pruned alone at 80 % = the layer's weight under layer-wise magnitude pruning; quantized = quantize_weight."""
    before = _snapshot(tiny)
    whole = compress(tiny, CompressionConfig(prune_amount=0.8, prune_scope="layer", weight_bits=4))
    for (name, module), (_, pruned) in zip(prunable_layers(tiny), prunable_layers(whole)):
        assert torch.equal(compress_layer(module, CompressionConfig(), 0.8, 4), pruned.weight)
        assert torch.equal(compress_layer(module, CompressionConfig(), 0.0, 3),
                           quantize_weight(module.weight, 3, "symmetric", "per_channel", "mse"))
    assert _same(before, _snapshot(tiny))


def test_with_weight_changes_one_layer_only(tiny):
    before = _snapshot(tiny)
    twin = with_weight(tiny, "1", torch.zeros_like(tiny[1].weight))
    after = twin.state_dict()
    assert torch.equal(after["1.weight"], torch.zeros_like(tiny[1].weight))
    assert all(torch.equal(after[k], before[k]) for k in before if k != "1.weight")
    assert _same(before, _snapshot(tiny))


def test_structured_pruning_leaves_the_classes_layer_out(tiny, digits):
    cfg = SensitivityConfig(base=CompressionConfig(prune_method="structured", prune_scope="layer"),
                            probe_size=8, rates=(0.5,), bits=(4,))
    table = sensitivity.sensitivity_table(tiny, digits, cfg, workers=1)
    last = table[table.key == "fc3"].set_index("kind")
    assert not last.loc["prune", "applicable"] and math.isnan(last.loc["prune", "accuracy"])
    assert last.loc["quantize", "applicable"]
    first = table[(table.key == "fc1") & (table.kind == "prune")].iloc[0]
    # Whole units: half of fc1's 256 rows are zero.
    assert first.layer_sparsity == pytest.approx(0.5, abs=1 / WIDE)


# ------------------------------------------------------------------ the table
def test_table_shape_and_the_insensitive_layer(table, tiny, cfg):
    assert list(table.key.unique()) == ["fc1", "fc2", "fc3"]
    assert len(table) == 3 * (len(cfg.rates) + len(cfg.bits))
    ident = table[table.key == "fc2"]
    assert (ident.accuracy == table.attrs["original_accuracy"]).all() and (ident.agreement == 1.0).all()
    assert (ident.spearman_abs == 1.0).all() and (ident.degenerate == 0).all()
    assert not table.isna().any(axis=None) and table.weight_sqnr_db.between(0, 200).all()
    assert (table.groupby("key").weight_sqnr_db.apply(lambda s: s.iloc[4:].is_monotonic_decreasing)).all()  # 8 > 4 > 3 > 2 bits


def test_table_equals_the_straightforward_measurement(table, tiny, digits, cfg):
    """Batched rows = copy with the layer's weight + evaluate + attribute + saliency_agreement + a hook."""
    before = _snapshot(tiny)
    ref = references(tiny, digits, cfg.sweep)[0]
    for key, name, kind, rate, bits in (("fc1", "1", "prune", 0.9, 32), ("fc3", "5", "quantize", 0.0, 2)):
        row = table[(table.key == key) & (table.kind == kind) & (table.prune_amount == rate)
                    & (table.weight_bits == bits)].iloc[0]
        weight = compress_layer(dict(prunable_layers(tiny))[name], cfg.base, rate, bits)
        twin = with_weight(tiny, name, weight)
        ev = evaluate(twin, digits.x_test, digits.y_test)
        maps = attribute(twin, ref.probes, ref.target, cfg.method)
        assert row.accuracy == ev.accuracy and row.agreement == prediction_agreement(ev, ref.evaluation)
        assert row.spearman_abs == pytest.approx(float(saliency_agreement(maps, ref.maps)["spearman_abs"].mean()))
        assert row.weight_sqnr_db == pytest.approx(sqnr_db(tiny.get_submodule(name).weight, weight))
        x = digits.x_test[:sensitivity.ACTIVATION_IMAGES]
        with torch.no_grad():
            clean = tiny[:int(name) + 1](x)
            noisy = twin[:int(name) + 1](x)
        assert row.activation_sqnr_db == pytest.approx(sqnr_db(clean, noisy), rel=1e-4)
    assert _same(before, _snapshot(tiny))


def test_bad_input_gets_a_message(tiny, digits):
    with pytest.raises(ValueError, match="probe set is empty"):
        sensitivity.sensitivity_table(tiny, digits, SensitivityConfig(probe_size=0))
    with pytest.raises(ValueError, match="rates"):
        SensitivityConfig(rates=(1.5,))


# ------------------------------------------------------------------ plans
def test_plan_text_round_trip_and_bad_text():
    plan = LayerPlan.parse("conv1:p0.5b4, fc1:p0.9b2,fc2:b3,fc3:p0.8")
    assert plan.of("fc1") == LayerSetting("fc1", 0.9, 2) and plan.of("conv2").dense
    assert plan.text() == "conv1:p0.5b4,fc1:p0.9b2,fc2:b3,fc3:p0.8"
    assert LayerPlan.parse(plan.text()) == plan and LayerPlan.parse("").text() == ""
    for bad in ("conv1", "conv1:x4", "fc1:p1.5", "fc1:b9", "fc1:b4,fc1:b2", "fc1:p0.5b4;fc2:b2"):
        with pytest.raises(ValueError):
            LayerPlan.parse(bad)


def test_compress_with_plan_matches_the_pipeline_and_counts_size_alike(tiny, digits):
    """A uniform plan = compress() at layer scope, bit for bit, and the same size as compression_report."""
    before = _snapshot(tiny)
    cfg = CompressionConfig(prune_amount=0.5, prune_scope="layer", weight_bits=4)
    plan = LayerPlan.uniform(["fc1", "fc2", "fc3"], 0.5, 4)
    planned, piped = compress_with_plan(tiny, cfg, plan), compress(tiny, cfg)
    assert _same(planned.state_dict(), piped.state_dict())
    report = compression_report(tiny, piped, cfg, digits.x_test, digits.y_test)
    ref = references(tiny, digits, SensitivityConfig(probe_size=8).sweep)[0]
    figures = measure_plan(tiny, ref, digits, cfg, plan, "saliency")
    assert figures["size_bits"] == report.size_compressed_bits
    assert figures["original_bits"] == report.size_original_bits and figures["accuracy"] == report.compressed.accuracy
    partial = compress_with_plan(tiny, cfg, LayerPlan.parse("fc3:b2"))
    assert all(torch.equal(partial.state_dict()[k], before[k]) for k in before if not k.startswith("5."))
    assert plan_problem(tiny, LayerPlan.parse("conv9:b4"), cfg).startswith("This model has no layer called conv9")
    with pytest.raises(ValueError, match="conv9"):
        compress_with_plan(tiny, cfg, LayerPlan.parse("conv9:b4"))
    assert _same(before, _snapshot(tiny))


# ------------------------------------------------------------------ searches
@pytest.fixture(scope="module")
def uniform(tiny, digits, cfg):
    return plan_search.uniform_table(tiny, digits, cfg)


@pytest.fixture(scope="module")
def sizes(tiny, cfg):
    return plan_search.layer_options(tiny, cfg)


def test_size_search_squeezes_the_insensitive_layer_first(tiny, digits, cfg, table, uniform, sizes):
    smallest = min(sizes["fc2"].values())
    target = plan_search.sum_fixed_bits(tiny) + sizes["fc1"][(0.0, 32)] + sizes["fc3"][(0.0, 32)] + smallest
    result = plan_search.search_size(tiny, digits, cfg, table, target, uniform, sizes=sizes)
    assert result.met and result.figures["size_bits"] <= target
    assert [s.layer for s in result.plan.settings] == ["fc2"]
    chosen = result.plan.of("fc2")
    assert sizes["fc2"][(chosen.prune, chosen.bits)] == smallest
    assert result.figures["accuracy"] == table.attrs["original_accuracy"] and result.figures["agreement"] == 1.0
    assert result.baseline is None or result.baseline["size_bits"] <= target


def test_an_unreachable_size_target_is_reported_with_the_smallest_plan(tiny, digits, cfg, table, uniform, sizes):
    result = plan_search.search_size(tiny, digits, cfg, table, 1.0, uniform, sizes=sizes)
    assert not result.met
    assert result.figures["size_bits"] == sum(min(options.values()) for options in sizes.values())
    assert result.baseline is not None  # compared with the most accurate uniform setting no larger than it


@pytest.mark.parametrize("drop, floor", [(0.0, 0.999), (0.02, 0.9)])
def test_constrained_search_respects_both_constraints(tiny, digits, cfg, table, uniform, sizes, drop, floor):
    before = _snapshot(tiny)
    result = plan_search.search_constraints(tiny, digits, cfg, table, drop, floor, uniform, sizes=sizes)
    chosen = result.plan.of("fc2")
    assert sizes["fc2"][(chosen.prune, chosen.bits)] == min(sizes["fc2"].values())
    # Measured again from scratch: both constraints hold.
    ref = references(tiny, digits, cfg.sweep)[0]
    again = measure_plan(tiny, ref, digits, cfg.base, result.plan, cfg.method)
    assert again == result.figures
    assert again["accuracy"] >= ref.evaluation.accuracy - drop - 1e-9 and again["spearman_abs"] >= floor - 1e-9
    assert all(s["accuracy"] >= ref.evaluation.accuracy - drop - 1e-9 and s["explanation"] >= floor - 1e-9
               for s in result.steps.to_dict("records") if s["kept"])
    if result.baseline is not None:
        assert result.figures["size_bits"] <= result.baseline["size_bits"]
    assert _same(before, _snapshot(tiny))


def test_best_uniform_choices():
    import pandas as pd
    uniform = pd.DataFrame({"size_bits": [100, 50, 40, 10], "accuracy": [0.9, 0.9, 0.8, 0.5],
                            "spearman_abs": [1.0, 0.95, 0.99, 0.5]})
    assert plan_search.best_uniform_at_size(uniform, 60)["size_bits"] == 50
    assert plan_search.best_uniform_at_size(uniform, 5) is None
    assert plan_search.smallest_uniform_meeting(uniform, 0.8, 0.97)["size_bits"] == 40
    assert plan_search.smallest_uniform_meeting(uniform, 0.95, 0.0) is None

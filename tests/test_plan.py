"""The per-layer plan step (core/compression/plan.py): its text, what it does to a model, and its storage.

Known answers: storage of a 4-3-2 MLP counted by hand (REFERENCE §6's three encodings); a planned
model equal, bit for bit, to each layer compressed by hand with the pipeline's own one-layer
compression, and to the Sensitivity page's `compress_with_plan`; bad text never raises.
"""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from core.compression import CompressionConfig, compress
from core.compression.plan import LayerPlan, compress_layer, plan_text
from core.data import load_dataset
from core.metrics import compression_report, layer_stats, layer_table
from core.studies.layer_plan import compress_with_plan, plan_size_bits
from ui.setup import compression_from
from ui.url_state import SIDEBAR, to_text


@pytest.fixture
def small() -> nn.Module:
    """fc1 (4 -> 3), weights all ±1; fc2 (3 -> 2), six distinct magnitudes."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).eval()
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1., -1, 1, -1], [-1, 1, 1, 1], [1, 1, -1, -1]]))
        model[3].weight.copy_(torch.tensor([[1., -2, 3], [0.5, -1.5, 2.5]]))
    return model


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ text and URL
def test_plan_text_round_trips_through_the_url_and_the_config():
    raw = " fc1:b4, conv1:p0.50b2 ,fc2:b32"
    assert plan_text(raw) == "fc1:b4,conv1:p0.5b2,fc2:b32"
    setting = SIDEBAR["plan"]
    assert setting.default == "" and setting.parse(raw) == plan_text(raw)
    cfg = compression_from({"plan": setting.parse(raw)})
    assert cfg.layer_plan == "fc1:b4,conv1:p0.5b2,fc2:b32"
    assert setting.parse(to_text(cfg.layer_plan)) == cfg.layer_plan  # config -> URL text -> config
    assert LayerPlan.parse(cfg.layer_plan).of("fc2").dense and cfg.step("plan").active()
    assert not CompressionConfig().step("plan").active() and setting.parse("") == ""


@pytest.mark.parametrize("bad, words", [("fc1:p7", "between 0 and 1"), ("fc1:b9", "1 to 8 or 32"),
                                        ("conv1;b4", "not a layer setting"), ("fc1", "not a layer setting"),
                                        ("fc1:b4,fc1:b2", "appear more often")])
def test_bad_plan_text_is_refused_in_words_and_never_raises_in_the_pipeline(small, bad, words):
    with pytest.raises(ValueError, match=words):
        SIDEBAR["plan"].parse(bad)  # a link's bad plan: a notice, the default is used
    cfg = CompressionConfig(weight_bits=8, layer_plan=bad)  # typed into the box: no exception anywhere
    assert any(words in text for text in cfg.problems()) and "not used" in cfg.describe()
    assert cfg.step("plan").notes() == [] and cfg.step("plan").model_problems(small, cfg) == []
    assert _same(compress(small, cfg).state_dict(), compress(small, CompressionConfig(weight_bits=8)).state_dict())


def test_layers_the_model_lacks_are_named_and_skipped(small):
    cfg = CompressionConfig(layer_plan="conv1:b4,fc2:b2")
    said = cfg.step("plan").model_problems(small, cfg)
    assert said and "no layer called conv1" in said[0] and "fc1, fc2" in said[0]
    planned = compress(small, cfg)
    assert torch.equal(planned[1].weight, small[1].weight)
    assert torch.equal(planned[3].weight, compress_layer(small[3], cfg, 0.0, 2))


def test_structured_pruning_keeps_the_classes_layer_and_says_so(small):
    cfg = CompressionConfig(prune_method="structured", layer_plan="fc2:p0.5b4")
    assert "classes' layer" in " ".join(cfg.step("plan").model_problems(small, cfg))
    assert torch.equal(compress(small, cfg)[3].weight, compress_layer(small[3], cfg, 0.0, 4))


# ------------------------------------------------------------------ what it does to a model
def test_a_plan_equals_each_layer_compressed_by_hand_and_overrides_the_sliders_only_where_it_names(small):
    before = _snapshot(small)
    cfg = CompressionConfig(prune_amount=0.3, weight_bits=8, quant_scheme="affine", layer_plan="fc1:p0.5b2")
    planned = compress(small, cfg)
    # fc1 by hand: that layer alone, pruned layer-wise at 50 % then quantized at 2 bits (affine), as compress does it
    holder = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        holder[0].weight.copy_(small[1].weight)
        holder[1].weight.fill_(1.0)
    alone = CompressionConfig(prune_amount=0.5, prune_scope="layer", weight_bits=2, quant_scheme="affine")
    assert torch.equal(planned[1].weight, compress(holder, alone)[0].weight)
    # fc2 is not named: the sliders' global 30 % and 8 bits, exactly as without a plan
    uniform = compress(small, CompressionConfig(prune_amount=0.3, weight_bits=8, quant_scheme="affine"))
    assert torch.equal(planned[3].weight, uniform[3].weight) and torch.equal(planned[3].bias, uniform[3].bias)
    assert _same(before, _snapshot(small))


def test_the_sidebar_plan_is_the_sensitivity_pages_plan(small):
    base = CompressionConfig(prune_method="random", quant_range="minmax", seed=3)
    plan = LayerPlan.parse("fc1:p0.25b3,fc2:p0.5")
    applied = compress(small, replace(base, layer_plan=plan.text()))
    assert _same(applied.state_dict(), compress_with_plan(small, base, plan).state_dict())


# ------------------------------------------------------------------ storage, by hand
def test_each_layer_is_counted_in_its_own_bits_by_hand(small):
    """fc1 at 2 bits symmetric per channel: ternary (3 levels, 0 a value: v = 2, a nonzero's sign u = 1), 12 weights
    all nonzero, one fp32 scale per row (3 x 32): dense 12*2 + 96 = 120, bitmask 12*1 + 12 + 96 = 120, CSR
    12*(1 + 4) + 96 = 156 -> 120, + bias 3*32 = 216. fc2 pruned 50 % in fp32: 3 of 6 left, bitmask 3*32 + 6 = 102
    (CSR 3*(32 + 3) = 105, dense 192), + bias 64 = 166. fc2 left to the 8-bit slider instead: 255 levels, v = u = 8,
    no zero, one scale per row (2 x 32): dense 6*8 + 64 = 112 (bitmask 118), + bias 64 = 176."""
    x = torch.zeros(5, 4)
    y = torch.zeros(5, dtype=torch.long)
    for text, fc2_bits, total in (("fc1:b2,fc2:p0.5", 166, 216 + 166), ("fc1:b2", 176, 216 + 176)):
        cfg = CompressionConfig(weight_bits=8, layer_plan=text)
        planned = compress(small, cfg)
        stats = layer_stats(planned, (4,), cfg)
        assert [s.size_bits for s in stats] == [216, fc2_bits]
        assert [s.bits for s in stats] == [2, 32 if "fc2" in text else 8]
        report = compression_report(small, planned, cfg, x, y)
        assert report.size_compressed_bits == total and report.size_original_bits == 32 * (12 + 3 + 6 + 2)
        assert layer_table(report)["size_compressed_bytes"].tolist() == [216 / 8, fc2_bits / 8]


def test_size_card_and_the_sensitivity_pages_count_agree_on_a_real_model():
    data = load_dataset("digits")
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(),
                          nn.Linear(16, 10)).eval()
    base = CompressionConfig(quant_scheme="affine", quant_granularity="per_tensor")
    plan = LayerPlan.parse("fc1:p0.8b3,fc2:b1,fc3:p0.3")
    cfg = replace(base, layer_plan=plan.text())
    planned = compress(model, cfg)
    report = compression_report(model, planned, cfg, data.x_test, data.y_test)
    assert report.size_compressed_bits == plan_size_bits(planned, plan, base, (1, 8, 8))


def test_the_pipeline_in_two_parts_applies_the_plan_as_the_whole_does(small):
    """compress(compress(m, first), rest) == compress(m, cfg) with the plan in the rest (sweeps, fine-tuning):
    the plan starts from the trained weights, not from what the sliders' pruning made of them."""
    cfg = CompressionConfig(prune_amount=0.6, weight_bits=3, layer_plan="fc1:p0.25b4")
    first, rest = cfg.split("prune")
    whole, parts = compress(small, cfg), compress(compress(small, first), rest)
    assert _same(whole.state_dict(), parts.state_dict())
    assert torch.equal(whole[1].weight, compress_layer(small[1], cfg, 0.25, 4))


def test_low_rank_factored_layers_keep_the_factorization_and_the_sidebar_says_so(small):
    cfg = CompressionConfig(rank_kept=0.34, rank_mode="fraction", layer_plan="fc1:b2")
    assert "Low-rank" in " ".join(cfg.step("plan").model_problems(small, cfg))
    factored_only = compress(small, replace(cfg, layer_plan=""))
    planned = compress(small, cfg)
    assert _same(planned.state_dict(), factored_only.state_dict())  # fc1 (rank 1 of 3) factored: left as it is

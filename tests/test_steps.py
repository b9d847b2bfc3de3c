"""core.compression.steps and pipeline: the registry of compression steps and the config built from it."""
from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch
from torch import nn

from core.compression import CompressionConfig, compress, controls, get_step, ordered
from core.compression import pipeline, steps
from core.compression.steps import FP32_CODE, Context, Step, WeightCode, control, register


def test_unknown_step_fails_loudly_and_lists_the_choices():
    with pytest.raises(KeyError, match="prune.*quantize"):
        get_step("pruning")
    with pytest.raises(KeyError, match="registered"):
        CompressionConfig().step("nope")


def test_config_is_the_union_of_every_step_field_in_pipeline_order():
    names = [f.name for f in dataclasses.fields(CompressionConfig)]
    expected = [f.name for n in ordered() for f in dataclasses.fields(get_step(n))]
    assert names == expected
    assert {"prune_amount", "prune_method", "weight_bits", "quant_range", "seed"} <= set(names)
    assert [get_step(n).order for n in ordered()] == sorted(get_step(n).order for n in ordered())


def test_config_is_frozen_hashable_picklable_and_replace_works():
    cfg = CompressionConfig(prune_amount=0.5, weight_bits=4)
    assert pickle.loads(pickle.dumps(cfg)) == cfg and hash(cfg) == hash(CompressionConfig(prune_amount=0.5, weight_bits=4))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.weight_bits = 2
    assert dataclasses.replace(cfg, weight_bits=2).weight_bits == 2 and cfg.weight_bits == 4


def test_every_control_is_checked_with_its_own_words():
    with pytest.raises(ValueError, match="prune_amount must be between 0 and 1"):
        CompressionConfig(prune_amount=1.5)
    with pytest.raises(ValueError, match="weight_bits must be one of"):
        CompressionConfig(weight_bits=9)
    with pytest.raises(ValueError, match="prune_method"):
        CompressionConfig(prune_method="smallest")


def test_pipeline_lists_only_active_steps_in_order():
    assert CompressionConfig().pipeline() == []
    assert [s.name for s in CompressionConfig(prune_amount=0.3, weight_bits=4).pipeline()] == ["prune", "quantize"]
    assert [s.name for s in CompressionConfig(weight_bits=4).pipeline()] == ["quantize"]


def test_only_switches_the_other_steps_back_to_their_defaults():
    cfg = CompressionConfig(prune_amount=0.3, prune_method="random", weight_bits=4, quant_scheme="affine")
    assert cfg.only("prune") == CompressionConfig(prune_amount=0.3, prune_method="random")
    assert cfg.only("quantize") == CompressionConfig(weight_bits=4, quant_scheme="affine")
    with pytest.raises(KeyError):
        cfg.only("nope")


def test_split_applies_in_two_parts_what_the_whole_applies_at_once():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    cfg = CompressionConfig(prune_amount=0.4, weight_bits=3, quant_scheme="affine")
    first, rest = cfg.split("prune")
    assert first == CompressionConfig(prune_amount=0.4) and rest == CompressionConfig(weight_bits=3, quant_scheme="affine")
    whole, parts = compress(model, cfg), compress(compress(model, first), rest)
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), parts.state_dict().values()))


def test_describe_says_every_step_in_words():
    assert CompressionConfig().describe() == "no pruning, no quantization (32-bit floats)"
    text = CompressionConfig(prune_amount=0.5, weight_bits=4).describe()
    assert text.startswith("50% magnitude pruning (global), 4-bit symmetric per-channel quantization")


def test_weight_code_is_the_last_coding_step_and_fp32_without_one():
    w = torch.ones(2, 3)
    assert CompressionConfig(prune_amount=0.5).weight_code(w) == FP32_CODE
    code = CompressionConfig(weight_bits=4, quant_scheme="affine", quant_granularity="per_tensor").weight_code(w)
    assert code == WeightCode(levels=16, has_zero=True, params_per_group=64, groups="tensor")


def test_compress_with_nothing_on_is_an_equal_copy_and_the_input_is_untouched():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = compress(model, CompressionConfig())
    assert out is not model
    assert all(torch.equal(out.state_dict()[k], v) for k, v in before.items())
    compress(model, CompressionConfig(prune_amount=0.5, weight_bits=2))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_every_control_has_a_unique_url_key_and_shows_its_default_validly():
    urls = [c.url for _, c in controls().values()]
    assert len(urls) == len(set(urls))
    defaults = {f.name: f.default for f in dataclasses.fields(CompressionConfig)}
    for name, (_, c) in controls().items():
        if c.choices:
            assert defaults[name] in c.choices, name
        elif c.widget == "text":
            assert c.parse is not None and c.parse(defaults[name]) == defaults[name], name
        elif c.widget != "toggle":
            assert c.low <= defaults[name] * c.scale <= c.high, name


@pytest.fixture
def scratch_registry(monkeypatch):
    """The registry as it is, in a copy a test may add to (the real one is left alone)."""
    monkeypatch.setattr(steps, "STEPS", dict(steps.STEPS))
    return steps.STEPS


def _toy(url: str = "toy"):
    @dataclasses.dataclass(frozen=True)
    class Toy(Step):
        title = "Toy"

        toy_strength: float = control(0.0, label="Strength", url=url, widget="slider", low=0, high=1, step=0.1)

        def active(self) -> bool:
            return self.toy_strength > 0

        def apply(self, model: nn.Module, context: Context) -> None:
            for p in model.parameters():
                p.mul_(1 - self.toy_strength)

        def describe(self) -> str:
            return f"toy {self.toy_strength}"

    return Toy


def test_a_new_step_is_one_class_and_the_config_follows(scratch_registry):
    register("toy", order=35)(_toy())
    cfg_cls = pipeline._build_config()
    assert "toy_strength" in {f.name for f in dataclasses.fields(cfg_cls)}
    assert ordered().index("prune") < ordered().index("toy") < ordered().index("quantize")  # by its order, 35
    assert controls()["toy_strength"] == ("toy", get_step("toy").__dataclass_fields__["toy_strength"].metadata["control"])
    model = nn.Linear(2, 2)
    cfg = cfg_cls(toy_strength=0.5)
    assert [s.name for s in cfg.pipeline()] == ["toy"]
    for p in model.parameters():  # the pipeline runs the registered step on a copy
        with torch.no_grad():
            p.fill_(2.0)
    out = pipeline.compress(model, cfg)
    assert torch.equal(out.weight, torch.ones(2, 2)) and torch.equal(model.weight, torch.full((2, 2), 2.0))
    assert cfg.describe().endswith("toy 0.5, no quantization (32-bit floats)")


def test_registry_refuses_a_second_name_a_taken_field_or_url(scratch_registry):
    with pytest.raises(ValueError, match="already registered"):
        register("prune", order=1)(_toy())
    with pytest.raises(ValueError, match="URL key 'prune'"):
        register("toy2", order=36)(_toy(url="prune"))
    with pytest.raises(TypeError, match="frozen dataclass"):
        register("toy3", order=37)(type("Loose", (Step,), {}))


def test_a_control_needs_choices_or_bounds():
    with pytest.raises(ValueError, match="needs choices or low and high"):
        steps.Control(label="x", url="x", widget="slider")
    with pytest.raises(ValueError, match="widget"):
        steps.Control(label="x", url="x", widget="knob", choices=(1,))


def test_a_text_control_needs_no_bounds_and_carries_its_reader():
    c = steps.Control(label="x", url="x", widget="text", parse=str.strip)
    assert c.parse(" a ") == "a" and not c.choices and c.low is None


def test_a_layer_code_takes_the_place_of_the_weight_codes_for_its_layer_only():
    w = torch.randn(4, 6)
    cfg = CompressionConfig(weight_bits=8, layer_plan="fc1:b2")
    assert cfg.weight_code(w) == cfg.weight_code(w, layer="fc2") == CompressionConfig(weight_bits=8).weight_code(w)
    assert cfg.weight_code(w, layer="fc1") == CompressionConfig(weight_bits=2).weight_code(w)
    assert CompressionConfig(weight_bits=8, layer_plan="fc1:b32").weight_code(w, layer="fc1") == FP32_CODE


def test_controls_follow_the_registry_and_a_callers_change_stays_its_own(scratch_registry):
    before = controls()
    before.pop("prune_amount")  # a caller's own copy
    assert "prune_amount" in controls()
    register("toy", order=35)(_toy())  # registered after controls() was read: it is there
    assert controls()["toy_strength"][0] == "toy" and "toy_strength" not in before

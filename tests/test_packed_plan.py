"""The packed weights file of a per-layer plan (core/deploy/packed_layers.py): each layer the plan sets is
stored in its own code (its width, its pruning as a mask or positions, scales per the setting's granularity),
alone and combined with the other families; the loader rebuilds it bit for bit (every weight and the logits
`torch.equal`), the file is the Size card's bytes plus the documented overhead, inputs unchanged.
"""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load as safetensors_load

from core.compression import CompressionConfig, compress
from core.deploy import packed
from core.layers import is_factored, layer_keys, prunable_layers
from core.training import TrainConfig
from test_packed import SHAPE, _random, _round_trip, trained_mlp, digits  # noqa: F401  (fixtures)

EVERY_MLP_LAYER = "fc1:p0.3b3,fc2:b1,fc3:p0.5b32"
EVERY_LENET_LAYER = "conv1:b8,conv2:p0.4b2,fc1:p0.9b1,fc2:b5,fc3:p0.2"
PLANS = {
    "the issue's plan": dict(layer_plan="conv1:p0.5b4,fc1:b2"),
    "a plan naming every layer": dict(layer_plan=f"{EVERY_MLP_LAYER},{EVERY_LENET_LAYER}"),
    "1-bit and 32-bit layers over 4-bit sliders": dict(weight_bits=4, layer_plan="fc1:p0.5b1,fc2:b32,conv1:b1"),
    "a dense entry overriding the sliders": dict(prune_amount=0.6, weight_bits=3, layer_plan="fc2:b32"),
    "layers the model lacks": dict(weight_bits=6, layer_plan="conv9:b2,fc7:p0.5b3"),
    "only layers the model lacks": dict(layer_plan="conv9:b2"),
    "text that is not a plan (not used)": dict(weight_bits=4, layer_plan="fc1;b4"),
    "after uniform pruning": dict(prune_amount=0.5, layer_plan="fc1:b2,fc2:p0.7b4"),
    "affine per tensor, min-max": dict(weight_bits=5, quant_scheme="affine", quant_granularity="per_tensor",
                                       quant_range="minmax", layer_plan="fc1:p0.5b3,fc2:b8"),
    "TWN ternary layers": dict(quant_range="twn", layer_plan="fc1:b2,fc2:p0.5b2,conv2:b2"),
    "structured pruning, classes' layer named": dict(prune_amount=0.3, prune_method="structured",
                                                     layer_plan="fc1:p0.5b4,fc3:p0.5b3"),
    "APoZ pruning (a planned layer ranked by weights)": dict(prune_amount=0.3, prune_method="apoz",
                                                             layer_plan="fc1:p0.5b4,conv2:p0.5b3"),
    "random pruning": dict(prune_method="random", seed=3, layer_plan="fc1:p0.5b4,fc2:p0.2"),
    "with weight sharing": dict(share_bits=3, prune_amount=0.5, layer_plan="fc1:b3,fc2:b32"),
    "on a low-rank model": dict(rank_kept=0.7, rank_mode="fraction", weight_bits=4,
                                layer_plan="conv1:b2,conv2:b3,fc1:b2,fc2:b3,fc3:b5"),
    "with activation ranges": dict(act_bits=8, layer_plan="fc1:p0.5b4,conv1:b3"),
    "in fp16": dict(precision="fp16", layer_plan="fc1:b4,fc2:b32"),
    "everything": dict(rank_kept=0.7, rank_mode="fraction", prune_amount=0.4, weight_bits=6, act_bits=6, precision="bf16",
                       layer_plan="conv1:p0.5b2,fc2:b1,fc3:b32"),
}


def _layouts(blob: bytes) -> dict[str, dict]:
    return {layout["name"]: layout for layout in json.loads(packed.header(blob)[1]["__metadata__"]["layers"])}


@pytest.mark.parametrize("name", ["mlp", "lenet5"])
@pytest.mark.parametrize("settings", PLANS.values(), ids=list(PLANS))
def test_every_plan_rebuilds_bit_exactly_at_the_size_cards_size(name, settings):
    cfg = CompressionConfig(**settings)
    assert packed.packable(cfg) is None
    _round_trip(_random(name), cfg, TrainConfig(model=name, dataset="digits"),
                torch.randn(64, *SHAPE, generator=torch.Generator().manual_seed(7)))


@pytest.mark.parametrize("text", ["fc1:p0.5b4,fc2:b2", EVERY_MLP_LAYER, "fc1:b1,fc2:b1,fc3:b1", "fc2:p0.8b3"])
def test_a_trained_model_with_a_plan_rebuilds_bit_exactly(text, trained_mlp, digits):  # noqa: F811
    train, model = trained_mlp
    _round_trip(model, CompressionConfig(weight_bits=8, layer_plan=text), train, digits.x_train[:256])


def test_each_planned_layer_is_stored_at_its_own_width_and_the_others_at_the_sliders():
    cfg = CompressionConfig(weight_bits=6, quant_scheme="affine", layer_plan="fc1:p0.5b3,fc2:b32")
    blob = packed.pack(_random("mlp"), cfg, TrainConfig("mlp", "digits"), SHAPE, 10)
    layouts, tensors = _layouts(blob), safetensors_load(blob)
    fc1, fc2, fc3 = (layouts[n] for n in ("1", "3", "5"))
    assert (fc1["coder"], fc1["weight_bits"], fc1["encoding"]) == ("uniform", 3, "mask")  # half pruned: a mask
    assert fc1["nonzero"] == fc1["shape"][0] * fc1["shape"][1] // 2 and fc1["nonzero_bits"] == 3  # 7 of 8 levels
    assert tensors["1.zero_point"].dtype == torch.int32 and tensors["1.scale"].numel() == fc1["shape"][0]
    assert (fc2["coder"], fc2["value_bits"]) == ("raw32", 32) and "3.scale" not in tensors  # 32-bit: raw fp32
    assert (fc3["coder"], fc3["encoding"]) == ("uniform", "dense") and "weight_bits" not in fc3  # the sliders' 6
    assert packed.header(blob)[1]["__metadata__"]["format"] == "compression-lens-packed/3"


def test_on_a_low_rank_model_the_factors_keep_the_sliders_code_and_dense_layers_take_the_plans():
    cfg = CompressionConfig(**PLANS["on a low-rank model"])
    model = _random("lenet5")
    compressed = compress(model, cfg)
    keys = layer_keys(compressed)
    factored = {keys[n] for n, m in prunable_layers(compressed) if is_factored(m)}
    dense = {keys[n]: n for n, m in prunable_layers(compressed) if not is_factored(m)}
    assert factored and dense  # the setting exercises both
    layouts = _layouts(packed.pack(model, cfg, TrainConfig("lenet5", "digits"), SHAPE, 10))
    plan = cfg.step("plan").parsed()
    for key, name in dense.items():
        assert layouts[name]["weight_bits"] == plan.of(key).bits
    factors = [layout for name, layout in layouts.items() if name.endswith((".first", ".second"))]
    assert factors and all(f["coder"] == "uniform" and "weight_bits" not in f for f in factors)  # the sliders' 4 bits


def test_layers_the_model_lacks_change_nothing_in_the_file():
    """The plan step skips layers the model does not have (model_problems names them): so does the file."""
    model, train = _random("mlp"), TrainConfig("mlp", "digits")
    with_unknown = packed.pack(model, CompressionConfig(weight_bits=6, layer_plan="conv9:b2,fc1:b3"), train, SHAPE, 10)
    without = packed.pack(model, CompressionConfig(weight_bits=6, layer_plan="fc1:b3"), train, SHAPE, 10)
    found, expected = safetensors_load(with_unknown), safetensors_load(without)
    assert found.keys() == expected.keys() and all(torch.equal(found[k], expected[k]) for k in expected)
    assert _layouts(with_unknown) == _layouts(without)


def test_a_format_2_file_without_widths_still_loads():
    from safetensors.torch import save as safetensors_save
    cfg = CompressionConfig(prune_amount=0.5, weight_bits=3)
    model = _random("mlp")
    blob = packed.pack(model, cfg, TrainConfig("mlp", "digits"), SHAPE, 10)
    meta = dict(packed.header(blob)[1]["__metadata__"])
    old = [{k: v for k, v in layout.items() if k != "weight_bits"} for layout in json.loads(meta["layers"])]
    meta.update(format="compression-lens-packed/2", layers=json.dumps(old))
    rebuilt, _, _ = packed.unpack(safetensors_save(dict(safetensors_load(blob)), metadata=meta))
    assert all(torch.equal(a, b) for a, b in zip(compress(model, cfg).state_dict().values(),
                                                 rebuilt.state_dict().values()))


def test_a_damaged_width_is_refused_in_words():
    from safetensors.torch import save as safetensors_save
    blob = packed.pack(_random("mlp"), CompressionConfig(layer_plan="fc1:b3"), TrainConfig("mlp", "digits"), SHAPE, 10)
    meta = dict(packed.header(blob)[1]["__metadata__"])
    layers = json.loads(meta["layers"])
    layers[0]["weight_bits"] = 13
    meta["layers"] = json.dumps(layers)
    with pytest.raises(packed.PackedFileError, match="layer 1: the stored weights are damaged"):
        packed.unpack(safetensors_save(dict(safetensors_load(blob)), metadata=meta))


def test_the_files_contents_in_words_name_the_plans_layers():
    words = packed.contents(CompressionConfig(weight_bits=4, quant_scheme="affine", layer_plan="fc1:p0.5b2,fc2:b32"))
    assert "fc1: 50 % pruned, 2 bits" in words and "fc2: dense, 32-bit float" in words
    assert "zero points" in words and "the other layers as 4-bit codes" in words

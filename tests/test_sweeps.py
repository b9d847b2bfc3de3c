"""core.studies.sweeps and core.figures.tradeoff: known answers on a tiny MLP trained on 8x8 digits."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

import core.studies.sweeps as sweeps
from core.compression import CompressionConfig
from core.data import load_dataset
from core.figures.tradeoff import grid_heatmap, tradeoff_curves
from core.compression.finetune import compress_fine_tuned
from core.layers import prunable_layers
from core.metrics import evaluate
from core.explain.attribution import attribute, saliency_agreement
from core.compression import compress
from core.studies.sweeps import (BASELINES, BIT_WIDTHS, SPARSITIES, SweepConfig, baselines_for, curve_rows, method_table,
                         probe_indices, summarize, sweep_problem, table_config, table_plan, tradeoff_sweep)
from core.training import TrainConfig, train

SMALL = SweepConfig(sparsities=(0.0, 0.5, 0.99), bit_widths=(4, 32), probe_size=16, deletion_steps=4,
                    infidelity_samples=2)


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def model(data):
    return train(TrainConfig(model="mlp", dataset="digits", epochs=8), data)


@pytest.fixture(scope="module")
def curves(model, data):
    return tradeoff_sweep(model, data, SMALL, workers=2)


def _snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()}, model.training,
            [p.requires_grad for p in model.parameters()])


def _unchanged(model, snapshot):
    state, training, grads = snapshot
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert model.training == training and [p.requires_grad for p in model.parameters()] == grads
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())


def test_uncompressed_points_equal_the_original(model, data, curves):
    dense = curves[(curves.prune_amount == 0) & (curves.weight_bits == 32)]
    # reference + every baseline's sparsity and bits curve + the sidebar's own setting (the star)
    assert len(dense) == 1 + 2 * len(SMALL.baselines) + 1
    assert (dense.accuracy == evaluate(model, data.x_test, data.y_test).accuracy).all()
    for column in ("agreement", "spearman_abs_mean", "spearman_mean", "topk_mean", "ssim_mean"):
        assert np.allclose(dense[column], 1.0), column
    assert (dense.spearman_abs_std == 0).all() and (dense.degenerate == 0).all()
    assert dense.deletion_auc.notna().all() and dense.deletion_auc.nunique() == 1


def test_prune_once_per_sparsity_quantize_per_bit_width(model, data, monkeypatch):
    compressions, measures = [], []
    real_compress, real_measure = sweeps.compress, sweeps.measure_point
    monkeypatch.setattr(sweeps, "compress", lambda m, cfg: compressions.append(cfg) or real_compress(m, cfg))
    monkeypatch.setattr(sweeps, "measure_point", lambda *a: measures.append(a[0]) or real_measure(*a))
    table = method_table(model, data, table_config(SMALL, "magnitude", "global"), workers=1)
    assert len(table) == 3 * 2 and len(measures) == 6
    pruned = [c for c in compressions if c.prune_amount > 0 or not c.quantized]
    assert sorted(c.prune_amount for c in pruned) == [0.0, 0.5, 0.99]  # one pruning per sparsity, at 32 bits
    assert all(not c.quantized for c in pruned)
    assert sum(c.quantized for c in compressions) == 3  # one quantization per (sparsity, 4 bits)


def test_a_table_has_every_sparsity_and_bit_width(model, data, monkeypatch):
    measures = []
    real = sweeps.measure_point
    monkeypatch.setattr(sweeps, "measure_point", lambda *a: measures.append(a[0]) or real(*a))
    cfg = SweepConfig(probe_size=8)
    table = method_table(model, data, table_config(cfg, "magnitude", "global"))
    assert 1.0 in SPARSITIES and 1 in BIT_WIDTHS
    assert len(table) == len(SPARSITIES) * len(BIT_WIDTHS)
    assert set(zip(table.prune_amount, table.weight_bits)) == {(a, b) for a in SPARSITIES for b in BIT_WIDTHS}
    assert table.deletion_auc.isna().all() and table.accuracy.notna().all() and table.spearman_abs_mean.notna().all()
    # At 100 % every weight is zero at every bit width: one model, measured once, the same numbers in the row.
    gone = table[table.prune_amount == 1.0]
    assert (gone.sparsity == 1.0).all() and gone.accuracy.nunique() == 1
    assert len(measures) == len(table) - (len(BIT_WIDTHS) - 1)


def test_table_key_is_everything_but_the_sliders():
    cfg = SweepConfig(base=CompressionConfig(prune_amount=0.3, weight_bits=4))
    moved = replace(cfg, base=replace(cfg.base, prune_amount=0.9, weight_bits=2))
    assert table_config(cfg, "magnitude", "global") == table_config(moved, "magnitude", "global")
    for change in ({"quant_scheme": "affine"}, {"quant_granularity": "per_tensor"}, {"seed": 3}):
        other = replace(cfg, base=replace(cfg.base, **change))
        assert table_config(other, "magnitude", "global") != table_config(cfg, "magnitude", "global"), change
    for change in ({"method": "integrated_gradients"}, {"seeds": (0, 1)}, {"probe_size": 8}):
        assert table_config(replace(cfg, **change), "random", "global") != table_config(cfg, "random", "global")
    # Fine-tuning epochs only key the fine-tuned tables: the plain ones are shared.
    tuned = replace(cfg, fine_tune_epochs=2)
    assert table_plan(tuned)[("global magnitude", False)] == table_plan(cfg)[("global magnitude", False)]
    assert table_plan(tuned)[("global magnitude", True)].fine_tune_epochs == 2


def test_structured_curve_follows_the_sidebar_scope():
    for scope, name in (("global", "global structured"), ("layer", "layer-wise structured")):
        chosen = baselines_for(SweepConfig(base=CompressionConfig(prune_scope=scope)))
        assert chosen[name] == ("structured", scope)
        assert sum(method == "structured" for method, _ in chosen.values()) == 1
    # APoZ is opt-in; it follows the sidebar's scope too, and is measured whenever the sidebar uses it.
    assert "apoz" in BASELINES and "apoz" not in SweepConfig().baselines
    assert baselines_for(SweepConfig(baselines=("apoz",)))["global apoz"] == ("apoz", "global")
    mine = baselines_for(SweepConfig(base=CompressionConfig(prune_method="apoz", prune_scope="layer")))
    assert next(iter(mine.items())) == ("layer-wise apoz", ("apoz", "layer"))
    # The sidebar's own method comes first (its table is measured first).
    own = baselines_for(SweepConfig(base=CompressionConfig(prune_method="random", prune_scope="layer")))
    assert next(iter(own.items())) == ("layer-wise random", ("random", "layer"))


def test_curves_from_the_table_equal_a_direct_computation(model, data):
    base = CompressionConfig(prune_amount=0.55, weight_bits=4)  # 55 % is not a table sparsity
    cfg = replace(SMALL, base=base, baselines=("global magnitude", "structured"))
    curves = tradeoff_sweep(model, data, cfg, full=False)
    probes = data.x_test[torch.as_tensor(probe_indices(data.y_test, cfg.probe_size))]
    target = model(probes).argmax(1)
    original_maps = attribute(model, probes, target, "saliency")
    points = [("sparsity", "global magnitude", 0.99, 4), ("bits", "global magnitude", 0.5, 32),
              ("sparsity", "global structured", 0.5, 4), ("current", "global magnitude", 0.55, 4)]
    for curve, name, amount, bits in points:
        row = curves[(curves.curve == curve) & (curves.baseline == name) & np.isclose(curves.prune_amount, amount)
                     & (curves.weight_bits == bits)]
        assert len(row) == 1, (curve, name, amount, bits)
        method, scope = baselines_for(cfg)[name]
        direct = compress(model, replace(base, prune_amount=amount, weight_bits=bits, prune_method=method,
                                         prune_scope=scope))
        assert row.accuracy.iloc[0] == evaluate(direct, data.x_test, data.y_test).accuracy
        agreement = saliency_agreement(attribute(direct, probes, target, "saliency"), original_maps)
        assert row.spearman_abs_mean.iloc[0] == pytest.approx(float(agreement["spearman_abs"].mean()), abs=1e-6)
    # Bits curves at the table sparsity nearest the sidebar's 55 %: 50 %.
    assert set(curves[curves.curve == "bits"].prune_amount) == {0.5}
    assert set(curves[curves.curve == "sparsity"].weight_bits) == {4}


def test_missing_tables_are_left_out_of_the_curves(model, data):
    cfg = SMALL
    plan = table_plan(cfg)
    tables = {key: (method_table(model, data, table) if key[0] == "random" else None) for key, table in plan.items()}
    rows = curve_rows(tables, cfg)
    assert set(rows.baseline) == {"random", "uncompressed"}
    assert curve_rows(dict.fromkeys(plan), cfg).empty


def test_measured_sparsity_and_collapse(model, data, curves):
    magnitude = curves[(curves.prune_method == "magnitude") & (curves.weight_bits == 32)]
    n = sum(m.weight.numel() for _, m in prunable_layers(model))
    for _, row in magnitude.iterrows():
        assert row.sparsity == pytest.approx(round(row.prune_amount * n) / n, abs=1e-9)
    dense = evaluate(model, data.x_test, data.y_test).accuracy
    gone = curves[(curves.curve == "sparsity") & (curves.prune_amount == 0.99)]
    assert (gone.accuracy < dense - 0.3).all()
    assert (gone.spearman_abs_mean < 0.9).all()


def test_seeds_random_pruning_and_summary(model, data):
    cfg = SweepConfig(sparsities=(0.0, 0.5), bit_widths=(32,), probe_size=8, seeds=(0, 1),
                      baselines=("global magnitude", "random"), deletion_steps=2, infidelity_samples=1)
    df = tradeoff_sweep([model, model], data, cfg)  # the same original twice: only pruning can differ
    half = df[(df.curve == "sparsity") & (df.prune_amount == 0.5)].set_index(["baseline", "seed"])
    assert half.loc[("global magnitude", 0), "accuracy"] == half.loc[("global magnitude", 1), "accuracy"]
    assert half.loc[("random", 0), "spearman_abs_mean"] != half.loc[("random", 1), "spearman_abs_mean"]
    summary = summarize(df).set_index(["curve", "baseline", "prune_amount"])
    assert summary.loc[("sparsity", "global magnitude", 0.5), "accuracy_std"] == 0.0
    assert summary.loc[("sparsity", "random", 0.5), "spearman_abs_std"] > 0.0
    assert (summary.n_seeds == 2).all()
    one = summarize(df[df.seed == 0])
    assert (one.accuracy_std == 0).all() and (one.spearman_abs_std == 0).all()
    assert np.allclose(one.spearman_abs_probe_std, df[df.seed == 0].spearman_abs_std)


def test_inputs_unchanged_and_threads_agree(model, data):
    snapshot = _snapshot(model)
    x_test = data.x_test.clone()
    seen = []
    one = tradeoff_sweep(model, data, SMALL, workers=1, progress=lambda f, m: seen.append(f))
    two = tradeoff_sweep(model, data, SMALL, workers=2)
    _unchanged(model, snapshot)
    assert torch.equal(x_test, data.x_test)
    pd.testing.assert_frame_equal(one, two)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)


def test_fine_tuned_rows_match_compress_fine_tuned(model, data):
    cfg = SweepConfig(sparsities=(0.0, 0.9), bit_widths=(4, 32), probe_size=8, fine_tune_epochs=1,
                      baselines=("global magnitude",), base=CompressionConfig(prune_amount=0.9))
    df = tradeoff_sweep(model, data, cfg)
    assert set(df.fine_tuned) == {False, True}
    for bits in (4, 32):
        row = df[df.fine_tuned & (df.curve == "bits") & (df.weight_bits == bits)].iloc[0]
        expected = compress_fine_tuned(model, CompressionConfig(prune_amount=0.9, weight_bits=bits),
                                       data.x_train, data.y_train, epochs=1)
        assert row.accuracy == evaluate(expected, data.x_test, data.y_test).accuracy


def test_probe_indices_are_fixed_and_stratified():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 3)
    idx = probe_indices(y, 12)
    assert np.array_equal(idx, probe_indices(y, 12)) and np.all(np.diff(idx) > 0)
    assert np.bincount(y[idx].numpy()).tolist() == [5, 4, 3]  # turns 0,1,2 x3, then 0,1,0
    assert len(probe_indices(y, 1000)) == len(y) and len(probe_indices(y, 0)) == 0


def test_problems_are_messages(model, data):
    assert "Grad-CAM" in sweep_problem(model, data, SweepConfig(method="grad_cam"))
    assert "empty" in sweep_problem(model, data, SweepConfig(probe_size=0))
    assert "one trained model per seed" in sweep_problem([model], data, SweepConfig(seeds=(0, 1)))
    with pytest.raises(ValueError, match="empty"):
        tradeoff_sweep(model, data, SweepConfig(probe_size=0))
    assert sweep_problem(model, data, SweepConfig()) is None


def test_figures_mark_the_current_setting(curves, model, data):
    summary = summarize(curves)
    for x, current in (("prune_amount", 0.5), ("weight_bits", 4)):
        fig = tradeoff_curves(summary, x=x, metric="accuracy", current=current)
        marks = [t for t in fig.data if t.name.startswith("current setting")]
        assert len(marks) == 1 and len(marks[0].x) == 1  # a star on the sidebar method's curve
        assert len(fig.layout.shapes) == 2  # the current value (vertical) and the uncompressed model
        assert fig.layout.meta["caption"]
    bands = tradeoff_curves(summary, metric="spearman_abs", current=0.0)
    assert any(t.fill == "toself" for t in bands.data)
    grid = method_table(model, data, table_config(SweepConfig(probe_size=8, sparsities=(0.0, 0.5), bit_widths=(4, 32)),
                                                  "magnitude", "global"))
    fig = grid_heatmap(grid, "accuracy", current=(0.5, 4))
    cells = fig.data[0]
    assert cells.marker.symbol == "square" and np.asarray(cells.customdata).shape == (4, 2)
    assert {tuple(c) for c in np.asarray(cells.customdata)} == {(0.0, 4), (0.0, 32), (0.5, 4), (0.5, 32)}
    outline = [t for t in fig.data if t.name == "current setting"]
    assert len(outline) == 1 and list(outline[0].customdata[0]) == [0.5, 4]
    assert fig.layout.meta["caption"]


def test_faithfulness_columns_come_with_their_chance_level(model, data, curves):
    # deletion: random - map, insertion: map - random, from the same model and images
    assert np.allclose(curves.deletion_gain, curves.deletion_random_auc - curves.deletion_auc, atol=1e-6)
    assert np.allclose(curves.insertion_gain, curves.insertion_auc - curves.insertion_random_auc, atol=1e-6)
    assert curves.deletion_random_auc.notna().all()
    # saliency maps have no sign: infidelity is not offered (NaN), and the caption says why
    assert curves[["infidelity", "infidelity_random", "infidelity_gain"]].isna().all().all()
    fig = tradeoff_curves(summarize(curves), metric="infidelity_gain")
    assert "Not measured for this explanation method" in fig.layout.meta["caption"]
    signed = tradeoff_sweep(model, data, SweepConfig(sparsities=(0.0,), bit_widths=(32,), probe_size=8,
                                                     deletion_steps=2, infidelity_samples=2,
                                                     baselines=("global magnitude",), method="input_x_gradient"))
    fid = signed[["infidelity", "infidelity_random", "infidelity_gain"]]
    assert fid.notna().all().all()
    assert np.allclose(fid.infidelity_gain, 1 - fid.infidelity / fid.infidelity_random, atol=1e-6)
    caption = tradeoff_curves(summarize(signed), metric="deletion_gain").layout.meta["caption"]
    assert "random ordering" in caption and "Not measured" not in caption


def test_quality_columns_are_measured_along_the_curves_with_a_random_map_beside(model, data, curves):
    from core.explain import quality
    quality_columns = list(sweeps.QUALITY_METRICS)
    assert curves[quality_columns].notna().all().all()  # the curves carry them
    assert (curves.sparseness_random.nunique() == 1) and curves.sensitivity_random.gt(1).all()  # noise: model-free
    # the dense reference row's sparseness is the original's maps' Gini index, mean over the probes
    dense = curves[curves.curve == "reference"].iloc[0]
    probes = data.x_test[torch.as_tensor(probe_indices(data.y_test, SMALL.probe_size))]
    target = model(probes).argmax(1)
    expected = quality.sparseness(attribute(model, probes, target, "saliency")).mean()
    assert dense.sparseness == pytest.approx(float(expected), abs=1e-6)
    table = method_table(model, data, table_config(SMALL, "magnitude", "global"))
    assert table[quality_columns].isna().all().all()  # a whole table: not measured (only along the curves)
    for metric in ("sparseness", "complexity", "sensitivity"):
        caption = tradeoff_curves(summarize(curves), metric=metric).layout.meta["caption"]
        assert "chance, a map of random noise" in caption

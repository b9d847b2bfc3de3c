"""core.studies.families and core.figures.families: every family's line from the registry, the Pareto front,
values at a size, on a tiny MLP trained on 8x8 digits; and the Compare families page through AppTest."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import open_app
from core.compression import CompressionConfig, get_step, ordered
from core.data import load_dataset
from core.figures.families import families_caption, families_chart
from core.studies.families import FamiliesConfig, at_ratio, lines, measure_families, pareto_front, summarize_lines
from core.training import TrainConfig, train


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def mlp(digits):
    torch.manual_seed(0)
    return train(TrainConfig(model="mlp", dataset="digits", epochs=3, seed=0), digits).eval()


def test_every_family_with_sweep_points_is_a_line_alone_and_pairs_follow_the_registry():
    base = CompressionConfig(prune_amount=0.5, prune_method="random", weight_bits=4, quant_scheme="affine")
    found = {line.key: line for line in lines(base)}
    singles = [n for n in ordered() if base.step(n).sweep_points()]
    assert [k for k in found if "+" not in k] == singles
    for name in singles:
        for point in found[name].points:  # alone: every other step at its defaults (off)
            assert [s.name for s in point.pipeline()] == [name]
    prune = found["prune"].points[0]
    assert prune.prune_method == "random" and prune.weight_bits == 32  # the sidebar's other pruning settings
    assert found["quantize"].points[0].quant_scheme == "affine"
    pair = found["prune+quantize"]
    assert pair.label == "Pruning + Quantization" and "prune" in get_step("quantize").pairs_with
    assert all({s.name for s in p.pipeline()} == {"prune", "quantize"} for p in pair.points)


def test_pareto_front_by_hand():
    summary = pd.DataFrame({"size_bytes": [10, 20, 30, 15, 25], "value": [0.5, 0.9, 0.8, 0.4, 0.95]})
    # 30/0.8 is beaten by 20/0.9; 15/0.4 by 10/0.5; 10, 20 and 25 are on the front.
    assert pareto_front(summary).tolist() == [True, True, False, False, True]


def test_at_ratio_interpolates_in_log_size_and_never_extrapolates():
    summary = pd.DataFrame({"line": ["a", "a", "b", "b"], "label": ["A", "A", "B", "B"],
                            "ratio": [5.0, 20.0, 2.0, 8.0], "value": [0.9, 0.5, 0.8, 0.6]})
    out = at_ratio(summary, 10.0)
    assert out["line"].tolist() == ["a"]  # b stops at 8x
    assert out["value"].iloc[0] == pytest.approx(0.9 + (0.5 - 0.9) * np.log(2) / np.log(4))


def test_measured_rows_have_the_reports_numbers_and_the_input_is_unchanged(mlp, digits):
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    cfg = FamiliesConfig(base=CompressionConfig(prune_amount=0.5, weight_bits=4), probe_size=20)
    table = measure_families(mlp, digits, cfg, workers=1)
    assert all(torch.equal(mlp.state_dict()[k], v) for k, v in before.items())
    assert set(table["line"]) == {*(line.key for line in lines(cfg.base)), "current", "original"}
    original = table[table["line"] == "original"].iloc[0]
    assert original["size_bytes"] == 4 * sum(p.numel() for p in mlp.parameters()) and original["ratio"] == 1.0
    # The sidebar's own row equals the Overview's report of that setting.
    from core.compression import compress
    from core.metrics import compression_report
    rep = compression_report(mlp, compress(mlp, cfg.base), cfg.base, digits.x_test, digits.y_test)
    current = table[table["line"] == "current"].iloc[0]
    assert current["size_bytes"] == rep.size_compressed_bytes and current["accuracy"] == rep.compressed.accuracy
    assert current["agreement"] == rep.agreement
    assert table["ratio"].min() >= 1.0 and table[["accuracy", "agreement", "spearman_abs_mean"]].notna().all(axis=None)


def test_chart_marks_front_star_chance_and_says_what_to_notice(mlp, digits):
    table = measure_families(mlp, digits, FamiliesConfig(base=CompressionConfig(weight_bits=8), probe_size=20),
                             workers=1)
    summary = summarize_lines(table, "accuracy")
    fig = families_chart(summary, "accuracy", chance=0.1)
    names = [t.name for t in fig.data]
    assert {"Pruning", "Quantization", "Pruning + Quantization", "Pareto front", "Sidebar setting"} <= set(names)
    assert fig.layout.xaxis.type == "log"
    assert any(s.y0 == 10 for s in fig.layout.shapes)  # chance at 10 %, in the chart's percent
    caption = fig.layout.meta["caption"]
    assert "Pareto front" in caption and "chance (10 %)" in caption
    best = at_ratio(summary, 10.0).sort_values("value").iloc[-1]
    assert best["label"] in families_caption(summary, "accuracy")
    with pytest.raises(ValueError, match="unknown metric"):
        families_chart(summary, "speed")


def test_two_seeds_give_bands(mlp, digits):
    other = train(TrainConfig(model="mlp", dataset="digits", epochs=3, seed=1), digits).eval()
    cfg = FamiliesConfig(base=CompressionConfig(), probe_size=10, seeds=(0, 1))
    summary = summarize_lines(measure_families([mlp, other], digits, cfg, workers=2), "accuracy")
    assert (summary["n_seeds"] == 2).all() and (summary["spread"] >= 0).all()
    fig = families_chart(summary, "accuracy")
    assert any(t.fill == "toself" for t in fig.data)


def test_families_config_is_a_cache_key():
    a, b = FamiliesConfig(base=CompressionConfig(weight_bits=4)), FamiliesConfig(base=CompressionConfig(weight_bits=4))
    assert a == b and hash(a) == hash(b)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.method = "gradcam"


# ---------------------------------------------------------------- the page

def _chart(at) -> dict:
    return next(json.loads(e.proto.spec) for e in at.get("plotly_chart") if e.key == "families_chart")


def test_page_draws_every_family_and_follows_the_metric_and_the_url(small):
    at = open_app("families", **small, bits=4, families_metric="agreement")
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["At the same size, which compression keeps the most?"]
    assert at.selectbox(key="families_metric").value == "agreement"
    names = {t.get("name") for t in _chart(at)["data"]}
    assert {"Pruning", "Quantization", "Sidebar setting"} <= names
    at.selectbox(key="families_metric").set_value("accuracy").run()
    assert not at.exception
    assert "chance" in _chart(at)["layout"]["meta"]["caption"]


def test_page_refuses_bad_link_values_in_words(small):
    at = open_app("families", **small, families_metric="speed", families_seeds=9)
    assert not at.exception
    assert at.slider(key="families_seeds").value == 3  # clamped
    assert at.selectbox(key="families_metric").value == "accuracy"
    assert any("speed" in w.value for w in at.sidebar.warning)


def test_page_says_how_to_add_a_distilled_student_when_none_is_trained(small):
    at = open_app("families", **small, distill_t=20)  # a setting no test trains (the test below trains T = 4)
    assert not at.exception, [e.value for e in at.exception]
    caption = _chart(at)["layout"]["meta"]["caption"]
    assert "No distilled student at the Distillation page's settings (MLP 32, T = 20, α = 0.9)" in caption
    assert "train a student on the Distillation page to add it here" in caption
    assert not any(t.get("name", "").startswith("Distilled") for t in _chart(at)["data"])


# ---------------------------------------------------------------- the distilled student's lines
def test_a_student_that_is_its_teacher_lands_on_the_original_and_on_the_quantize_line(mlp, digits):
    """Known answer: a "student" identical to its teacher agrees 100 % in answers and maps at the teacher's size,
    and quantized it gives exactly the quantization line's numbers."""
    from core.studies.families import measure_student
    cfg = FamiliesConfig(base=CompressionConfig(quant_scheme="affine"), probe_size=20)
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    rows = measure_student(mlp, mlp, digits, cfg, "Same", workers=1)
    assert all(torch.equal(mlp.state_dict()[k], v) for k, v in before.items())
    assert set(rows["line"]) == {"distill", "distill+quantize"}
    alone = rows[rows["line"] == "distill"].iloc[0]
    families = measure_families(mlp, digits, cfg, workers=1)
    original = families[families["line"] == "original"].iloc[0]
    assert alone["size_bytes"] == original["size_bytes"] and alone["ratio"] == 1.0
    assert alone["accuracy"] == original["accuracy"] and alone["agreement"] == 1.0
    assert alone["spearman_abs_mean"] == pytest.approx(1.0)
    quantized = rows[rows["line"] == "distill+quantize"].set_index("point")
    line = families[families["line"] == "quantize"].set_index("point")
    assert rows[rows["line"] == "distill+quantize"]["label"].iloc[0] == "Same + Quantization"
    for column in ("weight_bits", "size_bytes", "ratio", "accuracy", "agreement", "spearman_abs_mean"):
        assert quantized[column].tolist() == line[column].tolist(), column


def test_a_real_student_is_measured_against_its_teacher(mlp, digits, tmp_path, monkeypatch):
    from core.distillation import knowledge
    from core.metrics import evaluate
    from core.studies.families import measure_student
    teacher_cfg = TrainConfig(model="mlp", dataset="digits", epochs=3, seed=0)
    cfg = knowledge.DistillConfig(teacher=teacher_cfg, model="mlp32", epochs=2)
    assert knowledge.stored_student(cfg, digits, tmp_path) is None  # nothing on disk: none, and nothing trained
    trained = knowledge.distill(cfg, mlp, digits, cache_dir=tmp_path).distilled
    monkeypatch.setattr(knowledge, "train", lambda *a, **k: pytest.fail("stored_student must never train"))
    student = knowledge.stored_student(cfg, digits, tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(student.state_dict().values(), trained.state_dict().values()))
    rows = measure_student(mlp, student, digits, FamiliesConfig(probe_size=20), workers=1)
    alone = rows[rows["line"] == "distill"].iloc[0]
    params = sum(p.numel() for p in student.parameters())
    assert alone["size_bytes"] == 4 * params  # fp32, as trained
    assert alone["ratio"] == pytest.approx(sum(p.numel() for p in mlp.parameters()) / params)
    ours, theirs = evaluate(student, digits.x_test, digits.y_test), evaluate(mlp, digits.x_test, digits.y_test)
    assert alone["accuracy"] == pytest.approx(float((ours.predictions == digits.y_test.numpy()).mean()))
    assert alone["agreement"] == pytest.approx(float((ours.predictions == theirs.predictions).mean()))
    assert -1 <= alone["spearman_abs_mean"] < 1  # another architecture: its maps differ from the teacher's
    summary = summarize_lines(pd.concat([measure_families(mlp, digits, FamiliesConfig(probe_size=20), workers=1),
                                         rows]), "accuracy")
    names = {t.name for t in families_chart(summary, "accuracy", note="Student note.").data}
    assert {"Distilled student", "Distilled student + Quantization"} <= names


def test_a_student_without_the_methods_layer_gives_answers_but_no_map_agreement(digits):
    from core.studies.families import measure_student
    torch.manual_seed(0)
    teacher = train(TrainConfig(model="lenet5", dataset="digits", epochs=1, seed=0), digits).eval()
    student = train(TrainConfig(model="mlp32", dataset="digits", epochs=1, seed=0), digits).eval()
    rows = measure_student(teacher, student, digits, FamiliesConfig(method="grad_cam", probe_size=10), workers=1)
    assert rows["spearman_abs_mean"].isna().all() and rows[["accuracy", "agreement"]].notna().all(axis=None)
    summary = summarize_lines(rows, "spearman_abs_mean")
    assert summary.empty  # no line rather than NaN points


def test_page_draws_the_distilled_student_once_the_distillation_page_trained_it(small):
    trained = open_app("distillation", **small)  # trains the default student into the test's model cache
    assert not trained.exception, [e.value for e in trained.exception]
    at = open_app("families", **small)
    assert not at.exception, [e.value for e in at.exception]
    names = {t.get("name") for t in _chart(at)["data"]}
    assert {"Distilled student", "Distilled student + Quantization"} <= names
    assert "from the Distillation page" in _chart(at)["layout"]["meta"]["caption"]

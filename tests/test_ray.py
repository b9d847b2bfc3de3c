"""core.studies.executor: the same results on threads and on a real local Ray instance (2 CPUs).

One Ray instance for the whole module (it starts in a few seconds), its session files in a
temporary folder, stopped at the end; a task whose worker dies is retried and the sweep completes.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from core.data import load_dataset
from core.distillation.knowledge import DistillConfig, distill
from core.studies import executor, families, members, population, sensitivity, sweeps
from core.studies.sweeps import SweepConfig
from core.training import TrainConfig, load_or_train

ray = pytest.importorskip("ray", reason="Ray is not installed: `make` installs it from requirements.txt")

SWEEP = SweepConfig(sparsities=(0.0, 0.9), bit_widths=(4, 32), probe_size=8)
TINY = TrainConfig(model="mlp", dataset="digits", epochs=2)


@pytest.fixture(scope="module")
def local_ray():
    """LENS_RAY=local with 2 CPUs, its session files in a short temporary folder."""
    # Ray's socket paths live under the session folder and must stay under ~107 characters:
    # pytest's tmp_path is too deep, so a short folder under /tmp, removed afterwards.
    folder = tempfile.mkdtemp(prefix="lens-ray-")
    patch = pytest.MonkeyPatch()
    patch.setenv(executor.ENV, "local")
    patch.setenv(executor.CPUS_ENV, "2")
    patch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))  # a token of its own: nothing written to ~/.ray
    # This file's own task functions travel by value (the workers cannot import a test module).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        executor.start(temp_dir=os.path.join(folder, "t"))
        yield folder
    finally:
        executor.shutdown()
        patch.undo()
        shutil.rmtree(folder, ignore_errors=True)
        left = subprocess.run(["pgrep", "-f", folder], capture_output=True, text=True).stdout.split()
        assert not left, f"Ray processes left behind: {left}"


@pytest.fixture
def threads(monkeypatch):
    """Run on threads inside one test (the module's Ray stays up)."""
    def run(fn, *args, **kwargs):
        with monkeypatch.context() as patch:
            patch.delenv(executor.ENV)
            return fn(*args, **kwargs)
    return run


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    return load_or_train(replace(TINY, epochs=6), data, tmp_path_factory.mktemp("models")).model


def test_settings_in_words(monkeypatch):
    assert executor.backend({}) == executor.Backend()
    assert executor.backend({"LENS_RAY": "off"}).kind == "threads"
    local = executor.backend({"LENS_RAY": "local", "LENS_RAY_CPUS": "2"})
    assert (local.kind, local.address, local.cpus) == ("ray", None, 2)
    assert local.describe() == "a local Ray instance with 2 CPUs"
    cluster = executor.backend({"LENS_RAY": "ray://127.0.0.1:10001"})
    assert cluster.describe() == "the Ray cluster at ray://127.0.0.1:10001"
    with pytest.raises(ValueError, match="whole number"):
        executor.backend({"LENS_RAY": "local", "LENS_RAY_CPUS": "two"})


def test_sweep_is_the_same_on_threads_and_on_ray(local_ray, threads, model, data):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    on_threads = threads(sweeps.method_table, model, data, SWEEP, workers=2)
    on_ray = sweeps.method_table(model, data, SWEEP, progress=lambda f, m: seen.append(f))
    pd.testing.assert_frame_equal(on_threads, on_ray)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0) and len(seen) == len(SWEEP.sparsities)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_sensitivity_and_families_are_the_same_on_ray(local_ray, threads, model, data):
    cfg = sensitivity.SensitivityConfig(probe_size=8, rates=(0.5, 0.9), bits=(4,))
    pd.testing.assert_frame_equal(threads(sensitivity.sensitivity_table, model, data, cfg),
                                  sensitivity.sensitivity_table(model, data, cfg))
    fam = families.FamiliesConfig(probe_size=8)
    pd.testing.assert_frame_equal(threads(families.measure_families, model, data, fam),
                                  families.measure_families(model, data, fam))


def test_a_population_trains_the_same_on_ray(local_ray, threads, data, tmp_path):
    configs = population.population_configs(TINY, 3)
    here = threads(members.train_population, configs, data, cache_dir=tmp_path / "threads")
    seen = []
    there = members.train_population(configs, data, lambda f, m: seen.append(m), cache_dir=tmp_path / "ray")
    assert seen[-1] == "3 of 3 models trained"
    for a, b in zip(here, there):
        state = b.model.state_dict()
        assert all(torch.equal(v, state[k]) for k, v in a.model.state_dict().items())
    again = members.train_population(configs, data, cache_dir=tmp_path / "ray")  # saved: loads
    assert all(r.from_cache for r in again)


def test_distilled_students_are_the_same_on_ray(local_ray, threads, model, data, tmp_path):
    cfg = DistillConfig(teacher=replace(TINY, epochs=6), model="mlp32", epochs=2)
    here = threads(distill, cfg, model, data, cache_dir=tmp_path / "threads")
    there = distill(cfg, model, data, cache_dir=tmp_path / "ray")
    for a, b in ((here.distilled, there.distilled), (here.label_only, there.label_only)):
        state = b.state_dict()
        assert all(torch.equal(v, state[k]) for k, v in a.state_dict().items())


def _square_or_die(marker: str, item: int) -> int:
    """Kills its own worker process the first time it sees item 3 (a worker lost mid-sweep)."""
    if item == 3 and not Path(marker).exists():
        Path(marker).touch()
        os._exit(1)
    return item * item


def test_a_lost_worker_is_retried_and_the_sweep_completes(local_ray, tmp_path):
    marker = tmp_path / "died-once"
    done = []
    results = executor.run_tasks(_square_or_die, range(6), 2, done.append, shared=(str(marker),))
    assert marker.exists()  # the worker did die once
    assert results == [0, 1, 4, 9, 16, 25] and sorted(done) == list(range(6))


def _fails(item: int) -> int:
    raise ValueError(f"bad item {item}")


def test_a_task_error_is_raised_as_itself(local_ray):
    with pytest.raises(ValueError, match="bad item"):
        executor.run_tasks(_fails, [1], 2, lambda k: None)


def test_subset_models_are_the_same_on_ray(local_ray, threads, model, data, tmp_path):
    from core.distillation.coreset import subset_models
    train = replace(TINY, epochs=1)
    here = threads(subset_models, train, model, data, 0.1, cache_dir=tmp_path / "threads")
    there = subset_models(train, model, data, 0.1, cache_dir=tmp_path / "ray")
    for selection in here:
        state = there[selection].model.state_dict()
        assert all(torch.equal(v, state[k]) for k, v in here[selection].model.state_dict().items())


def test_with_ray_the_pages_say_so_and_offer_populations_of_30(monkeypatch):
    from streamlit.testing.v1 import AppTest

    def page():
        from ui.engine import engine_caption
        engine_caption("The students train")
    monkeypatch.delenv(executor.ENV, raising=False)  # the module's Ray fixture may have set it
    assert members.largest_population() == members.MAX_SIZE  # threads: as today
    monkeypatch.setenv(executor.ENV, "local")
    monkeypatch.setenv(executor.CPUS_ENV, "2")
    assert members.largest_population() == 30
    at = AppTest.from_function(page).run()
    assert [c.value for c in at.caption] == [
        "The students train as Ray tasks on a local Ray instance with 2 CPUs; the progress bar follows them as "
        "they finish."]
    monkeypatch.setenv(executor.ENV, "off")
    assert not AppTest.from_function(page).run().caption


def test_the_forgotten_page_trains_its_population_on_ray(local_ray, tmp_path, monkeypatch):
    """A fresh model cache: the page's missing members train as Ray tasks and are saved here."""
    import ui.cache
    from conftest import SMALL, Calls, open_app
    from core.training import checkpoint_path

    monkeypatch.setenv("COMPRESSION_LENS_CACHE", str(tmp_path))
    batches = Calls(ui.cache.train_population)
    monkeypatch.setattr(ui.cache, "train_population", batches)
    at = open_app("forgotten", pie_size=3, **SMALL)
    assert batches.count == 1  # members 1 and 2 in one batch of Ray tasks (member 0 is the sidebar's model)
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    assert any("as Ray tasks on a local Ray instance with 2 CPUs" in c.value for c in at.caption)
    configs = population.population_configs(TrainConfig(model="mlp", dataset="digits"), 3)
    assert all(checkpoint_path(cfg, tmp_path).exists() for cfg in configs)


def test_the_forgotten_curve_is_the_same_on_ray(local_ray, threads, data, tmp_path):
    from core.compression import CompressionConfig
    trained = [r.model for r in members.train_population(population.population_configs(TINY, 2), data,
                                                             cache_dir=tmp_path)]
    cfg = CompressionConfig(prune_method="random", weight_bits=4)  # random masks: seeds must travel too
    args = (trained, data.x_test, data.y_test, cfg, (0.5, 0.9, 0.99))
    pd.testing.assert_frame_equal(threads(population.pie_curve, *args), population.pie_curve(*args))

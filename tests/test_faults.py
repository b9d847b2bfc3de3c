"""Faults on disk (issue 11 §4): a server SIGKILLed while training, sweeping or writing the cache; a
full or read-only cache folder; two server processes training the same model at once.

The kills are real: a child python process (tests/faults_child.py) stops at the critical point and
says so with a marker file; the test then SIGKILLs it and checks the files it left and a fresh load.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from filelock import FileLock

import faults_child as child
from core import disk
from core.data import load_dataset
from core.studies import sweeps
from core.training import checkpoint_path, load_checkpoint, load_or_train, train

CHILD = Path(__file__).with_name("faults_child.py")
CFG = child.CFG
WAIT = 120.0  # seconds a child may take to reach its critical point (importing torch on a loaded machine)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def reference(digits):
    """The model a clean, uninterrupted training run gives (training is deterministic per seed)."""
    return child.digest(train(CFG, digits))


@pytest.fixture(autouse=True)
def _short_lock_wait(monkeypatch):
    # A lock a dead process still held would make a load wait this long, not 15 minutes: the test fails instead.
    monkeypatch.setattr(disk, "LOCK_TIMEOUT", 20.0)


def start(mode: str, cache: Path, marker: Path, *more: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(CHILD), mode, str(cache), str(marker), *map(str, more)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def reached(process: subprocess.Popen, marker: Path) -> None:
    """Wait until the child has created `marker` (its critical point); fail if it died first."""
    deadline = time.monotonic() + WAIT
    while not marker.exists():
        if process.poll() is not None:
            pytest.fail(f"the child ended ({process.returncode}) before its critical point: {process.stderr.read()}")
        assert time.monotonic() < deadline, "the child never reached its critical point"
        time.sleep(0.02)


def kill_at(mode: str, cache: Path, tmp_path: Path) -> None:
    """Run the child in `mode` until its critical point, then SIGKILL it."""
    marker = tmp_path / f"{mode}.reached"
    process = start(mode, cache, marker)
    reached(process, marker)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# ---------------------------------------------------------------- SIGKILL
def test_killed_during_training_leaves_no_model_and_the_next_run_starts_again(tmp_path, digits, reference):
    kill_at("train", tmp_path, tmp_path)
    path = checkpoint_path(CFG, tmp_path)
    assert not path.exists()  # nothing half-trained was written as a model
    assert (tmp_path / (path.name + ".running")).exists()  # the trace of the interrupted run
    result = load_or_train(CFG, digits, tmp_path)  # the restarted server; the dead child's lock is gone with it
    assert not result.from_cache and result.kept
    assert result.notice == ("A training run of mlp on digits, seed 0 was interrupted (the server stopped); "
                             "it started again.")
    assert child.digest(result.model) == reference  # started again from scratch: the same model as a clean run
    assert names(tmp_path) == {path.name, path.name + ".lock", "train.reached"}
    again = load_or_train(CFG, digits, tmp_path)
    assert again.from_cache and again.notice is None


def test_killed_during_a_cache_write_leaves_only_a_temporary_file_never_read(tmp_path, digits, reference):
    kill_at("write", tmp_path, tmp_path)
    path = checkpoint_path(CFG, tmp_path)
    assert not path.exists()  # the half-written bytes never took the model's name
    (half,) = tmp_path.glob(path.name + ".*.tmp")
    assert half.stat().st_size > 0
    with pytest.raises(ValueError):
        load_checkpoint(CFG, half, digits)  # what a reader would have met without the atomic write
    result = load_or_train(CFG, digits, tmp_path)
    assert not result.from_cache and "was interrupted (the server stopped); it started again." in result.notice
    assert child.digest(result.model) == reference
    assert not half.exists() and names(tmp_path) == {path.name, path.name + ".lock", "write.reached"}
    assert child.digest(load_checkpoint(CFG, path, digits)) == reference


def test_killed_during_a_sweep_leaves_the_models_whole_and_the_sweep_starts_again(tmp_path, digits):
    import ui.jobs

    path = checkpoint_path(CFG, tmp_path)
    model = load_or_train(CFG, digits, tmp_path).model
    before = path.read_bytes()
    kill_at("sweep", tmp_path, tmp_path)
    assert path.read_bytes() == before  # a sweep only reads the models
    runs = tmp_path / "runs"
    assert names(runs) == {child.SWEEP_KEY + ".running", child.SWEEP_KEY + ".lock"}
    # The restarted server's job, as ui.cache starts it (a journal under the model cache).
    sweep = sweeps.SweepConfig(**child.SWEEP)
    job = ui.jobs.Job("sweep-table", lambda progress: sweeps.method_table(model, digits, sweep, workers=1),
                      journal=(runs, child.SWEEP_KEY, child.SWEEP_WHAT))
    table = job.wait()
    assert job.notice == ("A sweep of mlp on digits, seed 0 (saliency maps) was interrupted (the server stopped); "
                          "it started again.")
    assert table.equals(sweeps.method_table(model, digits, sweep, workers=1))  # the whole table, as a clean run
    assert names(runs) == {child.SWEEP_KEY + ".lock"}  # finished: no trace left
    assert load_or_train(CFG, digits, tmp_path).from_cache


def test_a_job_that_fails_is_not_reported_as_interrupted_next_time(tmp_path):
    import ui.jobs

    def fail(progress):
        raise RuntimeError("broken")

    with pytest.raises(RuntimeError):
        ui.jobs.Job("x", fail, journal=(tmp_path, "k", "a sweep")).wait()
    job = ui.jobs.Job("x", lambda progress: 1, journal=(tmp_path, "k", "a sweep"))
    assert job.wait() == 1 and job.notice is None


# ---------------------------------------------------------------- two replicas
def test_two_processes_training_the_same_model_make_one_file_the_second_loads_it(tmp_path, reference):
    go, first_out, second_out = tmp_path / "go", tmp_path / "first.json", tmp_path / "second.json"
    first = start("replica", tmp_path, tmp_path / "first.training", go, first_out)
    reached(first, tmp_path / "first.training")  # it holds the lock, one epoch in
    second = start("replica", tmp_path, tmp_path / "second.waiting", go, second_out)
    reached(second, tmp_path / "second.waiting")  # it found the lock taken and waits
    go.touch()
    assert first.wait(timeout=WAIT) == 0 and second.wait(timeout=WAIT) == 0
    one, two = json.loads(first_out.read_text()), json.loads(second_out.read_text())
    assert one["trained"] and not one["from_cache"]
    assert not two["trained"] and two["from_cache"] and two["notice"] is None  # loaded the first one's file
    assert one["digest"] == two["digest"] == reference
    path = checkpoint_path(CFG, tmp_path)
    assert {n for n in names(tmp_path) if not n.endswith((".json", ".training", ".waiting")) and n != "go"} == {
        path.name, path.name + ".lock"}


def test_a_lock_held_too_long_costs_a_second_training_not_a_wait_forever(tmp_path, digits, monkeypatch, reference):
    monkeypatch.setattr(disk, "LOCK_TIMEOUT", 0.2)
    path = checkpoint_path(CFG, tmp_path)
    held = FileLock(path.with_name(path.name + ".lock"))
    with held:  # another process stuck mid-training (a flock in this process conflicts all the same)
        result = load_or_train(CFG, digits, tmp_path)
    assert "has been making this model for too long; this one made its own" in result.notice
    assert child.digest(result.model) == reference and child.digest(load_checkpoint(CFG, path, digits)) == reference


# ---------------------------------------------------------------- full or read-only disks
def test_a_file_where_the_cache_folder_should_be_trains_in_memory(tmp_path, digits, reference):
    """A real failure even for root (who may write into a chmod-ed folder): a file stands in the way."""
    (tmp_path / "blocker").write_text("not a folder")
    folder = tmp_path / "blocker" / "models"
    result = load_or_train(CFG, digits, folder)
    assert result.notice == (f"The model cache folder {folder} cannot be made (a file stands where a folder should "
                             "be): models are trained in memory and not kept.")
    assert not result.kept and child.digest(result.model) == reference


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "is on a full disk"), (errno.EROFS, "is read-only"),
                                         (errno.EACCES, "is read-only")])
def test_a_full_or_read_only_disk_trains_in_memory_and_says_why(tmp_path, digits, monkeypatch, code, words):
    """Simulated: the checkpoint's write raises OSError(code) as the kernel would on a full disk (ENOSPC) or
    a read-only mount (EROFS, EACCES); root cannot make a real one without mounting a file system."""
    def refuse(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(torch, "save", refuse)
    result = load_or_train(CFG, digits, tmp_path)
    assert result.notice == f"The model cache folder {tmp_path} {words}: models are trained in memory and not kept."
    assert not result.kept and not result.from_cache
    path = checkpoint_path(CFG, tmp_path)
    assert names(tmp_path) == {path.name + ".lock"}  # no partial file, no temporary file, no marker


# ---------------------------------------------------------------- what the app shows
@pytest.fixture
def fresh_small_job(request):
    """The small model's shared training job started afresh, and dropped afterwards (no notice for later tests)."""
    import ui

    cfg = ui.train_config("mlp", "digits")
    ui._training_job.clear(cfg)
    request.addfinalizer(lambda: ui._training_job.clear(cfg))
    return cfg


def test_the_app_runs_with_a_cache_folder_that_cannot_be_made_and_says_why(tmp_path, monkeypatch, fresh_small_job):
    """A file where the cache folder should be: a real failure, even for root."""
    from conftest import SMALL, open_app
    from test_app import assert_healthy, metric

    (tmp_path / "blocker").write_text("not a folder")
    folder = tmp_path / "blocker" / "models"
    monkeypatch.setenv("COMPRESSION_LENS_CACHE", str(folder))
    at = open_app("overview", **SMALL)
    assert_healthy(at, "overview")
    assert f"The model cache folder {folder} cannot be made (a file stands where a folder should be): models are " \
           "trained in memory and not kept." in [w.value for w in at.warning]
    at.slider(key="prune").set_value(50).run()  # the model trained in memory serves the class as usual
    assert_healthy(at, "overview")
    assert metric(at, "Sparsity") == "50 %"


def test_the_app_says_a_training_run_was_interrupted_when_it_starts_again(tmp_path, monkeypatch, fresh_small_job):
    from conftest import SMALL, open_app
    from test_app import assert_healthy

    monkeypatch.setenv("COMPRESSION_LENS_CACHE", str(tmp_path))
    path = checkpoint_path(fresh_small_job, tmp_path)
    path.with_name(path.name + ".running").write_text("a training run of mlp on digits, seed 0")  # a SIGKILL's trace
    at = open_app("overview", **SMALL)
    assert_healthy(at, "overview")
    assert "A training run of mlp on digits, seed 0 was interrupted (the server stopped); it started again." in [
        w.value for w in at.warning]
    assert load_or_train(fresh_small_job, cache_dir=tmp_path).from_cache  # and the model is kept this time

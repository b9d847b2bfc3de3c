"""Every @st.cache_* of the app, in one place (house style): data, trained and compressed
models, reports, maps and figures.

Models returned here are shared by every session: never train, prune, hook or otherwise
mutate them (core functions copy first). Whatever a page might touch comes from
st.cache_data, which hands out copies.
"""
from __future__ import annotations

import ctypes
import dataclasses
import functools
import gc
import hashlib
import threading
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx
import torch
from torch import nn

from core import data as datasets
from core import figures, layers
from core.figures import maps as figures_maps
from core.explain.attribution import attribute, methods_for
from core.explain import quality as explain_quality
from core.compression import CompressionConfig, compress
from core.fast_inference import answers_on_rows
from core.metrics import CompressionReport, Evaluation, compression_report, evaluate, weight_sparsity
from core.studies.population import (class_accuracy, class_impact, compress_population, forgotten_examples, pie_curve,
                             population_configs, population_maps, population_predictions)
from core.explain.sanity import cascading_randomization, randomized_maps
from core.studies import global_view, plan_search, sensitivity, sweeps
from core.studies.layer_plan import LayerPlan, measure_plan, plan_problem
from core.studies.sweeps import SPARSITIES, SweepConfig, probe_indices, sweep_problem
from core.training import (TrainConfig, TrainResult, checkpoint_path, default_cache_dir, describe, load_or_train,
                           with_calibration)
from core import digits as own_digit
from core import export
from core.figures import scrub as figures_scrub
from core.studies import scrub
from core import upload as uploads
from core import warm
from core.studies import families
from core.studies.families import FamiliesConfig
from core.deploy import artifacts as deploy_artifacts_mod
from core.deploy import latency as deploy_latency
from core.deploy import packed as deploy_packed
from core.distillation.compare import PROBE_SIZE, Comparison, compare, methods_for_all
from core.distillation.coreset import subset_models, subset_total
from core.distillation import lesson as distillation_lesson
from core.distillation.knowledge import DistillConfig, DistillResult, distill, student_problem
from ui.jobs import Activity, Job, Prefetcher, Progress, Turns, follow
from core.studies.executor import on_ray
from core.studies.members import train_population
from ui.setup import UPLOAD_KEY, Setup, UploadedTrain

# Two cores: torch's default intra-op threads oversubscribe them (10-80x slower).
torch.set_num_threads(1)


# ---- issue 11 §2 (a class on one process): cheap cache keys for the app's frozen configs.
# Streamlit hashes a dataclass argument through dataclasses.asdict (a deep copy): about 1.2 ms for a
# Setup, and a Overview or Saliency rerun makes some 30 cached calls with one (14 % of the server's
# time under a class's load). The hot caches below pass hash_funcs=FAST_KEYS: one string naming the
# type and every field, built once per config object.
def _plain(obj: object) -> object:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return (type(obj).__module__, type(obj).__qualname__,
                tuple((f.name, _plain(getattr(obj, f.name))) for f in dataclasses.fields(obj)))
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, tuple(_plain(item) for item in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((repr(k), _plain(v)) for k, v in obj.items()))
    return obj if obj is None or isinstance(obj, (bool, int, float, str)) else (type(obj).__qualname__, repr(obj))


@functools.lru_cache(maxsize=1024)  # equal configs share one entry: a few MB at most
def _memo_key(obj: object) -> str:
    return repr(_plain(obj))


def config_key(obj: object) -> str:
    """A complete cache key for a frozen config (Setup, TrainConfig, CompressionConfig): type and fields."""
    try:
        return _memo_key(obj)
    except TypeError:  # an unhashable field: no memo, same key
        return repr(_plain(obj))


FAST_KEYS = {Setup: config_key, TrainConfig: config_key, UploadedTrain: config_key, CompressionConfig: config_key}


# ---------------------------------------------------------------- caches
@st.cache_resource(max_entries=5, show_spinner="Loading the data set…")
def dataset(name: str) -> datasets.Dataset:
    """Shared, read-only tensors of a data set."""
    return datasets.load_dataset(name)


def _load_shared(cfg: TrainConfig, data: datasets.Dataset, progress: Progress) -> TrainResult:
    result = load_or_train(cfg, data, progress=progress)
    result.model.requires_grad_(False)  # shared: nobody trains it (maps need input grads only)
    return result  # load_or_train registered its calibration images (core.training.with_calibration)


@st.cache_resource(max_entries=24, show_spinner=False, hash_funcs=FAST_KEYS)
def _training_job(cfg: TrainConfig) -> Job:
    data = dataset(cfg.dataset)
    return Job(f"train-{cfg.key()}", lambda progress: _load_shared(cfg, data, progress))


def _model(cfg: TrainConfig) -> nn.Module:
    """The shared trained model (waits for its job; pages call trained_model first to show progress)."""
    if isinstance(cfg, UploadedTrain):
        return _uploaded_model(cfg.weights, _session_upload(cfg.weights))
    return _training_job(cfg).wait().model


def trained_model(cfg: TrainConfig) -> nn.Module:
    """The shared trained model for `cfg`, with a live progress bar while it trains."""
    model = trained_models([cfg])[0]
    st.session_state["_model_ready"] = cfg  # the sidebar may now measure the compressed model
    return model


def trained_models(configs: list[TrainConfig]) -> list[nn.Module]:
    """Shared trained models (seeds of one recipe), trained one after the other under one progress bar.

    The bar says which model of how many, what it is doing and how long is left ("model 2 of 5:
    LeNet-5 seed 1, epoch 5/20, about 40 s left"); models already on disk load without one.
    """
    _train_on_ray_first(configs)  # issue 11: with LENS_RAY the missing members train side by side on Ray
    labels = [warm.label(cfg) for cfg in configs]
    progress = warm.Progress(labels, [on_disk(cfg) for cfg in configs])
    what = "the models" if len(configs) > 1 else "the model"
    bar, found = None, []
    for index, cfg in enumerate(configs):
        if isinstance(cfg, UploadedTrain):
            upload = _session_upload(cfg.weights)
            if not any(isinstance(c, UploadedTrain) for c in configs[:index]):  # once, not once per seed
                st.info(f"Exploring **your uploaded weights** ({upload.filename}) in place of the trained model. "
                        "Switch back on the *Your model* page.", icon=":material/upload_file:")
            found.append(_model(cfg))
            continue
        job = _training_job(cfg)
        progress.start(index)
        while not job.done.wait(0.25):
            fraction, text = progress.update(*job.progress)
            text = f"Training {what} this page needs (first use only): {text}"
            bar = st.progress(fraction, text=text) if bar is None else bar.progress(fraction, text=text)
        progress.finish()
        try:
            result = job.wait()
        except Exception as err:
            _training_job.clear(cfg)  # let the next attempt start afresh
            st.error(f"Training {labels[index]} failed: {err}")
            st.stop()
        show_notice(result.notice)
        found.append(result.model)
    if bar is not None:
        bar.empty()
    return found


def show_notice(notice: str | None) -> None:
    """A notice of a shared model or job (damaged file, interrupted run, nothing kept), once per session."""
    if notice and notice not in st.session_state.setdefault("_shown_notices", set()):
        st.session_state["_shown_notices"].add(notice)
        st.warning(notice, icon="⚠️")


def journal(what: str, *key: object) -> tuple:
    """Where a background job that keeps no file marks itself running (ui.jobs.Job's journal), under
    the model cache: a run a stopped server left unfinished is noticed when it starts again."""
    return default_cache_dir() / "runs", hashlib.sha256(repr(key).encode()).hexdigest()[:16], what


def on_disk(cfg: TrainConfig) -> bool:
    """Is the model for `cfg` trained and saved (so it loads in a moment)?"""
    return checkpoint_path(cfg).exists()


def _wait_for(job_fn, args: tuple, report: Progress):
    """The shared job `job_fn(*args)`, waited for on a background thread, passing on its progress."""
    job = job_fn(*args)
    while not job.done.wait(0.25):
        report(*job.progress)
    try:
        return job.wait()
    except Exception:
        job_fn.clear(*args)  # let the next attempt start afresh
        raise


def _wait_for_training(cfg: TrainConfig, report: Progress) -> TrainResult:
    """The shared training job of `cfg`, waited for on a background thread, passing on its progress."""
    return _wait_for(_training_job, (cfg,), report)


# A prepared table: (its name on the bar, the trained model, the table's key, as core.studies.sweeps.table_plan gives it).
PreparedTable = tuple[str, TrainConfig, SweepConfig]
# A prepared population: (trained model, size, compression settings of every view that opens it).
PreparedPopulation = tuple[TrainConfig, int, tuple[CompressionConfig, ...]]


@st.cache_resource(max_entries=1, show_spinner=False)
def prepared() -> set:
    """What "prepare the class" finished in this server process (class_job's arguments): tables live in memory."""
    return set()


def _prepare_table(train: TrainConfig, table: SweepConfig, report: Progress):
    """One whole table, as the Trade-offs page starts it (the same shared job); skipped if it cannot run."""
    if sweep_check(train, table):
        return None  # e.g. Grad-CAM on an MLP: the page falls back to another method, and says so
    return _wait_for(_table_job, (train, table), report)


def _prepare_population(train: TrainConfig, size: int, settings: tuple[CompressionConfig, ...],
                        report: Progress) -> None:
    """The Forgotten examples curve and the original population's votes, then each view's own votes."""
    curve = 0.9  # the curve compresses every member at 13 sparsities; a view's votes, at one
    _wait_for(_pie_job, (train, size, replace(settings[0], prune_amount=0.0)),
              lambda fraction, message: report(curve * fraction, message))
    _original_votes(train, size)
    for index, compression in enumerate(settings):
        report(curve + (1 - curve) * index / len(settings), f"the votes at {compression.prune_amount:.0%} sparsity")
        population_view(train, size, compression)


@st.cache_resource(max_entries=2, show_spinner=False)
def class_job(configs: tuple[TrainConfig, ...], tables: tuple[PreparedTable, ...] = (),
              populations: tuple[PreparedPopulation, ...] = ()) -> Job:
    """One background job training every model in `configs` in turn (the "prepare the class" action), then
    measuring the Trade-offs `tables` and the Forgotten examples `populations` that the pages would start.

    It uses the same shared jobs as the pages, so a page opened meanwhile waits for the same runs
    instead of starting its own, and a page opened afterwards finds them done; its progress is
    `core.warm.run_phases`'s one message.
    """
    for name in dict.fromkeys(cfg.dataset for cfg in configs):
        dataset(name)  # loaded here, on the script thread, where its spinner can show
    phases = [warm.model_phase(configs, _wait_for_training, on_disk),
              warm.Phase("table", [name for name, _, _ in tables],
                         lambda i, progress: _prepare_table(*tables[i][1:], progress)),
              warm.Phase("population", [f"Forgotten examples, {size} models" for _, size, _ in populations],
                         lambda i, progress: _prepare_population(*populations[i], progress))]

    def work(progress: Progress) -> None:
        warm.run_phases(phases, progress)
        prepared().add((configs, tables, populations))
    return Job("prepare-class", work)


@st.cache_resource(max_entries=48, show_spinner=False, hash_funcs=FAST_KEYS)
def compressed_model(setup: Setup) -> nn.Module:
    """The shared compressed copy of the trained model (the trained one stays untouched)."""
    return compress(_model(setup.train), setup.compression)


@st.cache_data(max_entries=128, show_spinner=False, hash_funcs=FAST_KEYS)
def zero_shares(setup: Setup) -> tuple[float, float]:
    """(share of prunable weights zero after pruning alone, after pruning and quantization)."""
    plan = setup.compression.step("plan").parsed()  # a per-layer plan's rates without its bit widths
    kept = ",".join(replace(s, bits=32).text() for s in plan.settings) if plan else setup.compression.layer_plan
    pruned = replace(setup, compression=replace(setup.compression, weight_bits=32, layer_plan=kept))
    return weight_sparsity(compressed_model(pruned)), weight_sparsity(compressed_model(setup))


@st.cache_data(max_entries=12, show_spinner=False, hash_funcs=FAST_KEYS)
def original_evaluation(cfg: TrainConfig) -> Evaluation:
    data = dataset(cfg.dataset)
    return evaluate(_model(cfg), data.x_test, data.y_test)


@st.cache_data(max_entries=128, show_spinner=False, hash_funcs=FAST_KEYS)
def report(setup: Setup) -> CompressionReport:
    """Accuracy, agreement, sparsity, size and MACs of original vs compressed."""
    data = dataset(setup.train.dataset)
    return compression_report(_model(setup.train), compressed_model(setup), setup.compression,
                              data.x_test, data.y_test, original_eval=original_evaluation(setup.train))


# Guesses help one user stepping the slider (a teacher preparing, a student at home). In a class they are
# wasted: thirty students move by their own amounts, and with two replicas on two cores a guess in one
# process takes the core from the other's real reruns (under 10 students the guesses were a fifth of the
# server's samples). So no guesses while more than PREFETCH_SESSIONS sessions ran in the last 30 s.
PREFETCH_SESSIONS = 2


def _quiet_server() -> bool:
    return activity().others() == 0 and activity().recent() <= PREFETCH_SESSIONS


@st.cache_resource(max_entries=1, show_spinner=False)
def _prefetcher() -> Prefetcher:
    # the report and the summary in words (issue 10 §4, below), only while no other session is in a run
    # and no class is on the server
    return Prefetcher(_prefetch_move, idle_server=lambda: _quiet_server())  # late-bound: tests replace it


def prefetch_neighbours(setup: Setup) -> None:
    """Start computing the reports one pruning step either side of `setup` (returns at once).

    Keyboard and drag moves of the pruning slider go one step at a time, so the next rerun
    finds its report (the evaluation of 1,000 test images, most of a move's server time)
    already cached. Only for trained models that are ready: uploaded weights live in one
    session's state, which a background thread cannot read.
    """
    activity().end(_session_id())  # the end of this session's run (app.py calls this last)
    if type(setup.train) is not TrainConfig or not _training_job(setup.train).done.is_set():
        return
    step = round(setup.compression.prune_amount * 100)
    _prefetcher()([replace(setup, compression=replace(setup.compression, prune_amount=(step + d) / 100))
                   for d in (1, -1) if 0 <= step + d <= 100], after=_script_thread())


@st.cache_data(max_entries=64, show_spinner=False, hash_funcs=FAST_KEYS)
def original_maps(cfg: TrainConfig, indices: tuple[int, ...], method: str) -> torch.Tensor:
    """Maps (N, H, W) of the original model for test images `indices`, for its own predicted class."""
    x, target = _probe(cfg, indices)
    return attribute(_model(cfg), x, target, method)


@st.cache_data(max_entries=256, show_spinner=False, hash_funcs=FAST_KEYS)
def compressed_maps(setup: Setup, indices: tuple[int, ...], method: str) -> torch.Tensor:
    """Maps (N, H, W) of the compressed model, for the ORIGINAL's predicted class (so they compare)."""
    x, target = _probe(setup.train, indices)
    return attribute(compressed_model(setup), x, target, method)


def _probe(cfg: TrainConfig, indices: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    rows = list(indices)
    target = torch.as_tensor(original_evaluation(cfg).predictions[rows])
    return dataset(cfg.dataset).x_test[rows], target


def available_methods(setup: Setup) -> list[str]:
    return methods_for(_model(setup.train))


@st.cache_data(max_entries=12, show_spinner=False, hash_funcs=FAST_KEYS)
def layer_labels(cfg: TrainConfig) -> dict[str, str]:
    return layers.layer_labels(_model(cfg))


@st.cache_data(max_entries=64, show_spinner=False, hash_funcs=FAST_KEYS)
def weight_histograms(setup: Setup) -> dict[str, go.Figure]:
    """One overlaid histogram per prunable layer, keyed by layer name."""
    original, compressed = _model(setup.train), compressed_model(setup)
    return {name: figures.weight_histogram(layers.weight_of(original, name), layers.weight_of(compressed, name),
                                           label, _stored_bits(setup.compression))
            for name, label in layer_labels(setup.train).items()}


# ---- weight sharing, activations and precision (issue 8, part "codes")
def _stored_bits(cfg: CompressionConfig) -> int:
    """Bits per weight a histogram's title names: sharing's index bits (it replaces the bit width),
    else the bit width in use, else the number format (16 for fp16/bf16)."""
    running = {step.name for step in cfg.pipeline()}
    if "share" in running:
        return cfg.share_bits
    if "quantize" in running:
        return cfg.weight_bits
    return 16 if cfg.precision != "fp32" else 32


@st.cache_data(max_entries=64, show_spinner=False, hash_funcs=FAST_KEYS)
def sparsity_figure(setup: Setup) -> go.Figure:
    rep = report(setup)
    return figures.sparsity_bars(list(layer_labels(setup.train).values()),
                                 [s.sparsity for s in rep.original_layers],
                                 [s.sparsity for s in rep.compressed_layers], overall=rep.sparsity)


@st.cache_data(max_entries=64, show_spinner=False, hash_funcs=FAST_KEYS)
def weight_heatmaps(setup: Setup, layer: str) -> tuple[go.Figure, go.Figure]:
    """Heatmaps of one layer's weights in the original and the compressed model."""
    label = layer_labels(setup.train)[layer]
    original, compressed = _model(setup.train), compressed_model(setup)
    return (figures_maps.weight_heatmap(layers.weight_of(original, layer), f"{label}, original"),
            figures_maps.weight_heatmap(layers.weight_of(compressed, layer), f"{label}, compressed"))



@st.cache_resource(max_entries=1, show_spinner=False)
def freeze_heap() -> bool:
    """Once per process, after the first page: move every object alive now out of the GC's reach.

    torch, plotly and pandas leave ~400,000 long-lived objects; without this each full
    collection (Streamlit runs one after every rerun unless runner.postScriptGC is off,
    Python runs them on its own too) scans them all, about 220 ms on these machines.
    """
    gc.collect()
    gc.freeze()
    return True


# ---------------------------------------------------------------- trade-offs, populations, sanity
def _finished(job_fn, args: tuple, label: str):
    """The result of a cached Job, following its progress, and its notice; a failed job is dropped so a
    retry starts afresh."""
    job = job_fn(*args)
    try:
        result = follow(job, label)
    except Exception:
        job_fn.clear(*args)
        raise
    show_notice(job.notice)
    return result


# One table measures at a time (on its own 2 worker threads: the machine's 2 cores), in the order
# asked for; the page asks for the sidebar's own method first.
_TABLE_TURNS = Turns()
_TABLE_JOBS: list[Job] = []


@st.cache_resource(max_entries=16, show_spinner=False)
def _references(train: TrainConfig, sweep: SweepConfig) -> list:
    """The originals' evaluations and probe maps, once per seed set, probe set and method (shared by every table)."""
    originals = [_model(replace(train, seed=train.seed + s)) for s in sweep.seeds]
    return sweeps.references(originals, dataset(train.dataset), sweep)


def _reference_key(sweep: SweepConfig) -> SweepConfig:
    return SweepConfig(method=sweep.method, probe_size=sweep.probe_size, seeds=sweep.seeds)


@st.cache_resource(max_entries=96, show_spinner=False)
def _table_job(train: TrainConfig, table: SweepConfig, cells: tuple | None = None) -> Job:
    """A whole table (cells None: every sparsity x bit width, no faithfulness) or the faithfulness of `cells`."""
    # Models, data and references are fetched here, on the script thread; the job only computes.
    originals = [_model(replace(train, seed=train.seed + s)) for s in table.seeds]
    data, refs = dataset(train.dataset), _references(train, _reference_key(table))

    def measure(progress: Progress):
        if cells is None:
            return sweeps.method_table(originals, data, table, progress, refs=refs)
        return sweeps.measure_table(originals, data, table, cells, True, progress, refs=refs)

    def work(progress: Progress):
        progress(0.0, "waiting for the table before it")
        return _TABLE_TURNS.run(ticket, lambda: measure(progress))

    what = f"a sweep of {describe(train)} ({table.method} maps)"
    if cells is not None:  # a few cells the page waits for: not queued behind whole tables
        return Job("sweep-cells", measure, journal(what, "cells", train, table, cells))
    ticket = _TABLE_TURNS.ticket()
    job = Job("sweep-table", work, journal(what, "table", train, table))
    _TABLE_JOBS.append(job)
    del _TABLE_JOBS[:-200]
    return job


def wait_for_tables(timeout: float = 600.0) -> bool:
    """Wait until every table job started so far is done (tests, benchmarks, warm-up); False on timeout."""
    deadline = time.monotonic() + timeout
    return all(job.done.wait(max(0.0, deadline - time.monotonic())) for job in list(_TABLE_JOBS))


def _table_label(name: str, tuned: bool) -> str:
    return f"{name}, fine-tuned" if tuned else name


def sweep_tables(train: TrainConfig, sweep: SweepConfig) -> dict[tuple[str, bool], pd.DataFrame | None]:
    """Every table the Trade-offs page needs, keyed (baseline, fine_tuned); None for one still measuring.

    Starts the missing ones (shared by every session, the sidebar's own method first),
    waits with a progress bar for the sidebar's own, and shows how far the others are; the
    page reruns by itself when one of them is done. Tables are copies the page may keep.
    """
    trained_models([replace(train, seed=train.seed + s) for s in sweep.seeds])
    plan = sweeps.table_plan(sweep)
    jobs = {key: _table_job(train, table) for key, table in plan.items()}
    own = [key for key in plan if key[0] == next(iter(plan))[0]]
    out, pending = {}, {}
    for key, job in jobs.items():
        label = f"Measuring every sparsity × bit width for {_table_label(*key)}"
        if key in own:
            out[key] = _finished(_table_job, (train, plan[key]), label).copy()
        elif not job.done.is_set():
            out[key], pending[key] = None, job
        else:
            try:
                out[key] = _finished(_table_job, (train, plan[key]), label).copy()
            except Exception as err:  # another method's curve: the page goes on without it
                out[key] = None
                st.warning(f"The {_table_label(*key)} curves could not be measured ({err}); reload to try again.")
    if pending:
        _watch_tables(pending)
    return out


def _watch_tables(pending: dict[tuple[str, bool], Job]) -> None:
    """Progress of the tables still measuring; reruns the page when one is done."""
    @st.fragment(run_every=1.0)
    def watch() -> None:
        if any(job.done.is_set() for job in pending.values()):
            st.rerun()
        lines = [f"**{_table_label(*key)}**: {job.progress[1]}" for key, job in pending.items()]
        st.info("Still measuring (shared with every visitor, once): " + "; ".join(lines)
                + ". Their curves appear here when done.", icon=":material/hourglass_top:")
    watch()


def sweep_faithfulness(train: TrainConfig, table: SweepConfig, cells: tuple, label: str) -> pd.DataFrame:
    """Faithfulness (and every other measure) of `cells` of one table, measured once, with progress."""
    return _finished(_table_job, (train, table, cells), label).copy()


@st.cache_data(max_entries=256, show_spinner=False)
def sweep_point(train: TrainConfig, table: SweepConfig, amount: float, bits: int, full: bool) -> pd.DataFrame:
    """One cell off the table's axes (e.g. the sidebar's 55 %), per seed; one model per seed, about 70 ms each."""
    originals = [_model(replace(train, seed=train.seed + s)) for s in table.seeds]
    refs = _references(train, _reference_key(table))
    return sweeps.measure_table(originals, dataset(train.dataset), table, [(amount, bits)], full, refs=refs)


def tradeoff_rows(train: TrainConfig, sweep: SweepConfig, metric: str,
                  tables: dict[tuple[str, bool], pd.DataFrame | None]) -> pd.DataFrame:
    """The curves through the sidebar's setting (core.studies.sweep_plan.curve_rows) from the tables of `sweep_tables`.

    Faithfulness is measured only where the page shows it: when `metric` is one, for the
    cells of the two curves (each cell once, shared). The sidebar's exact setting (the
    star) comes from its own table, or is measured as one extra cell when off the axes.
    """
    plan = sweeps.table_plan(sweep)
    faithful = metric in sweeps.CURVE_METRICS  # faithfulness and explanation quality: along the curves only
    if faithful:
        cells = tuple(sweeps.slice_cells(sweep))
        for key, table in tables.items():
            if table is not None:
                label = f"Measuring faithfulness along the curves for {_table_label(*key)}"
                tables = {**tables, key: sweeps.with_faithfulness(table, sweep_faithfulness(train, plan[key], cells,
                                                                                          label))}
    own = next(iter(plan))
    current = sweeps.current_rows(tables[own], sweep)
    if current is None or (faithful and current[metric].isna().any()):
        current = sweep_point(train, plan[own], float(sweep.base.prune_amount), sweep.base.weight_bits, faithful)
    return sweeps.curve_rows(tables, sweep, current)


def sweep_table(train: TrainConfig, sweep: SweepConfig, kind: str = "curves") -> pd.DataFrame:
    """Every curve through the sidebar's setting (kind "curves", accuracy-type measures) or the sidebar
    method's whole table (kind "grid"), waiting for every table with progress. For callers that need
    the finished numbers (a lesson's text); the Trade-offs page itself uses `sweep_tables`."""
    trained_models([replace(train, seed=train.seed + s) for s in sweep.seeds])
    plan = sweeps.table_plan(sweep)
    tables = {key: _finished(_table_job, (train, table), f"Measuring {_table_label(*key)}").copy()
              for key, table in plan.items()}
    if kind == "grid":
        return next(iter(tables.values()))
    return tradeoff_rows(train, sweep, "accuracy", tables)


def sweep_check(train: TrainConfig, sweep: SweepConfig) -> str | None:
    """Why this sweep cannot run (Grad-CAM on an MLP, an empty probe set), or None."""
    return sweep_problem([_model(train)] * len(sweep.seeds), dataset(train.dataset), sweep)


@st.cache_resource(max_entries=16, show_spinner=False)
def _pie_job(train: TrainConfig, size: int, compression: CompressionConfig) -> Job:
    members = [_model(cfg) for cfg in population_configs(train, size)]
    data = dataset(train.dataset)
    return Job("pie-curve", lambda progress: pie_curve(members, data.x_test, data.y_test, compression,
                                                       SPARSITIES, progress=progress),
               journal(f"compressing a population of {size} models of {describe(train)}", "pie", train, size,
                       compression))


def pie_table(train: TrainConfig, size: int, compression: CompressionConfig) -> pd.DataFrame:
    """Forgotten examples against sparsity for a population of `size` models (trained on first use)."""
    trained_models(population_configs(train, size))
    return _finished(_pie_job, (train, size, compression), "Compressing the population at every sparsity").copy()


@st.cache_resource(max_entries=8, show_spinner=False)
def _original_votes(train: TrainConfig, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The original population's predictions (M, N) and probabilities (M, N, K): once per population, read only."""
    members = [_model(cfg) for cfg in population_configs(train, size)]
    return population_predictions(members, dataset(train.dataset).x_test)


@st.cache_resource(max_entries=24, show_spinner=False)
def _compressed_population(train: TrainConfig, size: int, compression: CompressionConfig) -> list[nn.Module]:
    """The shared compressed copies of the population's members (the originals stay untouched)."""
    return compress_population([_model(cfg) for cfg in population_configs(train, size)], compression)


@st.cache_data(max_entries=64, show_spinner=False)
def population_view(train: TrainConfig, size: int, compression: CompressionConfig) -> dict:
    """Both populations' votes at the current setting: forgotten examples, per-class impact, accuracies.

    The original population's votes are computed once; per setting only the compressed
    members run (one batched pass each over the test set).
    """
    data = dataset(train.dataset)
    orig_preds, orig_probs = _original_votes(train, size)
    comp_preds, comp_probs = population_predictions(_compressed_population(train, size, compression), data.x_test)
    labels = data.y_test.numpy()
    k = data.num_classes
    (orig_pc, orig_all), (comp_pc, comp_all) = (class_accuracy(p, labels, k) for p in (orig_preds, comp_preds))
    return {"forgotten": forgotten_examples(orig_preds, comp_preds, orig_probs, comp_probs, labels),
            "impact": class_impact(orig_pc, comp_pc, orig_all, comp_all, data.classes),
            "accuracy": (float(orig_all.mean()), float(comp_all.mean()))}


@st.cache_resource(max_entries=1, show_spinner=False)
def _population_prefetcher() -> Prefetcher:
    # as the Overview's guesses: only while no other session is in a run and no class is on the server
    return Prefetcher(lambda args: population_view(*args), idle_server=lambda: _quiet_server())


def prefetch_population(train: TrainConfig, size: int, compression: CompressionConfig) -> None:
    """Start the population views one pruning step either side (returns at once), as prefetch_neighbours does."""
    if type(train) is not TrainConfig:
        return
    step = round(compression.prune_amount * 100)
    _population_prefetcher()([(train, size, replace(compression, prune_amount=(step + d) / 100))
                              for d in (1, -1) if 0 <= step + d <= 100], after=_script_thread())


@st.cache_data(max_entries=64, show_spinner=False)
def population_saliency(train: TrainConfig, size: int, compression: CompressionConfig,
                        indices: tuple[int, ...], target: tuple[int, ...], method: str) -> tuple:
    """Mean maps over each population for test images `indices`, all explaining class `target`."""
    x, t = dataset(train.dataset).x_test[list(indices)], torch.tensor(target)
    return (_original_population_maps(train, size, indices, target, method),
            population_maps(_compressed_population(train, size, compression), x, t, method))


@st.cache_data(max_entries=64, show_spinner=False)
def _original_population_maps(train: TrainConfig, size: int, indices: tuple[int, ...], target: tuple[int, ...],
                              method: str) -> torch.Tensor:
    data = dataset(train.dataset)
    members = [_model(cfg) for cfg in population_configs(train, size)]
    return population_maps(members, data.x_test[list(indices)], torch.tensor(target), method)


@st.cache_data(max_entries=16, show_spinner="Randomizing the original's layers one by one…")
def _original_randomization(train: TrainConfig, method: str, probe_size: int) -> pd.DataFrame:
    data = dataset(train.dataset)
    x, target = _probe(train, tuple(probe_indices(data.y_test, probe_size)))
    return cascading_randomization(_model(train), x, target, method)


@st.cache_data(max_entries=32, show_spinner="Randomizing the layers one by one…")
def randomization(setup: Setup, method: str, probe_size: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cascading randomization curves of the original (computed once) and the compressed model on the probes."""
    data = dataset(setup.train.dataset)
    x, target = _probe(setup.train, tuple(probe_indices(data.y_test, probe_size)))
    return (_original_randomization(setup.train, method, probe_size),
            cascading_randomization(compressed_model(setup), x, target, method))


@st.cache_data(max_entries=32, show_spinner=False)
def _original_pictures(train: TrainConfig, method: str, index: int) -> tuple[list[str], torch.Tensor]:
    x, target = _probe(train, (index,))
    return randomized_maps(_model(train), x[0], target, method)


@st.cache_data(max_entries=32, show_spinner=False)
def randomization_pictures(setup: Setup, method: str, index: int) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """One test image's map at every randomization step, for both models (same class explained)."""
    x, target = _probe(setup.train, (index,))
    labels, original = _original_pictures(setup.train, method, index)
    _, compressed = randomized_maps(compressed_model(setup), x[0], target, method)
    return labels, original, compressed


# ---------------------------------------------------------------- your own digit
@st.cache_data(max_entries=32, show_spinner=False)
def own_input(source: bytes, dataset_name: str) -> torch.Tensor:
    """A drawing or upload (PNG/JPEG bytes) as the data set's input (1, C, H, W); ValueError says what is wrong.

    Keyed by the bytes (Streamlit hashes them), so a redrawn or re-uploaded picture is prepared once.
    """
    return own_digit.prepare(own_digit.load_upload(source), dataset(dataset_name))


@st.cache_data(max_entries=64, show_spinner=False)
def own_predictions(setup: Setup, source: bytes) -> tuple[list[float], list[float]]:
    """Class probabilities of the original and the compressed model for the picture `source`."""
    x = own_input(source, setup.train.dataset)
    with torch.no_grad():
        return tuple(torch.softmax(m(x), dim=1)[0].tolist() for m in (_model(setup.train), compressed_model(setup)))


@st.cache_data(max_entries=64, show_spinner=False)
def own_maps(setup: Setup, source: bytes, method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps (H, W) of both models for the picture, both explaining the ORIGINAL's predicted class."""
    x = own_input(source, setup.train.dataset)
    original = _model(setup.train)
    with torch.no_grad():
        target = original(x).argmax(dim=1)
    return attribute(original, x, target, method)[0], attribute(compressed_model(setup), x, target, method)[0]


# ---------------------------------------------------------------- uploaded weights, scrubbing, export
def _session_upload(digest: str) -> uploads.UploadedWeights:
    upload = st.session_state.get(UPLOAD_KEY) if get_script_run_ctx() is not None else None
    if upload is None or upload.digest != digest:
        raise RuntimeError("These uploaded weights are no longer held by this session: upload the file "
                           "again on the Your model page.")
    return upload


@st.cache_resource(max_entries=8, show_spinner=False)
def _uploaded_model(digest: str, _upload: uploads.UploadedWeights) -> nn.Module:
    """The shared model holding uploaded weights, keyed by their sha256 (`_upload` is not hashed)."""
    data = dataset(_upload.dataset)
    model = uploads.build_model(_upload, data.input_shape, data.num_classes).requires_grad_(False)
    return with_calibration(model, data)  # activation ranges calibrate on the data set's training images


@st.cache_data(max_entries=16, show_spinner="Compressing and measuring every stop of the slider…")
def scrub_series(train: TrainConfig, base: CompressionConfig, control: str) -> scrub.ScrubSeries:
    """Every stop of `control` at the other settings of `base` (pass `scrub.neutral(...)`: one entry for all)."""
    data = dataset(train.dataset)
    return scrub.scrub_series(_model(train), base, control, data.x_test, data.y_test, original_evaluation(train))


@st.cache_data(max_entries=64, show_spinner="Explaining the image at every stop…")
def scrub_maps(train: TrainConfig, base: CompressionConfig, control: str, index: int, method: str) -> scrub.ScrubMaps:
    """Test image `index`'s maps by the original and at every stop of `control`."""
    return scrub.scrub_maps(_model(train), base, control, dataset(train.dataset).x_test[index], method)


def largest_layer(cfg: TrainConfig) -> str:
    """The prunable layer with the most weights (the smoothest histogram)."""
    model = _model(cfg)
    return max(layer_labels(cfg), key=lambda name: layers.weight_of(model, name).numel())


@st.cache_data(max_entries=32, show_spinner=False)
def scrub_figure(setup: Setup, control: str, layer: str, index: int, method: str) -> go.Figure:
    """The scrub board of `control` (frames for every stop), opening at the sidebar's own setting."""
    base = scrub.neutral(setup.compression, control)
    data = dataset(setup.train.dataset)
    return figures_scrub.scrub_figure(
        scrub_series(setup.train, base, control), scrub_maps(setup.train, base, control, index, method), layer,
        layer_labels(setup.train)[layer], data.x_test[index], data.classes,
        active=scrub.nearest_stop(setup.compression, control))


@st.cache_data(max_entries=32, show_spinner=False)
def metrics_csv(setup: Setup) -> str:
    """The headline and per-layer metrics of this comparison as CSV text."""
    return export.metrics_csv(report(setup))


# ---------------------------------------------------------------- the cross-family comparison
@st.cache_resource(max_entries=16, show_spinner=False)
def _families_job(train: TrainConfig, cfg: FamiliesConfig) -> Job:
    originals = [_model(replace(train, seed=train.seed + s)) for s in cfg.seeds]
    data = dataset(train.dataset)
    return Job("families", lambda progress: families.measure_families(originals, data, cfg, progress))


def families_table(train: TrainConfig, cfg: FamiliesConfig) -> pd.DataFrame:
    """Every family's line at the sidebar's other settings, per seed (measured once, shared; a copy)."""
    trained_models([replace(train, seed=train.seed + s) for s in cfg.seeds])
    return _finished(_families_job, (train, cfg), "Compressing with every family").copy()


# ---- the cross-family comparison's distilled student (issue 8 §3: "distilled student + quantize")
# Only a student the Distillation page already trained (on disk, at that page's settings) is measured: none
# is ever trained here. Its lines are measured against its teacher (seed 0) beside the families' table.
from core.distillation.knowledge import stored_student, stored_student_path  # noqa: E402
from core.warm import SHORT_NAMES  # noqa: E402


def page_student(train: TrainConfig) -> DistillConfig:
    """The Distillation page's student of `train` at that page's settings (session state, else the defaults)."""
    from ui.url_state import SETTINGS  # here: ui.url_state is imported after this module
    value = {key: st.session_state.get(key, SETTINGS[key].default) for key in ("distill_student", "distill_t",
                                                                             "distill_alpha")}
    return DistillConfig(teacher=train, model=str(value["distill_student"]), temperature=float(value["distill_t"]),
                         alpha=float(value["distill_alpha"]))


@st.cache_resource(max_entries=16, show_spinner=False)
def _student_job(train: TrainConfig, cfg: FamiliesConfig, distill_cfg: DistillConfig) -> Job:
    teacher, data = _model(train), dataset(train.dataset)
    refs = _references(train, _reference_key(replace(cfg.sweep(), seeds=cfg.seeds[:1])))

    def work(progress: Progress) -> pd.DataFrame | None:
        student = stored_student(distill_cfg, data)
        if student is None:  # removed or damaged since the page looked: no line (the page says how to get one)
            return None
        student.requires_grad_(False)
        return families.measure_student(teacher, student, data, cfg, _student_label(distill_cfg), progress, refs=refs)
    return Job("families-student", work)


def _student_label(cfg: DistillConfig) -> str:
    # Short: a phone's legend has about 40 characters a row; the caption names the student, T and α.
    return "Distilled student"


def families_student(train: TrainConfig, cfg: FamiliesConfig) -> tuple[pd.DataFrame | None, str]:
    """The distilled student's rows (a copy; None when none is on disk) and a caption sentence saying what they
    are, or how to get them."""
    if isinstance(train, UploadedTrain):
        return None, "Distilled students are trained from the built-in models only, so none is shown here."
    distill_cfg = page_student(train)
    setting = (f"{SHORT_NAMES.get(distill_cfg.model, distill_cfg.model)}, T = {distill_cfg.temperature:g}, "
               f"α = {distill_cfg.alpha:g}")
    if stored_student_path(distill_cfg).exists():
        rows = _finished(_student_job, (train, cfg, distill_cfg), "Measuring the distilled student")
        if rows is not None:
            seeds = " (the teacher's seed only)" if len(cfg.seeds) > 1 else ""
            return rows.copy(), (
                f"The distilled student ({setting}, from the Distillation page) is one point at its own size, and "
                f"quantized a line: its answers and maps are compared with its teacher's, this model{seeds}.")
    return None, (f"No distilled student at the Distillation page's settings ({setting}) yet: train a student on "
                  "the Distillation page to add it here.")


# ---------------------------------------------------------------- deployment (issue 9 §1-2: real files, measured)
# One latency measurement at a time: two at once on the 2 shared cores would time each other.
_DEPLOY_LOCK = threading.Lock()


@st.cache_resource(max_entries=24, show_spinner=False)
def deploy_artifacts(setup: Setup, _original: nn.Module) -> deploy_artifacts_mod.Artifacts:
    """The deployable model and files of a setting (ONNX fp32 and int8, packed weights), built once, shared.

    `_original` is the trained model (`_model(setup.train)`, resolved on the script thread so that uploaded
    weights work in a background thread too); it keys nothing: `setup` names it.
    """
    data = dataset(setup.train.dataset)
    return deploy_artifacts_mod.build(_original, setup.compression, setup.train, data.x_train, data.x_test,
                                      data.y_test, data.num_classes)


def plain(setup: Setup) -> Setup:
    """The same trained model, compressed by nothing: the Deployment page's original."""
    return replace(setup, compression=CompressionConfig())


@st.cache_resource(max_entries=32, show_spinner=False)
def _deploy_job(setup: Setup, attempt: int = 0) -> Job:
    """Export both models and time them (one setting, about 5 s); `attempt` > 0 measures once more."""
    original, data, rep = _model(setup.train), dataset(setup.train.dataset), report(setup)

    def work(progress: Progress) -> deploy_latency.Measurement:
        progress(0.0, "exporting the original to ONNX (fp32 and int8)")
        before = deploy_artifacts(plain(setup), original)
        progress(0.05, "exporting the compressed model to ONNX (fp32 and int8) and packing its weights")
        after = deploy_artifacts(setup, original)
        progress(0.1, "waiting for another measurement to finish")
        with _DEPLOY_LOCK:
            return deploy_latency.measure(before, after, data.x_test, rep.compression_ratio, rep.theoretical_speedup,
                                          rep.sparsity, progress=lambda fraction, message: progress(
                                              0.1 + 0.9 * fraction, f"timing {message}"))
    return Job("deploy-measure", work)


def deployment(setup: Setup, attempt: int = 0) -> tuple[deploy_latency.Measurement, deploy_artifacts_mod.Artifacts]:
    """The measurement of this setting (with a live progress bar while it runs) and its compressed artifacts."""
    measured = _finished(_deploy_job, (setup, attempt), "Exporting and timing the original and the compressed model")
    return measured, deploy_artifacts(setup, _model(setup.train))


# ---------------------------------------------------------------- diagnosis and the summary in words (issue 10 §1, §4)
# Imported here so that this part stays one block (E402 is intended).
from core import summary  # noqa: E402
from core.explain import stroke  # noqa: E402
from core.figures import diagnosis as figures_diagnosis  # noqa: E402
from core.studies import diagnosis as diagnosis_study  # noqa: E402

SUMMARY_PROBES = 64          # test images whose maps tell whether the explanations moved (class-stratified, fixed)
SUMMARY_METHOD = "saliency"  # the cheapest map (one gradient): the summary is on the slider's path
GALLERY_SIZE = 10            # tiles per view of a group (two rows of five beside the sidebar at 1280 px)


@st.cache_data(max_entries=128, show_spinner=False, hash_funcs=FAST_KEYS)
def diagnosis(setup: Setup) -> diagnosis_study.Diagnosis:
    """Confusion matrices, image groups and calibration of original vs compressed (from the cached report)."""
    rep = report(setup)
    return diagnosis_study.diagnose(rep.original, rep.compressed, dataset(setup.train.dataset).classes)


@st.cache_data(max_entries=128, show_spinner=False, hash_funcs=FAST_KEYS)
def explanation_shift(setup: Setup) -> stroke.ExplanationShift:
    """How far the compressed model's saliency maps moved, on SUMMARY_PROBES fixed test images."""
    data = dataset(setup.train.dataset)
    probes = tuple(int(i) for i in probe_indices(data.y_test, SUMMARY_PROBES))
    return stroke.explanation_shift(original_maps(setup.train, probes, SUMMARY_METHOD),
                                    compressed_maps(setup, probes, SUMMARY_METHOD), data.x_test[list(probes)],
                                    SUMMARY_METHOD)


@st.cache_data(max_entries=128, show_spinner=False, hash_funcs=FAST_KEYS)
def comparison_summary(setup: Setup) -> summary.Summary:
    """The comparison in words (core.summary) for the sidebar's setting."""
    return summary.summarize(report(setup), diagnosis(setup), explanation_shift(setup),
                             summary.stroke_words(setup.train.dataset))


def _prefetch_move(setup: Setup) -> None:
    """What the Overview needs after a pruning step: the report, the summary (its maps ~30 ms more), the chart,
    the sidebar's measured sparsity."""
    report(setup)
    comparison_summary(setup)
    per_class_figure(setup)  # building the figure (Plotly's validation) was ~5 ms of every move's run
    zero_shares(setup)  # the measured sparsity under the slider: ~2 ms of every move's run


@st.cache_data(max_entries=64, show_spinner=False)
def diagnosis_figures(setup: Setup) -> dict[str, go.Figure]:
    """The Diagnosis page's charts: "original", "compressed", "change" (confusion) and "reliability"."""
    diag = diagnosis(setup)
    return {"change": figures_diagnosis.confusion_change_heatmap(diag.confusion_change, diag.classes),
            "original": figures_diagnosis.confusion_heatmap(diag.confusion_original, diag.classes, "Original model"),
            "compressed": figures_diagnosis.confusion_heatmap(diag.confusion_compressed, diag.classes,
                                                              "Compressed model"),
            "reliability": figures_diagnosis.reliability_diagram(diag.calibration_original,
                                                                 diag.calibration_compressed)}


@st.cache_data(max_entries=64, show_spinner=False)
def diagnosis_gallery(setup: Setup, group: str, first: int) -> list[figures_diagnosis.Tile]:
    """Up to GALLERY_SIZE tiles of group `group`'s test images, from its `first` on."""
    rep, data = report(setup), dataset(setup.train.dataset)
    indices = [int(i) for i in diagnosis(setup).members(group)[first:first + GALLERY_SIZE]]
    return figures_diagnosis.gallery_tiles(data.x_test[indices].numpy(), indices, rep.original, rep.compressed,
                                           data.classes)


# ---------------------------------------------------------------- distillation (issue 8: knowledge and data distillation)
# Students and subset models are trained once per config in a shared background job (like training) and
# cached on disk by core.distillation; the teacher is the shared trained model, only read.
@st.cache_resource(max_entries=16, show_spinner=False)
def _distill_job(cfg: DistillConfig) -> Job:
    teacher, data = _model(cfg.teacher), dataset(cfg.dataset)

    def work(progress: Progress) -> DistillResult:
        result = distill(cfg, teacher, data, progress)
        for model in (result.distilled, result.label_only):
            model.requires_grad_(False)  # shared from here on: maps need input gradients only
        return result
    return Job(f"distill-{cfg.key()}", work)


def distill_problem(cfg: DistillConfig) -> str | None:
    """Why this student cannot be distilled from this teacher (not smaller), or None."""
    return student_problem(cfg, dataset(cfg.dataset))


def distill_methods(names: tuple[str, ...], dataset_name: str) -> list[str]:
    """The explanation methods every one of the registered models `names` offers."""
    return methods_for_all(names, dataset(dataset_name))


def distilled_students(cfg: DistillConfig) -> DistillResult:
    """Both students of `cfg` (trained on first use, with a live progress bar); shared, read only."""
    trained_model(cfg.teacher)
    return _finished(_distill_job, (cfg,), "Training the two students (first time only)")


@st.cache_resource(max_entries=16, show_spinner=False)
def _subset_job(train: TrainConfig, fraction: float) -> Job:
    teacher, data = _model(train), dataset(train.dataset)

    def work(progress: Progress) -> dict:
        found = subset_models(train, teacher, data, fraction, progress)
        for result in found.values():
            result.model.requires_grad_(False)
        return found
    return Job(f"subset-{train.key()}-{fraction}", work)


def subset_students(train: TrainConfig, fraction: float) -> dict:
    """The model of `train` trained on a k-center and on a random subset (selection -> TrainResult); shared."""
    trained_model(train)
    return _finished(_subset_job, (train, fraction), "Training the model on both subsets (first time only)")


@st.cache_data(max_entries=32, show_spinner="Measuring and explaining the students…")
def distill_comparison(cfg: DistillConfig, method: str, compression: CompressionConfig | None,
                       images: int = 4) -> Comparison:
    """Teacher, distilled and label-only student (and the distilled one compressed with `compression`)."""
    result, data = distilled_students(cfg), dataset(cfg.dataset)
    students = {"distilled": (f"distilled student (T = {cfg.temperature:g}, α = {cfg.alpha:g})", result.distilled),
                "label_only": ("label-only student", result.label_only)}
    probe = probe_indices(data.y_test, PROBE_SIZE)
    return compare(_model(cfg.teacher), students, data, method, probe, probe[:: max(1, len(probe) // images)][:images],
                   compression)


@st.cache_data(max_entries=32, show_spinner="Measuring and explaining the models…")
def subset_comparison(train: TrainConfig, fraction: float, method: str, images: int = 4) -> Comparison:
    """The model trained on all the data, on a k-center subset and on a random subset of the same size."""
    found, data = subset_students(train, fraction), dataset(train.dataset)
    kept = subset_total(data.y_train.numpy(), fraction)
    students = {"kcenter": (f"k-center model ({kept:,} images)", found["kcenter"].model),
                "random": (f"random-subset model ({kept:,} images)", found["random"].model)}
    probe = probe_indices(data.y_test, PROBE_SIZE)
    return compare(_model(train), students, data, method, probe, probe[:: max(1, len(probe) // images)][:images],
                   teacher_label=f"model trained on all {len(data.y_train):,} images")


def distillation_figures(setup: Setup, settings: dict, names: set[str]) -> dict[str, str]:
    """A lesson step's Distillation placeholders among `names`, from the comparisons the page shows for
    `settings` (the step's page settings; the distilled student also compressed with the step's sidebar setting)."""
    kinds, found = distillation_lesson.needs(names), {}
    if "knowledge" in kinds:
        cfg = DistillConfig(teacher=setup.train, model=str(settings["distill_student"]),
                            temperature=float(settings["distill_t"]), alpha=float(settings["distill_alpha"]))
        if distill_problem(cfg):
            return distillation_lesson.unavailable()
        table = distill_comparison(cfg, str(settings["distill_method"]), setup.compression).table
        found.update(distillation_lesson.knowledge_figures(table, cfg.temperature, cfg.alpha))
    if "data" in kinds:
        fraction = float(settings["distill_subset"]) / 100
        table = subset_comparison(setup.train, fraction, str(settings["distill_method"])).table
        found.update(distillation_lesson.data_figures(
            table, subset_total(dataset(setup.train.dataset).y_train.numpy(), fraction)))
    return found


# ---------------------------------------------------------------- issue 10 §3 and §2: explanation quality, global view
# Explanation quality page (and the lesson's quality figures).
@st.cache_data(max_entries=32, show_spinner=False)
def _original_quality(train: TrainConfig, method: str, probe_size: int) -> dict[str, torch.Tensor]:
    x, target = _probe(train, tuple(probe_indices(dataset(train.dataset).y_test, probe_size)))
    return explain_quality.measure(_model(train), x, target, method,
                                   sensitivity_images=explain_quality.sensitivity_images_for(method))


@st.cache_data(max_entries=64, show_spinner="Measuring the explanation quality on the probe images…")
def explanation_quality(setup: Setup, method: str, probe_size: int = 64) -> tuple[pd.DataFrame, dict, dict]:
    """Quality of both models' `method` maps on the probe set (core.explain.quality.compare) and both summaries.

    The original's is computed once per model and method; the compressed model's per setting. Both explain
    the original's predicted class, as the Saliency page does.
    """
    x, target = _probe(setup.train, tuple(probe_indices(dataset(setup.train.dataset).y_test, probe_size)))
    original = _original_quality(setup.train, method, probe_size)
    compressed = explain_quality.measure(compressed_model(setup), x, target, method,
                                         sensitivity_images=explain_quality.sensitivity_images_for(method))
    return (explain_quality.compare(original, compressed), explain_quality.summary(original),
            explain_quality.summary(compressed))


# Global view page (issue 10 §2). The embedding, the silent units and the class-average maps run as shared
# background jobs with progress, one per setting (and the original's maps once per model and method);
# models and data are fetched on the script thread, the jobs only compute. A click on the embedding picks
# test images, kept in session state (GLOBAL_SELECTION) like the Saliency page's choice, not in the URL.
TSNE_IMAGES = 500  # t-SNE embeds this many test images (evenly spaced) per model: about 5 s, PCA takes all
GLOBAL_SELECTION = "global_view_selected"  # session state: the test images picked on the embedding
GLOBAL_SHOWN = 6                            # of those, how many the gallery beside the chart shows


@st.cache_resource(max_entries=32, show_spinner=False)
def _embedding_job(setup: Setup, kind: str) -> Job:
    original, compressed, data, rep = _model(setup.train), compressed_model(setup), dataset(setup.train.dataset), \
        report(setup)

    def work(progress: Progress) -> dict:
        n = len(data.y_test)
        pick = np.arange(n) if kind == "pca" or n <= TSNE_IMAGES else np.linspace(0, n - 1, TSNE_IMAGES).astype(int)
        x = data.x_test[torch.as_tensor(pick)]
        progress(0.0, "the original's features")
        features_original = global_view.penultimate(original, x)
        progress(0.2, "the compressed model's features")
        features = global_view.penultimate(compressed, x)
        progress(0.4, "t-SNE of both (a few seconds)" if kind == "tsne" else "PCA")
        coords_original, coords, note = global_view.embedding(features_original, features, kind)
        if len(pick) < n:
            note += f" t-SNE shows {len(pick):,} of the {n:,} test images, evenly spaced."
        return {"original": coords_original, "compressed": coords, "index": pick, "label": data.y_test.numpy()[pick],
                "pred_original": rep.original.predictions[pick], "pred_compressed": rep.compressed.predictions[pick],
                "note": note}
    return Job(f"global-embedding-{kind}", work)


def global_embedding(setup: Setup, kind: str) -> dict:
    """Both models' penultimate features in 2-D (core.studies.global_view.embedding), with the test-image index,
    label and both answers of every point; measured once per setting, with a progress bar; copies."""
    found = _finished(_embedding_job, (setup, kind), "Placing the test images by what the last hidden layer sees")
    return {key: value.copy() if isinstance(value, np.ndarray) else value for key, value in found.items()}


@st.cache_resource(max_entries=64, show_spinner=False)
def _silent_job(setup: Setup) -> Job:
    original, compressed, x = _model(setup.train), compressed_model(setup), dataset(setup.train.dataset).x_test

    def work(progress: Progress) -> tuple[pd.DataFrame, pd.DataFrame]:
        progress(0.0, "the original")
        before = global_view.unit_activity(original, x)
        progress(0.5, "the compressed model")
        return before, global_view.unit_activity(compressed, x)
    return Job("global-silent", work)


def silent_units(setup: Setup) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per hidden layer, the units that never fire on the test set: (original, compressed); copies."""
    before, after = _finished(_silent_job, (setup,), "Counting the units that never fire")
    return before.copy(), after.copy()


@st.cache_resource(max_entries=32, show_spinner=False)
def _original_class_maps_job(train: TrainConfig, method: str) -> Job:
    model, data = _model(train), dataset(train.dataset)
    return Job("global-class-maps-original", lambda progress: global_view.class_average_maps(
        model, data.x_test, data.y_test, method, data.num_classes, progress=progress))


@st.cache_resource(max_entries=64, show_spinner=False)
def _class_maps_job(setup: Setup, method: str) -> Job:
    compressed, data = compressed_model(setup), dataset(setup.train.dataset)
    original_job = _original_class_maps_job(setup.train, method)

    def work(progress: Progress) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        while not original_job.done.wait(0.25):
            progress(0.5 * original_job.progress[0], f"the original's maps, {original_job.progress[1]}")
        original, counts = original_job.wait()
        compressed_maps_, _ = global_view.class_average_maps(
            compressed, data.x_test, data.y_test, method, data.num_classes,
            progress=lambda fraction, words: progress(0.5 + 0.5 * fraction, f"the compressed model's maps, {words}"))
        return original, compressed_maps_, counts
    return Job("global-class-maps", work)


def class_maps(setup: Setup, method: str) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The mean `method` map of each class for both models (each class's own label explained), and the counts;
    measured once per setting (the original's once per model and method), with a progress bar; copies."""
    try:
        original, compressed, counts = _finished(_class_maps_job, (setup, method), "Averaging the maps of every class")
    except Exception:
        _original_class_maps_job.clear(setup.train, method)  # its failure failed this job: retry both afresh
        raise
    return original.clone(), compressed.clone(), counts.copy()


def global_selection(setup: Setup) -> tuple[list, int]:
    """Gallery tiles (core.figures.diagnosis.Tile) of the first GLOBAL_SHOWN test images picked on the
    embedding (session state), and how many valid images were picked in all."""
    data, rep = dataset(setup.train.dataset), report(setup)
    picked = [int(i) for i in st.session_state.get(GLOBAL_SELECTION, []) if 0 <= int(i) < len(data.y_test)]
    shown = picked[:GLOBAL_SHOWN]
    return figures_diagnosis.gallery_tiles(data.x_test[shown].numpy(), shown, rep.original, rep.compressed,
                                           data.classes), len(picked)


@st.cache_data(max_entries=64, show_spinner=False)
def first_filters(setup: Setup) -> tuple[str, torch.Tensor, torch.Tensor] | None:
    """(layer label, original filters, compressed filters) of the first convolution; None without one."""
    original = global_view.first_filters(_model(setup.train))
    if original is None:
        return None
    return original[0], original[1], global_view.first_filters(compressed_model(setup))[1]


# ---------------------------------------------------------------- layer sensitivity (issue 9 §3)
# One analysis per (model, SensitivityConfig): its base is `sensitivity.neutral(...)`, so the two
# sliders never start a new one. Jobs get their model, data and references on the script thread.
@st.cache_resource(max_entries=16, show_spinner=False)
def _sensitivity_job(train: TrainConfig, cfg: sensitivity.SensitivityConfig) -> Job:
    model, data, refs = _model(train), dataset(train.dataset), _references(train, _reference_key(cfg.sweep))
    return Job("sensitivity", lambda progress: sensitivity.sensitivity_table(model, data, cfg, progress, refs=refs),
               journal(f"a layer sensitivity analysis of {describe(train)}", "sensitivity", train, cfg))


@st.cache_resource(max_entries=16, show_spinner=False)
def _alternatives_job(train: TrainConfig, cfg: sensitivity.SensitivityConfig) -> Job:
    """Every uniform setting measured, and every layer's size at every (rate, bits) pair."""
    model, data, refs = _model(train), dataset(train.dataset), _references(train, _reference_key(cfg.sweep))
    return Job("sensitivity-uniform", lambda progress: (plan_search.uniform_table(model, data, cfg, refs, progress),
                                                       plan_search.layer_options(model, cfg)))


@st.cache_resource(max_entries=32, show_spinner=False)
def _search_job(train: TrainConfig, cfg: sensitivity.SensitivityConfig, goal: str, values: tuple) -> Job:
    """goal "size": values (times smaller than fp32,); goal "reasons": (accuracy drop allowed, explanation floor)."""
    model, data, refs = _model(train), dataset(train.dataset), _references(train, _reference_key(cfg.sweep))
    table_job, alternatives = _sensitivity_job(train, cfg), _alternatives_job(train, cfg)

    def work(progress: Progress) -> plan_search.SearchResult:
        progress(0.0, "waiting for the analysis and the uniform settings")
        table, (uniform, sizes) = table_job.wait(), alternatives.wait()
        if goal == "size":
            target = 32 * sum(p.numel() for p in model.parameters()) / values[0]
            return plan_search.search_size(model, data, cfg, table, target, uniform, refs, progress, sizes)
        return plan_search.search_constraints(model, data, cfg, table, values[0], values[1], uniform, refs=refs,
                                              progress=progress, sizes=sizes)
    return Job("sensitivity-search", work)


def sensitivity_problem(train: TrainConfig, cfg: sensitivity.SensitivityConfig) -> str | None:
    """Why the analysis cannot run for this model (an empty probe set, Grad-CAM on an MLP), or None."""
    return sensitivity.analysis_problem(_model(train), dataset(train.dataset), cfg)


def sensitivity_table(train: TrainConfig, cfg: sensitivity.SensitivityConfig) -> pd.DataFrame:
    """Every layer x setting of the analysis (measured once, shared, with a progress bar); a copy."""
    table = _finished(_sensitivity_job, (train, cfg), "Compressing each layer alone")
    out = table.copy()
    out.attrs = dict(table.attrs)
    return out


def uniform_settings(train: TrainConfig, cfg: sensitivity.SensitivityConfig) -> pd.DataFrame:
    """Every uniform setting (each layer the same rate and bits), measured once; a copy."""
    return _finished(_alternatives_job, (train, cfg), "Measuring every uniform setting")[0].copy()


def plan_search_result(train: TrainConfig, cfg: sensitivity.SensitivityConfig, goal: str,
                       values: tuple) -> plan_search.SearchResult:
    """The greedy search's result (shared by every visitor asking the same), with a progress bar."""
    return _finished(_search_job, (train, cfg, goal, values), "Searching per-layer settings")


@st.cache_data(max_entries=64, show_spinner="Compressing every layer as the plan says…")
def plan_figures(train: TrainConfig, cfg: sensitivity.SensitivityConfig, plan_text: str) -> dict:
    """Size, accuracy, agreement and explanation agreement of the plan written as `plan_text` (valid)."""
    model, data = _model(train), dataset(train.dataset)
    ref = _references(train, _reference_key(cfg.sweep))[0]
    return measure_plan(model, ref, data, cfg.base, LayerPlan.parse(plan_text), cfg.method)


def plan_check(train: TrainConfig, cfg: sensitivity.SensitivityConfig, plan_text: str) -> str | None:
    """Why `plan_text` is no plan for this model (bad text, unknown layers), in words, or None."""
    try:
        return plan_problem(_model(train), LayerPlan.parse(plan_text), cfg.base)
    except ValueError as err:
        return str(err)


# ---------------------------------------------------------------- replicas (issue 11 §3): a reconnect told apart
@st.cache_resource(max_entries=1)
def sessions_started() -> set[str]:
    """The ids of every session this server process has started (ui/reconnect.py: was a returning
    browser's session expired here, or held by another process?). About 40 bytes a session."""
    return set()


# ---------------------------------------------------------------- packed weights of every family (issue 9 §1, issue 8 §4)
@st.cache_data(max_entries=32, show_spinner=False)
def packed_weights(setup: Setup, _original: nn.Module) -> bytes:
    """The packed weights file of a setting (what the Size card counts), built once per setting.

    `_original` is the trained model (`_model(setup.train)`, resolved on the script thread); `setup` names it.
    Raises ValueError in words for a setting the file cannot store (`core.deploy.packed.packable`)."""
    data = dataset(setup.train.dataset)
    return deploy_packed.pack(_original, setup.compression, setup.train, data.input_shape, data.num_classes)


@st.cache_data(max_entries=16, show_spinner=False)
def packed_check(setup: Setup, blob: bytes) -> tuple[bool, str]:
    """Whether an uploaded packed file rebuilds this setting's compressed model (first 256 test images), in words."""
    return deploy_packed.check(blob, compressed_model(setup).eval(), dataset(setup.train.dataset).x_test[:256])


# ---------------------------------------------------------------- per-layer plan in the sidebar (issue 9 §3)
def plan_fit(setup: Setup) -> list[str]:
    """What the sidebar's per-layer plan names that this model lacks (unknown layers, a structured rate for
    the classes' layer), in words; empty when it fits or there is no plan."""
    cfg = setup.compression
    return cfg.step("plan").model_problems(_model(setup.train), cfg) if cfg.step("plan").active() else []


# ---------------------------------------------------------------- issue 11 §2: a class on one process
# Figures shared by every session at one setting (st.cache_resource: no copy per rerun; st.plotly_chart
# and ui.panels.for_projector only read them, tests/test_rerun.py checks). Building a Saliency row with
# Plotly's validators cost about 10 ms, four per rerun; thirty students often sit at the same setting.
# The Saliency page names only its four images' answers: `compressed_answers` runs the one batch of 256 test
# images that holds them (bit for bit the report's numbers), where `report` evaluates all 1,000; that
# evaluation was half of a bit-width move's server time on Saliency (py-spy under 10 students).
@st.cache_data(max_entries=256, show_spinner=False, hash_funcs=FAST_KEYS)
def compressed_answers(setup: Setup, indices: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The compressed model's predictions (R,) and probabilities (R, classes) on test images `indices`."""
    predictions, probabilities = answers_on_rows(compressed_model(setup), dataset(setup.train.dataset).x_test,
                                                 list(indices))
    return predictions.numpy(), probabilities.numpy()


@st.cache_resource(max_entries=64, show_spinner=False, hash_funcs=FAST_KEYS)
def saliency_figures(setup: Setup, indices: tuple[int, ...], method: str) -> tuple[go.Figure, ...]:
    """One Saliency row per test image: input, both maps, their difference; titles name both predictions."""
    data, original = dataset(setup.train.dataset), original_evaluation(setup.train)
    predictions_c, probabilities_c = compressed_answers(setup, indices)
    maps_o, maps_c = original_maps(setup.train, indices, method), compressed_maps(setup, indices, method)
    classes, figs = data.classes, []
    for row, index in enumerate(indices):
        pred_o, pred_c = original.predictions[index], predictions_c[row]
        # Two short lines per panel: four panels share a phone's width (about 80 px each).
        titles = {"image": f"image {index}<br>a {classes[original.labels[index]]}",
                  "original": f"original<br>{classes[pred_o]} ({original.probabilities[index, pred_o] * 100:.0f} %)",
                  "compressed": f"compressed<br>{classes[pred_c]} "
                                f"({probabilities_c[row, pred_c] * 100:.0f} %)"}
        figs.append(figures_maps.saliency_row(data.x_test[index], maps_o[row], maps_c[row], titles))
    return tuple(figs)


@st.cache_resource(max_entries=64, show_spinner=False, hash_funcs=FAST_KEYS)
def per_class_figure(setup: Setup) -> go.Figure:
    """The Overview's per-class accuracy bars, original vs compressed."""
    rep = report(setup)
    return figures.per_class_accuracy(dataset(setup.train.dataset).classes, rep.original.per_class_accuracy,
                                      rep.compressed.per_class_accuracy)


# Background guesses (the neighbouring pruning steps) wait while other sessions' runs are under way.
@st.cache_resource(max_entries=1, show_spinner=False)
def activity() -> Activity:
    return Activity()


def _script_thread() -> threading.Thread | None:
    """This session's script thread (None outside a script run: tests calling a page's helpers directly)."""
    return threading.current_thread() if get_script_run_ctx() else None


def _session_id() -> str:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx else ""


def run_started() -> None:
    """At the top of app.py: this session is in a run (prefetch_neighbours, at the end, says it ended)."""
    activity().begin(_session_id())
    _session_marker()


# When a session's websocket closes, Streamlit clears its session-scoped caches at once (calling
# on_release) and keeps the session itself, state included, for server.disconnectedSessionTTL (120 s) so a
# phone that slept can resume. The release is our moment to collect and hand freed memory back to the
# OS (glibc keeps freed blocks in its arenas otherwise: RSS never falls).
def _session_closed(_marker: object) -> None:
    _memory_return.request()


@st.cache_resource(max_entries=1, scope="session", on_release=_session_closed, show_spinner=False)
def _session_marker() -> bool:
    return True


class _MemoryReturn:
    """gc.collect() then malloc_trim(0), on a background thread, at most once per `delay` seconds."""

    def __init__(self, delay: float = 2.0) -> None:
        self._pending, self._delay, self.count = threading.Lock(), delay, 0

    def request(self) -> None:
        if self._pending.acquire(blocking=False):
            threading.Timer(self._delay, self._run).start()

    def _run(self) -> None:
        try:
            gc.collect()
            _malloc_trim()
            self.count += 1
        finally:
            self._pending.release()


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to hand back this way
        pass


_memory_return = _MemoryReturn()


# ---------------------------------------------------------------- heavy work on Ray (issue 11 §3)
# With LENS_RAY set, the members of a population missing from disk train as Ray tasks in one shared
# job (saved to the model cache on this machine); trained_models then loads them as usual.
@st.cache_resource(max_entries=4, show_spinner=False)
def _ray_population_job(configs: tuple[TrainConfig, ...]) -> Job:
    data = dataset(configs[0].dataset)
    return Job(f"ray-population-{len(configs)}", lambda progress: train_population(configs, data, progress))


def _train_on_ray_first(configs: list[TrainConfig]) -> None:
    """On Ray, train the missing members together (one progress bar); nothing on threads or with one missing."""
    if not on_ray():
        return
    missing = tuple(cfg for cfg in configs if not isinstance(cfg, UploadedTrain) and not on_disk(cfg))
    if len(missing) < 2:
        return
    try:
        follow(_ray_population_job(missing), f"Training {len(missing)} models as Ray tasks (first use only)")
    except Exception as err:  # an unreachable cluster: the models train here instead, one after the other
        _ray_population_job.clear(missing)
        st.warning(f"Ray could not train the models ({type(err).__name__}: {err}); they train here instead.")

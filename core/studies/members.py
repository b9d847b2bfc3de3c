"""Training a population's members (core.studies.population) as one batch of tasks, and how many a page offers.

On threads the members train one after the other (concurrent trainings would share torch's global
RNG while seeding); on Ray (core.studies.executor, LENS_RAY) side by side, each saved here.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from core.data import Dataset
from core.studies.executor import on_ray, run_tasks
from core.training import (Progress, TrainConfig, TrainResult, checkpoint_path, load_or_train, save_checkpoint, train,
                           with_calibration)

MAX_SIZE, MAX_SIZE_RAY = 7, 30  # the most members a page offers: on one machine, and when Ray trains them


def largest_population() -> int:
    """The most members a page offers: 30 (as Hooker et al.) when heavy work runs on Ray, else 7."""
    return MAX_SIZE_RAY if on_ray() else MAX_SIZE


def train_population(configs: Sequence[TrainConfig], data: Dataset, progress: Progress | None = None,
                     cache_dir=None) -> list[TrainResult]:
    """The trained members of `configs`: those on disk load; the others train as one batch of tasks and are saved.

    The batch runs on core.studies.executor: one member after the other on threads (concurrent
    trainings would share torch's global RNG while seeding), side by side on Ray. A member that
    cannot be saved is still returned, with a notice. progress(fraction, "k of n models trained").
    """
    missing = [cfg for cfg in dict.fromkeys(configs) if not checkpoint_path(cfg, cache_dir).exists()]
    report, done = progress or (lambda fraction, message: None), [0]

    def tick(_: int) -> None:
        done[0] += 1
        report(done[0] / len(missing), f"{done[0]} of {len(missing)} models trained")

    unsaved = {}
    for cfg, model in zip(missing, run_tasks(_train_member, missing, 1, tick, shared=(data,))):
        try:
            save_checkpoint(model, cfg, checkpoint_path(cfg, cache_dir))
        except OSError as err:
            unsaved[cfg] = TrainResult(with_calibration(model, data), from_cache=False,
                                       notice=f"Could not save the trained model ({err}).")
    return [unsaved.get(cfg) or load_or_train(cfg, data, cache_dir) for cfg in configs]


def _train_member(data: Dataset, cfg: TrainConfig) -> nn.Module:
    """One member trained (a task of `train_population`, module level so it can be shipped to Ray)."""
    return train(cfg, data)

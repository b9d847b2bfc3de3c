"""Data distillation by core-set selection: train the same model on a small subset chosen to cover the data.

k-center greedy (Sener & Savarese 2018, REFERENCE §10): start from one point, then repeatedly add the
point farthest from everything chosen so far, so every region of the feature space has a chosen
point near it. Features are the teacher's penultimate activations (what its last layer sees);
selection runs per class, so every class keeps round(fraction · its size) images, at least one.
The baseline is a random subset of the same size per class, drawn with the same seed.

k-center greedy is written here (a dozen lines; scikit-learn has no core-set selection), with
scikit-learn's `pairwise_distances` for the distances.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from sklearn.metrics import pairwise_distances
from torch import Tensor, nn

from core.data import Dataset
from core.training import Progress, TrainConfig, TrainResult, save_checkpoint, train
from core.distillation.store import cache_path, load_or_make
from core.studies.executor import on_ray, run_tasks

SELECTIONS = {"kcenter": "k-center greedy on the teacher's features", "random": "random, per class"}
FORMAT = 1


def k_center_greedy(features: np.ndarray, k: int, first: int) -> list[int]:
    """Indices of `k` rows of `features` (N, D) chosen by k-center greedy, starting from row `first`.

    Each step adds the row whose distance to its nearest chosen row is largest (the lowest index
    on ties). Euclidean distances.
    """
    n = len(features)
    if not 1 <= k <= n:
        raise ValueError(f"k must lie in 1..{n}, got {k}")
    chosen = [first]
    nearest = pairwise_distances(features, features[[first]]).ravel()
    while len(chosen) < k:
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, pairwise_distances(features, features[[pick]]).ravel())
    return chosen


def most_typical(features: np.ndarray) -> int:
    """The row nearest the mean of `features`: k-center greedy's deterministic starting point."""
    return int(np.argmin(pairwise_distances(features, features.mean(0, keepdims=True)).ravel()))


def penultimate_features(model: nn.Module, x: Tensor, batch_size: int = 512) -> np.ndarray:
    """What the last Linear layer of `model` sees for x (N, D), from a private copy (the model is only read)."""
    private = copy.deepcopy(model).eval()
    last = [m for m in private.modules() if isinstance(m, nn.Linear)][-1]
    seen: list[Tensor] = []
    last.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].flatten(1).clone()))
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            private(x[start:start + batch_size])
    return torch.cat(seen).numpy()


def subset_size(count: int, fraction: float) -> int:
    """How many of a class's `count` images a subset keeps: round(fraction · count), at least one."""
    return max(1, min(count, round(fraction * count)))


def select_subset(labels: np.ndarray, fraction: float, selection: str, seed: int = 0,
                  features: np.ndarray | None = None) -> np.ndarray:
    """Sorted training-set rows of a per-class subset: `selection` "kcenter" (needs `features`) or "random"."""
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; choose one of: {', '.join(SELECTIONS)}")
    if not 0 < fraction <= 1:
        raise ValueError(f"the fraction must lie in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    rows = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = subset_size(len(members), fraction)
        if selection == "random":
            rows.append(rng.choice(members, size=k, replace=False))
        else:
            own = features[members]
            rows.append(members[k_center_greedy(own, k, most_typical(own))])
    return np.sort(np.concatenate(rows))


@dataclass(frozen=True)
class SubsetConfig:
    """A model trained on a subset: its recipe, the model whose features choose it, the share kept, how."""

    train: TrainConfig
    features: TrainConfig
    fraction: float = 0.05
    selection: str = "kcenter"

    @property
    def model(self) -> str:
        return self.train.model

    @property
    def dataset(self) -> str:
        return self.train.dataset

    def key(self) -> str:
        text = json.dumps({**asdict(self), "kind": "subset", "format": FORMAT}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def subset_recipe(cfg: TrainConfig, full: int, kept: int) -> TrainConfig:
    """`cfg` with as many optimizer steps on `kept` images as it takes on all `full` (more epochs)."""
    steps = cfg.epochs * math.ceil(full / cfg.batch_size)
    return replace(cfg, epochs=max(cfg.epochs, math.ceil(steps / math.ceil(kept / cfg.batch_size))))


def train_on_subset(cfg: SubsetConfig, data: Dataset, rows: np.ndarray, progress: Progress | None = None) -> nn.Module:
    """The model of `cfg.train` trained on training rows `rows` only (the same number of optimizer steps)."""
    index = torch.as_tensor(rows)
    part = replace(data, x_train=data.x_train[index], y_train=data.y_train[index])
    return train(subset_recipe(cfg.train, len(data.y_train), len(rows)), part, progress)


def load_or_train_subset(cfg: SubsetConfig, data: Dataset, features: np.ndarray | None,
                         progress: Progress | None = None, cache_dir=None) -> TrainResult:
    """The model trained on `cfg`'s subset, from the disk cache or trained and cached (features: for k-center)."""
    rows = select_subset(data.y_train.numpy(), cfg.fraction, cfg.selection, cfg.train.seed, features)
    return load_or_make(cfg, data, lambda p: train_on_subset(cfg, data, rows, p), "subset", cache_dir, progress)


def subset_models(train: TrainConfig, teacher: nn.Module, data: Dataset, fraction: float,
                  progress: Progress | None = None, cache_dir=None) -> dict[str, TrainResult]:
    """The model of `train` trained on a k-center subset and on a random one of the same size (selection -> result).

    `teacher` (the model of `train` on all the data; only read) gives the features k-center greedy uses.
    """
    report = progress or (lambda fraction, message: None)
    features = penultimate_features(teacher, data.x_train)
    if on_ray():  # both subsets side by side as Ray tasks, saved here; the loop below loads them
        _train_on_ray(train, data, fraction, features, cache_dir, report)
    found = {}
    for i, selection in enumerate(SELECTIONS):
        cfg = SubsetConfig(train=train, features=train, fraction=fraction, selection=selection)
        found[selection] = load_or_train_subset(
            cfg, data, features, lambda f, m, i=i, s=selection: report((i + f) / len(SELECTIONS), f"{s} subset, {m}"),
            cache_dir)
    report(1.0, "done")
    return found


def _train_on_ray(train: TrainConfig, data: Dataset, fraction: float, features: np.ndarray, cache_dir,
                  report: Progress) -> None:
    """Train the subset models missing from the disk cache as tasks (core.studies.executor) and save them."""
    configs = [SubsetConfig(train=train, features=train, fraction=fraction, selection=s) for s in SELECTIONS]
    missing = [cfg for cfg in configs if not cache_path(cfg, "subset", cache_dir).exists()]
    rows = [select_subset(data.y_train.numpy(), cfg.fraction, cfg.selection, cfg.train.seed, features) for cfg in missing]
    done = [0]

    def tick(_: int) -> None:
        done[0] += 1
        report(0.9 * done[0] / len(missing), f"{done[0]} of {len(missing)} subset models trained on Ray")

    for cfg, model in zip(missing, run_tasks(_train_subset, list(zip(missing, rows)), 2, tick, shared=(data,))):
        try:
            save_checkpoint(model, cfg, cache_path(cfg, "subset", cache_dir))
        except OSError:
            pass  # load_or_train_subset trains it again here and says why it could not be kept


def _train_subset(data: Dataset, task: tuple) -> nn.Module:
    """One subset model (a task of `_train_on_ray`, module level so it ships to Ray)."""
    cfg, rows = task
    return train_on_subset(cfg, data, rows)


def subset_total(labels: np.ndarray, fraction: float) -> int:
    """How many training images a per-class subset of `fraction` keeps in all."""
    return sum(subset_size(int(n), fraction) for n in np.unique(labels, return_counts=True)[1])

"""The disk cache of distilled models: core.training's checkpoints (atomic write, SHA-256 of every
tensor, the config checked on load, weights_only=True) under another file name, made through
core.disk.load_or_make (one process makes a file at a time; crashes, damage, read-only folders noticed).

A config here is any frozen dataclass with `model` (the architecture to build), `dataset` and
`key()`: core.training's save_checkpoint / load_checkpoint only need those, so the checkpoint
format, its checks and its folder are shared with the trained models instead of copied.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from torch import nn

from core import disk
from core.data import Dataset
from core.training import Progress, TrainResult, default_cache_dir, load_checkpoint, save_checkpoint


def cache_path(cfg: Any, kind: str, cache_dir: str | Path | None = None) -> Path:
    """Where a `kind` ("distilled", "subset") model for `cfg` is stored, beside the trained models."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / f"{kind}-{cfg.model}-{cfg.dataset}-{cfg.key()}.pt"


def load_or_make(cfg: Any, data: Dataset, make: Callable[[Progress], nn.Module], kind: str,
                 cache_dir: str | Path | None = None, progress: Progress | None = None) -> TrainResult:
    """The model for `cfg` from the disk cache when intact, else `make(progress)` and cached (as load_or_train)."""
    path = cache_path(cfg, kind, cache_dir)
    found = disk.load_or_make(path, lambda: load_checkpoint(cfg, path, data),
                              lambda: make(progress or (lambda fraction, message: None)),
                              lambda model: save_checkpoint(model, cfg, path),
                              f"a {kind} model of {cfg.model} on {cfg.dataset}")
    return TrainResult(found.value, found.from_cache, found.notice, found.kept)


def load_stored(cfg: Any, data: Dataset, kind: str, cache_dir: str | Path | None = None) -> nn.Module | None:
    """The `kind` model for `cfg` when it is on disk and intact, else None: never trains (for views that only
    show a model someone already made, such as the family comparison's distilled student)."""
    path = cache_path(cfg, kind, cache_dir)
    if not path.exists():
        return None
    try:
        return load_checkpoint(cfg, path, data)
    except (ValueError, RuntimeError):
        return None  # damaged: the Distillation page retrains it with a notice

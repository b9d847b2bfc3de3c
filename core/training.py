"""Training of the reference models, deterministic per seed, cached on disk.

After torchvision's `references/classification`: small `train_one_epoch` / `evaluate`
style functions that other code imports instead of copying.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

import models
from core.compression import set_calibration
from core.compression.activations import CALIBRATION_IMAGES
from core import disk
from core.data import Dataset, cache_folder, load_dataset

Progress = Callable[[float, str], None]   # (fraction done 0..1, message)
# The loss of one batch from the model's logits and the batch's row numbers in the training set
# (so a loss may look up per-image targets, as knowledge distillation does with soft targets).
BatchLoss = Callable[[Tensor, Tensor], Tensor]
CHECKPOINT_FORMAT = 1                     # bump when the model code changes what a checkpoint means


@dataclass(frozen=True)
class TrainConfig:
    """How a reference model is trained; frozen, so it keys both caches."""

    model: str = "lenet5"
    dataset: str = "mnist5k"
    epochs: int = 20
    lr: float = 3e-3
    batch_size: int = 64
    seed: int = 0
    augment: bool = True    # random shifts of up to 1/14 of the image and rotations of up to 10 degrees

    def key(self) -> str:
        """Stable short hash of every field: the checkpoint's file name."""
        text = json.dumps({**asdict(self), "format": CHECKPOINT_FORMAT}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class TrainResult:
    """A trained model in eval mode, and a notice for the user when something went wrong.

    kept: the model is on disk (False: the cache folder could not keep it, it lives in memory only).
    """

    model: nn.Module
    from_cache: bool
    notice: str | None = None
    kept: bool = True


def augment(x: Tensor, generator: torch.Generator, shift: float = 1 / 14, degrees: float = 10.0) -> Tensor:
    """Randomly shifted and rotated copies of images (N, C, H, W); borders repeat the edge pixels.

    Shifts are up to `shift` of the image size (2 pixels on 28x28). With 4,000 training
    digits this is worth about 1.5 points of test accuracy on LeNet-5.
    """
    n, _, h, w = x.shape
    angle = (torch.rand(n, generator=generator) * 2 - 1) * degrees * torch.pi / 180
    offset = (torch.rand(n, 2, generator=generator) * 2 - 1) * shift * 2  # grid units span [-1, 1]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = angle.cos(), -angle.sin()
    theta[:, 1, 0], theta[:, 1, 1] = angle.sin(), angle.cos()
    theta[:, 0, 2], theta[:, 1, 2] = offset[:, 0], offset[:, 1]
    grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return nn.functional.grid_sample(x, grid, padding_mode="border", align_corners=False)


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor,
                    batch_size: int, generator: torch.Generator, augmented: bool = False,
                    loss_fn: BatchLoss | None = None) -> float:
    """One pass over (x, y) in a shuffled order drawn from `generator`; returns the mean loss.

    Trains `model` in place (it must be a private model, never a shared one). `loss_fn(logits, rows)`
    replaces cross-entropy on y[rows] (core.distillation's soft targets); the order is the same.
    """
    model.train()
    order = torch.randperm(len(x), generator=generator)
    total = 0.0
    for start in range(0, len(x), batch_size):
        idx = order[start:start + batch_size]
        inputs = augment(x[idx], generator) if augmented else x[idx]
        logits = model(inputs)
        loss = nn.functional.cross_entropy(logits, y[idx]) if loss_fn is None else loss_fn(logits, idx)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    return total / len(x)


@torch.inference_mode()
def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Top-1 accuracy (0..1) of an eval-mode model."""
    return (model(x).argmax(1) == y).float().mean().item()


def train(cfg: TrainConfig, data: Dataset | None = None, progress: Progress | None = None,
          loss_fn: BatchLoss | None = None) -> nn.Module:
    """Train a fresh model for `cfg`; the same config always gives the same weights.

    The global RNG is left as it was (seeded work happens inside `fork_rng`). Returns
    the model in eval mode. `loss_fn` replaces cross-entropy (see `train_one_epoch`).
    """
    data = data if data is not None else load_dataset(cfg.dataset)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = models.create_model(cfg.model, data.input_shape, data.num_classes)
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    # Cosine decay: the last epochs settle the weights, worth ~0.5 point on mnist5k.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs, 1))
    for epoch in range(cfg.epochs):
        loss = train_one_epoch(model, optimizer, data.x_train, data.y_train, cfg.batch_size, generator,
                               augmented=cfg.augment, loss_fn=loss_fn)
        schedule.step()
        if progress is not None:
            progress((epoch + 1) / cfg.epochs, f"epoch {epoch + 1}/{cfg.epochs}, loss {loss:.3f}")
    return model.eval()


def default_cache_dir() -> Path:
    """$COMPRESSION_LENS_CACHE, else ~/.cache/compression-lens/models."""
    return cache_folder("COMPRESSION_LENS_CACHE", "models")


def checkpoint_path(cfg: TrainConfig, cache_dir: str | Path | None = None) -> Path:
    """Where the trained weights for `cfg` are stored."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / f"{cfg.model}-{cfg.dataset}-{cfg.key()}.pt"


def _digest(state: dict[str, Tensor]) -> str:
    # torch.save's zip container does not reliably catch flipped bytes inside a tensor,
    # so the checkpoint carries its own checksum of every tensor's bytes.
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(model: nn.Module, cfg: TrainConfig, path: Path) -> None:
    """Write atomically (core.disk.atomic_write: temporary file, fsync, os.replace); raises OSError."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    payload = {"format": CHECKPOINT_FORMAT, "config": asdict(cfg), "state_dict": state,
               "digest": _digest(state)}
    disk.atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(cfg: TrainConfig, path: Path, data: Dataset) -> nn.Module:
    """Load weights saved for `cfg` (weights_only=True: no code runs); raises ValueError if damaged."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, garbage bytes, pickled code: all refused
        raise ValueError(f"unreadable checkpoint ({type(err).__name__})") from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError("not a Compression Lens checkpoint of this version")
    if payload.get("config") != asdict(cfg):
        raise ValueError("checkpoint belongs to another training configuration")
    state = payload.get("state_dict")
    if not isinstance(state, dict) or payload.get("digest") != _digest(state):
        raise ValueError("checksum mismatch: the file is corrupt")
    model = models.create_model(cfg.model, data.input_shape, data.num_classes)
    model.load_state_dict(state)  # strict: missing or mis-shaped tensors raise
    return model.eval()


def with_calibration(model: nn.Module, data: Dataset) -> nn.Module:
    """`model`, with its first training images registered for compression steps that calibrate
    (activation ranges): every trained model of the app comes through here (`load_or_train`)."""
    set_calibration(model, data.x_train[:CALIBRATION_IMAGES])
    return model


def describe(cfg: TrainConfig) -> str:
    """The model in a few words, for notices ("mlp on digits, seed 0")."""
    return f"{cfg.model} on {cfg.dataset}, seed {cfg.seed}"


def load_or_train(cfg: TrainConfig, data: Dataset | None = None, cache_dir: str | Path | None = None,
                  progress: Progress | None = None) -> TrainResult:
    """The trained model for `cfg`: from the disk cache when it is intact, else trained and cached.

    Through core.disk.load_or_make: a damaged checkpoint is deleted and retrained, a run a stopped
    server left unfinished starts again, a second server process training the same model waits for
    the first and loads its file, and a cache folder that cannot be written only costs the caching
    (`kept` False); `notice` says each of these in words.
    """
    data = data if data is not None else load_dataset(cfg.dataset)
    path = checkpoint_path(cfg, cache_dir)
    waiting = None if progress is None else (
        lambda: progress(0.0, "waiting for another server process that is training this model"))
    found = disk.load_or_make(path, lambda: load_checkpoint(cfg, path, data), lambda: train(cfg, data, progress),
                              lambda model: save_checkpoint(model, cfg, path),
                              f"a training run of {describe(cfg)}", waiting=waiting)
    return TrainResult(with_calibration(found.value, data), found.from_cache, found.notice, found.kept)

"""Knowledge distillation (Hinton et al. 2015): a small student learns from a trained teacher's soft targets.

loss = α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1 − α)·CE(z_s, y)     (REFERENCE §10)

The temperature T softens both distributions so the student sees how the teacher ranks the wrong
classes ("this 7 looks a bit like a 1"); T² keeps the soft term's gradients on the scale of the
hard term's as T changes. The student is trained with core.training's own recipe (`train` with a
`loss_fn`), beside the SAME student trained on labels alone with the same recipe and seed: α = 0 is
exactly that plain training, bit for bit, so the comparison isolates the teacher's contribution.

The teacher is shared and never mutated: its logits on the training images are computed once under
`torch.inference_mode()` (no `.train()`, no hooks, no gradients), and the students train without
augmentation so those logits stay the targets of exactly the images the student sees.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import models
from core.data import Dataset
from core.training import (TrainConfig, TrainResult, Progress, checkpoint_path, load_checkpoint, load_or_train,
                           save_checkpoint, train)
from core.distillation.store import cache_path, load_or_make, load_stored
from core.studies.executor import on_ray, run_tasks

FORMAT = 1  # bump when what a distilled checkpoint means changes


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor,
                      temperature: float, alpha: float) -> Tensor:
    """Hinton et al.'s loss, averaged over the batch: α·T²·KL(p_t ‖ p_s) + (1 − α)·CE(z_s, y).

    p_t = softmax(z_t / T) and p_s = softmax(z_s / T); KL is summed over classes, averaged over
    images (torch's kl_div with reduction="batchmean", which is the KL divergence itself).
    """
    if temperature <= 0:
        raise ValueError(f"the temperature must be positive, got {temperature}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in 0..1, got {alpha}")
    hard = F.cross_entropy(student_logits, labels)
    if alpha == 0:
        return hard  # no soft term at all: exactly plain training (α = 0 is the label-only student)
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                    F.log_softmax(teacher_logits / temperature, dim=1), reduction="batchmean", log_target=True)
    return alpha * temperature ** 2 * soft + (1 - alpha) * hard


@torch.inference_mode()
def soft_targets(teacher: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
    """The teacher's logits (N, K) on x, computed once; the teacher is only read (pass it in eval mode)."""
    return torch.cat([teacher(x[start:start + batch_size]) for start in range(0, len(x), batch_size)]).clone()


@dataclass(frozen=True)
class DistillConfig:
    """One distilled student: its teacher's training, its architecture, T, α and its own recipe; a cache key.

    `model` is the student's architecture (a registered model). The student trains for `epochs`
    with the teacher's learning rate and batch size, its own `seed`, without augmentation.
    """

    teacher: TrainConfig
    model: str = "mlp32"
    temperature: float = 4.0
    alpha: float = 0.9
    epochs: int = 40  # without augmentation; 20 leave the soft targets too little time (+0.4 points vs +1.4)
    seed: int = 0

    @property
    def dataset(self) -> str:
        return self.teacher.dataset

    def student_recipe(self) -> TrainConfig:
        """The student's training recipe: also the label-only student's config (α = 0)."""
        return TrainConfig(model=self.model, dataset=self.teacher.dataset, epochs=self.epochs,
                           lr=self.teacher.lr, batch_size=self.teacher.batch_size, seed=self.seed, augment=False)

    def key(self) -> str:
        """Stable short hash of every field (the teacher's included)."""
        text = json.dumps({**asdict(self), "kind": "distill", "format": FORMAT}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class DistillResult:
    """The distilled student and the label-only student (both private, eval mode); notices in words."""

    distilled: nn.Module
    label_only: nn.Module
    notices: tuple[str, ...] = ()


def parameter_count_of(name: str, data: Dataset) -> int:
    """Parameters of registered model `name` built for `data` (a fresh, untrained copy)."""
    with torch.random.fork_rng(devices=[]):
        return sum(p.numel() for p in models.create_model(name, data.input_shape, data.num_classes).parameters())


def student_problem(cfg: DistillConfig, data: Dataset) -> str | None:
    """Why this student makes no sense (not smaller than its teacher), in words; None when it is fine."""
    student, teacher = parameter_count_of(cfg.model, data), parameter_count_of(cfg.teacher.model, data)
    if student >= teacher:
        return (f"A student should be smaller than its teacher: {cfg.model} has {student:,} parameters, "
                f"the teacher {cfg.teacher.model} {teacher:,}. Pick a smaller student (or a larger teacher "
                "in the sidebar).")
    return None


def train_distilled(cfg: DistillConfig, teacher: nn.Module, data: Dataset, progress: Progress | None = None,
                    targets: Tensor | None = None) -> nn.Module:
    """Train the student of `cfg` from `teacher`'s soft targets (pass `targets` = soft_targets(...) to reuse them)."""
    logits = soft_targets(teacher, data.x_train) if targets is None else targets
    labels = data.y_train

    def loss(student_logits: Tensor, rows: Tensor) -> Tensor:
        return distillation_loss(student_logits, logits[rows], labels[rows], cfg.temperature, cfg.alpha)
    return train(cfg.student_recipe(), data, progress, loss_fn=loss)


def _train_on_ray(cfg: DistillConfig, teacher: nn.Module, data: Dataset, cache_dir, report: Progress) -> None:
    """Train the students of `cfg` missing from the disk cache as tasks (core.studies.executor) and save them."""
    paths = {"label_only": checkpoint_path(cfg.student_recipe(), cache_dir),
             "distilled": cache_path(cfg, "distilled", cache_dir)}
    kinds = [kind for kind, path in paths.items() if not path.exists() and (kind == "label_only" or cfg.alpha > 0)]
    done = [0]

    def tick(_: int) -> None:
        done[0] += 1
        report(0.9 * done[0] / len(kinds), f"{done[0]} of {len(kinds)} students trained on Ray")

    for kind, model in zip(kinds, run_tasks(_train_student, kinds, 2, tick, shared=(cfg, teacher, data))):
        try:
            save_checkpoint(model, cfg.student_recipe() if kind == "label_only" else cfg, paths[kind])
        except OSError:
            pass  # the loaders below train it again here and say why it could not be kept


def _train_student(cfg: DistillConfig, teacher: nn.Module, data: Dataset, kind: str) -> nn.Module:
    """One student ("label_only" or "distilled"): a task of `_train_on_ray`, module level so it ships to Ray."""
    return train(cfg.student_recipe(), data) if kind == "label_only" else train_distilled(cfg, teacher, data)


def distill(cfg: DistillConfig, teacher: nn.Module, data: Dataset, progress: Progress | None = None,
            cache_dir=None) -> DistillResult:
    """The distilled student and the label-only student of `cfg`, from the disk cache or trained (and cached).

    The label-only student is core.training's model for `cfg.student_recipe()` (the shared model
    cache); α = 0 returns it as both students. Progress: first the label-only student, then the
    distilled one. `teacher` is only read.
    """
    report = progress or (lambda fraction, message: None)
    if on_ray():  # both students side by side as Ray tasks, saved here; below they load from disk
        _train_on_ray(cfg, teacher, data, cache_dir, report)
    plain: TrainResult = load_or_train(cfg.student_recipe(), data, cache_dir,
                                       lambda f, m: report(0.5 * f, f"label-only student, {m}"))
    if cfg.alpha == 0:
        return DistillResult(plain.model, plain.model, tuple(n for n in (plain.notice,) if n))
    soft = load_or_make(cfg, data, lambda p: train_distilled(cfg, teacher, data, p), "distilled", cache_dir,
                        lambda f, m: report(0.5 + 0.5 * f, f"distilled student, {m}"))
    report(1.0, "done")
    return DistillResult(soft.model, plain.model, tuple(n for n in (plain.notice, soft.notice) if n))



def stored_student_path(cfg: DistillConfig, cache_dir=None) -> Path:
    """Where `distill` saves the distilled student of `cfg` (with α = 0: the label-only student's checkpoint)."""
    return checkpoint_path(cfg.student_recipe(), cache_dir) if cfg.alpha == 0 else cache_path(cfg, "distilled", cache_dir)


def stored_student(cfg: DistillConfig, data: Dataset, cache_dir=None) -> nn.Module | None:
    """The distilled student of `cfg` (eval mode) if `distill` already trained and saved it, else None.

    Never trains. With α = 0 the distilled student is the label-only student (core.training's cache).
    """
    if cfg.alpha > 0:
        return load_stored(cfg, data, "distilled", cache_dir)
    path = stored_student_path(cfg, cache_dir)
    try:
        return load_checkpoint(cfg.student_recipe(), path, data) if path.exists() else None
    except (ValueError, RuntimeError):
        return None

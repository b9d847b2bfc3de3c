"""Preparing a class: which trained models the pages and lessons need, and training them all
in one go with one progress message ("model 2 of 5: LeNet-5 seed 1, epoch 5/20, about 40 s left").

- `recipe(model, dataset)`: the training config the app uses for a model on a data set.
- `needed_models(views, defaults)`: every trained model that a list of views asks for, in the
  order a first visitor needs them; `class_plan` makes the views (every page at its defaults,
  every lesson step).
- `Progress`: turns "task i of n is at fraction f" into one overall fraction and a sentence with
  the time left; shared by `warm` (the `make warm` command) and the app's progress bars.
- `warm(configs, train, ...)`: run `train` for each config in turn, reporting through `Progress`.
- `run_phases(phases, report)`: several kinds of work in turn (the models, then the Trade-offs
  tables, then a Forgotten examples population) under one bar: each phase numbers its own tasks
  ("table 2 of 4: layer-wise magnitude, 40 of 117 settings") and says what comes after it.

Nothing here imports Streamlit or trains by itself: the caller passes the trainer (the app's
shared training jobs, `core.training.load_or_train`, or a fake one in tests).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from core.lessons import Lesson
from core.training import TrainConfig

BIG_DATASETS = ("mnist", "fashion_mnist", "cifar10")
SHORT_NAMES = {"lenet5": "LeNet-5", "lenet300": "LeNet-300-100", "mlp": "MLP 128-64", "resnet_small": "Small ResNet",
               "separable": "Separable CNN", "mlp32": "MLP 32"}
Report = Callable[[float, str], None]  # (overall fraction 0..1, message)


def recipe(model: str, dataset: str) -> TrainConfig:
    """The training recipe for `model` on `dataset` (3 epochs on the big sets, 20 on the small ones)."""
    return TrainConfig(model=model, dataset=dataset, epochs=3 if dataset in BIG_DATASETS else 20)


def seeds_needed(view: Mapping[str, object]) -> int:
    """How many seeds of the view's model its page trains: a population, a multi-seed sweep, or one."""
    page = view.get("page")
    if page == "forgotten":
        return int(view.get("pie_size") or 1)
    if page == "tradeoffs":
        return int(view.get("sweep_seeds") or 1)
    return 1


def needed_models(views: Iterable[Mapping[str, object]], defaults: Mapping[str, object]) -> list[TrainConfig]:
    """Every trained model the `views` need, without repeats, in order of first need.

    A view is a mapping of settings (page, model, dataset, pie_size, sweep_seeds, ...); a setting it
    does not name takes its value from `defaults` (the app's defaults). Within a view, seeds come
    in order (seed 0 first: the page draws its first chart from it).
    """
    configs: list[TrainConfig] = []
    for view in views:
        merged = {**defaults, **{k: v for k, v in view.items() if v is not None}}
        base = recipe(str(merged["model"]), str(merged["dataset"]))
        for seed in range(base.seed, base.seed + seeds_needed(merged)):
            cfg = replace(base, seed=seed)
            if cfg not in configs:
                configs.append(cfg)
    return configs


def page_views(pages: Sequence[str]) -> list[dict[str, object]]:
    """One view per page at its defaults (the default model first, Overview before the rest)."""
    return [{"page": page} for page in sorted(pages, key=lambda p: p != "overview")]


def class_views(pages: Sequence[str], lessons: Iterable[Lesson]) -> list[Mapping[str, object]]:
    """Every view a class may open: each page at its defaults, then every step of every lesson."""
    return [*page_views(pages), *(step.settings for lesson in lessons for step in lesson.steps)]


def class_plan(pages: Sequence[str], lessons: Iterable[Lesson], defaults: Mapping[str, object]) -> list[TrainConfig]:
    """Every trained model a class may ask for: each page at its defaults, then every step of every lesson."""
    return needed_models(class_views(pages, lessons), defaults)


def views_on(page: str, views: Iterable[Mapping[str, object]], defaults: Mapping[str, object]) -> list[dict]:
    """The `views` that open `page`, each with every setting it does not name at its default, without repeats."""
    found: list[dict] = []
    for view in views:
        merged = {**defaults, **{k: v for k, v in view.items() if v is not None}}
        if merged.get("page") == page and merged not in found:
            found.append(merged)
    return found


def label(cfg: TrainConfig, show_dataset: bool = False) -> str:
    """A model as the progress bar names it: "LeNet-5 seed 1" ("LeNet-5 seed 1 on cifar10" when asked)."""
    name = f"{SHORT_NAMES.get(cfg.model, cfg.model)} seed {cfg.seed}"
    return f"{name} on {cfg.dataset}" if show_dataset else name


def format_seconds(seconds: float) -> str:
    """A time left for people: "about 40 s", "about 2 min", "a few seconds"."""
    if seconds < 5:
        return "a few seconds"
    if seconds < 90:
        return f"about {5 * round(seconds / 5):.0f} s"
    return f"about {round(seconds / 60):.0f} min"


@dataclass
class Progress:
    """One progress message for n tasks run one after the other.

    `labels`: what each task is called; `ready`: which tasks are expected to be quick (already on
    disk), so they do not count towards the time left. Time per remaining task is estimated from
    the tasks finished so far (the slow ones) or, before any finished, from the running one.
    `clock` is injectable for tests.
    """

    labels: Sequence[str]
    ready: Sequence[bool] = ()
    noun: str = "model"
    clock: Callable[[], float] = time.monotonic
    _durations: list[float] = field(default_factory=list)
    _index: int = 0
    _started: float = 0.0
    _shown: float = 0.0  # the bar never moves back, even when the estimate grows

    def start(self, index: int) -> None:
        """Task `index` (0-based) begins now."""
        self._index, self._started = index, self.clock()

    def finish(self) -> None:
        """The running task is done (its time teaches the estimate, unless it was a quick one)."""
        if not self._is_ready(self._index):
            self._durations.append(self.clock() - self._started)

    def _is_ready(self, index: int) -> bool:
        return index < len(self.ready) and bool(self.ready[index])

    def seconds_left(self, fraction: float) -> float | None:
        """Estimated seconds until every task is done, with the running task at `fraction` (None: no idea yet)."""
        elapsed = self.clock() - self._started
        later = sum(not self._is_ready(i) for i in range(self._index + 1, len(self.labels)))
        if self._is_ready(self._index) and fraction <= 0 and not later:
            return 0.0  # only models on disk are left: they load in a moment
        if self._durations:
            per_task = sum(self._durations) / len(self._durations)
        elif fraction > 0 and elapsed > 0:
            per_task = elapsed / fraction
        else:
            return None
        if fraction > 0:
            current = elapsed / fraction * (1 - fraction)
        else:  # not started: a model on disk loads in a moment, one to train takes a typical time
            current = 0.0 if self._is_ready(self._index) else max(per_task - elapsed, 0.0)
        return current + later * per_task

    def update(self, fraction: float, detail: str = "") -> tuple[float, str]:
        """The overall fraction done and the message, for the running task at `fraction` with its `detail`."""
        n = len(self.labels)
        fraction = min(max(float(fraction), 0.0), 1.0)
        left = self.seconds_left(fraction)
        counted = (self._index + fraction) / max(n, 1)  # share of the models, when time says nothing
        if left is None:
            overall, when = counted, "estimating the time left"
        else:
            spent = sum(self._durations) + (self.clock() - self._started)
            overall = spent / (spent + left) if left > 0 else counted
            when = f"{format_seconds(left)} left"
        name = self.labels[self._index]
        parts = [f"{self.noun} {self._index + 1} of {n}: {name}" if n > 1 else name, detail, when]
        self._shown = min(max(overall, self._shown), 1.0)
        return self._shown, ", ".join(p for p in parts if p)


@dataclass(frozen=True)
class Phase:
    """One kind of work for `run_phases`: task i is `run(i, progress)`, called `labels[i]`.

    `ready`: which tasks are quick (a model on disk); `waiting`: what a task not yet started says.
    """

    noun: str
    labels: Sequence[str]
    run: Callable[[int, Report], object]
    ready: Sequence[bool] = ()
    waiting: str = "starting"


def counted(n: int, noun: str) -> str:
    """ "1 table", "4 tables"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def run_phases(phases: Sequence[Phase], report: Report, clock: Callable[[], float] = time.monotonic) -> list[list]:
    """Run every task of every phase in turn under one bar; the results, one list per phase.

    Each phase gets the share of the bar its number of tasks is of the whole (the bar never moves
    back), its own `Progress` (numbering and time left within the phase), and its message says
    what comes after it ("..., about 40 s left, then 4 tables and 1 population").
    """
    total = max(sum(len(phase.labels) for phase in phases), 1)
    results, done = [], 0
    for k, phase in enumerate(phases):
        low, share = done / total, len(phase.labels) / total
        later = [counted(len(p.labels), p.noun) for p in phases[k + 1:] if p.labels]
        tail = f", then {' and '.join(later)}" if later else ""
        progress = Progress(phase.labels, phase.ready, noun=phase.noun, clock=clock)

        def tell(fraction: float, detail: str) -> None:
            overall, message = progress.update(fraction, detail)
            report(low + share * overall, message + tail)
        found = []
        for index in range(len(phase.labels)):
            progress.start(index)
            tell(0.0, "loading from disk" if progress._is_ready(index) else phase.waiting)
            found.append(phase.run(index, tell))
            progress.finish()
        results.append(found)
        done += len(phase.labels)
    parts = [counted(len(p.labels), p.noun) for p in phases if p.labels]
    if done == 1:
        report(1.0, f"the {next(p.noun for p in phases if p.labels)} is ready")
    elif done:
        report(1.0, f"all {', '.join(parts[:-1])} and {parts[-1]} are ready" if len(parts) > 1
               else f"all {parts[0]} are ready")
    return results


def warm(configs: Sequence[TrainConfig], train: Callable[[TrainConfig, Report], object], report: Report,
         ready: Callable[[TrainConfig], bool] = lambda cfg: False,
         clock: Callable[[], float] = time.monotonic) -> list[object]:
    """Run `train(cfg, progress)` for every config in turn; `report(fraction, message)` hears all of it.

    `train` reports (fraction of this model, detail) as `core.training.load_or_train` does;
    `ready(cfg)` says which are already trained (they load in a moment). Returns the results.
    """
    return run_phases([model_phase(configs, train, ready)], report, clock)[0]


def model_phase(configs: Sequence[TrainConfig], train: Callable[[TrainConfig, Report], object],
                ready: Callable[[TrainConfig], bool] = lambda cfg: False) -> Phase:
    """The phase that trains (or loads) every model of `configs`, for `run_phases`."""
    show_dataset = len({cfg.dataset for cfg in configs}) > 1
    return Phase("model", [label(cfg, show_dataset) for cfg in configs],
                 lambda index, progress: train(configs[index], progress), [ready(cfg) for cfg in configs])

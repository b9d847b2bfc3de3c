"""The registry of compression steps: one small class per family, registered by name.

A step is a frozen dataclass whose fields are its controls. Each field's `control(...)`
metadata (label, URL key, range or choices, help text, the value at which the step is off)
is all the rest of the app needs: the sidebar, the URL state, lessons, sweeps and scrub
are generated from it (`controls()`), and `core.compression.CompressionConfig` is the flat
union of every registered step's fields (so `replace(cfg, weight_bits=4)` keeps working).
Field names are unique across steps: the registry fails loudly on a clash, as it does on an
unknown name (timm's `create_model`).

A family is one module: a `@register("name", order=N)` dataclass subclassing `Step` with
its controls, `active`, `apply` (in place, on the pipeline's copy), and, when it changes how
weights are stored, `weight_code`. The pipeline (core/compression/pipeline.py) says why the
steps run in the order they do.
"""
from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor, nn

WIDGETS = ("slider", "select_slider", "radio", "selectbox", "toggle", "text")  # text: a line of text (a plan)


@dataclass(frozen=True)
class Control:
    """How one step field is shown, linked and swept. Values in the URL and the sidebar are
    `field value * scale` (a pruning fraction is shown in percent)."""

    label: str
    url: str                                  # the query parameter, the session-state and widget key
    help: str = ""
    widget: str = "radio"                     # one of WIDGETS
    choices: tuple = ()                       # a choice among these; empty for a number
    low: float | None = None                  # numbers: bounds in shown units (URL values are clamped)
    high: float | None = None
    step: float | None = None                 # slider step in shown units (whole numbers when 1)
    scale: float = 1.0
    labels: Mapping[Any, str] = field(default_factory=dict)  # option -> words in the sidebar
    format: str | None = None                 # slider number format ("%d%%")
    horizontal: bool = False                  # radio options side by side
    main: bool = False                        # a main slider: top of the sidebar, presentation strip
    stops: tuple = ()                         # scrub stops in shown units; empty: no scrub for it
    unit: str = ""                            # after a shown value: " %", "-bit"
    stop_labels: Mapping[Any, str] = field(default_factory=dict)  # a stop written otherwise ("32-bit (off)")
    renamed: Mapping[str, Any] = field(default_factory=dict)  # old URL values -> the value each means now
    old_urls: tuple[str, ...] = ()            # older query parameters that meant this control
    # A text control's reader: URL text -> the value (its one spelling); ValueError in words for bad text.
    parse: Callable[[str], Any] | None = None

    def __post_init__(self) -> None:
        if self.widget not in WIDGETS:
            raise ValueError(f"control {self.url!r}: widget must be one of {', '.join(WIDGETS)}")
        if not self.choices and (self.low is None or self.high is None) and self.widget not in ("toggle", "text"):
            raise ValueError(f"control {self.url!r} needs choices or low and high bounds")


def control(default: Any, **meta: Any) -> Any:
    """A step field with its Control metadata: `amount: float = control(0.0, label=..., url=...)`."""
    return field(default=default, metadata={"control": Control(**meta)})


@dataclass(frozen=True)
class Step:
    """One compression family's settings and behaviour (subclasses are frozen dataclasses)."""

    name: ClassVar[str] = ""
    order: ClassVar[int] = 0
    title: ClassVar[str] = ""       # the sidebar group's header
    summary: ClassVar[str] = ""     # one line: what the family does (sidebar help, README, lessons)
    off_words: ClassVar[str] = ""   # words for the step switched off, when a description should say so
    always_open: ClassVar[bool] = False  # its sidebar group is always shown open (else collapsed while off)
    pairs_with: ClassVar[tuple[str, ...]] = ()  # steps it is commonly combined with (a line of the comparison)
    # Steps this one takes the place of when both are set (both set the stored values, say): the pipeline
    # skips them, and cfg.problems() says which one applies.
    replaces: ClassVar[tuple[str, ...]] = ()

    def active(self) -> bool:
        """Whether this setting changes the model at all (inactive steps are skipped)."""
        raise NotImplementedError

    def apply(self, model: nn.Module, context: Context) -> None:
        """Compress `model` in place. `model` is the pipeline's own deep copy, never a shared model."""
        raise NotImplementedError

    def describe(self) -> str:
        """This active setting in words, for page headers and reports ("50 % magnitude pruning (global)")."""
        raise NotImplementedError

    def weight_code(self, weight: Tensor) -> WeightCode | None:
        """How a layer weight is stored after this step; None: the step does not change it."""
        return None

    def layer_code(self, weight: Tensor, layer: str, config: Any) -> WeightCode | None:
        """How the weight of prunable layer `layer` (its short key, core.layers.layer_keys: "conv1") is
        stored when this step sets that layer on its own (a per-layer plan); None: it does not. It takes
        the place of every step's `weight_code` for that layer. config: the whole CompressionConfig."""
        return None

    def sweep_points(self) -> tuple[dict[str, Any], ...]:
        """Settings of this step, from mild to strong, along which the cross-family comparison walks
        it (field -> value; about ten points; the other fields of the step keep this setting's values).
        Empty: the family is not in the comparison."""
        return ()

    def problems(self) -> list[str]:
        """Settings of this step that make no sense, in words (shown as notices; never raised)."""
        return []

    def notes(self) -> list[str]:
        """What the sidebar should say under this step's controls (e.g. a setting that falls back)."""
        return []


@dataclass(frozen=True)
class WeightCode:
    """How the values of one weight tensor are coded, for the storage accounting (core.metrics).

    levels: number of distinct values of the code (2**32 for fp32); has_zero: whether 0 is one of
    them (else zeros live only in a sparsity mask); params_per_group: bits of side information per
    group of weights with a nonzero (scale, zero point, codebook); groups: "channel" or "tensor".
    """

    levels: int
    has_zero: bool = True
    params_per_group: int = 0
    groups: str = "tensor"


FP32_CODE = WeightCode(levels=2**32)


class Context:
    """What a step may need beyond its settings: the ORIGINAL model (for caches keyed on it, e.g.
    its SVDs), calibration images, and the whole config being applied (`config`: a step that compresses
    layer by layer with the other steps' method and scheme, the per-layer plan, reads them). Never used
    to change the original."""

    def __init__(self, original: nn.Module, calibration: Tensor | None = None, config: Any = None) -> None:
        self.original = original
        self._calibration = calibration
        self.config = config

    @property
    def source(self) -> nn.Module:
        """The trained model before any compression: `original` itself, or the model it was compressed from when
        the pipeline runs in parts (`cfg.split`). Read only, as `original`."""
        return source_of(self.original)

    def calibration(self) -> Tensor:
        """Training images to calibrate on: given to `compress`, else registered for the model."""
        images = self._calibration if self._calibration is not None else _CALIBRATION.get(self.original)
        if images is None:
            raise ValueError("this setting needs calibration images (training images of the model), "
                             "and none were given")
        return images

    def memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """compute() once per original model and key (e.g. its SVDs): a slider move only reuses it."""
        store = _MEMO.setdefault(self.original, {})
        if key not in store:
            store[key] = compute()
        return store[key]


# Keyed on the original model object: gone when the model is (weak keys). Races between sessions'
# threads merely compute the same entry twice.
_MEMO: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CALIBRATION: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


_SOURCE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def source_of(model: nn.Module) -> nn.Module:
    """The trained model `model` was compressed from (by `compress`, perhaps in parts: `cfg.split`), else itself."""
    return _SOURCE.get(model, model)


def set_source(compressed: nn.Module, model: nn.Module) -> None:
    """Note that `compressed` is a compressed copy of `model` (its source: `source_of(model)`)."""
    _SOURCE[compressed] = source_of(model)


def set_calibration(model: nn.Module, images: Tensor) -> None:
    """Register training images (N, C, H, W) for steps that calibrate on `model` (read-only use)."""
    _CALIBRATION[model] = images


def calibration_of(model: nn.Module) -> Tensor | None:
    """The training images registered for `model` (None: none)."""
    return _CALIBRATION.get(model)


def calibration_or(model: nn.Module, images: Tensor, count: int = 512) -> Tensor:
    """`model`'s registered calibration images, else the first `count` of `images` (training images):
    what a caller that holds a data set passes to `compress(..., calibration=)`."""
    found = calibration_of(model)
    return found if found is not None else images[:count]


STEPS: dict[str, type[Step]] = {}


def register(name: str, order: int) -> Callable[[type[Step]], type[Step]]:
    """Class decorator: add a Step subclass to the registry under `name`, run at pipeline position `order`."""
    def add(cls: type[Step]) -> type[Step]:
        if name in STEPS:
            raise ValueError(f"a compression step named {name!r} is already registered")
        params = cls.__dict__.get("__dataclass_params__")  # the class itself, not only its base, is one
        if params is None or not params.frozen:
            raise TypeError(f"step {name!r} must be a frozen dataclass")
        taken = {f.name: other for other, step in STEPS.items() for f in dataclasses.fields(step)}
        urls = {c.url: other for other, step in STEPS.items() for c in _own_controls(step).values()}
        for f in dataclasses.fields(cls):
            if f.name in taken:
                raise ValueError(f"step {name!r}: field {f.name!r} is already a field of step {taken[f.name]!r}")
            meta = f.metadata.get("control")
            if meta is not None and meta.url in urls:
                raise ValueError(f"step {name!r}: URL key {meta.url!r} is already used by step {urls[meta.url]!r}")
        cls.name, cls.order = name, order
        STEPS[name] = cls
        return cls
    return add


def get_step(name: str) -> type[Step]:
    """The registered step class called `name`; an unknown name raises and lists the choices."""
    try:
        return STEPS[name]
    except KeyError:
        raise KeyError(f"unknown compression step {name!r}; registered: {', '.join(ordered())}") from None


def ordered() -> list[str]:
    """Registered step names in pipeline order."""
    return sorted(STEPS, key=lambda n: STEPS[n].order)


def _own_controls(step: type[Step]) -> dict[str, Control]:
    return {f.name: f.metadata["control"] for f in dataclasses.fields(step) if "control" in f.metadata}


_CONTROLS: dict[tuple, dict[str, tuple[str, Control]]] = {}  # the registry's steps -> controls(), computed once


def controls() -> dict[str, tuple[str, Control]]:
    """Every control of every step, in pipeline order: config field name -> (step name, Control).

    Read at every config's creation (its checks) and by every run's sidebar and URL; computed once per
    registry (keyed by its steps, so a step registered later, or a test's own registry, gets its own)."""
    key = tuple(STEPS.items())
    found = _CONTROLS.get(key)
    if found is None:
        found = _CONTROLS[key] = {fname: (name, c) for name in ordered()
                                  for fname, c in _own_controls(STEPS[name]).items()}
    return dict(found)  # a copy: a caller's change never reaches the next

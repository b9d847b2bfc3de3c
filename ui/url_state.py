"""Every setting of the app as a URL query parameter, so the address bar always links to this view.

One registry (`SETTINGS`) names each setting once: its default, how its URL text is parsed
(bad text raises ValueError, out-of-range numbers are clamped), and the page whose widget shows
it. The session-state key, the widget key and the query parameter are the same name.

- `restore()`: on a session's first run, every setting from the URL (notices for bad values).
  Their words and their life (shown once, gone after the next interaction) are in ui/notices.py.
- `keep()`: every run, before any widget: put back the settings whose state Streamlit dropped
  because a run did not draw their widget (a page's widgets while another page is shown).
- `sync()`: every run, write the settings back (page settings only when not at their default).
- `fit(key, ...)`: a page makes its setting valid for a widget whose options depend on the model
  or data set (Grad-CAM needs a conv layer, test-image index < number of test images).
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from urllib.parse import urlencode

import streamlit as st

import models
from core.studies import ab, families
from core.explain import attribution
from core.figures import sanity as figures_sanity
from core.figures import sensitivity as figures_sensitivity
from core.figures import tradeoff as figures_tradeoff
from core.studies import global_view, scrub
from core.studies import diagnosis as diagnosis_study
from core.studies.layer_plan import LayerPlan
from core.studies.members import largest_population
from core import data as datasets
from core.compression import CompressionConfig
from core.compression import controls as compression_controls
from core.compression.steps import Control
from ui import notices as notice

ROOT = Path(__file__).resolve().parents[1]
LESSONS_DIR = ROOT / "lessons"


@dataclass(frozen=True)
class Setting:
    """One URL-backed setting: default, parser (URL text -> value), allowed values, owning page."""

    default: object
    parse: Callable[[str], object]
    page: str | None = None            # the page whose widget shows it; None: sidebar or app-wide
    options: tuple | None = None       # the allowed values, when it is a choice
    bounds: tuple[int, int | None] | None = None  # whole numbers: lowest, highest (None: the page knows)
    lesson: bool = True                # a lesson step may set it
    old_keys: tuple[str, ...] = ()     # query parameters older links used for it


def choice(options: Sequence, default: object = None, page: str | None = None,
           renamed: Mapping[str, object] | None = None) -> Setting:
    """A setting that must be one of `options` (compared as text: URLs carry text).

    renamed: older URL values and the option each now means, so that old links keep working.
    """
    options = tuple(options)
    renamed = dict(renamed or {})

    def parse(raw: str) -> object:
        for option in options:
            if str(option) == raw:
                return option
        if raw in renamed:
            return renamed[raw]
        raise ValueError(one_of(options))
    return Setting(options[0] if default is None else default, parse, page, options=options)


def one_of(options: Sequence) -> str:
    """The allowed values in words: "one of magnitude, random or structured"."""
    shown = [str(option) for option in options]
    return f"one of {', '.join(shown[:-1])} or {shown[-1]}" if len(shown) > 1 else f"exactly {shown[0]}"


def whole_words(low: int, high: int | None) -> str:
    """A range of whole numbers in words: "a whole number from 0 to 100"."""
    return f"a whole number from {low} to {high}" if high is not None else f"a whole number, {low} or more"


def _number(raw: str, words: str) -> float:
    """URL text as a finite number; anything else raises ValueError(words) (never Python's own text)."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(words) from None
    if not math.isfinite(value):
        raise ValueError(words)
    return value


def whole(low: int, high: int | None, default: int, page: str | None = None) -> Setting:
    """A whole number rounded and clamped into [low, high] (high None: only the page knows the upper end)."""
    def parse(raw: str) -> int:
        value = round(_number(raw, whole_words(low, high)))
        return max(low, value if high is None else min(high, value))
    return Setting(default, parse, page, bounds=(low, high))


def nearest(options: Sequence[int], default: int, page: str | None = None) -> Setting:
    """A number snapped to the nearest of `options` (bit widths, fine-tuning epochs): 4.5 -> 4, like
    prune=55.5 is rounded (a tie goes to the smaller option)."""
    options = tuple(options)

    def parse(raw: str) -> int:
        value = _number(raw, one_of(options))
        return min(options, key=lambda option: abs(option - value))
    return Setting(default, parse, page, options=options)


def decimal(low: float, high: float, default: float, page: str | None = None) -> Setting:
    """A number clamped into [low, high] (a share of energy kept, a temperature)."""
    def parse(raw: str) -> float:
        return max(low, min(high, _number(raw, f"a number from {low:g} to {high:g}")))
    return Setting(default, parse, page, bounds=None)


def from_control(c: Control, default: object) -> Setting:
    """The URL setting of one compression control (core.compression.steps.Control), in shown units."""
    if c.widget == "toggle":
        setting = Setting(bool(default), flag)
    elif c.widget == "text":  # its own reader (a per-layer plan): bad text gets a notice in its words
        setting = Setting(default, c.parse or str)
    elif c.choices and all(isinstance(o, int) and not isinstance(o, bool) for o in c.choices):
        setting = nearest(c.choices, default)  # bit widths: 4.5 -> 4
    elif c.choices:
        setting = choice(c.choices, default, renamed=c.renamed)
    elif c.step is not None and float(c.step).is_integer() and float(c.low).is_integer():
        setting = whole(int(c.low), int(c.high), round(float(default) * c.scale))
    else:
        setting = decimal(float(c.low), float(c.high), float(default) * c.scale)
    return replace(setting, old_keys=tuple(c.old_urls))


def _compression_settings() -> dict[str, Setting]:
    """Every registered compression step's controls, keyed by URL key, in pipeline order."""
    defaults = {f.name: f.default for f in fields(CompressionConfig)}
    return {c.url: from_control(c, defaults[name]) for name, (_, c) in compression_controls().items()}


def flag(raw: str) -> bool:
    """URL text as on/off: 1/true/yes/on or 0/false/no/off."""
    words = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
    if raw.strip().lower() not in words:
        raise ValueError("1 for on or 0 for off")
    return words[raw.strip().lower()]


def names(options: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    """A comma-separated list keeping only the known names (unknown ones are dropped, with a notice)."""
    def parse(raw: str) -> tuple[str, ...]:
        wanted = [name.strip() for name in raw.split(",") if name.strip()]
        return tuple(name for name in options if name in wanted)
    return parse


def page_names() -> tuple[str, ...]:
    """Pages by their ?page= name: one file per page in pages/ (app.py routes every one of them)."""
    return tuple(sorted(path.stem for path in (ROOT / "pages").glob("*.py")))


def _lesson_name(raw: str) -> str:
    # File names are checked here (and not with a list read at import) so that a lesson file a
    # teacher adds while the app runs works at once; the pattern keeps paths out of links.
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,80}", raw) or not (LESSONS_DIR / f"{raw}.toml").exists():
        raise ValueError("the name of a lesson file in lessons/")
    return raw


def _plan_text(raw: str) -> str:
    """A per-layer plan (core.studies.layer_plan) in its own compact words: conv1:p0.5b4,fc1:b2."""
    return LayerPlan.parse(raw).text()


def _layer_name(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.]{1,40}", raw):
        raise ValueError("a layer name such as 0 or 3")
    return raw


SIDEBAR = {
    "dataset": choice(datasets.list_datasets(), datasets.DEFAULT_DATASET),
    "model": choice(models.list_models(), "lenet5"),
    # Every compression control, from the step registry (a link without `range` gets MSE clipping).
    **_compression_settings(),
}
METHODS = tuple(attribution.METHOD_LABELS)
DIAGNOSIS_MATRICES = ("change", "original", "compressed")
SENS_TARGETS = (2, 4, 8, 12, 16, 24, 32)                     # times smaller than the fp32 model
SENS_DROPS = (0, 0.5, 1, 2, 3, 5)                            # accuracy points the search may lose
SENS_FLOORS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99)    # explanation agreement it must keep
PAGE_SETTINGS = {
    "saliency_method": choice(METHODS, page="saliency"),
    "saliency_mode": choice(["by index", "by class", "where the models disagree"], page="saliency"),
    "saliency_index": whole(0, None, 0, page="saliency"),
    "saliency_class": whole(0, None, 0, page="saliency"),
    "sparsity_layer": Setting(None, _layer_name, page="sparsity"),  # the page knows the model's layers
    "sweep_method": choice(METHODS, page="tradeoffs"),
    "sweep_seeds": whole(1, 5, 1, page="tradeoffs"),
    "sweep_epochs": nearest([0, 1, 2, 3, 5], 0, page="tradeoffs"),
    # Faithfulness is shown as gain over random orderings now; links made before still open the same measure.
    "sweep_metric": choice(figures_tradeoff.METRICS, page="tradeoffs",
                           renamed={"deletion_auc": "deletion_gain", "insertion_auc": "insertion_gain",
                                    "infidelity": "infidelity_gain"}),
    "grid_metric": choice(["accuracy", "spearman_abs", "agreement"], page="tradeoffs"),
    "sanity_method": choice(METHODS, page="sanity"),
    "sanity_metric": choice(figures_sanity.METRIC_LABELS, page="sanity"),
    "sanity_index": whole(0, None, 0, page="sanity"),
    "quality_method": choice(METHODS, page="quality"),
    "global_view_embedding": choice(global_view.EMBEDDINGS, page="global_view"),
    "global_view_method": choice(METHODS, page="global_view"),
    "pie_size": whole(3, largest_population(), 5, page="forgotten"),  # 30 when Ray trains them (issue 11)
    "pie_method": choice(METHODS, page="forgotten"),
    # The Scrub page fits these itself (a model without Grad-CAM, fewer test images, other layers).
    "scrub_control": choice(scrub.CONTROLS, page="scrub"),
    "scrub_layer": Setting(None, _layer_name, page="scrub"),
    "scrub_index": whole(0, None, 0, page="scrub"),
    "scrub_method": choice(METHODS, page="scrub"),
    "families_metric": choice(families.METRICS, page="families"),
    "families_method": choice(METHODS, page="families"),
    "families_seeds": whole(1, 3, 1, page="families"),
    # Diagnosis (issue 10 §1): the confusion view, the group of test images shown, the gallery's first image.
    "diag_matrix": choice(DIAGNOSIS_MATRICES, page="diagnosis"),
    "diag_group": choice(diagnosis_study.GROUPS, page="diagnosis"),
    "diag_first": whole(0, None, 0, page="diagnosis"),  # the page knows how many images the group holds
    # Distillation: a student (any registered model; one not smaller than the teacher gets a message), Hinton's
    # T and α, the share of the training set kept by data distillation (in %), the maps' method.
    "distill_kind": choice(["knowledge", "data"], page="distillation"),
    "distill_student": choice(models.list_models(), "mlp32", page="distillation"),
    "distill_t": nearest((1, 2, 3, 4, 5, 6, 8, 10, 15, 20), 4, page="distillation"),
    "distill_alpha": nearest(tuple(round(i / 10, 1) for i in range(11)), 0.9, page="distillation"),
    "distill_subset": nearest((1, 5, 10, 25), 5, page="distillation"),
    "distill_method": choice(METHODS, page="distillation"),
    "distill_compress": Setting(False, flag, page="distillation"),
    # Layer sensitivity (issue 9 §3): the map's measure, the maps' method, the search and its result.
    "sens_metric": choice(figures_sensitivity.METRICS, page="sensitivity"),
    "sens_method": choice(METHODS, page="sensitivity"),
    "sens_goal": choice(["reasons", "size"], page="sensitivity"),
    "sens_target": nearest(SENS_TARGETS, 16, page="sensitivity"),
    "sens_drop": nearest(SENS_DROPS, 1, page="sensitivity"),
    "sens_floor": nearest(SENS_FLOORS, 0.9, page="sensitivity"),
    "sens_plan": Setting("", _plan_text, page="sensitivity"),
}
APP_WIDE = {
    "page": choice(page_names(), "overview"),      # read by app.py's router, checked here
    "present": Setting(False, flag, lesson=False),  # presentation mode
    "hide": Setting((), names(list(SIDEBAR)), lesson=False),  # sidebar controls a teacher hides
    "lesson": Setting(None, _lesson_name, lesson=False),
    "step": Setting(1, whole(1, None, 1).parse, bounds=(1, None), lesson=False),  # the lesson knows its length
    # The A/B page's frozen setting A, as one word (core.studies.ab) read with the sidebar's own parsers.
    "ab": Setting(None, lambda raw: ab.normalize(raw, {k: s.parse for k, s in SIDEBAR.items()},
                                                 {k: s.default for k, s in SIDEBAR.items()}), lesson=False),
}
SETTINGS: dict[str, Setting] = {**APP_WIDE, **SIDEBAR, **PAGE_SETTINGS}


def lesson_parsers() -> dict[str, Callable[[str], object]]:
    """The settings a lesson step may make, with their parsers (for core.lessons)."""
    return {key: s.parse for key, s in SETTINGS.items() if s.lesson}


def to_text(value: object) -> str:
    """A setting's value as URL text."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


def restore() -> None:
    """On a session's first run, take every setting from the URL; bad values get a notice in words.

    Text that is no value of the setting is ignored (the default is used); a number between allowed
    values is rounded to the nearest one (prune=55.5 -> 56, bits=4.5 -> 4), a number outside them
    clamped. A bad value of a setting without a default (an unknown lesson) leaves the link.
    """
    state = st.session_state
    if state.get("_restored"):
        return
    state["_restored"] = True
    state["_url_at_start"] = st.query_params.to_dict()
    notices = state.setdefault(notice.NOTICES, [])
    for key, setting in SETTINGS.items():
        if setting.default is not None and key != "page":
            state[key] = setting.default
        raw = next((state["_url_at_start"][k] for k in (key, *setting.old_keys) if k in state["_url_at_start"]), None)
        for old in setting.old_keys:  # an older link's name for it: the URL is rewritten with today's
            if old in st.query_params:
                del st.query_params[old]
        if raw is None:
            continue
        try:
            value = setting.parse(raw)
        except (ValueError, OverflowError) as err:  # parsers say what they expect, in words
            notices.append(notice.refused(key, raw, str(err), _fallback(key)))
            if setting.default is None and key in st.query_params:
                del st.query_params[key]
            continue
        said = None if _unchanged(key, raw, value) else _adjusted(key, raw, value)
        if said:
            notices.append(said)
        if key != "page":  # app.py's router reads ?page= itself
            state[key] = value


def _fallback(key: str) -> str:
    setting = SETTINGS[key]
    if key == "page":
        return "showing the overview"
    if setting.default is None:
        return "leaving it out"
    return f"using {to_text(setting.default) or 'nothing'}"


def _unchanged(key: str, raw: str, value: object) -> bool:
    """The parsed value is what the text says (on/off words, "056" for 56, hide names in any order)."""
    if to_text(value) == raw or SETTINGS[key].parse is flag:
        return True
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(raw) == value
        except ValueError:
            return False
    return False


def _adjusted(key: str, raw: str, value: object) -> str | None:
    """The notice for a value a parser rounded, clamped or trimmed (None: nothing worth saying)."""
    setting = SETTINGS[key]
    if key == "hide":
        unknown = sorted({name.strip() for name in raw.split(",") if name.strip()} - set(SIDEBAR))
        if not unknown:
            return None
        return (f"{notice.quoted(key, raw)} in the link names no sidebar control called {', '.join(unknown)}; "
                f"hiding {', '.join(value) or 'nothing'}.")
    if setting.options:
        allowed = one_of(setting.options)
    elif setting.bounds:
        allowed = whole_words(*setting.bounds)
    else:
        allowed = "a value this setting takes"
    return notice.adjusted(key, raw, allowed, to_text(value))


def keep() -> None:
    """Bring back settings whose widgets Streamlit dropped (call every run, before any widget).

    Streamlit deletes the state of a widget that a run does not draw (a page's widgets while
    another page is shown). Each run notes every setting's value, and the next run puts back
    the ones that disappeared. Only those are set: setting a drawn widget's key on every run
    would send its value back to the browser each time and undo a slider's fast moves.
    """
    state = st.session_state
    kept = state.setdefault("_kept", {})
    for key in SETTINGS:
        if key in state:
            kept[key] = state[key]
        elif key in kept:
            state[key] = kept[key]


def keep_other_pages(page: str) -> None:
    """Re-store the settings of every page but `page` (call once the page is known, before it runs).

    Their widgets are not drawn in this run; a value set through session state survives the
    clean-up at the end of the run, so the setting never goes missing, not even for one run.
    """
    hold([key for key, setting in PAGE_SETTINGS.items() if setting.page != page])


def hold(keys: Iterable[str]) -> None:
    """Keep the settings `keys` whose widgets this run does not draw (a closed sidebar group's): set through
    session state, a value survives Streamlit's clean-up at the end of the run."""
    state = st.session_state
    for key in keys:
        if key in state:
            state[key] = state[key]


def forget(key: str) -> None:
    """Drop setting `key` (the page then picks its own default), so that keep() does not bring it back."""
    st.session_state.pop(key, None)
    st.session_state.get("_kept", {}).pop(key, None)


def sync() -> None:
    """Write the settings into the URL: sidebar ones always (but an empty text, such as no per-layer plan),
    the others when not at their default."""
    state, params = st.session_state, st.query_params
    # One copy of the URL's settings to compare with: each read through st.query_params costs about 60 µs
    # (its lock and the session lookup), 65 settings twice a run a few ms of every slider move (issue 11 §2).
    now = params.to_dict()
    for key, setting in SETTINGS.items():
        if key == "page" or key not in state:
            continue
        value = state[key]
        shown = (key in SIDEBAR and value != "") or (value != setting.default and value is not None and value != ())
        if key == "step" and state.get("lesson") is None:
            shown = False
        if shown and now.get(key) != to_text(value):
            params[key] = to_text(value)
        elif not shown and key in now:
            del params[key]


def fit(key: str, options: Sequence | None = None, high: int | None = None,
        describe: Callable[[object], str] = str, fallback: object = None, why: str = "") -> None:
    """Make page setting `key` valid for the widget about to be drawn; say so when it had to change.

    options: the values the widget offers now (a value outside them falls back to `fallback` when
    given and offered, else the default, or the first option); `why`: a sentence the notice adds.
    high: the largest allowed whole number (larger values are clamped).
    """
    setting, state = SETTINGS[key], st.session_state
    value = state.get(key, setting.default)
    if options is not None and value not in options:
        new = next(o for o in (fallback, setting.default, options[0]) if o in options)
        if value is not None:
            st.warning(f"{describe(value)} is not available here: showing {describe(new)}.{' ' + why if why else ''}",
                       icon="⚠️")
    elif high is not None and value is not None and value > high:
        new = high
        st.warning(f"{key.replace('_', ' ').capitalize()} {value} is out of range: showing {high}, "
                   f"the largest there is.", icon="⚠️")
    else:
        return
    state[key] = new


def presenting() -> bool:
    """Presentation mode on? Read from the session, or from ?present= before the first restore."""
    if "present" in st.session_state:
        return bool(st.session_state["present"])
    try:
        return flag(st.query_params.get("present", "0"))
    except ValueError:
        return False


def link(**overrides: object) -> str:
    """The link to the current view (with `overrides`): absolute when the browser's address is known."""
    params = {**st.query_params.to_dict(), **{k: to_text(v) for k, v in overrides.items()}}
    query = urlencode(params)
    base = st.context.url  # None outside a browser (AppTest, bare runs)
    return f"{base.split('?')[0]}?{query}" if base else f"?{query}"

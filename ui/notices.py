"""Notices about the link (and anything else worth one warning): in the app's words, shown once.

Anyone appends a sentence to `st.session_state[NOTICES]` (ui.url_state for bad link values, the
lessons for a lesson that cannot be shown, the sidebar for a data set that cannot be loaded). The
sidebar draws `take()` on every run, and the page header (ui.page_frame.page_header) calls `shown()`
once the page is about to run: a notice stays until a run has drawn it and got past any page
switch (a lesson link opens its step's page in a second run), and it goes with the next interaction.
"""
from __future__ import annotations

import streamlit as st

NOTICES = "_notices"            # session state: notices not yet gone, in order
_SHOWING = "_notices_showing"   # how many of them this run draws
_SEEN = "_notices_seen"         # how many of them a finished view has shown: dropped next run

# What each setting is, for notices about a link ("bits=4.5 in the link is not a bit width ...").
WHAT = {
    "page": "a page of this app", "present": "presentation mode on or off", "hide": "a list of sidebar controls",
    "lesson": "a lesson", "step": "a lesson step", "dataset": "a data set", "model": "a model",
    "prune": "a pruning rate", "method": "a pruning method", "scope": "a pruning scope", "bits": "a bit width",
    "scheme": "a quantization scheme", "granularity": "a quantization granularity", "range": "a range setting",
    "saliency_method": "an explanation method", "saliency_mode": "a way to pick test images",
    "saliency_index": "a test image number", "saliency_class": "a class number", "sparsity_layer": "a layer name",
    "sweep_method": "an explanation method", "sweep_seeds": "a number of seeds",
    "sweep_epochs": "a number of fine-tuning epochs", "sweep_metric": "a trade-off measure",
    "grid_metric": "a map measure", "sanity_method": "an explanation method", "sanity_metric": "a similarity measure",
    "sanity_index": "a test image number", "pie_size": "a population size", "pie_method": "an explanation method",
    "scrub_control": "a scrub control", "scrub_layer": "a layer name", "scrub_index": "a test image number",
    "scrub_method": "an explanation method",
}


def describe(key: str) -> str:
    """What setting `key` is, as a noun phrase ("a bit width"); for a compression control not named in
    WHAT, its sidebar label ("a setting of “Activation bits”"); else a plain fallback."""
    if key in WHAT:
        return WHAT[key]
    from core.compression import controls  # the registry names every compression control

    labels = {c.url: c.label for _, c in controls().values()}
    return f"a setting of “{labels[key]}”" if key in labels else f"a value for {key.replace('_', ' ')}"


def quoted(key: str, raw: str) -> str:
    """`key=raw` as markdown code (safe for any text a link carries), long values cut short."""
    shown = raw.replace("`", "'")
    shown = shown if len(shown) <= 40 else shown[:40] + "…"
    return f"`{key}={shown}`"


def refused(key: str, raw: str, expected: str, fallback: str) -> str:
    """A link value that is no value of the setting: "`bits=abc` in the link is not a bit width (...); using 32."."""
    return f"{quoted(key, raw)} in the link is not {describe(key)} ({expected}); {fallback}."


def adjusted(key: str, raw: str, expected: str, used: str) -> str:
    """A link value moved to the nearest allowed one: "`bits=4.5` ... (one of ...); using 4, the nearest."."""
    return f"{quoted(key, raw)} in the link is not {describe(key)} ({expected}); using {used}, the nearest."


def take() -> list[str]:
    """The notices to draw in this run (the same words once), dropping those a finished view has shown."""
    state = st.session_state
    pending = state.get(NOTICES, [])[state.pop(_SEEN, 0):]
    state[NOTICES] = pending
    state[_SHOWING] = len(pending)
    return list(dict.fromkeys(pending))


def shown() -> None:
    """Call when the page is about to run: the notices drawn in this run go with the next interaction."""
    state = st.session_state
    state[_SEEN] = state.pop(_SHOWING, 0)

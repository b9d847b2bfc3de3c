"""The sidebar's controls, as data: every control's URL key, label and group, and a step read from the session.

The compression controls come from the step registry (core/compression/steps.py); the data set and the
model are the sidebar's own. ui/sidebar.py draws them; ui/page_frame.py reads them to tell whether the
sidebar on screen still shows the session (a group's notes, the main sliders' labels in a move's notice).
"""
from __future__ import annotations

import streamlit as st

from core.compression import controls as compression_controls
from core.compression import get_step
from core.compression import ordered as ordered_steps
from core.compression.steps import Control
from ui import url_state
from ui.setup import compression_from

SHORT_NAMES = {"mnist5k": "MNIST, 5k digits (offline)", "digits": "Digits 8×8 (offline)",
               "mnist": "MNIST, 70k (download)", "fashion_mnist": "Fashion-MNIST (download)",
               "cifar10": "CIFAR-10 (download)", "mlp": "MLP 128-64", "lenet300": "LeNet-300-100 (MLP)",
               "lenet5": "LeNet-5 (CNN)",
               "resnet_small": "Small ResNet (skip connections)", "separable": "Depthwise-separable CNN",
               "mlp32": "MLP 32 (small student)"}

# Every sidebar control: session-state key == URL parameter (registry: ui/url_state.py).
DEFAULTS = {key: setting.default for key, setting in url_state.SIDEBAR.items()}
CHOICES = {key: setting.options for key, setting in url_state.SIDEBAR.items() if setting.options}

# Where each control goes, in order. The compression controls come from the step registry
# (core/compression/steps.py): the main sliders first, right under the navigation, so that they are on
# screen at 1280x720 (in presentation mode they move to a strip at the top of the page: a widget key can
# be drawn once per run), then one group per step. A new family's controls appear here by themselves.
COMPRESSION = {c.url: (step, c) for _, (step, c) in compression_controls().items()}
MAIN = tuple(url for url, (_, c) in COMPRESSION.items() if c.main)
# Groups: the families always open (pruning, quantization) first, then the others' expanders in pipeline
# order (one line each while off), then the model.
_GROUP_ORDER = sorted(ordered_steps(), key=lambda name: not get_step(name).always_open)
GROUPS = (*((get_step(name).title, tuple(url for url, (step, c) in COMPRESSION.items() if step == name and not c.main))
            for name in _GROUP_ORDER),
          ("Model", ("dataset", "model")))


def label_of(c: Control, value: object) -> str:
    """A control's value as the sidebar shows it (its label, if it has one)."""
    if c.labels and value in c.labels:
        return c.labels[value]
    return str(value)


def step_in_session(name: str):
    """Step `name` at the session's values of its controls (what its group shows)."""
    return compression_from({url: st.session_state[url] for url, (step, _) in COMPRESSION.items()
                             if step == name}).step(name)


def group_notes(names: set[str]) -> dict[str, list[str]]:
    """The notes of steps `names` (as ui.sidebar draws them under their groups), from one config; none
    before the first run."""
    if not all(url in st.session_state for url in COMPRESSION):
        return {}
    return {name: step_in_session(name).notes() for name in sorted(names)}


PLAN_FROM = "_plan_from"  # session state: the plan text the Sensitivity page applied (ui.sidebar.apply_plan)

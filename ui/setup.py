"""What the sidebar decides, as frozen configs: `Setup` (training + compression) and the
training recipe for a model and data set, which names this session's uploaded weights when
it explores them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from core import upload as uploads
from core.compression import CompressionConfig
from core.compression import controls as compression_controls
from core.training import TrainConfig
from core.warm import recipe


@dataclass(frozen=True)
class Setup:
    """Everything the sidebar decides: how the model was trained and how it is compressed."""

    train: TrainConfig
    compression: CompressionConfig


@dataclass(frozen=True)
class UploadedTrain(TrainConfig):
    """A TrainConfig that names uploaded weights (their sha256) instead of a training run.

    A subclass, so every cache keyed by a TrainConfig also keys on the weights (Streamlit hashes
    dataclasses by their fields) and nothing else changes; `_model` returns the uploaded model and
    nothing is ever trained for it. `replace(cfg, seed=...)` keeps the weights: every seed of a
    sweep or population is then the same upload.
    """

    weights: str = ""


UPLOAD_KEY = "_upload"          # session state: this session's core.upload.UploadedWeights
USE_UPLOAD_KEY = "_use_upload"  # session state: explore the upload (True) or the built-in model


def active_upload() -> uploads.UploadedWeights | None:
    """This session's uploaded weights when switched on; None without one (or outside a script run)."""
    if get_script_run_ctx() is None:
        return None
    state = st.session_state
    return state.get(UPLOAD_KEY) if state.get(USE_UPLOAD_KEY, True) else None


def train_config(model: str, dataset: str) -> TrainConfig:
    """The training recipe for a model on a data set (fewer epochs on the big sets).

    When this session explores uploaded weights for this model and data set, the config names
    them (UploadedTrain), so every page shows the upload in place of the trained model.
    """
    cfg = recipe(model, dataset)
    upload = active_upload()
    if upload is not None and (upload.architecture, upload.dataset) == (model, dataset):
        return UploadedTrain(**asdict(cfg), weights=upload.digest)
    return cfg


def compression_from(values: Mapping[str, object]) -> CompressionConfig:
    """The CompressionConfig that sidebar settings `values` (URL keys, shown units: prune in %) describe.

    Settings not in `values` keep their defaults; each control's scale maps shown units to the field.
    """
    settings = {}
    for field, (_, c) in compression_controls().items():
        if c.url in values:
            value = values[c.url]
            settings[field] = value / c.scale if c.scale != 1 else value
    return CompressionConfig(**settings)


def setup_from(values: Mapping[str, object]) -> Setup:
    """The Setup that sidebar settings `values` (model, dataset, prune in %, method, ...) describe."""
    return Setup(train=train_config(str(values["model"]), str(values["dataset"])), compression=compression_from(values))

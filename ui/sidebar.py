"""The shared sidebar and its URL state: every setting is a query parameter, restored on a
session's first run (bad values clamped or ignored with a notice) and written back on every run.
"""
from __future__ import annotations

import streamlit as st

import models
from core import data as datasets
from core.compression import (PRUNE_METHODS, PRUNE_SCOPES, QUANT_GRANULARITIES, QUANT_SCHEMES,
                              WEIGHT_BITS, CompressionConfig)
from ui.cache import Setup, dataset, train_config

# Every sidebar control: session-state key == URL parameter, its choices, its default.
DEFAULTS = {"dataset": datasets.DEFAULT_DATASET, "model": "lenet5", "prune": 0, "method": "magnitude",
            "scope": "global", "bits": 32, "scheme": "symmetric", "granularity": "per_channel"}
CHOICES = {"dataset": tuple(datasets.list_datasets()), "model": tuple(models.list_models()),
           "method": PRUNE_METHODS, "scope": PRUNE_SCOPES, "bits": WEIGHT_BITS,
           "scheme": QUANT_SCHEMES, "granularity": QUANT_GRANULARITIES}
SHORT_NAMES = {"mnist5k": "MNIST, 5k digits (offline)", "digits": "Digits 8×8 (offline)",
               "mnist": "MNIST, 70k (download)", "fashion_mnist": "Fashion-MNIST (download)",
               "cifar10": "CIFAR-10 (download)", "mlp": "MLP 128-64", "lenet300": "LeNet-300-100 (MLP)",
               "lenet5": "LeNet-5 (CNN)"}
LABELS = {"magnitude": "Magnitude (smallest |w|)", "random": "Random", "structured": "Structured (whole neurons / filters)",
          "global": "Global (one threshold)", "layer": "Per layer (same rate each)",
          "symmetric": "Symmetric", "affine": "Affine (with zero point)",
          "per_channel": "Per channel", "per_tensor": "Per tensor"}


def _parse(key: str, raw: str) -> object:
    """A URL value as the control's type, clamped into range; raises ValueError if unusable."""
    if key == "prune":
        return min(100, max(0, round(float(raw))))
    value = int(raw) if key == "bits" else raw  # int("abc") raises ValueError: reported
    if key == "bits" and value not in WEIGHT_BITS:  # snap to the nearest offered bit width
        value = min(WEIGHT_BITS, key=lambda b: abs(b - value))
    if value not in CHOICES[key]:
        raise ValueError(f"choose one of {', '.join(map(str, CHOICES[key]))}")
    return value


def _restore_from_url() -> None:
    """On a session's first run, take every setting from the URL; bad values get a notice."""
    if st.session_state.get("_restored"):
        return
    st.session_state["_restored"] = True
    notices = []
    for key, default in DEFAULTS.items():
        st.session_state[key] = default
        raw = st.query_params.get(key)
        if raw is None:
            continue
        try:
            value = _parse(key, raw)
        except (ValueError, OverflowError) as err:  # "abc", "nan", "inf"
            notices.append(f"Ignored {key}={raw!r} from the link ({err}); using {default}.")
            continue
        if str(value) != raw:
            notices.append(f"Adjusted {key}={raw!r} from the link to {value}.")
        st.session_state[key] = value
    st.session_state["_notices"] = notices
    _check_dataset()


def _check_dataset() -> None:
    """Fall back to the default data set, with a notice, when the chosen one cannot be loaded."""
    name = st.session_state["dataset"]
    try:
        dataset(name)
    except datasets.DatasetUnavailable as err:
        st.session_state["dataset"] = datasets.DEFAULT_DATASET
        st.session_state.setdefault("_notices", []).append(
            f"{err} Showing the default data set ({datasets.DEFAULT_DATASET}) instead.")


def _sync_url() -> None:
    """Write every setting into the URL, so the address bar is a link to this exact view."""
    for key in DEFAULTS:
        value = str(st.session_state[key])
        if st.query_params.get(key) != value:
            st.query_params[key] = value


def sidebar() -> Setup:
    """Draw the shared sidebar (data set, model, every compression control); return the setup."""
    _restore_from_url()
    with st.sidebar:
        for notice in st.session_state.get("_notices", []):
            st.warning(notice, icon="⚠️")
        st.header("Model")
        st.selectbox("Data set", CHOICES["dataset"], key="dataset", on_change=_check_dataset,
                     format_func=lambda n: SHORT_NAMES.get(n, n),
                     help="  \n".join(f"**{SHORT_NAMES.get(n, n)}**: {d}" for n, d in datasets.DATASETS.items()))
        st.selectbox("Model", CHOICES["model"], key="model", format_func=lambda n: SHORT_NAMES.get(n, n),
                     help="  \n".join(f"**{SHORT_NAMES.get(n, n)}**: {models.describe_model(n)}"
                                      for n in CHOICES["model"]))
        st.header("Compression")
        st.slider("Pruning rate", 0, 100, key="prune", step=1, format="%d%%",
                  help="Share of the weights set to exactly zero.")
        st.radio("Pruning method", PRUNE_METHODS, key="method", format_func=LABELS.get)
        st.radio("Pruning scope", PRUNE_SCOPES, key="scope", format_func=LABELS.get, horizontal=True,
                 help="Global: one threshold for the whole network. Per layer: every layer loses the same share.")
        st.select_slider("Bit width", WEIGHT_BITS, key="bits",
                         format_func=lambda b: "32 (float, off)" if b == 32 else str(b),
                         help="Bits per weight after quantization; 32 means no quantization.")
        st.radio("Quantization scheme", QUANT_SCHEMES, key="scheme", format_func=LABELS.get, horizontal=True)
        st.radio("Quantization granularity", QUANT_GRANULARITIES, key="granularity", format_func=LABELS.get,
                 horizontal=True, help="One scale per output channel, or one for the whole layer.")
    _sync_url()
    state = st.session_state
    setup = Setup(
        train=train_config(state["model"], state["dataset"]),
        compression=CompressionConfig(prune_amount=state["prune"] / 100, prune_method=state["method"],
                                      prune_scope=state["scope"], weight_bits=state["bits"],
                                      quant_scheme=state["scheme"], quant_granularity=state["granularity"]),
    )
    st.session_state["_setup"] = setup
    return setup


def current_setup() -> Setup:
    """The setup the sidebar chose in this run; call it once, at the top of a page.

    app.py draws the sidebar before the page, and the page takes (pops) its setup. A page
    file that runs without app.py finds none and draws the sidebar itself: Streamlit runs a
    page alone while its legacy pages/ mode is on, which lasts from a server's start until
    some session has run app.py (a first request to /weights, say).
    """
    if "_setup" not in st.session_state:
        sidebar()
    return st.session_state.pop("_setup")


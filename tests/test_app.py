"""The dashboard through Streamlit's AppTest: every page renders, controls change what is shown,
and bad links, missing data and damaged files give notices instead of exceptions.

Tests open app.py (the router) with ?page=<name> and navigate like a browser (see
`_navigation_like_a_server`); one test runs page files alone on purpose. The default model
(LeNet-5 on mnist5k) is trained once and cached on disk like in the app; tests that need
another model use a temporary model cache and the small "digits" set where they can.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from conftest import LEGACY_PAGES_INIT, open_app, model_group
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

import ui
from core.explain.attribution import METHOD_LABELS
from core.compression import PRUNE_METHODS, QUANT_GRANULARITIES, QUANT_SCHEMES
from core.compression.pruning import STRUCTURED
from core.data import load_dataset
from core.training import checkpoint_path, load_checkpoint

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 120  # the very first run may train LeNet-5 on mnist5k
TITLES = {"overview": "Original vs compressed", "weights": "Weight distributions",
          "sparsity": "Where the zeros are", "saliency": "Do the explanations survive?"}
CHARTS = {"overview": 1, "weights": 5, "sparsity": 3, "saliency": 4}  # LeNet-5: 5 layers; 4 images








def assert_healthy(at: AppTest, page: str) -> None:
    """No exception, no error box, and the page's title is shown."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert [t.value for t in at.title] == [TITLES[page]]


def charts(at: AppTest) -> dict[str, dict]:
    """Every Plotly chart on the page, keyed by its widget key, as the figure's JSON."""
    return {e.key: json.loads(e.proto.spec) for e in at.get("plotly_chart")}


def metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert len(values) == 1, (label, values)
    return values[0]


def warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]


def kilobytes(text: str) -> float:
    number, unit = text.split()
    return float(number) * {"B": 1e-3, "kB": 1.0, "MB": 1e3}[unit]


# ---------------------------------------------------------------- 1. every page renders
@pytest.mark.parametrize("page", list(TITLES))
def test_page_renders_title_and_charts(page):
    at = open_app(page)
    assert_healthy(at, page)
    assert len(at.get("plotly_chart")) == CHARTS[page]
    assert all(fig["data"] for fig in charts(at).values())
    assert at.caption[0].value.startswith("LeNet-5")  # the setup line under the title
    assert at.slider(key="prune").value == 0 and at.select_slider(key="bits").value == 32


@pytest.mark.parametrize("page", list(TITLES))
def test_page_link_on_a_fresh_server_hands_over_to_the_app(monkeypatch, page):
    """A path link (/weights) as the first request to a fresh server runs pages/weights.py alone.

    Streamlit's legacy multipage mode is on until some session has run app.py. The page
    hands over to app.py (st.switch_page with ?page=), whose st.navigation switches that
    mode off, and the same page opens with the shared sidebar and the link's settings.
    """
    state = {"first": True}

    def init(self, *args, **kwargs):  # legacy mode for the first run only, as on a fresh server
        LEGACY_PAGES_INIT(self, *args, **kwargs)
        if not state.pop("first", False):
            PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["prune"] = "80"
    at.switch_page(f"pages/{page}.py").run()
    assert_healthy(at, page)
    assert len(at.get("plotly_chart")) == CHARTS[page]
    assert at.slider(key="prune").value == 80 and "80" in at.caption[0].value
    assert at.query_params["page"] == page
    at.slider(key="prune").set_value(50).run()
    assert_healthy(at, page)
    assert at.slider(key="prune").value == 50 and "50" in at.caption[0].value


def test_settings_follow_the_user_across_pages():
    at = open_app("overview")
    at.slider(key="prune").set_value(80).run()
    at.switch_page("pages/weights.py").run()  # a click in the navigation: app.py runs, then the page
    assert_healthy(at, "weights")
    assert at.slider(key="prune").value == 80 and "80% magnitude pruning" in at.caption[0].value
    at.select_slider(key="bits").set_value(4).run()
    at.switch_page("pages/saliency.py").run()
    assert_healthy(at, "saliency")
    assert (at.slider(key="prune").value, at.select_slider(key="bits").value) == (80, 4)


# ---------------------------------------------------------------- 2. controls change what is shown
def test_overview_pruning_slider_updates_the_metrics():
    at = open_app("overview")
    assert metric(at, "Sparsity") == "0 %"
    size_before = kilobytes(metric(at, "Size"))
    at.slider(key="prune").set_value(80).run()
    assert_healthy(at, "overview")
    assert metric(at, "Sparsity") == "80 %"
    assert kilobytes(metric(at, "Size")) < size_before
    assert float(metric(at, "Compression ratio").rstrip("×")) > 1
    assert at.query_params["prune"] == "80"  # the address bar links to this view


def test_weights_histograms_follow_pruning_and_bits():
    at = open_app("weights")
    before = charts(at)
    assert "0 % compressed" in before["hist_0"]["layout"]["annotations"][0]["text"]
    at.slider(key="prune").set_value(80).run()
    assert_healthy(at, "weights")
    after = charts(at)
    assert after != before
    assert "0 % compressed" not in after["hist_0"]["layout"]["annotations"][0]["text"]

    # 2 bits, one scale per tensor: every layer keeps at most 2 nonzero values (±scale, ternary).
    at.slider(key="prune").set_value(0)
    at.select_slider(key="bits").set_value(2)
    at.radio(key="granularity").set_value("per_tensor").run()
    assert_healthy(at, "weights")
    counts = [int(m.group(1).replace(",", ""))
              for c in at.caption if (m := re.search(r"take ([\d,]+) distinct values", c.value))]
    assert len(counts) == CHARTS["weights"] and all(1 <= n <= 2 for n in counts), counts


def test_sparsity_bars_follow_pruning():
    at = open_app("sparsity")
    bars = charts(at)["sparsity_bars"]["data"][1]
    assert bars["name"] == "compressed" and set(bars["text"]) == {"0 %"}
    at.slider(key="prune").set_value(80).run()
    assert_healthy(at, "sparsity")
    bars = charts(at)["sparsity_bars"]["data"][1]
    assert "0 %" not in bars["text"]
    assert charts(at)["heat_compressed"] != charts(at)["heat_original"]


def agreement(at, label: str) -> list[float]:
    """The agreement figure `label` written beside each saliency row ("**Rank corr.** 0.93")."""
    found = []
    for block in at.markdown:
        for line in block.value.split("\n"):
            if line.startswith(f"**{label}**"):
                found.append(float(line.split("**")[2].strip()))
    return found


def test_saliency_maps_change_under_heavy_compression():
    at = open_app("saliency")
    before = charts(at)
    assert set(agreement(at, "Rank corr.")) == {1.0}
    at.slider(key="prune").set_value(95)
    at.select_slider(key="bits").set_value(1).run()
    assert_healthy(at, "saliency")
    after = charts(at)
    assert after.keys() == before.keys()
    for key in before:  # same images, different compressed map (trace 2 of input | orig | comp | diff)
        assert after[key]["data"][2] != before[key]["data"][2], key
    for label in ("Rank corr.", "SSIM"):
        values = agreement(at, label)
        assert len(values) == CHARTS["saliency"] and max(values) < 1.0, (label, values)


# ---------------------------------------------------------------- 3. saliency image modes and methods
def _panel_titles(at: AppTest) -> list[str]:
    return [fig["layout"]["annotations"][0]["text"] for fig in charts(at).values()]


def test_saliency_by_index_and_by_class():
    at = open_app("saliency")
    at.number_input(key="saliency_index").set_value(10).run()
    assert_healthy(at, "saliency")
    assert list(charts(at)) == [f"saliency_{i}" for i in range(10, 14)]
    assert _panel_titles(at)[0].startswith("image 10<br>")

    at.radio(key="saliency_mode").set_value("by class").run()
    at.selectbox(key="saliency_class").set_value(3).run()
    assert_healthy(at, "saliency")
    titles = _panel_titles(at)
    assert len(titles) == CHARTS["saliency"]
    assert all(re.fullmatch(r"image \d+<br>a 3", t) for t in titles), titles


def test_saliency_disagreement_mode():
    at = open_app("saliency")
    at.radio(key="saliency_mode").set_value("where the models disagree").run()
    assert_healthy(at, "saliency")
    assert metric(at, "Images where the predictions differ").startswith("0 of")
    assert not charts(at)
    assert "agree on every test image" in at.info[0].value

    at.slider(key="prune").set_value(95).run()
    assert_healthy(at, "saliency")
    assert not metric(at, "Images where the predictions differ").startswith("0 of")
    assert len(charts(at)) == CHARTS["saliency"] and not at.info
    for fig in charts(at).values():  # each shown image is one where the predictions differ
        original, compressed = (fig["layout"]["annotations"][i]["text"].split("<br>")[1].split()[0] for i in (1, 2))
        assert original != compressed


def test_grad_cam_offered_for_cnn_only(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPRESSION_LENS_CACHE", str(tmp_path))  # the MLP is trained here, not in ~/.cache
    at = open_app("saliency")
    assert METHOD_LABELS["grad_cam"] in at.selectbox(key="saliency_method").options
    at.selectbox(key="saliency_method").set_value("grad_cam").run()
    assert_healthy(at, "saliency")
    model_group(at).selectbox(key="model").set_value("mlp").run()
    assert_healthy(at, "saliency")
    assert METHOD_LABELS["grad_cam"] not in at.selectbox(key="saliency_method").options
    assert at.selectbox(key="saliency_method").value != "grad_cam"
    assert at.caption[0].value.startswith("MLP")


# ---------------------------------------------------------------- 4. settings from the URL
@pytest.mark.parametrize("key, raw, expected, notice", [
    ("dataset", "imagenet", "mnist5k", "`dataset=imagenet` in the link is not a data set"),
    ("model", "resnet", "lenet5", "`model=resnet` in the link is not a model"),
    ("prune", "150", 100, "using 100, the nearest"),
    ("prune", "abc", 0, "`prune=abc` in the link is not a pruning rate (a whole number from 0 to 100); using 0."),
    ("bits", "5", 5, None),
    ("bits", "12", 8, "using 8, the nearest"),
    ("bits", "4.5", 4, "`bits=4.5` in the link is not a bit width"),
])
def test_url_values_are_checked(key, raw, expected, notice):
    at = open_app("overview", **{key: raw})
    assert_healthy(at, "overview")
    assert at.session_state[key] == expected
    shown = warnings(at)
    if notice is None:
        assert not shown
    else:
        assert len(shown) == 1 and notice in shown[0], shown
    assert at.query_params[key] == str(expected)


def test_url_settings_are_restored_and_written_back(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPRESSION_LENS_CACHE", str(tmp_path))  # LeNet-5 on digits is trained here
    params = dict(dataset="digits", model="lenet5", prune=50, method="random", scope="layer", bits=4,
                  scheme="affine", granularity="per_tensor")
    at = open_app("sparsity", **params)
    assert_healthy(at, "sparsity")
    assert not warnings(at)
    assert {k: at.session_state[k] for k in params} == params
    assert "random pruning (layer), 4-bit affine per-tensor quantization" in at.caption[0].value
    assert {k: str(at.query_params[k]) for k in params} == {k: str(v) for k, v in params.items()}
    at.radio(key="method").set_value("magnitude").run()
    assert at.query_params["method"] == "magnitude"


def test_unavailable_dataset_falls_back_with_a_notice(monkeypatch, tmp_path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("COMPRESSION_LENS_DATA", str(empty))  # offline: torchvision's download fails
    at = open_app("overview", dataset="mnist")
    assert_healthy(at, "overview")
    assert at.session_state["dataset"] == "mnist5k"
    (shown,) = warnings(at)
    assert str(empty / "MNIST" / "raw") in shown and "default data set (mnist5k)" in shown
    at.slider(key="prune").set_value(50).run()  # the app keeps working
    assert_healthy(at, "overview")
    assert metric(at, "Sparsity") == "50 %"


# ---------------------------------------------------------------- 5. extreme settings
EXTREMES = [dict(prune=100, method=m) for m in PRUNE_METHODS] + [
    dict(prune=0, bits=1, scheme=s, granularity=g) for s in QUANT_SCHEMES for g in QUANT_GRANULARITIES] + [
    dict(prune=100, method="structured", scope="layer", bits=1, scheme="affine", granularity="per_tensor")]


@pytest.mark.parametrize("page", list(TITLES))
def test_extreme_settings_do_not_break_the_page(page):
    at = open_app(page)
    if page == "saliency":  # a map of an all-zero model must not break the agreement figures
        at.selectbox(key="saliency_method").set_value("integrated_gradients").run()
    for setting in EXTREMES:
        for key, value in setting.items():
            widget = {"prune": at.slider, "bits": at.select_slider}.get(key, at.radio)
            widget(key=key).set_value(value)
        at.run()
        assert not at.exception, (setting, [e.value for e in at.exception])
        assert_healthy(at, page)
        assert len(at.get("plotly_chart")) == CHARTS[page], setting
        if page == "overview" and setting["prune"] == 100 and setting.get("method") not in STRUCTURED:
            assert metric(at, "Sparsity") == "100 %", setting  # structured keeps the output layer
    if page == "saliency":  # every explanation method of the all-but-dead model, at the last setting
        method_of = {label: method for method, label in METHOD_LABELS.items()}
        for method in map(method_of.get, at.selectbox(key="saliency_method").options):
            at.selectbox(key="saliency_method").set_value(method).run()
            assert not at.exception, (method, [e.value for e in at.exception])
            assert len(at.get("plotly_chart")) == CHARTS[page], method


def _fingerprint(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode() + tensor.numpy().tobytes())
    return digest.hexdigest()


def test_one_session_compressing_never_changes_another_sessions_model():
    first = open_app("overview")
    accuracy = metric(first, "Test accuracy")
    shared = ui._training_job(ui.train_config("lenet5", "mnist5k")).result.model  # the process-wide model
    before = _fingerprint(shared), shared.training, [p.requires_grad for p in shared.parameters()]
    second = open_app("saliency", prune=100, method="structured", bits=1)
    assert_healthy(second, "saliency")
    first.run()
    assert (metric(first, "Test accuracy"), metric(first, "Sparsity")) == (accuracy, "0 %")
    assert (_fingerprint(shared), shared.training, [p.requires_grad for p in shared.parameters()]) == before


# ---------------------------------------------------------------- 6. a damaged checkpoint
def test_damaged_checkpoint_is_retrained_with_a_warning(monkeypatch, tmp_path, request):
    monkeypatch.setenv("COMPRESSION_LENS_CACHE", str(tmp_path))
    cfg = ui.train_config("mlp", "digits")
    path = checkpoint_path(cfg, tmp_path)
    path.write_bytes(b"definitely not a checkpoint")
    ui._training_job.clear(cfg)  # the job is shared per process: start this one afresh ...
    request.addfinalizer(lambda: ui._training_job.clear(cfg))  # ... and leave no notice to later tests
    at = open_app("overview", dataset="digits", model="mlp")
    assert_healthy(at, "overview")
    (shown,) = warnings(at)
    assert str(path) in shown and "damaged" in shown and "retrained" in shown
    assert load_checkpoint(cfg, path, load_dataset("digits")) is not None  # replaced by a good one
    at.slider(key="prune").set_value(50).run()
    assert_healthy(at, "overview")
    assert metric(at, "Sparsity") == "50 %"
    assert not warnings(at)  # told once per session

"""AppTest: the lighter architectures in the sidebar (Overview, Saliency with Grad-CAM, Weights), and the
APoZ pruning method (it is offered, and it prunes). On the 8x8 digits, so the models train in seconds."""
from __future__ import annotations

import pytest
from conftest import open_app, model_group

from core.explain.attribution import METHOD_LABELS
from test_app import assert_healthy, metric

DIGITS = dict(dataset="digits")


@pytest.mark.parametrize("name, label", [("resnet_small", "Small ResNet (skip connections)"),
                                         ("separable", "Depthwise-separable CNN")])
def test_choosing_a_new_model_runs_overview_grad_cam_and_weights(name, label):
    at = model_group(open_app("overview", **DIGITS))
    model = at.selectbox(key="model")
    assert label in model.options
    model.set_value(name).run()
    assert_healthy(at, "overview")
    assert metric(at, "Sparsity") == "0 %"
    at.slider(key="prune").set_value(50).run()  # magnitude pruning of the new model
    assert_healthy(at, "overview")
    assert metric(at, "Sparsity") == "50 %"
    for page in ("saliency", "weights"):
        other = open_app(page, **DIGITS, model=name, prune=50, method="structured")
        assert_healthy(other, page)
        assert other.get("plotly_chart"), page
        if page == "saliency":
            assert METHOD_LABELS["grad_cam"] in other.selectbox(key="saliency_method").options
            other.selectbox(key="saliency_method").set_value("grad_cam").run()
            assert_healthy(other, "saliency")
            assert other.get("plotly_chart")


def _percent(text: str) -> float:
    return float(text.replace("%", "").strip())


@pytest.mark.parametrize("model", ["lenet5", "resnet_small"])
def test_apoz_method_is_offered_and_prunes_whole_units(model):
    at = open_app("overview", **DIGITS, model=model, prune=40)
    method = at.radio(key="method")
    assert "By activations (APoZ: filters that rarely fire)" in method.options
    method.set_value("apoz").run()
    assert_healthy(at, "overview")
    assert at.session_state["method"] == "apoz"
    # The rate is the share of weights, to within whole units (as for structured pruning).
    assert abs(_percent(metric(at, "Sparsity")) - 40) <= 3

"""The low-rank controls in the app (AppTest): a collapsed group while off, the Overview's size follows
them, links restore them and bad link values get a notice. Runs LeNet-5 on the small digits set."""
from __future__ import annotations

import pytest
from conftest import open_app

from ui.panels import LAYERS_OPEN
from ui.sidebar import GROUP_OPEN


def _size(at) -> float:
    (value,) = [m.value for m in at.metric if m.label == "Size"]
    number, unit = value.split()
    return float(number) * {"B": 1e-3, "kB": 1.0, "MB": 1e3}[unit]


def _group(at):
    (group,) = [e for e in at.sidebar.expander if e.label.startswith("Low-rank")]
    return group


@pytest.fixture
def digits(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPRESSION_LENS_CACHE", str(tmp_path))  # LeNet-5 on digits trains in a few seconds
    return {"dataset": "digits", "model": "lenet5"}


def test_controls_sit_in_a_collapsed_group_and_move_the_size(digits):
    at = open_app("overview", **digits)
    assert not at.exception and not at.error
    group = _group(at)
    assert group.label == "Low-rank (off)" and not group.proto.expanded
    assert not group.slider and not group.radio  # closed, it draws nothing inside (opening it reruns the app)
    at.session_state[GROUP_OPEN + "lowrank"] = True  # the user opens it
    at.run()
    group = _group(at)
    assert [s.key for s in group.slider] == ["rank"] and [r.key for r in group.radio] == ["rank_mode", "rank_scope"]
    dense = _size(at)
    at.slider(key="rank").set_value(0.5).run()
    assert not at.exception and not at.error
    assert _size(at) < dense and at.query_params["rank"] == "0.5"
    assert _group(at).label == "Low-rank" and _group(at).proto.expanded
    smaller = _size(at)
    at.radio(key="rank_mode").set_value("fraction").run()
    assert not at.exception and _size(at) != smaller and at.query_params["rank_mode"] == "fraction"
    at.session_state[LAYERS_OPEN] = True  # the Overview's "Layer by layer" open
    at.run()
    table = [t for t in at.dataframe if "Rank kept" in t.value.columns]
    assert table, "the Overview's layer table shows each layer's rank"


def test_a_closed_group_keeps_its_settings(digits):
    """Its widgets are not drawn, yet its settings stay in the session and the link, run after run."""
    at = open_app("overview", **digits, rank_mode="fraction", rank_scope="global")  # rank 1.0: off, closed
    assert not _group(at).proto.expanded and not _group(at).radio
    for _ in range(3):
        at.slider(key="prune").set_value(at.session_state["prune"] + 10).run()
        assert not at.exception and not at.error
        assert at.session_state["rank_mode"] == "fraction" and at.session_state["rank_scope"] == "global"
        assert at.query_params["rank_mode"] == "fraction" and at.query_params["rank_scope"] == "global"
    at.session_state[GROUP_OPEN + "lowrank"] = True
    at.run()
    assert at.radio(key="rank_mode").value == "fraction" and at.radio(key="rank_scope").value == "global"


def test_a_link_restores_the_setting(digits):
    dense = _size(open_app("overview", **digits))
    at = open_app("overview", **digits, rank=0.5, rank_scope="global")
    assert not at.exception and not at.error and not at.warning
    assert at.session_state["rank"] == 0.5 and at.session_state["rank_scope"] == "global"
    assert _size(at) < dense


@pytest.mark.parametrize("raw, expected, words", [("banana", 1.0, "`rank=banana`"), ("0", 0.05, "`rank=0`")])
def test_bad_link_values_get_a_notice(digits, raw, expected, words):
    at = open_app("overview", **digits, rank=raw)
    assert not at.exception and not at.error
    assert at.session_state["rank"] == expected
    assert any(words in w.value for w in at.warning), [w.value for w in at.warning]


@pytest.mark.parametrize("page, extra", [("weights", {}), ("sparsity", {}), ("saliency", {}),
                                         ("saliency", {"saliency_method": "grad_cam"}), ("sanity", {}),
                                         ("sanity", {"sanity_method": "grad_cam"}), ("scrub", {}), ("export", {}),
                                         ("ab", {}), ("draw", {})])
def test_every_page_renders_a_factored_model(digits, page, extra):
    """Pages that pair the original's layers with the compressed model's work on factored layers
    (the effective weights under the original names), with pruning and quantization on the factors;
    Grad-CAM explains the factored last conv by its original name."""
    at = open_app(page, **digits, rank=0.6, prune=50, bits=4, **extra)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("page", ["weights", "sparsity"])
def test_pages_of_weights_say_what_a_factored_layer_shows(digits, page):
    assert not any("Low-rank is on" in c.value for c in open_app(page, **digits).caption)
    at = open_app(page, **digits, rank=0.6)
    assert any("Low-rank is on" in c.value and "effective weights" in c.value for c in at.caption)


def test_scrub_walks_the_share_kept(digits):
    at = open_app("scrub", **digits, rank=0.9, scrub_control="rank")
    assert not at.exception and not at.error, [e.value for e in at.exception]
    import json
    (board,) = [json.loads(e.proto.spec) for e in at.get("plotly_chart") if e.key == "scrub_board_rank"]
    steps = board["layout"]["sliders"][0]["steps"]
    assert [s["label"] for s in steps][-3:] == ["0.98", "0.99", "1.00 (off)"]
    assert board["layout"]["sliders"][0]["active"] == [s["label"] for s in steps].index("0.9")  # the sidebar's value

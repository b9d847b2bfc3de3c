"""The weight sharing and activations/precision controls in the app: generated sidebar groups, links, notices."""
from __future__ import annotations

import json

import pytest
from conftest import open_app

GROUPS = ("Weight sharing", "Activations and precision")


def _groups(at) -> dict[str, bool]:
    """Sidebar expander label -> expanded, for the two families."""
    return {e.label: e.proto.expanded for e in at.sidebar.expander if e.label.startswith(GROUPS)}


def _healthy(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_groups_are_collapsed_while_off_and_open_when_a_link_sets_them():
    at = open_app("overview")
    _healthy(at)
    assert _groups(at) == {"Weight sharing (off)": False, "Activations and precision (off)": False}
    assert at.session_state["share"] == 0 and at.session_state["act_bits"] == 32
    assert not [w for w in at.sidebar.select_slider if w.key in ("share", "act_bits")]  # closed: nothing inside
    at = open_app("overview", share=4, act_bits=8, act_range="histogram", precision="fp16")
    _healthy(at)
    assert not at.warning
    assert _groups(at) == {"Weight sharing": True, "Activations and precision": True}
    assert any("not a speed-up" in c.value for c in at.sidebar.caption)
    assert (at.session_state["share"], at.session_state["act_bits"], at.session_state["precision"]) == (4, 8, "fp16")
    setup = at.caption[0].value
    assert "4-bit weight sharing" in setup and "8-bit activations (histogram range)" in setup and "fp16" in setup
    at.select_slider(key="share").set_value(2).run()
    _healthy(at)
    assert at.query_params["share"] == "2" and "2-bit weight sharing" in at.caption[0].value


def test_sharing_with_a_bit_width_says_which_applies():
    at = open_app("weights", share=3, bits=4)
    _healthy(at)
    assert any("bit width set under Quantization is not used" in c.value for c in at.sidebar.caption)
    assert "quantization" not in at.caption[0].value and "3-bit weight sharing" in at.caption[0].value
    titles = [json.loads(e.proto.spec)["layout"]["title"]["text"] for e in at.get("plotly_chart")]
    assert titles and all("3-bit" in t for t in titles), titles  # the histograms name sharing's bits


@pytest.mark.parametrize("key, raw, expected, notice", [
    ("share", "12", 8, "`share=12` in the link is not a setting of “Shared values per layer”"),
    ("act_bits", "abc", 32, "`act_bits=abc` in the link is not a setting of “Activation bits”"),
    ("act_bits", "1", 2, "using 2, the nearest"),
    ("precision", "fp64", "fp32", "`precision=fp64` in the link is not a setting of “Number format”"),
    ("act_range", "percentile", "minmax", "not a setting of “Activation range”"),
])
def test_bad_link_values_get_notices(key, raw, expected, notice):
    at = open_app("overview", **{key: raw})
    _healthy(at)
    assert at.session_state[key] == expected
    shown = [w.value for w in at.warning]
    assert len(shown) == 1 and notice in shown[0], shown


@pytest.mark.parametrize("page", ["overview", "weights", "sparsity", "saliency"])
def test_extreme_settings_keep_every_page_working(page):
    at = open_app(page, prune=100, share=1, act_bits=2, precision="bf16")
    _healthy(at)
    assert not [m for m in at.metric if "nan" in str(m.value).lower()]
    at.select_slider(key="share").set_value(0).run()
    at.select_slider(key="bits").set_value(1).run()
    _healthy(at)

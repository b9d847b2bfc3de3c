"""AppTest of the Overview's small print: no delta for a zero change, what 100 % pruning means,
accuracy with its interval, the layer table in the charts' names; Your digit at 100 % pruning.
"""
from __future__ import annotations

import re

from conftest import open_app

from core.stats import accuracy_interval, format_interval
from ui.panels import LAYERS_OPEN


def _card(at, label):
    (card,) = [m for m in at.metric if m.label == label]
    return card


def test_an_uncompressed_model_shows_no_change_and_the_accuracy_interval():
    at = open_app("overview")
    assert not at.exception
    assert not at.dataframe  # the closed "Layer by layer" draws nothing (a move would resend it)
    at.session_state[LAYERS_OPEN] = True  # as a click on it does
    at.run()
    for label in ("Test accuracy", "Size", "MACs per image"):
        assert _card(at, label).delta in (None, ""), label
    accuracy = float(_card(at, "Test accuracy").value.split()[0]) / 100
    interval = format_interval(*accuracy_interval(accuracy, 1000))
    (caption,) = [c.value for c in at.caption if c.value.startswith("Test accuracy is measured on 1,000 images")]
    assert f"original {accuracy * 100:.1f} % ({interval})" in caption and "95 % intervals (Wilson)" in caption
    table = at.dataframe[0].value
    assert table["Layer"].iloc[0] == "conv 1 (6×1×5×5)" and "Zero after compression" in table.columns
    assert table["Zero after compression"].iloc[0] == "0 %"


def test_everything_pruned_says_all_weights_removed_and_your_digit_says_only_biases_answer():
    at = open_app("overview", prune=100)
    at.session_state[LAYERS_OPEN] = True  # the layer table open
    at.run()
    assert not at.exception
    assert _card(at, "MACs per image").delta == "all weights removed"
    assert not any("∞" in (m.delta or "") for m in at.metric)
    assert all(v == "100 %" for v in at.dataframe[0].value["Zero after compression"])
    pts = _card(at, "Test accuracy").delta
    assert pts and re.fullmatch(r"-\d+\.\d pts", pts)


def test_your_digit_at_full_pruning_says_only_the_biases_answer():
    from test_app_draw import picture, upload

    at = upload(open_app("draw", prune=100), "seven.png", picture("7"))
    assert not at.exception and not at.error
    assert any("only its biases answer" in i.value for i in at.info)
    at.slider(key="prune").set_value(90).run()
    assert not any("only its biases answer" in i.value for i in at.info)


def test_deltas_round_to_zero_without_an_arrow_and_never_claim_all_gone():
    from ui.panels import delta as _delta

    assert _delta(0.04, 1, "pts") is None and _delta(-0.04, 1, "pts") is None and _delta(-0.4, 0, "%") is None
    assert _delta(-1.26, 1, "pts") == "-1.3 pts" and _delta(-99.6, 0, "%") == "-99.6 %"
    assert _delta(-100.0, 0, "%") == "-100 %"

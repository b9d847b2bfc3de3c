"""AppTest of the A/B view: freeze a setting, change the sidebar, see both side by side; A survives
page switches and travels in the link (?ab=), and a bad ?ab= gets a notice instead of an error.
"""
from __future__ import annotations

from conftest import open_app
from ui.glossary import GLOSSARY_OPEN


def _texts(elements):
    return [e.value for e in elements]


def _healthy(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, _texts(at.error)


def test_freeze_magnitude_then_compare_with_random():
    at = open_app("overview", prune=50)
    at.button(key="ab_freeze").click().run()
    _healthy(at)
    assert at.session_state["ab"] == "prune.50"
    at.radio(key="method").set_value("random").run()
    at.switch_page("pages/weights.py").run()  # another page first: A must survive the switch
    at.switch_page("pages/ab.py").run()
    _healthy(at)
    assert [s.value for s in at.subheader] == ["A (frozen)", "B (the sidebar now)"]
    captions = _texts(at.caption)
    assert any("50% magnitude pruning" in c for c in captions) and any("50% random pruning" in c for c in captions)
    accuracies = [m.value for m in at.metric if m.label == "Test accuracy"]
    assert len(accuracies) == 2 and accuracies[0] != accuracies[1]
    assert sum("95 % interval of the accuracy (Wilson, 1,000 test images)" in c for c in captions) == 2
    assert any(t.startswith("B − A: ") for t in _texts(at.markdown))
    keys = {c.key for c in at.get("plotly_chart")}
    assert {"ab_per_class_A", "ab_per_class_B", "ab_weights_A", "ab_weights_B"} <= keys
    assert at.query_params["ab"] == ["prune.50"] or at.query_params["ab"] == "prune.50"

    at.button(key="ab_swap").click().run()  # the sidebar takes A (magnitude), A takes B (random)
    _healthy(at)
    assert at.radio(key="method").value == "magnitude" and at.session_state["ab"] == "prune.50~method.random"
    at.button(key="ab_clear").click().run()
    _healthy(at)
    assert any(b.key == "ab_freeze_page" for b in at.button) and "ab" not in at.session_state


def test_a_link_carries_a_and_a_bad_one_gets_a_notice():
    at = open_app("ab", ab="prune.50~method.random", prune=50)
    _healthy(at)
    assert any("50% random pruning" in c for c in _texts(at.caption))
    assert any("50% magnitude pruning" in c for c in _texts(at.caption))

    bad = open_app("ab", ab="prune.abc~bits.4")
    assert not bad.exception
    assert any("ab=" in w and "prune 'abc' cannot be used" in w for w in _texts(bad.warning))
    assert any(b.key == "ab_freeze_page" for b in bad.button)  # nothing frozen: the invitation


def test_the_glossary_is_on_every_page_and_has_its_own_page():
    at = open_app("glossary")
    _healthy(at)
    text = "\n".join(_texts(at.markdown))
    for term in ("MAC", "Sparsity", "SSIM", "Spearman correlation", "Per channel", "Welch test", "÷ max",
                 "Wilson interval", "Fake quantization", "Bitmask", "Low-rank factorization", "Singular values"):
        assert f"**{term}" in text, term
    assert "97.5–99.1 %" in text  # the example interval, computed by core.stats
    overview = open_app("overview")
    # The sidebar's popover draws its text only while open (opening it reruns the app).
    assert not any("**Welch test**" in m.value for m in overview.markdown)
    overview.session_state[GLOSSARY_OPEN] = True
    overview.run(timeout=120)
    assert any("**Welch test**" in m.value for m in overview.markdown)


def test_an_a_on_data_this_server_lacks_is_dropped_with_a_notice(monkeypatch, tmp_path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("COMPRESSION_LENS_DATA", str(empty))  # offline: torchvision's download fails
    at = open_app("ab", ab="dataset.mnist~prune.50")
    assert not at.exception and not at.error
    assert any(w.startswith("A cannot be shown:") and "A was dropped" in w for w in _texts(at.warning))
    assert "ab" not in at.session_state and any(b.key == "ab_freeze_page" for b in at.button)

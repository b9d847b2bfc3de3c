"""AppTest of the Diagnosis page and of the summary in words on the Overview (default LeNet-5 on mnist5k,
cached on disk like in the app): the page runs, its settings live in the link, the group picks the gallery,
Open takes an image to the Saliency page, and the summary follows the pruning slider."""
from __future__ import annotations

from conftest import open_app


def _healthy(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _open_buttons(at) -> list[str]:
    return [b.key for b in at.button if b.key and b.key.startswith("diag_open_")]


def _summary(at) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("**In words.**"))


def test_the_page_shows_confusions_groups_and_calibration():
    at = open_app("diagnosis", prune=90, bits=4)
    _healthy(at)
    assert at.title[0].value == "Which mistakes did compression add?"
    keys = {c.key for c in at.get("plotly_chart")}
    assert {"diag_confusion", "diag_reliability"} <= keys
    assert any("now read as" in m.value for m in at.markdown)            # the grown confusions in words
    counts = {m.label: m.value for m in at.metric}
    assert sum(int(v.replace(",", "")) for v in counts.values()) == 1000  # every test image in one group
    assert any("calibration error" in c.value for c in at.caption)
    at.radio(key="diag_matrix").set_value("original").run()
    _healthy(at)
    assert at.query_params["diag_matrix"] in (["original"], "original")


def test_changing_the_group_changes_the_gallery():
    at = open_app("diagnosis", prune=90, bits=4)
    newly_wrong = _open_buttons(at)
    assert at.radio(key="diag_group").value == "newly_wrong" and newly_wrong
    at.radio(key="diag_group").set_value("right_both").run()
    _healthy(at)
    right = _open_buttons(at)
    assert right and set(right).isdisjoint(newly_wrong)
    assert at.query_params["diag_group"] in (["right_both"], "right_both")
    at.number_input(key="diag_first").set_value(10).run()
    assert set(_open_buttons(at)).isdisjoint(right)


def test_an_empty_group_and_a_bad_link_get_words():
    at = open_app("diagnosis", diag_group="newly_right", diag_first=5000)  # nothing compressed: nobody changed
    _healthy(at)
    assert any("No test image is newly right" in i.value for i in at.info)
    bad = open_app("diagnosis", diag_group="nonsense")
    _healthy(bad)
    assert bad.radio(key="diag_group").value == "newly_wrong"
    assert any("diag_group" in w.value for w in bad.warning)


def test_open_takes_the_image_to_the_saliency_page():
    at = open_app("diagnosis", prune=90, bits=4)
    key = _open_buttons(at)[0]
    index = int(key.removeprefix("diag_open_"))
    at.button(key=key).click().run()
    _healthy(at)
    assert at.title[0].value == "Do the explanations survive?"
    assert at.radio(key="saliency_mode").value == "by index"
    assert at.number_input(key="saliency_index").value == index
    assert any(c.key == f"saliency_{index}" for c in at.get("plotly_chart"))


def test_the_overview_summary_follows_the_pruning_slider():
    at = open_app("overview")
    _healthy(at)
    before = _summary(at)
    assert "gives the original's answer on all 1,000 test images" in before
    at.slider(key="prune").set_value(90).run()
    _healthy(at)
    after = _summary(at)
    assert after != before and "Accuracy went from" in after and "smaller" in after

"""The Explanation quality page through AppTest: it renders for the default model, its table and its answer
in words change with the pruning slider, and extreme settings (100 % pruning: every map zero) get a note,
never NaN. The heavier variants use the small MLP on digits, trained into a temporary model cache."""
from __future__ import annotations

import pytest

from conftest import open_app

TITLE = "Is a smaller model easier to explain?"



def healthy(at) -> None:
    assert not at.exception, [(e.value, *e.stack_trace) for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert [t.value for t in at.title] == [TITLE]


def table(at):
    (frame,) = at.dataframe
    return frame.value


def test_the_page_renders_for_the_default_model_with_chance_beside_every_measure():
    at = open_app("quality", prune=90)
    healthy(at)
    shown = table(at)
    assert {"Sparseness (Gini index of |map|)", "Complexity (entropy of |map|)"} <= set(shown["Measure"])
    assert shown["Random map"].notna().all() and "nan" not in shown.to_string().lower()
    assert any(i.value.startswith("Simpler?") and "Still faithful?" in i.value for i in at.info)
    assert "Completeness" not in set(shown["Measure"].str.split(" ").str[0])  # saliency maps: IG only


def test_moving_the_slider_changes_the_numbers(small):
    at = open_app("quality", **small)
    healthy(at)
    dense = table(at)
    assert (dense["Original"] == dense["Compressed"]).all()  # nothing compressed: the same maps
    at.sidebar.slider[0].set_value(80).run()
    healthy(at)
    assert not table(at)["Compressed"].equals(dense["Compressed"])


def test_integrated_gradients_shows_completeness(small):
    at = open_app("quality", quality_method="integrated_gradients", prune=50, **small)
    healthy(at)
    assert any(m.startswith("Completeness") for m in table(at)["Measure"])


def test_everything_pruned_gets_a_note_and_no_nan(small):
    at = open_app("quality", prune=100, **small)
    healthy(at)
    assert any("zero everywhere" in w.value for w in at.warning)
    assert "nan" not in table(at).to_string().lower()


def test_the_tradeoff_curves_offer_sparseness_with_its_chance_line(small):
    import ui.cache
    at = open_app("tradeoffs", sweep_metric="sparseness", **small)
    assert ui.cache.wait_for_tables(300)
    at.run()
    assert not at.exception and not at.error
    captions = " ".join(c.value for c in at.caption)
    assert "chance, a map of random noise" in captions and "Explanation quality of the compressed model" in captions
    assert at.selectbox(key="sweep_metric").value == "sparseness"

"""AppTest of "Prepare the class" (Lessons page): it trains and saves every model of the plan, measures the
Trade-offs tables and the Forgotten examples population, then says so.

The plan is swapped for tiny MLPs on the 8x8 digits in a temporary model cache, so each test
runs in seconds; tests/test_warm.py checks what the real plan lists.
"""
from __future__ import annotations

from conftest import Calls, open_app

import ui.cache
import ui.prepare
from core.training import TrainConfig, checkpoint_path

PLAN = [TrainConfig(model="mlp", dataset="digits", epochs=1, seed=seed) for seed in (811, 812)]


def test_prepare_the_class_trains_every_model_of_the_plan_once(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESSION_LENS_CACHE", str(tmp_path))
    monkeypatch.setattr(ui.prepare, "plan", lambda: PLAN)
    monkeypatch.setattr(ui.prepare, "table_plan", lambda: ())  # models only: the test below measures tables
    monkeypatch.setattr(ui.prepare, "population_plan", lambda: ())
    at = open_app("lessons", dataset="digits", model="mlp")
    assert not at.exception, [e.value for e in at.exception]
    assert any("2 of the 2 models" in m.value and "MLP 128-64 seed 811" in m.value for m in at.markdown)
    assert not any(checkpoint_path(cfg).exists() for cfg in PLAN)

    at.button(key="prepare_class_button").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert all(checkpoint_path(cfg).exists() for cfg in PLAN)
    assert any("Ready for a class: the 2 trained models" in c.value for c in at.caption)
    assert not [b for b in at.button if b.key == "prepare_class_button"]

    again = open_app("lessons", dataset="digits", model="mlp")  # a new visitor: nothing left to prepare
    assert any("Ready for a class: the 2 trained models" in c.value for c in again.caption)


# The small MLP on digits, at settings no other test uses (so its tables are new to this process).
SMALL = {"model": "mlp", "dataset": "digits", "scheme": "affine", "range": "minmax", "granularity": "per_tensor"}


def test_after_preparing_the_tradeoffs_and_forgotten_pages_start_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESSION_LENS_CACHE", str(tmp_path))
    ui.cache._training_job.clear()  # the MLP the test above trained (in its own cache) is not in this one
    defaults = {**ui.prepare.defaults(), **SMALL, "pie_size": 3}
    monkeypatch.setattr(ui.prepare, "defaults", lambda: defaults)
    monkeypatch.setattr(ui.prepare, "class_views", lambda: [{"page": "tradeoffs"}, {"page": "forgotten"},
                                                            {"page": "forgotten", "prune": 90}])
    tables, curves = Calls(ui.cache.sweeps.method_table), Calls(ui.cache.pie_curve)
    votes = Calls(ui.cache.population_predictions)
    monkeypatch.setattr(ui.cache.sweeps, "method_table", tables)
    monkeypatch.setattr(ui.cache, "pie_curve", curves)
    monkeypatch.setattr(ui.cache, "population_predictions", votes)
    monkeypatch.setattr(ui, "prefetch_population", lambda *args: None)  # its guesses would add votes
    at = open_app("lessons", **SMALL)
    assert not at.exception, [e.value for e in at.exception]
    (box,) = [m.value for m in at.markdown if "not trained yet" in m.value]
    assert "the 4 tables of the Trade-offs page and the Forgotten examples population" in box

    at.button(key="prepare_class_button").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert tables.count == 4 and curves.count == 1  # one table per pruning method, one population curve
    assert votes.count == 3  # the originals' votes once, the compressed population's at 0 % and 90 %
    assert any("the 4 Trade-offs tables and the Forgotten examples population are measured" in c.value
               for c in at.caption), [m.value for m in at.markdown if "measured" in m.value]

    trade = open_app("tradeoffs", **SMALL)
    assert not trade.exception and not trade.error, [e.value for e in [*trade.exception, *trade.error]]
    assert not any("Still measuring" in i.value for i in trade.info)
    assert tables.count == 4  # the page found every table measured
    forgotten = open_app("forgotten", pie_size=3, prune=90, **SMALL)
    assert not forgotten.exception and not forgotten.error
    assert curves.count == 1 and votes.count == 3  # the curve and both populations' votes were ready


def test_with_the_models_saved_the_button_still_offers_the_tables(tmp_path, monkeypatch):
    """After a server restart (or `make warm`), the models are on disk but the tables are not in memory."""
    monkeypatch.setenv("COMPRESSION_LENS_CACHE", str(tmp_path))
    defaults = {**ui.prepare.defaults(), **SMALL}
    monkeypatch.setattr(ui.prepare, "defaults", lambda: defaults)
    monkeypatch.setattr(ui.prepare, "class_views", lambda: [{"page": "tradeoffs"}])
    monkeypatch.setattr(ui.prepare, "plan", lambda: PLAN[:1])
    monkeypatch.setattr(ui.cache, "on_disk", lambda cfg: True)
    monkeypatch.setattr(ui.prepare, "on_disk", lambda cfg: True)
    at = open_app("lessons", **SMALL)
    assert not at.exception, [e.value for e in at.exception]
    assert any("The 1 model the pages and lessons use are saved. Not yet measured on this server" in m.value
               for m in at.markdown)
    assert at.button(key="prepare_class_button")

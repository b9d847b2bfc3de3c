"""AppTest of "Prepare the class" (Lessons page): it trains and saves every model of the plan, then says so.

The plan is swapped for two tiny MLPs on the 8x8 digits in a temporary model cache, so the test
trains for about a second; tests/test_warm.py checks what the real plan lists.
"""
from __future__ import annotations

from conftest import open_app

import ui.prepare
from core.training import TrainConfig, checkpoint_path

PLAN = [TrainConfig(model="mlp", dataset="digits", epochs=1, seed=seed) for seed in (811, 812)]


def test_prepare_the_class_trains_every_model_of_the_plan_once(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESSION_LENS_CACHE", str(tmp_path))
    monkeypatch.setattr(ui.prepare, "plan", lambda: PLAN)
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

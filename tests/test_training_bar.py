"""ui.cache.trained_models: one progress bar for several models, saying which model of how many.

The shared training jobs are replaced by fake ones that report four epochs in about a second, and
st.progress by a recorder, so nothing trains and no Streamlit session is needed.
"""
from __future__ import annotations

import time

from torch import nn

import ui.cache as cache
from core.training import TrainConfig, TrainResult
from ui.jobs import Job


def _fake_job(cfg):
    def work(progress):
        for epoch in range(1, 5):
            time.sleep(0.3)
            progress(epoch / 4, f"epoch {epoch}/4")
        return TrainResult(model=nn.Linear(1, 1), from_cache=False)
    return Job(f"fake-{cfg.seed}", work)


class Bar:
    def __init__(self, texts):
        self.texts = texts

    def progress(self, fraction, text):
        assert 0.0 <= fraction <= 1.0
        self.texts.append(text)
        return self

    def empty(self):
        self.texts.append("(gone)")


def test_one_bar_names_each_model_and_the_time_left(monkeypatch):
    jobs = {}
    monkeypatch.setattr(cache, "_training_job", lambda cfg: jobs.setdefault(cfg, _fake_job(cfg)))
    monkeypatch.setattr(cache, "on_disk", lambda cfg: False)
    texts: list[str] = []
    monkeypatch.setattr(cache.st, "progress", lambda fraction, text: Bar(texts).progress(fraction, text))
    configs = [TrainConfig(seed=0), TrainConfig(seed=1)]
    found = cache.trained_models(configs)
    assert len(found) == 2 and all(isinstance(m, nn.Linear) for m in found)
    prefix = "Training the models this page needs (first use only): "
    assert all(t.startswith(prefix) for t in texts[:-1]) and texts[-1] == "(gone)"
    assert any(t.startswith(prefix + "model 1 of 2: LeNet-5 seed 0, epoch") for t in texts)
    assert any(t.startswith(prefix + "model 2 of 2: LeNet-5 seed 1, epoch") and t.endswith("left") for t in texts)
    assert any("about" in t or "a few seconds" in t for t in texts)

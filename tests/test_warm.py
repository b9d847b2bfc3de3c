"""core.warm: which models a class needs, and one honest progress message for training them all."""
from __future__ import annotations

import pytest

from core import warm
from core.lessons import Lesson, Step
from core.training import TrainConfig

DEFAULTS = {"page": "overview", "model": "lenet5", "dataset": "mnist5k", "pie_size": 5, "sweep_seeds": 1}


def _seeds(configs):
    return [(c.model, c.dataset, c.seed) for c in configs]


def test_the_recipe_trains_big_sets_for_fewer_epochs():
    assert warm.recipe("lenet5", "mnist5k") == TrainConfig(model="lenet5", dataset="mnist5k", epochs=20)
    assert warm.recipe("mlp", "cifar10").epochs == 3


def test_a_plain_page_needs_one_model_and_forgotten_needs_the_population():
    assert _seeds(warm.needed_models([{"page": "weights"}], DEFAULTS)) == [("lenet5", "mnist5k", 0)]
    forgotten = warm.needed_models([{"page": "forgotten"}], DEFAULTS)
    assert _seeds(forgotten) == [("lenet5", "mnist5k", s) for s in range(5)]
    assert _seeds(warm.needed_models([{"page": "forgotten", "pie_size": 3}], DEFAULTS))[-1] == ("lenet5", "mnist5k", 2)
    assert len(warm.needed_models([{"page": "tradeoffs", "sweep_seeds": 3}], DEFAULTS)) == 3


def test_models_are_listed_once_in_order_of_first_need():
    views = [{"page": "overview"}, {"page": "tradeoffs", "sweep_seeds": 2}, {"page": "overview", "model": "mlp"},
             {"page": "forgotten", "pie_size": 3}, {"page": "saliency", "dataset": "digits", "model": "mlp"}]
    assert _seeds(warm.needed_models(views, DEFAULTS)) == [
        ("lenet5", "mnist5k", 0), ("lenet5", "mnist5k", 1), ("mlp", "mnist5k", 0), ("lenet5", "mnist5k", 2),
        ("mlp", "digits", 0)]


def test_class_plan_covers_every_page_and_every_lesson_step():
    lesson = Lesson("x", "X", "x", (Step("a", "a", {"page": "overview", "model": "mlp"}),
                                    Step("b", "b", {"page": "tradeoffs", "sweep_seeds": 2})))
    plan = warm.class_plan(["weights", "overview", "forgotten"], [lesson], DEFAULTS)
    assert _seeds(plan) == [("lenet5", "mnist5k", s) for s in range(5)] + [("mlp", "mnist5k", 0)]
    assert warm.page_views(["weights", "overview"]) == [{"page": "overview"}, {"page": "weights"}]


def test_the_app_plan_is_the_default_model_and_the_forgotten_population():
    from ui.prepare import plan  # the real pages, lessons and defaults
    assert _seeds(plan()) == [("lenet5", "mnist5k", s) for s in range(5)]


@pytest.mark.parametrize("seconds, text", [(2, "a few seconds"), (41, "about 40 s"), (43, "about 45 s"),
                                           (89, "about 90 s"), (150, "about 2 min"), (600, "about 10 min")])
def test_format_seconds(seconds, text):
    assert warm.format_seconds(seconds) == text


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_says_which_model_of_how_many_and_how_long_is_left():
    clock = Clock()
    progress = warm.Progress(["LeNet-5 seed 0", "LeNet-5 seed 1", "LeNet-5 seed 2"], clock=clock)
    progress.start(0)
    assert progress.update(0.0, "starting")[1] == "model 1 of 3: LeNet-5 seed 0, starting, estimating the time left"
    clock.now = 5.0  # half of model 1 in 5 s: 5 s more for it, then 2 x 10 s
    fraction, text = progress.update(0.5, "epoch 10/20")
    assert text == "model 1 of 3: LeNet-5 seed 0, epoch 10/20, about 25 s left"
    assert fraction == pytest.approx(5 / 30)
    clock.now = 12.0
    progress.finish()  # model 1 took 12 s: the estimate learns from it
    progress.start(1)
    clock.now = 15.0
    assert progress.seconds_left(0.0) == pytest.approx(9 + 12)
    assert progress.update(0.25, "epoch 5/20")[1].startswith("model 2 of 3: LeNet-5 seed 1, epoch 5/20, about")


def test_models_already_on_disk_do_not_count_towards_the_time_left():
    clock = Clock()
    progress = warm.Progress(["a", "b", "c"], ready=[False, True, True], clock=clock)
    progress.start(0)
    clock.now = 4.0
    assert progress.seconds_left(0.5) == pytest.approx(4.0)


def test_one_model_is_not_numbered():
    progress = warm.Progress(["LeNet-5 seed 0"], clock=Clock())
    progress.start(0)
    assert progress.update(0.0, "")[1] == "LeNet-5 seed 0, estimating the time left"


def test_warm_trains_each_model_in_turn_with_one_running_message():
    clock = Clock()
    configs = [TrainConfig(seed=s) for s in range(3)]
    trained, messages = [], []

    def fake_train(cfg, progress):  # 10 fake seconds per model, two progress reports each
        for epoch in (1, 2):
            clock.now += 5.0
            progress(epoch / 2, f"epoch {epoch}/2")
        trained.append(cfg.seed)
        return f"model {cfg.seed}"

    results = warm.warm(configs, fake_train, lambda f, m: messages.append((f, m)),
                        ready=lambda cfg: cfg.seed == 1, clock=clock)
    assert trained == [0, 1, 2] and results == ["model 0", "model 1", "model 2"]
    texts = [m for _, m in messages]
    assert texts[0] == "model 1 of 3: LeNet-5 seed 0, starting, estimating the time left"
    assert "model 1 of 3: LeNet-5 seed 0, epoch 1/2, about 15 s left" in texts  # 5 s for it, 10 s for seed 2
    assert "model 2 of 3: LeNet-5 seed 1, loading from disk, about 10 s left" in texts
    assert texts[-1] == "all 3 models are ready" and messages[-1][0] == 1.0
    fractions = [f for f, _ in messages]
    assert all(0.0 <= f <= 1.0 for f in fractions)


def test_warm_names_the_dataset_when_the_plan_has_several():
    seen = []
    warm.warm([TrainConfig(dataset="mnist5k"), TrainConfig(model="mlp", dataset="digits")],
              lambda cfg, progress: None, lambda f, m: seen.append(m), clock=Clock())
    assert seen[1].startswith("model 2 of 2: MLP 128-64 seed 0 on digits, starting, ")


def test_the_bar_never_moves_back():
    clock = Clock()
    progress = warm.Progress(["a", "b"], clock=clock)
    progress.start(0)
    clock.now = 1.0
    first, _ = progress.update(0.5)  # looks quick: 1 s for half a model
    clock.now = 30.0
    later, _ = progress.update(0.5)  # stuck: the estimate grows, the bar stays
    assert later >= first > 0


def test_models_on_disk_only_take_a_few_seconds():
    progress = warm.Progress(["a", "b"], ready=[True, True], clock=Clock())
    progress.start(0)
    assert progress.update(0.0, "loading from disk")[1] == "model 1 of 2: a, loading from disk, a few seconds left"


def test_phases_share_one_bar_and_number_their_own_tasks():
    clock, messages = Clock(), []

    def table(index, progress):  # 30 fake seconds per table
        clock.now += 10.0
        progress(40 / 117, "40 of 117 settings")
        clock.now += 20.0
        return index

    phases = [warm.model_phase([TrainConfig(seed=0)], lambda cfg, progress: "model", ready=lambda cfg: True),
              warm.Phase("table", ["global magnitude", "layer-wise magnitude"], table),
              warm.Phase("population", ["Forgotten examples, 5 models"], lambda index, progress: None)]
    results = warm.run_phases(phases, lambda f, m: messages.append((f, m)), clock=clock)
    assert results == [["model"], [0, 1], [None]]
    texts = [m for _, m in messages]
    assert texts[0] == "LeNet-5 seed 0, loading from disk, a few seconds left, then 2 tables and 1 population"
    assert "table 1 of 2: global magnitude, 40 of 117 settings, about 50 s left, then 1 population" in texts
    assert "table 2 of 2: layer-wise magnitude, 40 of 117 settings, about 20 s left, then 1 population" in texts
    assert texts[-2].startswith("Forgotten examples, 5 models, starting")
    assert texts[-1] == "all 1 model, 2 tables and 1 population are ready"
    fractions = [f for f, _ in messages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # one bar that never moves back
    assert all(f <= 0.75 for f, m in messages if m.startswith("table"))  # the population's quarter is left


def test_one_task_is_ready_in_words():
    seen = []
    warm.run_phases([warm.Phase("table", ["random"], lambda index, progress: None)], lambda f, m: seen.append(m),
                    clock=Clock())
    assert seen[-1] == "the table is ready"

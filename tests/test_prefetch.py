"""The prefetcher: guessed next requests (the pruning steps either side) run in the background."""
import threading

import ui.cache as cache
from core.compression import CompressionConfig
from ui.jobs import Prefetcher
from ui.setup import Setup, train_config


def test_neighbour_steps_are_guessed_within_range(monkeypatch):
    seen = []
    prefetcher = Prefetcher(lambda setup: seen.append(round(setup.compression.prune_amount * 100)))
    monkeypatch.setattr(cache, "_prefetcher", lambda: prefetcher)
    ready = threading.Event()
    ready.set()
    monkeypatch.setattr(cache, "_training_job", lambda cfg: type("Job", (), {"done": ready})())
    for percent, expected in ((40, [41, 39]), (0, [1]), (100, [99])):
        seen.clear()
        cache.prefetch_neighbours(Setup(train_config("mlp", "digits"),
                                              CompressionConfig(prune_amount=percent / 100)))
        assert prefetcher.idle()
        assert seen == expected


def test_a_busy_prefetcher_drops_new_requests_and_survives_errors():
    release, calls = threading.Event(), []

    def slow(item):
        calls.append(item)
        release.wait(5)
        raise RuntimeError("a guess that failed")

    prefetcher = Prefetcher(slow)
    prefetcher([1, 2])
    prefetcher([3])  # dropped: the worker is busy
    release.set()
    assert prefetcher.idle()
    assert calls == [1]  # the first item raised, so the second was not tried
    seen = []
    prefetcher._work = seen.append
    prefetcher([4, 5])
    assert prefetcher.idle() and seen == [4, 5]  # it still works after an error


def test_guesses_wait_for_the_asking_run_to_end(monkeypatch):
    # The run that asks is still sending its messages: the guesses start only once its thread has ended.
    monkeypatch.setattr(Prefetcher, "SEND_GRACE_S", 0.0)
    release, order = threading.Event(), []
    run = threading.Thread(target=lambda: (release.wait(5), order.append("run ended")))
    run.start()
    prefetcher = Prefetcher(lambda item: order.append(item))
    prefetcher([1, 2], after=run)
    assert not prefetcher.idle(timeout=0.2) and order == []  # still waiting for the run
    release.set()
    assert prefetcher.idle() and order == ["run ended", 1, 2]


def test_the_overview_chart_is_part_of_a_guess(monkeypatch):
    calls = []
    for name in ("report", "comparison_summary", "per_class_figure"):
        monkeypatch.setattr(cache, name, lambda setup, name=name: calls.append(name))
    cache._prefetch_move(Setup(train_config("mlp", "digits"), CompressionConfig(prune_amount=0.4)))
    assert calls == ["report", "comparison_summary", "per_class_figure"]


def test_population_guesses_wait_while_a_class_is_on_the_server(monkeypatch):
    # The Forgotten examples page guesses the next steps' votes as the Overview does, and under the same rule.
    seen, busy = [], [True]
    cache._population_prefetcher.clear()
    monkeypatch.setattr(cache, "population_view", lambda train, size, c: seen.append(round(c.prune_amount * 100)))
    monkeypatch.setattr(cache, "_quiet_server", lambda: not busy[0])
    train = train_config("mlp", "digits")
    try:
        cache.prefetch_population(train, 5, CompressionConfig(prune_amount=0.4))
        assert cache._population_prefetcher().idle() and seen == []  # a class is on: no guesses
        busy[0] = False
        cache.prefetch_population(train, 5, CompressionConfig(prune_amount=0.4))
        assert cache._population_prefetcher().idle() and seen == [41, 39]
    finally:
        cache._population_prefetcher.clear()

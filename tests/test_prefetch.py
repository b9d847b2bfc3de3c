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

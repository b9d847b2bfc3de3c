"""ui.cache's prefetcher: the reports one pruning step either side are computed in the background."""
import threading
import time
from dataclasses import replace

import ui.cache as cache
from core.compression import CompressionConfig


def _setup(percent: int) -> cache.Setup:
    return cache.Setup(cache.train_config("mlp", "digits"), CompressionConfig(prune_amount=percent / 100))


def _wait_idle(prefetcher: cache._Prefetcher) -> None:
    deadline = time.monotonic() + 10
    while not prefetcher._busy.acquire(blocking=False):
        assert time.monotonic() < deadline, "prefetch never finished"
        time.sleep(0.01)
    prefetcher._busy.release()


def test_neighbours_are_computed_and_the_range_is_respected(monkeypatch):
    seen = []
    monkeypatch.setattr(cache, "report", lambda setup: seen.append(round(setup.compression.prune_amount * 100)))
    prefetcher = cache._Prefetcher()
    for percent, expected in ((40, [41, 39]), (0, [1]), (100, [99])):
        seen.clear()
        prefetcher(_setup(percent))
        _wait_idle(prefetcher)
        assert seen == expected


def test_a_busy_prefetcher_drops_new_requests_and_survives_errors(monkeypatch):
    release, calls = threading.Event(), []

    def slow(setup):
        calls.append(setup)
        release.wait(5)
        raise RuntimeError("a guess that failed")

    monkeypatch.setattr(cache, "report", slow)
    prefetcher = cache._Prefetcher()
    prefetcher(_setup(10))
    prefetcher(_setup(60))  # dropped: the worker is busy
    release.set()
    _wait_idle(prefetcher)
    assert {round(s.compression.prune_amount * 100) for s in calls} <= {9, 11}
    seen = []
    monkeypatch.setattr(cache, "report", lambda setup: seen.append(setup))
    prefetcher(replace(_setup(10), compression=CompressionConfig(prune_amount=0.5)))
    _wait_idle(prefetcher)
    assert len(seen) == 2  # it still works after an error

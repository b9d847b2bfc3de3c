"""A class on one process (issue 11 §2): cheap cache keys, figures shared per setting, a prefetcher that
yields to real reruns, and memory handed back when a session closes."""
from __future__ import annotations

import copy
import dataclasses
import threading

import plotly.io as pio
import pytest
from conftest import open_app

import ui.cache as cache
from core.compression import CompressionConfig
from core.training import TrainConfig
from ui.jobs import Activity, Prefetcher
from ui import url_state
from ui.setup import Setup, UploadedTrain, setup_from, train_config


def _changed(value: object) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    raise AssertionError(f"no test value for {value!r}")


def test_the_fast_key_names_every_field_and_the_type():
    base = Setup(train_config("mlp", "digits"), CompressionConfig(prune_amount=0.3, weight_bits=4))
    assert cache.config_key(base) == cache.config_key(Setup(train_config("mlp", "digits"),
                                                            CompressionConfig(prune_amount=0.3, weight_bits=4)))
    keys = {cache.config_key(base)}
    for part in ("train", "compression"):
        inner = getattr(base, part)
        for f in dataclasses.fields(inner):
            changed = copy.copy(inner)  # set directly: the key does not care whether the value makes sense
            object.__setattr__(changed, f.name, _changed(getattr(inner, f.name)))
            other = dataclasses.replace(base, **{part: changed})
            key = cache.config_key(other)
            assert key not in keys, f"{part}.{f.name} is not in the key"
            keys.add(key)
    train = train_config("mlp", "digits")
    upload = UploadedTrain(**dataclasses.asdict(train), weights="abc")
    assert type(train) is TrainConfig
    assert len({cache.config_key(train), cache.config_key(upload),
                cache.config_key(dataclasses.replace(upload, weights="abd"))}) == 3
    assert cache.config_key(0.1) == cache.config_key(0.1) != cache.config_key(0.1 + 1e-12)  # floats exactly


def test_activity_counts_other_sessions_and_forgets_stale_runs():
    now = [0.0]
    act = Activity(stale=5.0, clock=lambda: now[0])
    assert act.others() == 0
    act.begin("a")
    act.begin("b")
    assert act.others("a") == 1 and act.others() == 2
    act.end("b")
    assert act.others("a") == 0 and act.others() == 1
    now[0] = 6.0  # "a" never said it ended (an exception, a closed tab): it stops counting
    assert act.others() == 0


def test_the_prefetcher_waits_while_others_run_and_yields_between_guesses():
    busy, seen = [True], []
    prefetcher = Prefetcher(seen.append, idle_server=lambda: not busy[0])
    prefetcher([1, 2])
    assert prefetcher.idle() and seen == []  # other sessions are in a run: nothing is guessed
    busy[0] = False
    prefetcher([1, 2])
    assert prefetcher.idle() and seen == [1, 2]

    def work(item):  # someone else's rerun starts while the first guess runs
        seen.append(item)
        busy[0] = True

    seen.clear()
    busy[0] = False
    yielding = Prefetcher(work, idle_server=lambda: not busy[0])
    yielding([3, 4])
    assert yielding.idle() and seen == [3]


def test_prefetch_neighbours_skips_while_another_session_runs(monkeypatch):
    seen = []
    act = Activity()
    monkeypatch.setattr(cache, "activity", lambda: act)
    monkeypatch.setattr(cache, "_prefetcher",
                        lambda: Prefetcher(lambda s: seen.append(s), idle_server=lambda: act.others() == 0))
    ready = threading.Event()
    ready.set()
    monkeypatch.setattr(cache, "_training_job", lambda cfg: type("Job", (), {"done": ready})())
    setup = Setup(train_config("mlp", "digits"), CompressionConfig(prune_amount=0.4))
    act.begin("someone else")
    cache.prefetch_neighbours(setup)
    assert cache._prefetcher().idle() and seen == []
    act.end("someone else")
    prefetcher = Prefetcher(lambda s: seen.append(s), idle_server=lambda: act.others() == 0)
    monkeypatch.setattr(cache, "_prefetcher", lambda: prefetcher)
    cache.prefetch_neighbours(setup)
    assert prefetcher.idle() and len(seen) == 2


def test_activity_counts_the_sessions_of_the_last_window():
    now = [0.0]
    act = Activity(stale=5.0, clock=lambda: now[0], window=30.0)
    assert act.recent() == 0
    act.begin("a")
    act.end("a")
    act.begin("a")  # one session's many runs count once
    now[0] = 10.0
    act.begin("b")
    act.end("b")
    assert act.recent() == 2 and act.others() == 0  # "a" never ended its second run: stale, yet it was here
    now[0] = 35.0  # "a" last started 35 s ago: gone; "b" 25 s ago: still counted
    assert act.recent() == 1
    now[0] = 41.0
    assert act.recent() == 0


def test_no_guesses_while_a_class_is_on_the_server(monkeypatch):
    now = [0.0]
    act = Activity(clock=lambda: now[0])
    monkeypatch.setattr(cache, "activity", lambda: act)
    for who in ("teacher", "student"):  # one user and a second tab: guesses go on
        act.begin(who)
        act.end(who)
    assert cache._quiet_server()
    act.begin("third")
    act.end("third")
    assert cache.PREFETCH_SESSIONS == 2 and not cache._quiet_server()  # a class: every core for real reruns
    now[0] = 31.0  # the class left half a minute ago
    act.begin("teacher")
    act.end("teacher")
    assert cache._quiet_server()
    act.begin("student")  # another session in a run: wait, as before
    assert not cache._quiet_server()


def test_memory_is_returned_once_for_a_burst_of_closed_sessions(monkeypatch):
    trims = []
    monkeypatch.setattr(cache, "_malloc_trim", lambda: trims.append(1))
    back = cache._MemoryReturn(delay=0.05)
    for _ in range(30):
        back.request()  # thirty students leave at once: one collection
    assert back._pending.acquire(timeout=5)
    back._pending.release()
    assert back.count == 1 and trims == [1]
    cache._malloc_trim()  # the real one runs (glibc) or does nothing, never raises


def test_session_release_asks_for_memory_back(monkeypatch):
    asked = []
    monkeypatch.setattr(cache._memory_return, "request", lambda: asked.append(1))
    cache._session_closed(True)
    assert asked == [1]


@pytest.mark.parametrize("page", ["overview", "saliency"])
def test_cached_figures_are_shared_between_sessions_and_never_changed(small, page):
    first = open_app(page, **small)
    assert not first.exception
    state = first.session_state
    setup = setup_from({key: state[key] for key in url_state.SIDEBAR})
    if page == "overview":
        figs = (cache.per_class_figure(setup),)
    else:
        indices = tuple(range(4))  # the page's default: by index, from image 0
        figs = cache.saliency_figures(setup, indices, first.session_state["saliency_method"])
    before = [pio.to_json(f) for f in figs]
    second = open_app(page, **small, present=1)  # presentation mode scales a copy, never the shared figure
    assert not second.exception
    again = (cache.per_class_figure(setup),) if page == "overview" else \
        cache.saliency_figures(setup, indices, first.session_state["saliency_method"])
    assert all(a is b for a, b in zip(figs, again))  # one object for both sessions
    assert [pio.to_json(f) for f in again] == before
    shown = [c.proto.spec for c in second.get("plotly_chart")]
    assert len(shown) == len(figs)


def test_saliency_rows_send_the_maps_as_32_bit_floats():
    import numpy as np
    import torch
    from core.figures import maps
    a, b = torch.rand(6, 6), torch.rand(6, 6) - 0.5
    fig = maps.saliency_row(torch.rand(1, 6, 6), a, b)
    zs = [np.asarray(t.z) for t in fig.data[1:]]
    assert all(z.dtype == np.float32 for z in zs)
    assert np.array_equal(zs[0], a.numpy()) and np.array_equal(zs[1], b.numpy())
    assert np.allclose(zs[2], (b.double() - a.double()).numpy(), atol=1e-6)

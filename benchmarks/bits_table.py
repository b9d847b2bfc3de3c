"""Accuracy of the default model at low bit widths, for every range setting and granularity.

Prints one row per (bits, range setting, granularity), symmetric scheme, no pruning: accuracy on
the mnist5k test split (1,000 images, what the app shows) and, when the folder exists, on the real
MNIST test set (10,000 images, ../shared/data/mnist-t10k/, normalized like mnist5k), plus the share
of weights that rounding made zero. Mean over the seeds given (default LeNet-5 recipe of the app).

    .venv/bin/python benchmarks/bits_table.py [--seeds 0 1 2] [--t10k PATH]
"""
from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
torch.set_num_threads(1)

from core.compression import CompressionConfig, compress  # noqa: E402
from core.data import Dataset, load_dataset  # noqa: E402
from core.metrics import evaluate, weight_sparsity  # noqa: E402
from core.training import TrainConfig, load_or_train  # noqa: E402

T10K = ROOT.parents[1] / "shared" / "data" / "mnist-t10k"
SETTINGS = [(1, "mse")] + [(b, r) for b in (2, 3, 4) for r in ("minmax", "mse", "twn") if r != "twn" or b == 2]


def read_t10k(folder: Path, like: Dataset) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The 10,000 MNIST test images (IDX files), normalized with `like`'s mean and std; None if absent."""
    images, labels = folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    if not (images.exists() and labels.exists()):
        return None
    x = np.frombuffer(gzip.open(images).read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    y = np.frombuffer(gzip.open(labels).read(), np.uint8, offset=8)
    x = (torch.from_numpy(x.astype(np.float32) / 255.0) - like.mean[0]) / like.std[0]
    return x, torch.from_numpy(y.astype(np.int64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--t10k", type=Path, default=T10K)
    args = parser.parse_args()
    data = load_dataset("mnist5k")
    t10k = read_t10k(args.t10k, data)
    models = [load_or_train(TrainConfig(seed=seed), data).model for seed in args.seeds]
    print(f"LeNet-5 on mnist5k, seeds {args.seeds}, symmetric, no pruning; "
          f"t10k: {'yes' if t10k else 'not found'}")
    print(f"{'bits':>4} {'range':>7} {'granularity':>12} {'mnist5k':>8} {'t10k':>7} {'zero':>6}")
    rows = [(32, "-", "-")] + [(b, r, g) for b, r in SETTINGS for g in ("per_channel", "per_tensor")]
    for bits, quant_range, granularity in rows:
        cfg = CompressionConfig(weight_bits=bits, quant_range="mse" if quant_range == "-" else quant_range,
                                quant_granularity="per_channel" if granularity == "-" else granularity)
        accuracy, real, zero = [], [], []
        for model in models:
            compressed = compress(model, cfg).eval()
            accuracy.append(evaluate(compressed, data.x_test, data.y_test).accuracy)
            if t10k:
                real.append(evaluate(compressed, *t10k).accuracy)
            zero.append(weight_sparsity(compressed))
        label = "binary" if bits == 1 else quant_range
        real_text = f"{100 * np.mean(real):6.1f}%" if real else "      -"
        print(f"{bits:>4} {label:>7} {granularity:>12} {100 * np.mean(accuracy):7.1f}% {real_text} "
              f"{100 * np.mean(zero):5.1f}%")


if __name__ == "__main__":
    main()

"""Training time and test accuracy of the registered CNNs on one data set (default mnist5k).

Each model trains with its app recipe (core.warm.recipe: 20 epochs on mnist5k), from scratch
(never from the disk cache), one after the other on one thread, `--repeats` times (median time).
LeNet-5 is the baseline of the same run: the ratio column is time / LeNet-5's median time.

    .venv/bin/python benchmarks/bench_architectures.py [--dataset mnist5k] [--repeats 1]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import warm  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.layers import prunable_layers  # noqa: E402
from core.training import accuracy, train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=["lenet5", "resnet_small", "separable"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset(args.dataset)
    rows = {}
    for _ in range(args.repeats):
        for name in args.models:
            cfg = warm.recipe(name, args.dataset)
            start = time.perf_counter()
            model = train(cfg, data)
            seconds = time.perf_counter() - start
            with torch.no_grad():
                acc = accuracy(model, data.x_test, data.y_test)
            weights = sum(m.weight.numel() for _, m in prunable_layers(model))
            rows.setdefault(name, []).append((seconds, acc, weights))
    base = statistics.median(s for s, _, _ in rows[args.models[0]])
    print(f"{args.dataset}, {warm.recipe(args.models[0], args.dataset).epochs} epochs, "
          f"load average {os.getloadavg()[0]:.2f} at the end")
    print(f"{'model':<14}{'weights':>9}{'median s':>10}{'x ' + args.models[0]:>12}{'test acc':>10}")
    for name, runs in rows.items():
        seconds = statistics.median(s for s, _, _ in runs)
        print(f"{name:<14}{runs[0][2]:>9}{seconds:>10.1f}{seconds / base:>12.2f}{runs[0][1]:>10.2%}")


if __name__ == "__main__":
    main()

"""How long the explanation-quality measures (core.explain.quality) and the Global view take, against a baseline.

LeNet-5 on mnist5k, 64 probe images, the model pruned at 90 % (global magnitude), 1 torch thread.
For each method: `quality.measure` as the Explanation quality page calls it (sparseness, complexity,
max-sensitivity with 10 nudges (of 16 probes for Integrated Gradients), deletion / insertion with random orderings, completeness for IG), and
as the trade-off sweeps call it per point (3 nudges of 16 of the probes, no faithfulness: that is
measured beside it);
the baseline is one `attribute` call for the same 64 probes in the same run. Median of `repeats`.
Target (issue 10): at most 3 s for the page's measures of gradient maps on 2 cores. Then the Global
view's work per setting (`global_view_times`), against one forward pass; target: the embedding in 2 s.

Run: `.venv/bin/python benchmarks/bench_quality.py` (benchmarks/bench.py calls `main()`).
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.compression import CompressionConfig, compress  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.explain import quality  # noqa: E402
from core.explain.attribution import attribute  # noqa: E402
from core.studies import global_view as G  # noqa: E402
from core.studies.sweep_plan import SweepConfig, probe_indices  # noqa: E402
from core.training import TrainConfig, load_or_train  # noqa: E402

TARGET_S = 3.0
TARGET_EMBEDDING_S = 2.0
METHODS = ("saliency", "grad_cam", "integrated_gradients")


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(repeats: int = 3) -> dict[str, tuple[float, float, float]]:
    """Print and return method -> (page measures s, sweep point s, maps alone s), medians."""
    torch.set_num_threads(1)
    cfg = TrainConfig()
    data = load_dataset(cfg.dataset)
    model = load_or_train(cfg, data).model
    compressed = compress(model, CompressionConfig(prune_amount=0.9))
    probes = data.x_test[torch.as_tensor(probe_indices(data.y_test, 64))]
    with torch.no_grad():
        target = model(probes).argmax(1)
    sweep = SweepConfig()
    print(f"\ne) explanation quality, 64 probes, LeNet-5 at 90 % pruning, median of {repeats} "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(f"{'method':<22}{'page (s)':>10}{'sweep point (s)':>17}{'maps alone (s)':>16}{'page / maps':>13}")
    out = {}
    for method in METHODS:
        maps = _median(lambda: attribute(compressed, probes, target, method), repeats)
        page = _median(lambda: quality.measure(compressed, probes, target, method,
                                               sensitivity_images=quality.sensitivity_images_for(method)), repeats)
        point = _median(lambda: quality.measure(compressed, probes, target, method, samples=sweep.sensitivity_samples,
                                                faithfulness=False, sensitivity_images=sweep.sensitivity_images),
                        repeats)
        out[method] = (page, point, maps)
        ok = "" if method == "integrated_gradients" else ("  ok" if page <= TARGET_S else "  MISSED")
        print(f"{method:<22}{page:>10.2f}{point:>17.2f}{maps:>16.3f}{page / maps:>12.0f}x{ok}")
    global_view_times(model, compressed, data, repeats)
    return out


def global_view_times(model, compressed, data, repeats: int) -> dict[str, float]:
    """The Global view page's work per setting (both models, 1,000 test images), medians; target: the
    embedding at most 2 s. Baseline: one forward pass of the compressed model over the test set."""
    x, y = data.x_test, data.y_test
    rows = torch.linspace(0, len(x) - 1, 500).long()

    def forward():
        with torch.inference_mode():
            compressed(x)

    work = {
        "forward pass (baseline)": forward,
        "embedding, PCA": lambda: G.embedding(G.penultimate(model, x), G.penultimate(compressed, x), "pca"),
        "embedding, t-SNE (500)": lambda: G.embedding(G.penultimate(model, x[rows]), G.penultimate(compressed, x[rows]),
                                                      "tsne"),
        "silent units": lambda: (G.unit_activity(model, x), G.unit_activity(compressed, x)),
        "class maps, saliency": lambda: [G.class_average_maps(m, x, y, "saliency", data.num_classes)
                                         for m in (model, compressed)],
    }
    print(f"\nf) global view, {len(x):,} test images, both models, median of {repeats} "
          f"(load average {os.getloadavg()[0]:.1f})")
    times = {name: _median(fn, repeats) for name, fn in work.items()}
    for name, seconds in times.items():
        ok = ("  ok" if seconds <= TARGET_EMBEDDING_S else "  MISSED") if name == "embedding, PCA" else ""
        print(f"{name:<26}{seconds:>8.2f} s{ok}")
    return times


if __name__ == "__main__":
    main()

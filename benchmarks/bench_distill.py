"""How long a distillation job takes on the default data, and whether the student beats its label-only twin.

The job as the Distillation page runs it, nothing cached (a fresh cache folder): the label-only
student (MLP 32, 40 epochs, no augmentation) and then the distilled student (T = 4, α = 0.9) from the
default teacher (LeNet-5 on mnist5k, loaded from the shared model cache, or trained first and timed
apart). Baseline from the same run: the label-only student's training alone (the job's first half).
Target: the job ≤ 60 s on 2 cores. Then the accuracies of both students for `seeds` seeds with
their 95 % Wilson intervals (1,000 test images), and the load average.

Run: `.venv/bin/python benchmarks/bench_distill.py [seeds]`.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.data import load_dataset  # noqa: E402
from core.distillation.knowledge import DistillConfig, distill  # noqa: E402
from core.metrics import evaluate  # noqa: E402
from core.stats import accuracy_interval, format_interval  # noqa: E402
from core.training import load_or_train, train  # noqa: E402
from core.warm import recipe  # noqa: E402


def main(seeds: int = 3) -> dict[str, float]:
    torch.set_num_threads(1)
    data = load_dataset("mnist5k")
    start = time.perf_counter()
    teacher = load_or_train(recipe("lenet5", "mnist5k"), data).model
    teacher_s = time.perf_counter() - start
    jobs, plains, rows = [], [], []
    for seed in range(seeds):
        cfg = DistillConfig(teacher=recipe("lenet5", "mnist5k"), seed=seed)
        start = time.perf_counter()
        plain = train(cfg.student_recipe(), data)
        plains.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            result = distill(cfg, teacher, data, cache_dir=cache)
            jobs.append(time.perf_counter() - start)
        assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(),
                                                     result.label_only.state_dict().values()))
        rows.append((seed, *(evaluate(m, data.x_test, data.y_test).accuracy
                             for m in (result.distilled, result.label_only))))
    n = len(data.y_test)
    print(f"Distillation job, LeNet-5 teacher -> MLP 32 student on mnist5k, nothing cached, {seeds} seeds "
          f"(load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}):")
    print(f"  teacher from the model cache or trained: {teacher_s:.2f} s (not part of the job)")
    print(f"  whole job (label-only + distilled student): median {statistics.median(jobs):.1f} s "
          f"(runs {', '.join(f'{t:.1f}' for t in jobs)}); target <= 60 s")
    print(f"  baseline, the label-only student alone:   median {statistics.median(plains):.1f} s "
          f"-> job / baseline {statistics.median(jobs) / statistics.median(plains):.2f}x")
    for seed, distilled, plain in rows:
        print(f"  seed {seed}: distilled {100 * distilled:.1f} % ({format_interval(*accuracy_interval(distilled, n))}), "
              f"label-only {100 * plain:.1f} % ({format_interval(*accuracy_interval(plain, n))}), "
              f"difference {100 * (distilled - plain):+.1f} points")
    mean_d = statistics.mean(r[1] for r in rows)
    mean_p = statistics.mean(r[2] for r in rows)
    print(f"  mean over seeds: distilled {100 * mean_d:.2f} %, label-only {100 * mean_p:.2f} % "
          f"({100 * (mean_d - mean_p):+.2f} points)")
    return {"job_s": statistics.median(jobs), "baseline_s": statistics.median(plains)}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)

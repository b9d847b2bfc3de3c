"""`make warm`: train and save every model the pages and lessons use, before a class arrives.

The same plan as the Lessons page's "Prepare the class" button (core.warm.class_plan): each page
at its defaults and every lesson step. Models already saved are only checked (loaded once); the
rest are trained, one after the other, under one progress line. Afterwards the first visitor
finds every model on disk ($COMPRESSION_LENS_CACHE, default ~/.cache/compression-lens/models).

The Trade-offs tables and the Forgotten examples votes are kept in the running app's memory, which
this separate process cannot fill: the button measures them too, this command says so.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit.logger  # noqa: E402
import torch  # noqa: E402

streamlit.logger.set_log_level("error")  # ui's caches are imported for the plan, never run here

torch.set_num_threads(1)  # two shared cores: more threads only slow training down

from core import data as datasets  # noqa: E402
from core import warm  # noqa: E402
from core.training import checkpoint_path, default_cache_dir, load_or_train  # noqa: E402
from ui.prepare import plan  # noqa: E402


def main() -> int:
    configs = plan()
    loaded: dict[str, datasets.Dataset] = {}

    def train(cfg, progress):
        if cfg.dataset not in loaded:
            loaded[cfg.dataset] = datasets.load_dataset(cfg.dataset)
        result = load_or_train(cfg, loaded[cfg.dataset], progress=progress)
        if result.notice:
            print(f"\n{result.notice}", flush=True)
        return result

    def report(fraction: float, message: str) -> None:
        print(f"\r{fraction:4.0%}  {message[:110]:<110}", end="", flush=True)

    on_disk = [cfg for cfg in configs if checkpoint_path(cfg).exists()]
    print(f"Preparing the class: {len(configs)} models ({len(on_disk)} already saved) in {default_cache_dir()}")
    start = time.monotonic()
    try:
        warm.warm(configs, train, report, ready=lambda cfg: checkpoint_path(cfg).exists())
    except datasets.DatasetUnavailable as err:
        print(f"\nCannot prepare: {err}", file=sys.stderr)
        return 1
    print(f"\nDone in {time.monotonic() - start:.0f} s: {', '.join(warm.label(cfg) for cfg in configs)}.")
    print("The Trade-offs tables and the Forgotten examples votes live in the running app's memory, which this "
          "command cannot fill: press Prepare the class (Lessons page) in the running app to also measure the "
          "Trade-offs tables.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

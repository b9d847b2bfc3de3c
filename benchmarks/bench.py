"""How long one move of the "Pruning rate" slider takes: on the server, and in a real browser.

a) Server: for each page, the work one slider move causes when nothing is cached yet
   (compress, the report with the original's evaluation precomputed, attributions, every
   figure and its JSON serialization, as Streamlit sends it), over random settings. What
   the app caches across slider moves stays precomputed here too: the original's
   evaluation and, on the saliency page, the original's maps (ui.cache.original_maps).
b) Browser: key release on the slider -> the page updated, in Debian's Chromium, on the
   real app (overview page), on benchmarks/floor_app.py (one slider, one Plotly chart:
   the floor that Streamlit itself costs) and on benchmarks/floor_cards_app.py (the content floor:
   the slider with only the Overview's six cards and per-class bars), presses alternating. "Updated" =
   the Sparsity card's (floor: the chart title's) text changed, the script run has finished
   (Streamlit's script state idle, no "running" widget), and the next frame was drawn.

c) Trade-off tables: benchmarks/bench_sweep.py (the default method's whole table and the default
   page's four tables, cold; `--naive` adds a naive implementation and the ratio); and
   benchmarks/bench_pages.py (warm slider steps and map clicks on Trade-offs, Forgotten examples
   and Sanity check, server time through AppTest); benchmarks/bench_sensitivity.py (the layer
   sensitivity analysis against a naive loop, with the ratio); `--skip-sweep` leaves them out.
d) Scrub page: benchmarks/bench_scrub.py (the in-figure Plotly slider dragged with the mouse,
   mousemove -> next painted frame, against a bare floor app); `--skip-scrub` leaves it out.
e) The cross-family comparison: benchmarks/bench_families.py (every family's line, cold, against a
   naive loop of the same points; with c), so `--skip-sweep` leaves it out too).
f) Deployed models: benchmarks/bench_deploy.py (file sizes, parameters, MACs, PyTorch / ONNX Runtime
   fp32 / int8 latency of original and compressed, theory beside measurement; with c) too).

Run with `make bench` (or `.venv/bin/python benchmarks/bench.py --help`). What-ifs:
`--gc-freeze` (server part without full-heap GC pauses) and
`--streamlit-option runner.postScriptGC=false` (both browser servers).
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import logging
import pstats
import random
import statistics
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import plotly.io as pio
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
torch.set_num_threads(1)  # as the app does: 2 shared cores

import streamlit  # noqa: E402  (imported first only to quiet ui's "no runtime" cache warnings)

logging.getLogger("streamlit").setLevel(logging.ERROR)
for _name in ("streamlit.runtime.caching.cache_data_api", "streamlit.runtime.caching.cache_resource_api"):
    logging.getLogger(_name).setLevel(logging.ERROR)

import ui  # noqa: E402  (for train_config and the page constants: the benchmark must not drift from the app)
from ui.panels import IMAGES_PER_VIEW  # noqa: E402
from ui.controls import DEFAULTS  # noqa: E402
from benchmarks import (bench_browser, bench_deploy, bench_families, bench_pages, bench_sensitivity,  # noqa: E402
                        bench_sweep)
from benchmarks.serve import require_chromium  # noqa: E402
from core import figures, layers  # noqa: E402
from core.figures import maps as figures_maps  # noqa: E402
from core.explain.attribution import attribute, saliency_agreement  # noqa: E402
from core.compression import (PRUNE_METHODS, PRUNE_SCOPES, QUANT_GRANULARITIES, QUANT_SCHEMES,  # noqa: E402
                              WEIGHT_BITS, CompressionConfig, compress)
from core.data import load_dataset  # noqa: E402
from core.metrics import compression_report, evaluate  # noqa: E402
from core.training import load_or_train  # noqa: E402
from core.explain.stroke import explanation_shift  # noqa: E402
from core.figures import diagnosis as figures_diagnosis  # noqa: E402
from core.studies.diagnosis import diagnose  # noqa: E402
from core.studies.sweeps import probe_indices  # noqa: E402
from core.summary import summarize  # noqa: E402

PAGES = ("overview", "weights", "sparsity", "saliency", "diagnosis")
PHASES = ("compress", "report", "attribution", "figures", "summary", "to_json")
TARGET_SERVER_P95_MS = 150.0
TARGET_BROWSER_RATIO = 1.2  # issue 11 §2 (benchmarks/bench_browser.py runs this part alone)
TARGET_SWEEP_S = 10.0       # issue 12: the default model's whole table, cold, on 2 cores
TARGET_SWEEP_SPEEDUP = 5.0  # ... and at least 5 times faster than the naive table (with --naive)


# ---------------------------------------------------------------- a) server side
@dataclass
class Context:
    """What the app has cached before any slider move: data, trained model, its evaluation."""

    model: torch.nn.Module
    data: object
    original_eval: object
    labels: dict[str, str]
    largest_layer: str
    method: str = "saliency"  # the first entry of the saliency page's method list
    images: tuple[int, ...] = tuple(range(IMAGES_PER_VIEW))  # "by index", starting at 0
    original_maps: torch.Tensor | None = None  # (N, H, W) for `images`: cached by the app, not per move
    summary_probes: tuple[int, ...] = ()        # issue 10: the summary's probe images, their original maps
    summary_maps: torch.Tensor | None = None


@dataclass
class Phases:
    """Milliseconds spent per phase in one simulated slider move."""

    ms: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[phase] += 1000.0 * (time.perf_counter() - start)

    @property
    def total(self) -> float:
        return sum(self.ms.values())


def load_context() -> Context:
    """The default model (trained on first use into the app's own disk cache) and its evaluation."""
    cfg = ui.train_config(DEFAULTS["model"], DEFAULTS["dataset"])
    data = load_dataset(cfg.dataset)
    start = time.perf_counter()
    result = load_or_train(cfg, data)
    how = "loaded from cache" if result.from_cache else "trained"
    print(f"model {cfg.model} on {cfg.dataset}: {how} in {time.perf_counter() - start:.1f} s")
    model = result.model.requires_grad_(False)  # as ui.cache shares trained models
    names = layers.layer_labels(model)
    largest = max(names, key=lambda n: layers.weight_of(model, n).numel())
    ctx = Context(model, data, evaluate(model, data.x_test, data.y_test), names, largest)
    x, target = _probe(ctx)
    ctx.original_maps = attribute(model, x, target, ctx.method)  # as ui.cache.original_maps: once per method
    ctx.summary_probes = tuple(int(i) for i in probe_indices(data.y_test, ui.cache.SUMMARY_PROBES))
    rows = list(ctx.summary_probes)
    ctx.summary_maps = attribute(model, data.x_test[rows], torch.as_tensor(ctx.original_eval.predictions[rows]),
                                 ui.cache.SUMMARY_METHOD)
    return ctx


def _summary(ctx: Context, compressed, rep, t: Phases):
    """As ui.cache.comparison_summary: the diagnosis, the compressed model's probe maps, the words."""
    with t("summary"):
        diag = diagnose(rep.original, rep.compressed, ctx.data.classes)
        rows = list(ctx.summary_probes)
        x, target = ctx.data.x_test[rows], torch.as_tensor(ctx.original_eval.predictions[rows])
        shift = explanation_shift(ctx.summary_maps, attribute(compressed, x, target, ui.cache.SUMMARY_METHOD), x,
                                  ui.cache.SUMMARY_METHOD)
        summarize(rep, diag, shift)
    return diag


def _probe(ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
    """The shown test images and the original's predicted classes for them (ui.cache._probe)."""
    rows = list(ctx.images)
    return ctx.data.x_test[rows], torch.as_tensor(ctx.original_eval.predictions[rows])


def random_configs(n: int, seed: int) -> list[CompressionConfig]:
    """`n` random sidebar settings (every control drawn independently), reproducible from `seed`."""
    rng = random.Random(seed)
    return [CompressionConfig(prune_amount=rng.randint(0, 100) / 100, prune_method=rng.choice(PRUNE_METHODS),
                              prune_scope=rng.choice(PRUNE_SCOPES), weight_bits=rng.choice(WEIGHT_BITS),
                              quant_scheme=rng.choice(QUANT_SCHEMES),
                              quant_granularity=rng.choice(QUANT_GRANULARITIES))
            for _ in range(n)]


def _report(ctx: Context, compressed, cfg: CompressionConfig, t: Phases):
    with t("report"):
        return compression_report(ctx.model, compressed, cfg, ctx.data.x_test, ctx.data.y_test,
                                  original_eval=ctx.original_eval)


def page_work(page: str, ctx: Context, cfg: CompressionConfig, t: Phases) -> None:
    """Everything the server computes for `page` after a slider move with empty caches (see ui/cache.py)."""
    with t("compress"):
        compressed = compress(ctx.model, cfg)
    figs = []
    if page == "overview":
        rep = _report(ctx, compressed, cfg, t)
        with t("figures"):
            figs.append(figures.per_class_accuracy(ctx.data.classes, rep.original.per_class_accuracy,
                                                   rep.compressed.per_class_accuracy))
            rep.to_frame()  # the "Layer by layer" table
        _summary(ctx, compressed, rep, t)  # issue 10 §4: the summary in words at the top of the page
    elif page == "weights":
        with t("figures"):
            figs += [figures.weight_histogram(layers.weight_of(ctx.model, n), layers.weight_of(compressed, n),
                                              label, cfg.weight_bits) for n, label in ctx.labels.items()]
    elif page == "sparsity":
        rep = _report(ctx, compressed, cfg, t)
        with t("figures"):
            figs.append(figures.sparsity_bars(list(ctx.labels.values()), [s.sparsity for s in rep.original_layers],
                                              [s.sparsity for s in rep.compressed_layers], overall=rep.sparsity))
            label = ctx.labels[ctx.largest_layer]
            figs += [figures_maps.weight_heatmap(layers.weight_of(m, ctx.largest_layer), f"{label}, {which}")
                     for m, which in ((ctx.model, "original"), (compressed, "compressed"))]
    elif page == "saliency":
        rep = _report(ctx, compressed, cfg, t)
        figs += _saliency_figures(ctx, compressed, rep, t)
    elif page == "diagnosis":  # issue 10 §1 (the page's own diagnosis is the summary's, cached once)
        rep = _report(ctx, compressed, cfg, t)
        with t("summary"):
            diag = diagnose(rep.original, rep.compressed, ctx.data.classes)
        with t("figures"):
            figs += [figures_diagnosis.confusion_change_heatmap(diag.confusion_change, diag.classes),
                     figures_diagnosis.reliability_diagram(diag.calibration_original, diag.calibration_compressed)]
            shown = [int(i) for i in diag.members("newly_wrong")[:ui.cache.GALLERY_SIZE]]
            figures_diagnosis.gallery_tiles(ctx.data.x_test[shown].numpy(), shown, rep.original, rep.compressed,
                                            ctx.data.classes)
    with t("to_json"):
        for fig in figs:
            pio.to_json(fig, validate=False)  # exactly what st.plotly_chart sends


def _saliency_figures(ctx: Context, compressed, rep, t: Phases) -> list:
    """As ui.panels.saliency_panels: the original's maps come from the cache; the compressed maps of
    all shown images from ONE batched attribute() call, for the original's predicted classes; the
    agreement figures in one batched call; then one saliency_row figure (with its titles) per image."""
    x, target = _probe(ctx)
    maps_o = ctx.original_maps
    with t("attribution"):
        maps_c = attribute(compressed, x, target, ctx.method)
        saliency_agreement(maps_o, maps_c)
    figs = []
    with t("figures"):
        classes = ctx.data.classes
        for row, i in enumerate(ctx.images):
            pred_o, pred_c = rep.original.predictions[i], rep.compressed.predictions[i]
            titles = {"image": f"test image {i}: a {classes[rep.original.labels[i]]}",
                      "original": f"original: {classes[pred_o]} ({rep.original.probabilities[i, pred_o] * 100:.0f} %)",
                      "compressed": f"compressed: {classes[pred_c]} ({rep.compressed.probabilities[i, pred_c] * 100:.0f} %)"}
            figs.append(figures_maps.saliency_row(ctx.data.x_test[i], maps_o[row], maps_c[row], titles))
    return figs


def run_server(ctx: Context, configs: list[CompressionConfig]) -> dict[str, list[Phases]]:
    """Every page for every config (after one untimed warm-up per page)."""
    for page in PAGES:
        page_work(page, ctx, configs[0], Phases())
    results: dict[str, list[Phases]] = {page: [] for page in PAGES}
    for cfg in configs:
        for page in PAGES:
            t = Phases()
            page_work(page, ctx, cfg, t)
            results[page].append(t)
    return results


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def print_server(results: dict[str, list[Phases]], configs: list[CompressionConfig]) -> dict[str, tuple]:
    """Per page: p50 / p95 / max of the total, and the mean of each phase; returns the summary."""
    print(f"\na) server, one slider move with empty caches, {len(configs)} random settings, 1 torch thread"
          "\n   (total includes to_json: plotly.io.to_json(fig, validate=False), as st.plotly_chart does)")
    header = f"{'page':<10}{'p50':>8}{'p95':>8}{'max':>8}  " + "".join(f"{p:>12}" for p in PHASES)
    print(header + "\n" + " " * 36 + "mean ms per phase".center(12 * len(PHASES)))
    summary = {}
    pooled = []
    for page, runs in results.items():
        totals = [r.total for r in runs]
        pooled += totals
        means = {p: statistics.fmean(r.ms.get(p, 0.0) for r in runs) for p in PHASES}
        summary[page] = (percentile(totals, 50), percentile(totals, 95), max(totals))
        print(f"{page:<10}" + "".join(f"{v:8.1f}" for v in summary[page]) + "  "
              + "".join(f"{means[p]:12.1f}" for p in PHASES))
    summary["overall"] = (percentile(pooled, 50), percentile(pooled, 95), max(pooled))
    print(f"{'overall':<10}" + "".join(f"{v:8.1f}" for v in summary["overall"]))
    slowest = max(((page, cfg, r.total) for page, runs in results.items() for cfg, r in zip(configs, runs)),
                  key=lambda item: item[2])
    print(f"slowest: {slowest[0]} {slowest[2]:.0f} ms with {slowest[1]}")
    return summary


def profile(ctx: Context, page: str, configs: list[CompressionConfig], top: int = 25) -> None:
    """cProfile of `page` over the configs: the functions with the most cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for cfg in configs:
        page_work(page, ctx, cfg, Phases())
    profiler.disable()
    print(f"\ncProfile of the {page} page over {len(configs)} settings (cumulative time):")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(top)


# ---------------------------------------------------------------- b) browser
# The presses are benchmarks/bench_browser.py's (the same probe, tabs and servers), without its breakdown.


def run_browser(presses: int, options: list[str], warmup: int = 2) -> dict[str, list[float]]:
    """Alternate ArrowRight presses between the real app and the floor app (same options); latencies in ms."""
    require_chromium()
    pressed = bench_browser.run_round(presses, options, breakdown=False, page="overview", warmup=warmup)
    return {name: [press.latency for press in values] for name, values in pressed.items()}


def print_browser(latencies: dict[str, list[float]]) -> tuple[float, float, float]:
    app, content, floor = (statistics.median(latencies[k]) for k in ("app", "content", "floor"))
    print(f"\nb) browser, ArrowRight release -> page updated (Chromium, {len(latencies['app'])} presses each,"
          " alternating)")
    for name, values in latencies.items():
        print(f"{name:<10} median {statistics.median(values):7.1f} ms   p95 {percentile(values, 95):7.1f}   "
              f"min {min(values):6.1f}   max {max(values):6.1f}")
    return app, content, floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", type=int, default=30, help="random settings per page (server part)")
    parser.add_argument("--presses", type=int, default=20, help="key presses per app (browser part)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-server", action="store_true")
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--skip-scrub", action="store_true", help="skip d), the Scrub page's in-figure slider")
    parser.add_argument("--skip-sweep", action="store_true",
                        help="leave out the trade-off tables and page steps (bench_sweep.py, bench_pages.py)")
    parser.add_argument("--naive", action="store_true", help="also time the naive table (about 30 s or more)")
    parser.add_argument("--profile", choices=PAGES, help="also print a cProfile of this page")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="server part: gc.freeze() after loading (what-if: no full-heap GC pauses)")
    parser.add_argument("--streamlit-option", action="append", default=[], metavar="SECTION.NAME=VALUE",
                        help="extra setting for both browser-test servers, e.g. runner.postScriptGC=false")
    args = parser.parse_args()

    ctx = load_context()  # also trains the model into the app's cache when it is missing
    configs = random_configs(args.configs, args.seed)
    if args.gc_freeze:
        page_work("saliency", ctx, configs[0], Phases())  # load plotly's lazy validators first
        gc.collect()
        gc.freeze()
        print(f"gc.freeze(): {gc.get_freeze_count():,} objects moved out of the collector's way")
    summary = {} if args.skip_server else print_server(run_server(ctx, configs), configs)
    if args.profile:
        profile(ctx, args.profile, configs)
    browser = None
    if not args.skip_browser:
        if args.streamlit_option:
            print("\nstreamlit options for both servers: " + " ".join(args.streamlit_option))
        browser = print_browser(run_browser(args.presses, args.streamlit_option))
    sweep = pages = families = None
    if not args.skip_sweep:
        print("\nc) trade-off tables (benchmarks/bench_sweep.py) and page steps (benchmarks/bench_pages.py)")
        sweep = bench_sweep.main(naive=args.naive)
        pages = bench_pages.main(["--steps", "8"])
        print("\nc2) layer sensitivity (benchmarks/bench_sensitivity.py): batched vs a naive loop")
        bench_sensitivity.main()
        print("\ne) the cross-family comparison (benchmarks/bench_families.py)")
        families = bench_families.main(["--repeats", "1"])
        print("\nf) deployed models: measured cost beside theory (benchmarks/bench_deploy.py)")
        bench_deploy.main()
        print("\ng) explanation quality on the probe set (benchmarks/bench_quality.py)")
        import bench_quality  # e) explanation quality on the probe set (issue 10 §3)
        bench_quality.main()

    print("\nsummary (ms)                     value   target")
    for page in summary:
        p50, p95, _ = summary[page]
        ok = "ok" if p95 <= TARGET_SERVER_P95_MS else "MISSED"
        print(f"server {page:<10} p50 {p50:6.1f}  p95 {p95:6.1f}   <= {TARGET_SERVER_P95_MS:.0f}  {ok}")
    if browser:
        app, content, floor = browser
        ok = "ok" if app / floor <= TARGET_BROWSER_RATIO else "MISSED"
        print(f"browser median: app {app:.0f}, floor {floor:.0f}, ratio {app / floor:.2f}   <= "
              f"{TARGET_BROWSER_RATIO}  {ok}\n  content floor (bare app, the Overview's cards and bars) "
              f"{content:.0f}: the app {app / content:.2f}×")
    if not args.skip_scrub:
        import bench_scrub  # benchmarks/ is on sys.path when this file runs as a script
        bench_scrub.main(["--steps", str(max(2 * args.presses, 20))])
    if sweep:
        wall = sweep["table"]
        print(f"sweep (s)        default table, cold    {wall:6.2f}   <= {TARGET_SWEEP_S:.0f}  "
              f"{'ok' if wall <= TARGET_SWEEP_S else 'MISSED'}")
        print(f"sweep (s)        all 4 tables, cold     {sweep['page']:6.2f}   (no target: the page draws "
              "after the first, the others follow)")
        if "ratio" in sweep:
            print(f"sweep speed-up   naive {sweep['naive']:.1f} s / table    {sweep['ratio']:6.1f}x       >= "
                  f"{TARGET_SWEEP_SPEEDUP:.0f}x {'ok' if sweep['ratio'] >= TARGET_SWEEP_SPEEDUP else 'MISSED'}")
    if families:
        wall, ratio = families["wall"], families["ratio"]
        print(f"families (s)     every family, cold     {wall:6.2f}   <= {bench_families.TARGET_S:.0f}  "
              f"{'ok' if wall <= bench_families.TARGET_S else 'MISSED'}")
        print(f"families speed-up naive {families['naive']:.1f} s         {ratio:6.1f}x       >= "
              f"{bench_families.TARGET_SPEEDUP:.0f}x {'ok' if ratio >= bench_families.TARGET_SPEEDUP else 'MISSED'}")
    for page, steps in (pages or {}).items():
        for what, times in steps.items():
            median = statistics.median(times)
            print(f"{page:<10} {what:<15} median {median:5.2f} s, max {max(times):5.2f} s   "
                  f"<= {bench_pages.TARGET_STEP_S:.0f} s  {'ok' if median <= bench_pages.TARGET_STEP_S else 'MISSED'}")


if __name__ == "__main__":
    main()

"""Downloads of a comparison: a self-contained HTML report, the metrics as CSV, the weights as safetensors.

- `report_html`: one HTML file that works offline. plotly.js is inlined once in the head
  (`plotly.offline.get_plotlyjs()`), each figure is `fig.to_html(include_plotlyjs=False)`,
  and pictures inside figures are data: URIs, so opening the file asks no server.
- `metrics_frame` / `metrics_csv`: one table, a "model" row with the headline numbers of the
  CompressionReport first, then one row per prunable layer (`core.metrics.layer_table`).
- `weights_safetensors`: the compressed model's state_dict as safetensors bytes; the training
  and compression configs travel in the header metadata as JSON strings (`METADATA_KEYS`), so
  `core.upload` (or anyone with `safetensors.safe_open(...).metadata()`) can rebuild it.

Nothing is modified: models are only read (tensors are copied before serializing).
"""
from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict

import pandas as pd
import plotly.graph_objects as go
import plotly.offline
import torch
from safetensors.torch import save as safetensors_save
from torch import nn

from core import figures
from core.figures import maps as figures_maps
from core.figures import scrub as figures_scrub
from core.studies import scrub
from core.explain.attribution import attribute
from core.compression import CompressionConfig, controls
from core.data import Dataset
from core.figures import figure_caption, format_bytes, format_percent, format_ratio
from core.layers import labels_for, layer_labels, weight_of
from core.metrics import FP32_BITS, CompressionReport, layer_table
from core.stats import accuracy_interval, format_interval
from core.training import TrainConfig

FORMAT = "compression-lens/1"   # the safetensors metadata "format" value; bump when the layout changes
METADATA_KEYS = ("format", "architecture", "dataset", "input_shape", "num_classes", "train_config",
                 "compression_config")
HEADLINE_COLUMNS = ("accuracy_original", "accuracy_compressed", "accuracy_change", "agreement",
                    "compression_ratio", "theoretical_speedup", "total_params")


def headline_metrics(report: CompressionReport) -> dict[str, float]:
    """The report's headline numbers by name (fractions 0..1, sizes in bytes, MACs per sample)."""
    return {"accuracy_original": report.original.accuracy, "accuracy_compressed": report.compressed.accuracy,
            "accuracy_change": report.accuracy_change, "agreement": report.agreement, "sparsity": report.sparsity,
            "size_original_bytes": report.size_original_bytes, "size_compressed_bytes": report.size_compressed_bytes,
            "compression_ratio": report.compression_ratio, "dense_macs": report.dense_macs,
            "remaining_macs": report.remaining_macs, "theoretical_speedup": report.theoretical_speedup,
            "total_params": report.total_params, "prunable_params": report.prunable_params}


def metrics_frame(report: CompressionReport) -> pd.DataFrame:
    """A "model" row (whole model; weights of prunable layers for params/sparsity) over the layer rows.

    Columns: scope ("model" | "layer"), the `layer_table` columns, then HEADLINE_COLUMNS (empty on
    layer rows). The model row's sizes include biases, like the report's; inf ratios stay inf.
    """
    m = headline_metrics(report)
    layers = layer_table(report).assign(scope="layer")  # the model row's ranks: singular values of all layers
    original_params = sum(s.params for s in report.original_layers)  # more than the compressed model's when factored
    original_zero = 1.0 - sum(s.nonzero for s in report.original_layers) / max(original_params, 1)
    model = {"scope": "model", "layer": "(all)", "kind": "", "shape": "", "params": report.prunable_params,
             "sparsity_original": original_zero, "sparsity_compressed": report.sparsity,
             "bits": report.config.weight_bits, "size_original_bytes": report.size_original_bytes,
             "size_compressed_bytes": report.size_compressed_bytes, "dense_macs": report.dense_macs,
             "remaining_macs": report.remaining_macs,
             "rank": int(layers["rank"].sum()), "full_rank": int(layers["full_rank"].sum()),
             **{k: m[k] for k in HEADLINE_COLUMNS}}
    return pd.concat([pd.DataFrame([model]), layers], ignore_index=True)[list(model)]


def metrics_csv(report: CompressionReport) -> str:
    """`metrics_frame` as CSV text (comma separated, header row, no index, full float precision)."""
    return metrics_frame(report).to_csv(index=False)

def readable_layer_table(report: CompressionReport) -> pd.DataFrame:
    """The layer table for people: layers named as every chart names them ("conv 1 (6×1×5×5)"),
    column names in words, shares as percentages and sizes in kB (`layer_table` is the raw one, for CSV).
    """
    names = labels_for([(a.kind == "conv", a.shape) for a in report.compressed_layers])
    factored = any(a.rank is not None for a in report.compressed_layers) or report.config.step("lowrank").active()
    bits = lambda b: "32 (float)" if b == FP32_BITS else str(b)  # noqa: E731
    return pd.DataFrame([
        {"Layer": name, "Weights": f"{a.params:,}", **({"Rank kept": _rank_words(a)} if factored else {}),
         "Zero in the original": format_percent(b.sparsity),
         "Zero after compression": format_percent(a.sparsity), "Bits per weight": bits(a.bits),
         "Size, original": format_bytes(b.dense_size_bits / 8), "Size, compressed": format_bytes(a.size_bits / 8),
         "MACs per image, original": f"{a.dense_macs:,}", "MACs per image, compressed": f"{a.remaining_macs:,}"}
        for name, b, a in zip(names, report.original_layers, report.compressed_layers)])


def _rank_words(stats) -> str:
    """"12 of 84" for a factored layer; "all 84 (dense)" for one low-rank left whole."""
    return f"all {stats.full_rank} (dense)" if stats.rank is None else f"{stats.rank} of {stats.full_rank}"



def settings_rows(train: TrainConfig, compression: CompressionConfig) -> dict[str, str]:
    """Every training and compression setting by name, for the report's settings table."""
    rows = {f"training: {k}": str(v) for k, v in asdict(train).items()}
    rows.update({f"compression: {k}": str(v) for k, v in asdict(compression).items()})
    return rows


def weights_metadata(train: TrainConfig, compression: CompressionConfig, input_shape: Sequence[int],
                     num_classes: int) -> dict[str, str]:
    """The safetensors header metadata: every value a string (the format allows nothing else)."""
    return {"format": FORMAT, "architecture": train.model, "dataset": train.dataset,
            "input_shape": json.dumps([int(n) for n in input_shape]), "num_classes": str(int(num_classes)),
            "train_config": json.dumps(asdict(train), sort_keys=True),
            "compression_config": json.dumps(asdict(compression), sort_keys=True)}


def weights_safetensors(model: nn.Module, train: TrainConfig, compression: CompressionConfig,
                        input_shape: Sequence[int], num_classes: int) -> bytes:
    """`model.state_dict()` as safetensors bytes with `weights_metadata` in the header (model only read).

    Tensors are detached, contiguous CPU copies: safetensors refuses views that share storage.
    """
    state = {name: t.detach().to("cpu").contiguous().clone() for name, t in model.state_dict().items()}
    return safetensors_save(state, metadata=weights_metadata(train, compression, input_shape, num_classes))


_STYLE = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#2a3f5f;padding:0 1rem}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #e6e9ef;padding:.3rem .6rem;text-align:right}
th{background:#f5f6f9}td:first-child,th:first-child{text-align:left}.caption{color:#555;max-width:60rem}
figure{margin:0 0 2rem}"""


def _table(rows: Mapping[str, str]) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows.items())
    return f"<table>{body}</table>"


def headline_rows(report: CompressionReport) -> dict[str, str]:
    """The headline numbers as people read them (the Overview page's cards)."""
    change = f"{100 * report.accuracy_change:+.1f}".replace("-", "\u2212")
    n = len(report.original.labels)
    intervals = [format_interval(*accuracy_interval(e.accuracy, n)) for e in (report.compressed, report.original)]
    return {"test accuracy": f"{100 * report.compressed.accuracy:.1f} % (original "
                             f"{100 * report.original.accuracy:.1f} %, {change} pts)",
            f"95 % intervals ({n:,} test images)": f"compressed {intervals[0]}, original {intervals[1]}",
            "size": f"{format_bytes(report.size_compressed_bytes)} (original {format_bytes(report.size_original_bytes)})",
            "compression ratio": format_ratio(report.compression_ratio),
            "sparsity": format_percent(report.sparsity),
            "MACs per image": f"{report.remaining_macs:,} of {report.dense_macs:,} " + (
                "(all weights removed)" if report.remaining_macs == 0
                else f"({format_ratio(report.theoretical_speedup)} fewer)"),
            "agreement": format_percent(report.agreement)}


def _figure(fig: go.Figure, title: str) -> str:
    body = fig.to_html(full_html=False, include_plotlyjs=False, auto_play=False,
                       config={"displaylogo": False, "responsive": True})
    caption = figure_caption(fig)
    text = f'<p class="caption">{html.escape(caption)}</p>' if caption else ""
    return f"<figure><h3>{html.escape(title)}</h3>{body}{text}</figure>"


def report_html(title: str, settings: Mapping[str, str], report: CompressionReport,
                figures: Sequence[tuple[str, go.Figure]], link: str = "", note: str = "",
                summary: Sequence[str] = ()) -> str:
    """A self-contained HTML page: the summary in words, settings, headline metrics, per-layer table, figures.

    summary: the sentences of `core.summary.summarize` (left out when empty).
    figures: (heading, figure) pairs, drawn in order with their captions. link: the URL that
    reproduces this view (shown only when it is http(s)). Every text is HTML-escaped; plotly.js
    is inlined once, so the file needs no network. Figures are only read.
    """
    safe_link = link if link.startswith(("http://", "https://")) else ""
    link_html = (f'<p>Open this view in Compression Lens: <a href="{html.escape(safe_link, quote=True)}">'
                 f"{html.escape(safe_link)}</a></p>") if safe_link else ""
    layers = readable_layer_table(report).to_html(index=False, border=0)
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style><script>{plotly.offline.get_plotlyjs()}</script></head><body>",
             f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(note)}</p>" if note else "", link_html,
             f"<h2>In words</h2><p>{html.escape(' '.join(summary))}</p>" if summary else "",
             "<h2>Settings</h2>", _table(settings), "<h2>Metrics</h2>", _table(headline_rows(report)),
             "<h2>Layer by layer</h2>", layers, "<h2>Figures</h2>",
             *(_figure(fig, heading) for heading, fig in figures), "</body></html>"]
    return "".join(parts)


def _scrubbed(cfg: CompressionConfig) -> list[str]:
    """The scrub boards a report shows: the main sliders', and those of the families `cfg` uses."""
    owners = {c.url: step for step, c in controls().values()}
    running = {step.name for step in cfg.pipeline()}
    return [key for key, (_, c) in scrub.SCRUBBED.items() if c.main or owners[key] in running]


def comparison_figures(original: nn.Module, compressed: nn.Module, report: CompressionReport, data: Dataset,
                       images: Sequence[int] = (0, 1, 2), method: str = "saliency") -> list[tuple[str, go.Figure]]:
    """The figures of a report, as (heading, figure): what the app's pages show for this comparison.

    Per-class accuracy, sparsity per layer, every layer's weight histogram, saliency rows of test
    images `images` (both maps explain the original's prediction), and the scrub boards of the
    pruning rate and bit width, plus those of other families the setting uses (each opening at the
    report's own setting). Models only read.
    """
    cfg, labels = report.config, layer_labels(original)
    out = [("Accuracy per class", figures.per_class_accuracy(data.classes, report.original.per_class_accuracy,
                                                             report.compressed.per_class_accuracy)),
           ("Sparsity per layer", figures.sparsity_bars(list(labels.values()),
                                                        [s.sparsity for s in report.original_layers],
                                                        [s.sparsity for s in report.compressed_layers],
                                                        overall=report.sparsity))]
    out += [(f"Weights of {label}", figures.weight_histogram(weight_of(original, name), weight_of(compressed, name),
                                                            label, cfg.weight_bits)) for name, label in labels.items()]
    rows = list(images)
    target = torch.as_tensor(report.original.predictions[rows])
    maps_o, maps_c = (attribute(m, data.x_test[rows], target, method) for m in (original, compressed))
    out += [(f"Saliency, test image {i}", figures_maps.saliency_row(data.x_test[i], maps_o[n], maps_c[n]))
            for n, i in enumerate(rows)]
    largest = max(labels, key=lambda name: weight_of(original, name).numel())
    for control in _scrubbed(cfg):
        base = scrub.neutral(cfg, control)
        series = scrub.scrub_series(original, base, control, data.x_test, data.y_test, report.original)
        maps = scrub.scrub_maps(original, base, control, data.x_test[rows[0]], method)
        board = figures_scrub.scrub_figure(series, maps, largest, labels[largest], data.x_test[rows[0]], data.classes,
                                           active=scrub.nearest_stop(cfg, control))
        out.append((f"Scrub: {scrub.LABELS[control].lower()}", board))
    return out

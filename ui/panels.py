"""Pieces that several pages draw: charts with captions, metric cards, saliency panels."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import plotly.graph_objects as go
import streamlit as st

from core import export, figures
from core.explain.attribution import saliency_agreement
from core.metrics import CompressionReport
from core.stats import accuracy_interval, format_interval
from ui.cache import Setup, compressed_maps, dataset, original_evaluation, original_maps, report, saliency_figures
from ui.controls import SHORT_NAMES
from ui.url_state import fit, presenting

PRESENT_SCALE = 1.3  # presentation mode: fonts, heights and margins of every chart


def _scaled(spec: object, factor: float, font: bool = False) -> object:
    """A figure dict with every font size (layout, template, traces, annotations) times `factor`.

    `font`: `spec` is a font dict (a key ending in "font": font, tickfont, textfont, ...).
    """
    if isinstance(spec, list):  # data arrays (numbers, or rows of numbers) hold no fonts: not walked
        return [_scaled(item, factor, font) for item in spec] if spec and isinstance(spec[0], (dict, list)) else spec
    if not isinstance(spec, dict):
        return spec
    scaled = {}
    for key, value in spec.items():
        if font and key == "size" and isinstance(value, (int, float, list)):
            scaled[key] = [v * factor for v in value] if isinstance(value, list) else value * factor
        else:
            scaled[key] = _scaled(value, factor, key.endswith("font"))
    return scaled


def for_projector(fig: go.Figure, factor: float = PRESENT_SCALE) -> go.Figure:
    """A copy of `fig` with larger fonts, height and margins, for presentation mode (fig is not changed)."""
    spec = _scaled(fig.to_dict(), factor)
    layout = spec.setdefault("layout", {})
    layout.setdefault("font", {}).setdefault("size", 12 * factor)  # Plotly's default is 12 px
    layout["height"] = round(layout.get("height", 450) * factor)
    layout["margin"] = {k: v * factor if isinstance(v, (int, float)) else v
                        for k, v in layout.get("margin", {}).items()}
    return go.Figure(spec)


def chart(fig, key: str, caption: bool = True) -> None:
    """A Plotly figure with its student caption (stored by the builder) underneath.

    theme=None: Streamlit's theme would override the figures' projector-sized fonts.
    caption=False shows only the chart's own facts (for pages that show the general caption once).
    In presentation mode the figure is drawn from a scaled copy (cached figures stay untouched).
    """
    shown = for_projector(fig) if presenting() else fig
    st.plotly_chart(shown, key=key, theme=None, config={"displaylogo": False})
    text = figures.figure_caption(fig) if caption else figures.figure_facts(fig)
    if text:
        st.caption(text)


def wide_chart(fig, key: str, min_width: int = 900) -> None:
    """`chart`, kept at least `min_width` px wide: on a phone it scrolls sideways instead of squeezing.

    For boards of several panels (the scrub board) whose texts cannot wrap: at a phone's width their
    titles and legends would run into each other.
    """
    st.html(f"<style>.st-key-{key}_wide {{ overflow-x: auto; }} "
            f".st-key-{key}_wide .st-key-{key} {{ min-width: {min_width}px; }}</style>")
    with st.container(key=f"{key}_wide"):
        chart(fig, key=key)


CLOSED_POPOVER_PX = 400  # about the height of what the sidebar's popovers show when open


@contextmanager
def lazy_popover(where, label: str, icon: str, key: str) -> Iterator[bool]:
    """A popover of `where` whose contents the caller draws only while it is open: yields whether it is.

    Opening it reruns the app (Streamlit's `on_change="rerun"`), so closed it costs one element per run instead
    of its contents (issue 11 §2). Closed, it holds an empty box of about its contents' height: Streamlit places
    a popover as it opens, before its contents arrive, and placed for an empty box it would open downwards,
    off the screen at 720p."""
    with where.popover(label, icon=icon, width="stretch", key=key, on_change="rerun") as box:
        if not box.open:
            st.container(height=CLOSED_POPOVER_PX, border=False)
        yield box.open


def percent(fraction: float, decimals: int = 1) -> str:
    """Percentages the way every chart writes them: 96.4 %."""
    return f"{fraction * 100:.{decimals}f} %"


def describe_setup(setup: Setup) -> str:
    """One line naming the model and every compression setting, for page headers."""
    return (f"{SHORT_NAMES.get(setup.train.model, setup.train.model)} on "
            f"{SHORT_NAMES.get(setup.train.dataset, setup.train.dataset)}: "
            f"{setup.compression.describe()}.")


def delta(change: float, decimals: int, unit: str) -> str | None:
    """A metric card's delta ("+1.5 pts"), or None (no arrow, no colour) when it rounds to zero."""
    text = f"{change:+.{decimals}f}"
    if abs(float(text)) == 100 and abs(change) < 100:  # never claim "all gone" for 99.6 %
        text = f"{change:+.1f}"
    return None if float(text) == 0 else f"{text} {unit}"


CARD_ROW = "card_row_"  # the keys of the metric cards' two rows (CARDS_CSS)
# Drawn once by the full run (ui.sidebar): every card the same width, at least 12rem, so the two rows of three
# line up like columns and stack on a phone, where st.columns would stack them too.
CARDS_CSS = f"""<style>
[class*="st-key-{CARD_ROW}"] > [data-testid="stElementContainer"] {{ flex: 1 1 0 !important; min-width: 12rem; }}
</style>"""


def metric_cards(rep: CompressionReport) -> None:
    """The headline numbers, compressed vs original, as metric cards with deltas (none for a zero change)."""
    # Two rows of three, each one flex row (CARDS_CSS makes the cards equal, so the rows line up, and stacks them
    # on a phone): a move resends 2 blocks where st.columns resent 8 (a block each column; issue 11 §2).
    rows = [st.container(horizontal=True, key=f"{CARD_ROW}{i}") for i in range(2)]
    cols = [rows[i // 3] for i in range(6)]
    n = len(rep.original.labels)
    acc = rep.compressed.accuracy
    cols[0].metric("Test accuracy", percent(acc), delta(rep.accuracy_change * 100, 1, "pts"),
                   help=f"Original: {percent(rep.original.accuracy)} on {n:,} test images (95 % interval "
                        f"{format_interval(*accuracy_interval(rep.original.accuracy, n))}).")
    size_change = rep.size_compressed_bytes / rep.size_original_bytes - 1
    cols[1].metric("Size", figures.format_bytes(rep.size_compressed_bytes), delta(size_change * 100, 0, "%"),
                   delta_color="inverse",
                   help=f"Original: {figures.format_bytes(rep.size_original_bytes)} as 32-bit floats. "
                        "Compressed: non-zero weights at the chosen bits (after low-rank: those of the two "
                        "factors of each layer) + the cheaper index (bitmask or sparse positions) + "
                        "quantization scales; biases stay 32-bit.")
    cols[2].metric("Compression ratio", figures.format_ratio(rep.compression_ratio),
                   help="Original size ÷ compressed size.")
    cols[3].metric("Sparsity", figures.format_percent(rep.sparsity),
                   help="Share of the weights of Linear and Conv layers that are exactly zero (biases not counted).")
    ratio = figures.format_ratio(rep.theoretical_speedup)
    fewer = "all weights removed" if rep.remaining_macs == 0 else None if ratio == "1.0×" else f"{ratio} fewer"
    cols[4].metric("MACs per image", f"{rep.remaining_macs:,}", fewer, delta_color="off", delta_arrow="off",
                   help=f"Multiply-accumulates left after compression (dense: {rep.dense_macs:,}). Pruning's "
                        "zeros are a theoretical speed-up: masks alone make nothing faster. Low-rank's thinner "
                        "layers compute less for real.")
    cols[5].metric("Agreement", figures.format_percent(rep.agreement),
                   help="Share of test images on which both models predict the same class.")
    st.caption(accuracy_caption(rep))


LAYERS_OPEN = "layers_open"  # session state: whether the Overview's "Layer by layer" expander is open


def layer_table(rep: CompressionReport) -> None:
    """The Overview's "Layer by layer" expander: each layer's zeros, size and MACs (core.export's table).

    Its contents are drawn only while it is open (opening it reruns the page): closed, the table was
    resent with every slider move for nothing (issue 11 §2)."""
    with st.expander("Layer by layer", key=LAYERS_OPEN, on_change="rerun") as box:
        if box.open:
            st.dataframe(export.readable_layer_table(rep), hide_index=True)
            st.caption("Zero: the share of the layer's weights that are exactly 0. Size: as stored (biases at 32 "
                       "bits). MACs: multiply-accumulates per image that a non-zero weight still costs.")


def accuracy_caption(rep: CompressionReport) -> str:
    """Both accuracies with their 95 % intervals: how much of a difference the test set can tell apart."""
    n = len(rep.original.labels)
    original, compressed = (format_interval(*accuracy_interval(e.accuracy, n)) for e in (rep.original, rep.compressed))
    return (f"Test accuracy is measured on {n:,} images, so it carries sampling noise. 95 % intervals (Wilson): "
            f"original {percent(rep.original.accuracy)} ({original}), compressed {percent(rep.compressed.accuracy)} "
            f"({compressed}). A difference well inside these ranges may come from which images happen to be in "
            "the test set.")


IMAGES_PER_VIEW = 4


def pick_images(setup: Setup, mode: str) -> tuple[list[int], str]:
    """Test-image indices chosen by index, by class, or where the two models disagree.

    Returns the indices and the message to show when there are none.
    """
    data = dataset(setup.train.dataset)  # the report (all test images) only where the models disagree
    n = len(data.y_test)
    if mode == "by index":
        fit("saliency_index", high=n - 1)
        first = st.number_input(f"First test image (0 to {n - 1})", 0, n - 1, key="saliency_index", step=1)
        return list(range(first, min(first + IMAGES_PER_VIEW, n))), ""
    if mode == "by class":
        fit("saliency_class", high=len(data.classes) - 1)
        label = st.selectbox("Class", range(len(data.classes)), key="saliency_class",
                             format_func=lambda c: data.classes[c])
        labels = original_evaluation(setup.train).labels
        return [int(i) for i in (labels == label).nonzero()[0][:IMAGES_PER_VIEW]], "No test image of this class."
    rep = report(setup)
    disagree = (rep.original.predictions != rep.compressed.predictions).nonzero()[0]
    st.metric("Images where the predictions differ", f"{len(disagree):,} of {n:,}")
    return [int(i) for i in disagree[:IMAGES_PER_VIEW]], (
        "The two models agree on every test image at this setting: try a higher pruning rate or fewer bits.")


def saliency_panels(setup: Setup, indices: list[int], method: str, signed: bool) -> None:
    """Per test image: input, both maps and their difference, both predictions, agreement figures.

    The maps of all shown images come from one batched call per model (cached).
    """
    maps_o = original_maps(setup.train, tuple(indices), method)
    maps_c = compressed_maps(setup, tuple(indices), method)
    agree = saliency_agreement(maps_o, maps_c)
    rows = saliency_figures(setup, tuple(indices), method)  # shared by every session at this setting
    for row, (index, fig) in enumerate(zip(indices, rows)):
        figure_col, numbers_col = st.columns([5, 1], vertical_alignment="center")
        with figure_col:
            chart(fig, key=f"saliency_{index}", caption=False)
        with numbers_col:
            _agreement_numbers({k: float(v[row]) for k, v in agree.items()}, signed)


def _agreement_numbers(agree: dict[str, float], signed: bool) -> None:
    st.markdown(f"**Rank corr.** {agree['spearman_abs']:.2f}  \n"
                + (f"**Signed corr.** {agree['spearman']:.2f}  \n" if signed else "")
                + f"**Top-10 % overlap** {percent(agree['topk'], 0)}  \n**SSIM** {agree['ssim']:.2f}",
                help="Rank corr.: Spearman correlation of the absolute maps (1 = same pixel ranking), on the "
                     "pixels where either map is nonzero (a background that is zero in both does not count). "
                     "Signed corr.: the same with signs kept. Top-10 % overlap: share of the most important "
                     "pixels both maps pick (ties shared at random). SSIM: structural similarity (1 = identical).")
    if agree["degenerate"]:
        st.caption("One map is flat where the maps are nonzero (or both are all zero), so its ranking means "
                   "nothing: the rank correlation is set to 1 if the maps are equal, else 0.")


def grid_chart(fig) -> None:
    """The sparsity × bit-width map; clicking a cell moves the sidebar's sliders to it."""
    st.plotly_chart(for_projector(fig) if presenting() else fig, key="sweep_grid", theme=None,
                    on_select=_grid_clicked, selection_mode="points",
                    config={"displaylogo": False})
    st.caption(figures.figure_caption(fig))


def _grid_clicked() -> None:
    # A callback runs before the next rerun, the only moment widget values may be set.
    points = st.session_state["sweep_grid"].selection.points
    custom = points[0].get("customdata") if points else None
    if isinstance(custom, dict):
        # Plotly.js keeps numeric customdata as typed arrays, which reach Python as JSON.stringify
        # writes them: {"0": amount, "1": bits}, not a list.
        custom = [custom[k] for k in sorted(custom, key=int)]
    if custom and len(custom) >= 2:
        amount, bits = custom[:2]
        st.session_state["prune"], st.session_state["bits"] = int(round(float(amount) * 100)), int(bits)

"""Trade-offs: accuracy and explanations against sparsity and bit width, for every pruning method."""
from dataclasses import replace

import streamlit as st

import ui
from core import attribution, figures_tradeoff
from core.sweeps import FAITHFULNESS_METRICS, SweepConfig, summarize

setup = ui.current_setup()
ui.trained_model(setup.train)

st.title("Where do accuracy and explanations break?")
st.caption(ui.describe_setup(setup) + " Each curve varies one control and keeps the other at its sidebar value.")
ui.fit_setting("sweep_method", ui.available_methods(setup), describe=attribution.METHOD_LABELS.get)
left, middle, right = st.columns(3)
method = left.selectbox("Explanation method", ui.available_methods(setup), key="sweep_method",
                        format_func=attribution.METHOD_LABELS.get,
                        help="Gradient maps are fast; Integrated Gradients, SmoothGrad and Occlusion make "
                             "the sweep several times slower.")
seeds = middle.slider("Seeds (trained models)", *ui.SETTINGS["sweep_seeds"].bounds, key="sweep_seeds",
                      help="Each seed is a separately trained original; bands show ± one standard deviation.")
epochs = right.select_slider("Fine-tune after pruning (epochs)", ui.SETTINGS["sweep_epochs"].options,
                             key="sweep_epochs",
                             help="Retrain the kept weights with the pruned ones held at zero, as Han et al. do.")
sweep = SweepConfig(base=setup.compression, method=method, seeds=tuple(range(seeds)), fine_tune_epochs=epochs)
problem = ui.sweep_check(setup.train, sweep)
if problem:
    st.warning(problem)
    st.stop()

table = ui.sweep_table(setup.train, sweep, "curves")  # one row per setting and seed
summary = summarize(table)
metric = st.selectbox("Show", ui.SETTINGS["sweep_metric"].options, key="sweep_metric",  # one row: curves in view
                      format_func=lambda m: figures_tradeoff.METRICS[m].split(" (")[0])
c = setup.compression
by_sparsity, by_bits = st.columns(2)
with by_sparsity:
    ui.chart(figures_tradeoff.tradeoff_curves(summary, "prune_amount", metric, current=c.prune_amount),
             key="curve_sparsity")
with by_bits:
    ui.chart(figures_tradeoff.tradeoff_curves(summary, "weight_bits", metric, current=c.weight_bits),
             key="curve_bits")
if c.quant_scheme == "symmetric":
    st.caption("Why the dip at 2 bits? Symmetric 2-bit quantization is ternary: every weight becomes −s, 0 or +s "
               "with s the largest weight, so all weights under s/2 round to zero. 1 bit is binary with s = the "
               "mean |w|, which keeps every weight. Uniform rounding without retraining is harsher than "
               "Deep Compression's learned codebooks.")
if metric in FAITHFULNESS_METRICS:
    st.caption("Faithfulness is measured on the compressed model's own maps for the original's predicted class: "
               "it asks whether the map still points at the pixels that model relies on.")

st.header("The sparsity × bit-width map")
grid_metric = st.radio("Colour by", ui.SETTINGS["grid_metric"].options, key="grid_metric", horizontal=True,
                       format_func=lambda m: figures_tradeoff.METRICS[m].split(" (")[0])
# The map covers every sparsity and bit width, so the sidebar's own two are left out of its cache key:
# it is measured once per method, scope and quantization scheme, not again after every slider move.
grid = ui.sweep_table(setup.train, replace(sweep, fine_tune_epochs=0,
                                           base=replace(c, prune_amount=0.0, weight_bits=32)), "grid")
ui.grid_chart(figures_tradeoff.grid_heatmap(grid, grid_metric, current=(c.prune_amount, c.weight_bits)))

st.header("Every point as a table")
st.dataframe(summary, hide_index=True)
st.download_button("Download the sweep as CSV", table.to_csv(index=False).encode(), "compression-lens-sweep.csv",
                   "text/csv", key="sweep_csv",
                   help="One row per setting and seed (the table above shows the mean over seeds).")

"""Trade-offs: accuracy and explanations against sparsity and bit width, for every pruning method.

Each method's table (every sparsity x every bit width) is measured once and shared; the
curves and the map are slices of it, and the sidebar's setting is a marker on them.
"""
import numpy as np
import streamlit as st

import ui
from ui.engine import engine_caption
from core.explain import attribution
from core.figures import tradeoff as figures_tradeoff
from core.figures import format_percent
from core.studies.sweeps import FAITHFULNESS_METRICS, QUALITY_METRICS, SweepConfig, nearest_sparsity, summarize

setup = ui.current_setup()
ui.trained_model(setup.train)

st.title("Where do accuracy and explanations break?")
st.caption(ui.describe_setup(setup) + " Each curve varies one control and keeps the other at its sidebar value "
           "(the bits curves: at the measured sparsity nearest it).")
engine_caption("The sweeps of this page run")
ui.fit_setting("sweep_method", ui.available_methods(setup), describe=attribution.METHOD_LABELS.get)
# One row of controls, so that the curves start on a 720p projector under a lesson step.
show, left, middle, right = st.columns([3, 3, 2, 2])
method = left.selectbox("Explanation method", ui.available_methods(setup), key="sweep_method",
                        format_func=attribution.METHOD_LABELS.get,
                        help="Gradient maps are fast; Integrated Gradients, SmoothGrad and Occlusion make "
                             "the sweep several times slower.")
seeds = middle.slider("Seeds (trained models)", *ui.SETTINGS["sweep_seeds"].bounds, key="sweep_seeds",
                      help="Each seed is a separately trained original; bands show ± one standard deviation.")
epochs = right.select_slider("Fine-tune (epochs)", ui.SETTINGS["sweep_epochs"].options,
                             key="sweep_epochs",
                             help="Epochs of retraining after pruning: the kept weights learn again with the "
                                  "pruned ones held at zero, as Han et al. do.")
shown = figures_tradeoff.metrics_for(method)  # infidelity only for maps with a sign
ui.fit_setting("sweep_metric", shown, describe=lambda m: figures_tradeoff.METRICS[m].split(" (")[0].capitalize(),
               fallback="deletion_gain", why=f"Infidelity is measured only for maps with a sign "
               f"({', '.join(label for m, label in attribution.METHOD_LABELS.items() if attribution.is_signed(m))}); "
               f"{attribution.METHOD_LABELS[method]} maps have none.")
metric = show.selectbox("Show", shown, key="sweep_metric",
                        format_func=lambda m: figures_tradeoff.METRICS[m].split(" (")[0])
sweep = SweepConfig(base=setup.compression, method=method, seeds=tuple(range(seeds)), fine_tune_epochs=epochs)
problem = ui.sweep_check(setup.train, sweep)
if problem:
    st.warning(problem)
    st.stop()

tables = ui.sweep_tables(setup.train, sweep)  # (method, fine-tuned) -> every sparsity x bit width
c = setup.compression
table = ui.tradeoff_rows(setup.train, sweep, metric, tables)  # one row per point and seed
summary = summarize(table)
row = nearest_sparsity(sweep, c.prune_amount)
note = "" if np.isclose(row, c.prune_amount) else (
    f"These bits curves are measured at {format_percent(row)} sparsity, the measured sparsity nearest the "
    f"sidebar's {format_percent(c.prune_amount)}; the star is the sidebar's own setting, measured exactly.")
n_test = len(ui.dataset(setup.train.dataset).y_test)  # accuracy captions use its 95 % interval
by_sparsity, by_bits = st.columns(2)
with by_sparsity:
    ui.chart(figures_tradeoff.tradeoff_curves(summary, "prune_amount", metric, current=c.prune_amount,
                                              n_test=n_test),
             key="curve_sparsity")
with by_bits:
    ui.chart(figures_tradeoff.tradeoff_curves(summary, "weight_bits", metric, current=c.weight_bits, note=note,
                                              n_test=n_test),
             key="curve_bits")
if c.quant_scheme == "symmetric":  # the step size decides what 2 bits costs (issue 7 §1)
    if c.quant_range == "minmax":
        st.caption("Why the dip at 2 bits? The step size decides. 2-bit symmetric quantization is ternary "
                   "(−s, 0, +s), and the min–max range makes s the largest |w|: every weight under s/2 rounds "
                   "to zero, most of each layer, while 1 bit (binary, ± mean|w|) keeps every weight. Switch the "
                   "range setting to MSE or TWN and watch the 2-bit point.")
    else:
        st.caption("The step size decides what 2 bits costs. 2-bit symmetric quantization is ternary (−s, 0, +s); "
                   f"here s comes from {'TWN’s threshold' if c.quant_range == 'twn' else 'MSE clipping'}, "
                   "so far fewer weights round to zero. With the min–max range, s would be the largest |w| and every "
                   "weight under s/2 would round to zero, which can put 2 bits below 1 bit. Uniform rounding without "
                   "retraining is harsher than Deep Compression's learned codebooks.")
if metric in FAITHFULNESS_METRICS:
    st.caption("Faithfulness is measured on the compressed model's own maps for the original's predicted class: "
               "it asks whether the map still points at the pixels that model relies on. It costs more than the "
               "other measures, so it is measured only along the two curves shown (each point once, then kept).")
elif metric in QUALITY_METRICS:
    st.caption("Explanation quality of the compressed model's own maps, on the probe images, beside a map of random "
               "noise: is a smaller model's explanation simpler? Read it with a faithfulness measure (deletion gain): "
               "a simpler map only helps if it still points at what the model uses. Measured only along the two "
               "curves shown; the Explanation quality page has every measure for the sidebar's setting.")

st.header("The sparsity × bit-width map")
grid_metric = st.radio("Colour by", ui.SETTINGS["grid_metric"].options, key="grid_metric", horizontal=True,
                       format_func=lambda m: figures_tradeoff.METRICS[m].split(" (")[0])
# The map is the sidebar method's table itself (without fine-tuning): a slider move only moves its outline.
grid = next(t for (_, tuned), t in tables.items() if not tuned)
ui.grid_chart(figures_tradeoff.grid_heatmap(grid, grid_metric, current=(c.prune_amount, c.weight_bits),
                                           n_test=n_test))

st.header("Every point as a table")
st.dataframe(summary, hide_index=True)
st.download_button("Download the sweep as CSV", table.to_csv(index=False).encode(), "compression-lens-sweep.csv",
                   "text/csv", key="sweep_csv",
                   help="One row per setting and seed (the table above shows the mean over seeds).")

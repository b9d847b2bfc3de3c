"""Weights: each layer's distribution of weight values, original and compressed overlaid."""
import streamlit as st

import ui
from core import figures

setup = ui.current_setup()
ui.trained_model(setup.train)

st.title("Weight distributions")
st.caption(ui.describe_setup(setup))
st.markdown(figures.caption("weight_histogram"))
c = setup.compression
if c.quantized and c.quant_granularity == "per_channel":
    st.caption("Per-channel quantization gives every output neuron its own step size, so the levels of "
               "different neurons fall in different places; switch the granularity to *per tensor* to see "
               f"the {c.weight_bits}-bit levels line up.")
if c.step("lowrank").active():
    st.caption("Low-rank is on: a factored layer's chart shows its effective weights, the product of its two "
               "factors, which is what the layer computes. The factors are what is stored, pruned and quantized, "
               "so their zeros and levels do not show here; the Overview's *Layer by layer* counts them.")
figs = list(ui.weight_histograms(setup).items())
# One row of two per pair of layers: on a phone the columns stack, and the layers still read in order.
for row in range(0, len(figs), 2):
    for column, (name, fig) in zip(st.columns(2), figs[row:row + 2]):
        with column:
            ui.chart(fig, key=f"hist_{name}", caption=False)

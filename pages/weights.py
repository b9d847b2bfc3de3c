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
figs = ui.weight_histograms(setup)
columns = st.columns(2)
for i, (name, fig) in enumerate(figs.items()):
    with columns[i % 2]:
        ui.chart(fig, key=f"hist_{name}", caption=False)

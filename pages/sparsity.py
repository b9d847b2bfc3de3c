"""Sparsity: how many weights each layer lost, and which ones (heatmaps of the kept weights)."""
import streamlit as st

import ui

setup = ui.current_setup()
ui.trained_model(setup.train)
labels = ui.layer_labels(setup.train)

st.title("Where the zeros are")
st.caption(ui.describe_setup(setup))
ui.chart(ui.sparsity_figure(setup), key="sparsity_bars")
if setup.compression.step("lowrank").active():
    st.caption("Low-rank is on: the bars count the zeros of each factored layer's two factors (what is stored); "
               "the heatmaps show its effective weights, the product of the factors, which are rarely zero.")

ui.fit_setting("sparsity_layer", list(labels), describe=lambda name: f"Layer {labels.get(name, name)}")
layer = st.selectbox("Layer to inspect", list(labels), format_func=labels.get, key="sparsity_layer")
original, compressed = ui.weight_heatmaps(setup, layer)
left, right = st.columns(2)
with left:
    ui.chart(original, key="heat_original")
with right:
    ui.chart(compressed, key="heat_compressed")

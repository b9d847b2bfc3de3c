"""Weights: each layer's distribution of weight values, original and compressed overlaid."""
import streamlit as st

import ui

setup = ui.current_setup()
ui.trained_model(setup.train)

st.title("Weight distributions")
st.caption(ui.describe_setup(setup))
figs = ui.weight_histograms(setup)
columns = st.columns(2)
for i, (name, fig) in enumerate(figs.items()):
    with columns[i % 2]:
        ui.chart(fig, key=f"hist_{name}")

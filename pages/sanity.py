"""Sanity check: does the map still depend on the model? (cascading randomization, Adebayo et al. 2018)"""
import streamlit as st

import ui
from core.explain import attribution

from core.figures import sanity as figures_sanity

PROBES = 64

setup = ui.current_setup()
ui.trained_model(setup.train)

st.title("Sanity check: does the explanation depend on the model?")
st.caption(ui.describe_setup(setup))
st.markdown("Adebayo et al. (2018) destroy a trained model layer by layer, from the output back to the input, "
            "re-initializing each layer with random weights. A map that **stays the same** while the model is "
            "destroyed is not explaining the model. The test runs on the original and on the compressed model "
            "(which keeps its zeros), for the same images and the same class.")
ui.fit_setting("sanity_method", ui.available_methods(setup), describe=attribution.METHOD_LABELS.get)
left, right = st.columns(2)
method = left.selectbox("Explanation method", ui.available_methods(setup), key="sanity_method",
                        format_func=attribution.METHOD_LABELS.get)
metric = right.radio("Similarity to the intact model's map", list(figures_sanity.METRIC_LABELS), horizontal=True,
                     key="sanity_metric", format_func=figures_sanity.METRIC_LABELS.get)
original, compressed = ui.randomization(setup, method, PROBES)
ui.chart(figures_sanity.randomization_figure(original, compressed, metric), key="sanity_curve")
if attribution.is_signed(method) and metric == "spearman":
    st.caption(figures_sanity.signed_note(original))

st.header("One image, step by step")
n = len(ui.dataset(setup.train.dataset).y_test)
ui.fit_setting("sanity_index", high=n - 1)
index = st.number_input(f"Test image (0 to {n - 1})", 0, n - 1, key="sanity_index")
labels, maps_o, maps_c = ui.randomization_pictures(setup, method, int(index))
ui.chart(figures_sanity.randomization_maps_figure(labels, {"original": maps_o, "compressed": maps_c}),
         key="sanity_maps")

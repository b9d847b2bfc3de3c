"""Explanation quality: are the compressed model's maps simpler, steadier, and still faithful? (probe set, vs chance)

A page of its own rather than a section of Saliency: Saliency follows the slider image by image and must
stay fast (p95 150 ms), while these are averages over the 64 probe images that cost up to a few seconds
(Integrated Gradients, SmoothGrad), computed once per setting.
"""
import streamlit as st

import ui
from core.explain import attribution, quality
from core.figures import quality as figures_quality

PROBES = 64

setup = ui.current_setup()
ui.trained_model(setup.train)

st.title("Is a smaller model easier to explain?")
st.caption(ui.describe_setup(setup))
st.markdown("A claim often made: a compressed model is smaller, so its explanations are simpler. Here it is "
            f"measured on {PROBES} test images (the probe set, every class), for the original and the compressed "
            "model, each beside **a map of random noise** (chance). Both maps explain the original's answer.")
ui.fit_setting("quality_method", ui.available_methods(setup), describe=attribution.METHOD_LABELS.get)
method = st.selectbox("Explanation method", ui.available_methods(setup), key="quality_method",
                      format_func=attribution.METHOD_LABELS.get,
                      help="Gradient maps take a fraction of a second; Integrated Gradients and SmoothGrad a few "
                           "seconds per setting (once, then kept).")
table, original, compressed = ui.explanation_quality(setup, method, PROBES)
st.info(figures_quality.verdict(table), icon=":material/lightbulb:")
st.dataframe(figures_quality.display_table(table), hide_index=True, key="quality_table")
st.caption("Change: compressed minus original, ± twice its standard error over the probe images; a change inside "
           "that noise reads as \"no clear change\". Random map: the same measure for Gaussian noise (redrawn for "
           "every nudged image for max-sensitivity); for the deletion and insertion gains chance is 0 by "
           "construction (random pixel orderings on the same model). Max-sensitivity nudges each pixel by up to "
           "2 % of the pixel range, 10 times, and keeps the largest change of the map"
           + (f" (on {quality.COSTLY_IMAGES} of the probe images: each nudge costs a whole "
              f"{attribution.METHOD_LABELS[method]} map)." if quality.sensitivity_images_for(method) else "."))
if method != "integrated_gradients":
    st.caption("Completeness (do the attributions add up to the change of the class score?) is an axiom of "
               "Integrated Gradients: choose it to see the gap.")
for note in figures_quality.notes(original, compressed):
    st.warning(note, icon=":material/info:")

st.subheader("The other families")
st.markdown("**Randomisation**: does the map depend on the model's weights at all? That is the sanity check "
            "(cascading randomization, Adebayo et al. 2018).")
st.page_link("pages/sanity.py", label="Open the Sanity check", icon=":material/shuffle:")
st.markdown("**Against sparsity and bits**: sparseness, complexity and max-sensitivity are curves on the "
            "Trade-offs page (*Show*), next to deletion gain.")
st.page_link("pages/tradeoffs.py", label="Open the Trade-offs", icon=":material/show_chart:")

"""Saliency: what each model looks at, for chosen test images, and how far the maps agree."""
import streamlit as st

import ui
from core import figures

from core.explain import attribution

setup = ui.current_setup()
model = ui.trained_model(setup.train)

st.title("Do the explanations survive?")
st.caption(ui.describe_setup(setup))
ui.fit_setting("saliency_method", ui.available_methods(setup), describe=attribution.METHOD_LABELS.get)
left, middle, right = st.columns([2, 2, 3])
method = left.selectbox("Explanation method", ui.available_methods(setup), key="saliency_method",
                        format_func=attribution.METHOD_LABELS.get)
mode = middle.radio("Images", ui.SETTINGS["saliency_mode"].options, key="saliency_mode")
with right:
    indices, empty_message = ui.pick_images(setup, mode)
st.markdown(f"**{attribution.METHOD_LABELS[method]}**: {attribution.describe_method(method)} "
            f"{figures.caption('saliency_row')}")
if method == "grad_cam":
    st.caption(attribution.describe_grad_cam(model))
elif attribution.is_signed(method):
    st.caption("Black in these images is not 0 but the darkest pixel value (the data are normalized): "
               "every method here measures from the black image, so black background pixels get 0.")

if not indices:
    st.info(empty_message)
else:
    ui.saliency_panels(setup, indices, method, signed=attribution.is_signed(method))

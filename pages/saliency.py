"""Saliency: what each model looks at, for chosen test images, and how far the maps agree."""
import streamlit as st

import ui
from core import attribution, figures

setup = ui.current_setup()
ui.trained_model(setup.train)

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

if not indices:
    st.info(empty_message)
else:
    ui.saliency_panels(setup, indices, method, signed=attribution.is_signed(method))

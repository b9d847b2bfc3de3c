"""Scrub: drag the slider inside the chart; every stop was computed in advance, so nothing waits for the server."""
import streamlit as st

import ui
from core.explain import attribution

from core.studies import scrub

setup = ui.current_setup()
ui.trained_model(setup.train)

st.title("Scrub through a setting")
st.caption(ui.describe_setup(setup))
st.markdown("The chart carries every position of its slider: drag the slider **under the chart** and the "
            "accuracy marker, the weight histogram and the saliency maps follow at once. "
            "The other settings come from the sidebar; the board opens at the sidebar's own value.")

labels = ui.layer_labels(setup.train)
n_test = len(ui.dataset(setup.train.dataset).y_test)
methods = ui.available_methods(setup)
state = st.session_state
# These page settings reset when the model changes: another model has other layers and methods.
if state.get("scrub_layer") not in labels:
    state["scrub_layer"] = ui.largest_layer(setup.train)
if state.get("scrub_method") not in methods:
    state["scrub_method"] = methods[0]
state["scrub_index"] = min(int(state.get("scrub_index", 0)), n_test - 1)

left, middle, right, far = st.columns([2, 3, 2, 3])
control = left.radio("The slider moves", tuple(scrub.CONTROLS), format_func=scrub.LABELS.get, key="scrub_control",
                     help="Pruning rate: 0 to 100 % in steps of 5. Bit width: 1 to 8 bits, and 32 (no quantization). "
                          "Low-rank: the share kept, from 0.05 to 1.00 (off), finer near 1.")
layer = middle.selectbox("Layer in the histogram", list(labels), format_func=labels.get, key="scrub_layer")
index = right.number_input(f"Test image (0 to {n_test - 1})", 0, n_test - 1, step=1, key="scrub_index")
method = far.selectbox("Explanation method", methods, format_func=attribution.METHOD_LABELS.get, key="scrub_method")

fig = ui.scrub_figure(setup, control, layer, int(index), method)
ui.wide_chart(fig, key=f"scrub_board_{control}")  # on a phone the board scrolls sideways
others = [label.lower() for key, label in scrub.LABELS.items() if key != control]
fixed = ", ".join(others[:-1]) + " and " + others[-1] if len(others) > 1 else "".join(others)
st.caption(f"Fixed while you drag: everything else from the sidebar, including the {fixed}. "
           f"{attribution.METHOD_LABELS[method]}: {attribution.describe_method(method)}")

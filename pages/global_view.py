"""Global view: what the model as a whole has learned, original vs compressed (not one image's map)."""
import streamlit as st

import ui
from core.explain import attribution
from core.figures import global_view as figures_global
from ui import global_gallery

setup = ui.current_setup()
model = ui.trained_model(setup.train)

st.title("What has the model learned as a whole?")
st.caption(ui.describe_setup(setup))
classes = [str(c) for c in ui.dataset(setup.train.dataset).classes]

st.header("How the last hidden layer sorts the test images")
embed = st.radio("Picture", ui.SETTINGS["global_view_embedding"].options, key="global_view_embedding",
                 horizontal=True, format_func={"pca": "PCA (fast)", "tsne": "t-SNE (a few seconds)"}.get,
                 help="PCA keeps the two directions along which the original's features vary most; t-SNE keeps "
                      "neighbours together but can distort distances.")
points = ui.global_embedding(setup, embed)
global_gallery.embedding_with_gallery(setup, figures_global.embedding_figure(
    points["original"], points["compressed"], points["label"], points["pred_original"], points["pred_compressed"],
    classes, points["note"], indices=points["index"]), n_test=len(ui.dataset(setup.train.dataset).y_test))

st.header("Units that never fire")
silent_original, silent_compressed = ui.silent_units(setup)
ui.chart(figures_global.silent_units_figure(silent_original, silent_compressed), key="global_silent")
for note in figures_global.silent_notes(silent_compressed, "Compressed") + figures_global.silent_notes(
        silent_original, "Original"):
    st.warning(note, icon=":material/info:")

st.header("Each class on average")
ui.fit_setting("global_view_method", ui.available_methods(setup), describe=attribution.METHOD_LABELS.get)
method = st.selectbox("Explanation method", ui.available_methods(setup), key="global_view_method",
                      format_func=attribution.METHOD_LABELS.get)
maps_original, maps_compressed, counts = ui.class_maps(setup, method)
signed = attribution.is_signed(method)
ui.chart(figures_global.tiles_figure(
    {"original": maps_original, "compressed": maps_compressed}, classes, "The average map of each class",
    f"Each tile is the mean {attribution.METHOD_LABELS[method]} map of up to 50 test images of one class, explaining "
    "that class; each row is divided by its own largest value (÷ max), so the rows compare by shape: where does the "
    "compressed model's idea of each digit differ from the original's?", signed=signed, per_row=True),
    key="global_class_maps")
if missing := [classes[c] for c, n in enumerate(counts) if n == 0]:
    st.warning(f"No test images of class {', '.join(missing)}: its tiles are left blank (all zero).",
               icon=":material/info:")

st.header("First-layer filters")
filters = ui.first_filters(setup)
if filters is None:
    st.info("This model has no convolution layer, so there are no filters to show (its first layer is fully "
            "connected: see the Sparsity page's heatmaps).")
else:
    label, original, compressed = filters
    ui.chart(figures_global.tiles_figure(
        {"original": original, "compressed": compressed}, [str(i + 1) for i in range(len(original))],
        f"The filters of {label.split(' (')[0]}",
        "Each tile is one filter of the first convolution (its weights, input channels summed): red adds, blue "
        "subtracts where the filter sits on the image. White is zero, so pruned weights and filters show as white.",
        signed=True), key="global_filters")

"""Your digit: draw one or upload a picture, then see both models' predictions and explanations."""
import streamlit as st

import ui
from core import digits, figures

from core.explain import attribution

from core.figures import maps as figures_maps

try:
    from streamlit_drawable_canvas import st_canvas
except ImportError:  # the canvas is optional: uploads still work without it
    st_canvas = None

DRAW, UPLOAD = "Draw on the canvas", "Upload a picture"

setup = ui.current_setup()
st.title("Your digit")
st.caption(ui.describe_setup(setup))
data = ui.dataset(setup.train.dataset)
reason = digits.unsupported(data)


def picture(kind: str) -> bytes | None:
    """PNG or JPEG bytes of the drawing or upload, or None (with an invitation) when there is none yet."""
    if kind == UPLOAD:
        upload = st.file_uploader("A PNG or JPEG of one digit, any size, dark on light or light on dark",
                                  type=["png", "jpg", "jpeg"], key="draw_upload")
        if upload is None:
            st.info("Upload a photo or scan of one handwritten digit.")
        return None if upload is None else upload.getvalue()
    if st_canvas is None:
        st.info("The drawing canvas (streamlit-drawable-canvas) is not installed: upload a picture instead.")
        return None
    st.space(28)  # room for the canvas's floating toolbar
    canvas = st_canvas(stroke_width=20, stroke_color="#FFFFFF", background_color="#000000", width=280,
                       height=280, drawing_mode="freedraw", return_image_data=True, key="draw_canvas")
    st.caption("One digit, large, in the middle. The toolbar above the square undoes strokes; its bin clears them.")
    if canvas.image_bytes is None:
        st.info("Draw a digit on the black square with the mouse, a finger or a pen.")
    return canvas.image_bytes


def predictions(source: bytes, top: int = 3) -> int:
    """Both models' top classes with probabilities; returns the original's prediction."""
    original, compressed = ui.own_predictions(setup, source)
    for column, name, probs in zip(st.columns(2), ("Original", "Compressed"), (original, compressed)):
        ranked = sorted(range(len(probs)), key=lambda c: -probs[c])[:top]
        column.metric(f"{name} model says", data.classes[ranked[0]],
                      help="The class with the highest probability (softmax of the model's outputs).")
        column.markdown("  \n".join(f"{i + 1}. **{data.classes[c]}**: {ui.percent(probs[c])}"
                                    for i, c in enumerate(ranked)))
    return max(range(len(original)), key=lambda c: original[c])


if reason:
    st.info(f"This page works with the digit data sets: {reason}. Choose MNIST or the small digits in the sidebar.")
else:
    with st.container():  # the training progress bar, when shown, must not move the canvas (it would remount, empty)
        ui.trained_model(setup.train)
    kind = st.radio("Your input", [DRAW, UPLOAD], key="draw_source", horizontal=True, label_visibility="collapsed")
    draw_col, seen_col, result_col = st.columns([3, 2, 4])
    with draw_col:
        source = picture(kind)
    prepared = None
    if source is not None:
        try:
            prepared = ui.own_input(source, data.name)
        except ValueError as err:
            with draw_col:
                if str(err) == digits.EMPTY_MESSAGE:
                    st.info("The picture is empty: draw a digit.")
                else:
                    st.error(f"{str(err)[:1].upper()}{str(err)[1:]}.")  # it names what is wrong
    if prepared is not None:
        with seen_col:
            height, width = data.input_shape[1:]
            made = "centred by mass like MNIST" if height == digits.MNIST_SIZE else "filling the frame like its digits"
            st.image(digits.display_pixels(prepared, data, scale=max(1, 168 // height)),
                     caption=f"What the models see: {height}×{width} pixels, {made}")
        with result_col:
            predicted = predictions(source)
            if ui.report(setup).sparsity == 1.0:  # every weight is zero: the output is the last layer's bias
                st.info("Every weight of the compressed model is pruned, so only its biases answer: it gives "
                        "the same answer with the same probabilities for every picture, and its map is blank.",
                        icon="ℹ️")
        method = st.selectbox("Explanation method", ui.available_methods(setup), key="draw_method",
                              format_func=attribution.METHOD_LABELS.get)
        st.markdown(f"**{attribution.METHOD_LABELS[method]}**: {attribution.describe_method(method)} "
                    f"Both maps explain the original's answer, {data.classes[predicted]}. "
                    f"{figures.caption('saliency_row')}")
        original_map, compressed_map = ui.own_maps(setup, source, method)
        fig = figures_maps.saliency_row(prepared[0], original_map, compressed_map,
                                        {"image": "your digit", "original": "original",
                                         "compressed": "compressed"})
        ui.chart(fig, key="draw_saliency", caption=False)

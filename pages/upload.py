"""Your model: upload weights for one of the registered architectures and explore them like the built-in model."""
import streamlit as st

import models
import ui
from core import figures
from core import upload as uploads

setup = ui.current_setup()
ui.trained_model(setup.train)
data = ui.dataset(setup.train.dataset)

st.title("Bring your own model")
st.markdown(f"Upload weights you trained yourself for one of the app's architectures "
            f"({', '.join(models.list_models())}) on the sidebar's data set (**{setup.train.dataset}**). "
            "Every page then compresses and explains *your* model. Save them with "
            "`torch.save(model.state_dict(), 'my.pt')` or safetensors' `save_file(model.state_dict(), 'my.safetensors')`.")
st.file_uploader("Weights file (.safetensors, .pt or .pth, at most 20 MB)", type=["safetensors", "pt", "pth"],
                 key=ui.OWN_MODEL_FILE_KEY, on_change=ui.accept_own_model, max_upload_size=20)
st.caption("Nothing in the file is run: safetensors holds only tensors, and torch files are read with "
           "`weights_only=True`. Names, shapes and types must match the architecture exactly.")
if ui.own_model_refusal():
    st.error(ui.own_model_refusal(), icon="🚫")
    if ui.own_model_refusal_detail():
        with st.expander("Technical detail (what the file reader said)"):
            st.code(ui.own_model_refusal_detail(), language=None, wrap_lines=True)

upload = ui.own_model()
if upload is None:
    st.info("No weights uploaded: every page shows the model the app trained itself.", icon="ℹ️")
else:
    st.subheader("Your weights")
    st.markdown(f"**{upload.filename}** ({figures.format_bytes(upload.size_bytes)}): "
                f"{models.describe_model(upload.architecture)} on {upload.dataset}; fingerprint `{upload.digest[:12]}`.")
    use = ui.own_model_toggle()
    matches = (setup.train.model, setup.train.dataset) == (upload.architecture, upload.dataset)
    if use and matches:
        evaluation = ui.original_evaluation(setup.train)
        st.success(f"Every page now explores your weights: {ui.percent(evaluation.accuracy)} test accuracy "
                   f"before compression.", icon="✅")
        st.page_link("pages/overview.py", label="See them compressed on the Overview", icon=":material/dashboard:")
    elif use:
        st.warning(f"The sidebar shows {setup.train.model} on {setup.train.dataset}; your weights are for "
                   f"{upload.architecture} on {upload.dataset}.", icon="⚠️")
        st.button("Switch the sidebar to my weights", on_click=ui.show_own_model_settings)
    st.button("Forget my weights", on_click=ui.forget_own_model, icon=":material/delete:")
    if upload.metadata:
        with st.expander("Metadata in the file"):
            st.json(upload.metadata)

with st.expander(f"What a file for {setup.train.model} on {setup.train.dataset} must hold"):
    shapes = uploads.expected_shapes(setup.train.model, data.input_shape, data.num_classes)
    st.dataframe([{"tensor": name, "shape": " × ".join(map(str, shape))} for name, shape in shapes.items()],
                 hide_index=True)
    st.caption("Float tensors (16, 32 or 64 bit) with finite values, and no other entries. "
               "The Export page's safetensors download is a ready example.")

"""Export: this comparison as a self-contained HTML report, its metrics as CSV, the compressed weights (dense and
packed as the Size card counts them) and the model as ONNX files (fp32 and int8)."""
import streamlit as st

import ui
from core import export

setup = ui.current_setup()
ui.trained_model(setup.train)
report = ui.report(setup)
data = ui.dataset(setup.train.dataset)

st.title("Export this comparison")
st.caption(ui.describe_setup(setup))
stem = ui.file_stem(setup)
link = ui.view_link()

html_col, csv_col, weights_col = st.columns(3)
with html_col:
    st.download_button("HTML report", data=ui.report_file(setup, link), file_name=f"{stem}.html", mime="text/html",
                       on_click="ignore", icon=":material/description:", type="primary", width="stretch")
    st.caption("One file with the settings, the metrics, the layer table and every chart, still interactive. "
               "It opens in any browser without internet (about 5 MB: it carries its own plotting library).")
with csv_col:
    st.download_button("Metrics (CSV)", data=ui.metrics_csv(setup), file_name=f"{stem}.csv", mime="text/csv",
                       on_click="ignore", icon=":material/table:", width="stretch")
    st.caption("First row: the whole model (accuracy, size, ratio, MACs); then one row per layer. "
               "Fractions are 0 to 1, sizes in bytes.")
with weights_col:
    st.download_button("Compressed weights (safetensors)", data=ui.weights_file(setup), file_name=f"{stem}.safetensors",
                       mime="application/octet-stream", on_click="ignore", icon=":material/memory:", width="stretch")
    st.caption("The compressed model's tensors, dense: every weight as a 32-bit float, zeros included (as large as "
               "the original), with the settings in the file's metadata. Upload it on the *Your model* page to "
               "compress it once more.")

st.subheader("Deployable files")
fp32_col, int8_col, config_col, packed_col = st.columns(4)
with fp32_col:
    st.download_button("ONNX fp32", data=ui.onnx_file(setup, "fp32"), file_name=f"{stem}_fp32.onnx",
                       mime="application/octet-stream", on_click="ignore", icon=":material/deployed_code:",
                       width="stretch")
    st.caption("The compressed model for ONNX Runtime or any ONNX tool (input `x`: N×C×H×W normalized images, "
               "output `y`: logits). Structured pruning is cut out; other weights are stored as the simulation "
               "has them.")
    if any(step.name == "share" for step in setup.compression.pipeline()):
        st.download_button("ONNX, shared values", data=ui.onnx_codebook_file(setup), file_name=f"{stem}_shared.onnx",
                           mime="application/octet-stream", on_click="ignore", icon=":material/deployed_code:",
                           width="stretch")
        st.caption("The same model with each layer's weights as uint8 indices into its table of shared values "
                   "(Cast, then Gather, in the graph): about 4× smaller on disk, exactly the same numbers, and no "
                   "faster (ONNX Runtime rebuilds the weights when it loads the file).")
with int8_col:
    st.download_button("ONNX int8", data=ui.onnx_file(setup, "int8"), file_name=f"{stem}_int8.onnx",
                       mime="application/octet-stream", on_click="ignore", icon=":material/deployed_code:",
                       width="stretch")
    st.caption("The same, quantized by ONNX Runtime (static, QDQ, int8 weights, uint8 activations, calibrated "
               "on training images): real integer kernels, a slightly different model (see *Deployment*).")
with config_col:
    st.download_button("ONNX config (JSON)", data=ui.onnx_config_file(setup), file_name=f"{stem}_onnx.json",
                       mime="application/json", on_click="ignore", icon=":material/data_object:", width="stretch")
    st.caption("How to feed the ONNX files (names, shapes, the normalization's mean and std, the classes) and "
               "the settings they were made from.")
with packed_col:
    blob, words = ui.packed_download(setup)  # every family, stored as the Size card counts it
    if blob is None:
        st.button("Packed weights", disabled=True, icon=":material/compress:", width="stretch")
    else:
        st.download_button("Packed weights", data=blob, file_name=f"{stem}_packed.safetensors",
                           mime="application/octet-stream", on_click="ignore", icon=":material/compress:",
                           width="stretch")
    st.caption(words)
st.subheader("The link to this view")
st.code(link, language=None, wrap_lines=True)
st.subheader("Metrics")
st.dataframe(export.metrics_frame(report), hide_index=True)
with st.expander("What the weights file holds, and how to load it"):
    st.json(export.weights_metadata(setup.train, setup.compression, data.input_shape, data.num_classes))
    st.code(f"""from safetensors.torch import load_file
import models  # from this repository
model = models.create_model("{setup.train.model}", {tuple(data.input_shape)}, {data.num_classes})
model.load_state_dict(load_file("{stem}.safetensors"))""", language="python")
with st.expander("Check a packed weights file"):
    upload = st.file_uploader("A packed weights file (.safetensors)", type=["safetensors"], key="export_packed_file",
                              help="Rebuilt with `core.deploy.packed.unpack` and run on test images beside this "
                                   "setting's compressed model.")
    if upload is not None:
        same, verdict = ui.packed_check(setup, upload.getvalue())
        (st.success if same else st.error)(verdict)
    st.code(f"""from core.deploy.packed import unpack  # from this repository
with open("{stem}_packed.safetensors", "rb") as f:
    model, cfg, meta = unpack(f.read())  # the compressed model, its settings, the file's metadata""",
            language="python")

"""Export: this comparison as a self-contained HTML report, its metrics as CSV, the compressed weights as safetensors."""
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
    st.caption("The compressed model's tensors, with its training and compression settings in the file's "
               "metadata. Upload it on the *Your model* page to compress it once more.")

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

"""Overview: accuracy, size, sparsity, MACs and agreement of original vs compressed."""
import streamlit as st

import ui
from core import figures

setup = ui.current_setup()
ui.trained_model(setup.train)
report = ui.report(setup)
data = ui.dataset(setup.train.dataset)

st.title("Original vs compressed")
st.caption(ui.describe_setup(setup))
ui.metric_cards(report)
st.plotly_chart(figures.per_class_accuracy(data.classes, report.original.per_class_accuracy,
                                           report.compressed.per_class_accuracy), key="per_class")
st.caption(figures.caption("per_class_accuracy"))
with st.expander("Layer by layer"):
    st.dataframe(report.to_frame(), hide_index=True)

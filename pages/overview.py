"""Overview: accuracy, size, sparsity, MACs and agreement of original vs compressed."""
import streamlit as st

import ui
from core import figures

setup = ui.current_setup()
ui.trained_model(setup.train)
report = ui.report(setup)
data = ui.dataset(setup.train.dataset)

st.title("Original vs compressed")
st.markdown("Drag the **Pruning rate** and **Bit width** sliders: the compressed copy is rebuilt from the original each time, "
            "and every number below compares the two on the same test images.")
st.caption(ui.describe_setup(setup))
ui.metric_cards(report)
rounded = report.sparsity - setup.compression.prune_amount
if setup.compression.quantized and setup.compression.prune_method != "structured" and rounded > 0.01:
    st.info(f"Quantization alone rounded a further {figures.format_percent(rounded)} of the weights to exactly "
            f"zero: at {setup.compression.weight_bits} bits, every weight smaller than half a step becomes 0.",
            icon="ℹ️")
ui.chart(figures.per_class_accuracy(data.classes, report.original.per_class_accuracy,
                                    report.compressed.per_class_accuracy), key="per_class")
with st.expander("Layer by layer"):
    st.dataframe(report.to_frame(), hide_index=True)

"""Overview: accuracy, size, sparsity, MACs and agreement of original vs compressed."""
import streamlit as st

import ui
from core import figures

setup = ui.current_setup()
ui.trained_model(setup.train)
report = ui.report(setup)

st.title("Original vs compressed")
st.markdown("Drag the **Pruning rate** and **Bit width** sliders: the compressed copy is rebuilt from the original each time, "
            "and every number below compares the two on the same test images.")
st.caption(ui.describe_setup(setup))
ui.metric_cards(report)
ui.summary_box(setup)  # under the cards: a lesson step above the page must leave the cards in view at 720p
rounded = report.sparsity - setup.compression.prune_amount
if setup.compression.quantized and rounded > 0.01:
    below = "TWN's threshold" if setup.compression.range_used == "twn" and setup.compression.weight_bits == 2 \
        else "half a step"
    st.info(f"Quantization alone rounded a further {figures.format_percent(rounded)} of the weights to exactly "
            f"zero: at {setup.compression.weight_bits} bits, every weight smaller than {below} becomes 0.",
            icon="ℹ️")
ui.chart(ui.per_class_figure(setup), key="per_class")  # one figure per setting, shared by every session
ui.layer_table(report)

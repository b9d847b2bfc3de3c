"""Deployment: the compressed model as real files and kernels, measured beside what theory promises.

Both models are exported (ONNX fp32, ONNX Runtime int8, packed weights) and timed in a background
job per setting (about 5 s, with progress); the tables and the sentence come from that measurement.
"""
import streamlit as st

import ui
from core.deploy import latency, tables
from core.figures import format_percent

setup = ui.current_setup()
ui.trained_model(setup.train)
rep = ui.report(setup)

st.title("What it really costs")
st.caption(ui.describe_setup(setup) + " Everything else in the app is theory (a masked model is as large and as "
           "slow as the dense one). Here both models are exported to real files and timed on this server's CPU, "
           "one thread.")
attempt = st.session_state.get("_deploy_attempt", 0)
measured, compressed = ui.deployment(setup, attempt)

st.info(latency.explain(measured), icon=":material/lightbulb:")
for note in compressed.notes:
    st.warning(note, icon=":material/info:")

st.header("On disk and in compute")
cards = (rep.size_original_bytes, rep.size_compressed_bytes)
st.table(tables.cost_table(measured, cards), hide_index=True, border="horizontal")
st.caption("Bytes of the files the Export page offers. *Packed weights* stores what the Size card counts (b-bit "
           "codes with their scales, or weight sharing's indices and codebooks; low-rank factors; 16-bit weights; "
           "the sparsity mask or positions; fp32 biases); its header (the settings and the layout, a few kB) comes "
           "on top. Parameters and MACs count the model as it runs, every weight "
           "of its shape: structured pruning cuts whole units out, and with them the next layer's weights that "
           "read them, so it can end smaller than the Size card, which counts the zeros' mask instead.")

st.header("Latency")
st.table(tables.latency_table(measured), hide_index=True, border="horizontal")
runs = min(t.runs for t in measured.compressed.timings.values()) if measured.compressed.timings else 0
st.caption(f"Median and interquartile range (IQR: the middle half of the runs) of at least {runs} runs per cell, "
           f"one thread, original and compressed run in turn so that the load of this shared machine falls on "
           f"both alike ({measured.seconds:.1f} s of timing in all). Speed-up: original's median ÷ compressed's; "
           "below 1× the compressed model is slower. Absolute times depend on the machine: read the ratios.")

st.header("Theory beside measurement")
st.table(tables.ratio_table(measured), hide_index=True, border="horizontal")
st.caption("Theory is what the Overview shows: the Size card's ratio and the MACs of the nonzero weights. "
           "Measured: real file sizes, the MACs of the model that runs, and the timed latency (batch 256).")

st.header("The exported models against the simulation")
st.table(tables.check_table(compressed.checks), hide_index=True, border="horizontal")
chance = 1 / ui.dataset(setup.train.dataset).num_classes
st.caption("Every test image through ONNX Runtime and through the simulated PyTorch model. fp32 computes the same "
           "model (differences are float rounding); int8 is ONNX Runtime's own 8-bit model, so some answers may "
           f"change: that share is the price of real integer kernels. Chance is {format_percent(chance)}.")

if st.button("Measure again", icon=":material/refresh:", key="deployment_again",
             help="Times both models once more (about 5 s): the figures should repeat within about 10 % on an "
                  "idle machine."):
    st.session_state["_deploy_attempt"] = attempt + 1
    st.rerun()

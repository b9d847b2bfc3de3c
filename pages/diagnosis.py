"""Diagnosis: which mistakes compression added, on which test images, and whether confidence is still honest."""
import streamlit as st

import ui
from core.studies.diagnosis import GROUP_LABELS, GROUP_NAMES, GROUPS
from ui import diagnosis_view

MATRIX_LABELS = {"change": "Change", "original": "Original", "compressed": "Compressed"}

setup = ui.current_setup()
ui.trained_model(setup.train)
diag = ui.diagnosis(setup)
charts = ui.diagnosis_figures(setup)

st.title("Which mistakes did compression add?")
st.caption(ui.describe_setup(setup))
for note in diag.notes:
    st.info(note, icon="ℹ️")

st.header("Who is mistaken for whom")
view = st.radio("Confusion matrix", list(MATRIX_LABELS), key="diag_matrix", horizontal=True,
                format_func=MATRIX_LABELS.get)
ui.chart(charts[view], key="diag_confusion")
if diag.pairs:
    st.markdown("**The confusions that grew most**\n\n" + "\n".join(f"- {p.words(diag.classes)}" for p in diag.pairs))

st.header("Right and wrong, image by image")
st.markdown("Every test image is in one group, by whether each model answers it right.")
counts = st.columns(len(GROUPS))
for column, name in zip(counts, GROUPS):
    column.metric(GROUP_NAMES[name], f"{diag.counts[name]:,}", help=GROUP_LABELS[name].capitalize())
group = st.radio("Show the images that are", GROUPS, key="diag_group", horizontal=True,
                 format_func=lambda g: f"{GROUP_NAMES[g]} ({diag.counts[g]:,})")
diagnosis_view.group_gallery(setup, group)

st.header("Is the confidence still honest?")
ui.chart(charts["reliability"], key="diag_reliability")

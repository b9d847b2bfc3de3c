"""Compare families: at the same size, which kind of compression keeps accuracy and explanations best?

Every registered family (and the pairs the registry declares) walked from mild to strong at the
sidebar's other settings, measured once per setting and shared; the sidebar's own setting is a star.
"""
import pandas as pd
import streamlit as st

import ui
from ui.engine import engine_caption
from core.explain import attribution
from core.figures import families as figures_families
from core.studies.families import METRICS, FamiliesConfig, summarize_lines

setup = ui.current_setup()
ui.trained_model(setup.train)

st.title("At the same size, which compression keeps the most?")
st.caption(ui.describe_setup(setup) + " Each line is one family alone (the others off), from mild to strong, "
           "with its other settings from the sidebar; the star is the sidebar's own setting.")
engine_caption("The points of this comparison are measured")
ui.fit_setting("families_method", ui.available_methods(setup), describe=attribution.METHOD_LABELS.get)
show, left, right = st.columns([4, 3, 2])
metric = show.selectbox("Show", list(METRICS), key="families_metric", format_func=METRICS.get)
method = left.selectbox("Explanation method (for explanation agreement)", ui.available_methods(setup),
                        key="families_method", format_func=attribution.METHOD_LABELS.get)
seeds = right.slider("Seeds (trained models)", *ui.SETTINGS["families_seeds"].bounds, key="families_seeds",
                     help="Each seed is a separately trained original; bands show ± one standard deviation.")
cfg = FamiliesConfig(base=setup.compression, method=method, seeds=tuple(range(seeds)))
problem = ui.sweep_check(setup.train, cfg.sweep())
if problem:
    st.warning(problem)
    st.stop()

table = ui.families_table(setup.train, cfg)
student, student_note = ui.families_student(setup.train, cfg)
if student is not None:
    table = pd.concat([table, student], ignore_index=True)
    if student["spearman_abs_mean"].isna().all() and metric == "spearman_abs_mean":
        student_note += f" It has no {attribution.METHOD_LABELS[method]} maps (no convolution layer), so no line here."
summary = summarize_lines(table, metric)
n_classes = int(ui.dataset(setup.train.dataset).y_test.max()) + 1
chance = 1 / n_classes if metric == "accuracy" else None  # prediction and map agreement have no fixed chance
ui.chart(figures_families.families_chart(summary, metric, chance, student_note), key="families_chart")
with st.expander("Every point as a table"):
    st.dataframe(table.drop(columns=[c for c in table.columns if c.endswith("_std")]), hide_index=True)
st.download_button("Download the comparison (CSV)", table.to_csv(index=False), file_name="families.csv",
                   mime="text/csv", icon=":material/download:")

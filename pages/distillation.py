"""Distillation: a smaller student learns from the sidebar's trained model (knowledge distillation), or the
same model learns from a small chosen part of the training set (data distillation).

Both train new models in a shared background job (cached on disk); the teacher is only read.
"""
import streamlit as st

import models
import ui
from ui.engine import engine_caption
from core.distillation.compare import PROBE_SIZE, SHORT_LABELS, display_table, verdict
from core.explain.attribution import METHOD_LABELS
from core.distillation.knowledge import DistillConfig
from core.figures import distillation as figures_distillation
from core.warm import SHORT_NAMES

setup = ui.current_setup()
ui.trained_model(setup.train)
st.title("Learning from a teacher")
engine_caption("The students (and the subset models) train")
if isinstance(setup.train, ui.UploadedTrain):
    st.info("Distillation trains new models from the built-in trained teacher, not from uploaded weights: switch "
            "your upload off on the *Your model* page to use it here.", icon=":material/info:")
    st.stop()
teacher = setup.train
data = ui.dataset(teacher.dataset)
kind = st.radio("What is distilled", ui.SETTINGS["distill_kind"].options, key="distill_kind", horizontal=True,
                format_func={"knowledge": "The model (a smaller student)",
                             "data": "The data (a small training subset)"}.get,
                help="Knowledge distillation trains a smaller model from the teacher's answers; data distillation "
                     "trains the same model on a few well-chosen training images.")

if kind == "knowledge":
    st.caption(f"The teacher is the sidebar's {SHORT_NAMES.get(teacher.model, teacher.model)}. A student learns from "
               "its softened answers (Hinton et al.): T spreads each answer over the other classes, α weighs those "
               "soft targets against the true labels. Beside it, the same student trained on the labels alone, with "
               "the same recipe and seed.")
    left, middle, right, last = st.columns([3, 2, 2, 3])
    student = left.selectbox("Student", ui.SETTINGS["distill_student"].options, key="distill_student",
                             format_func=lambda n: SHORT_NAMES.get(n, n),
                             help="  \n".join(f"**{SHORT_NAMES.get(n, n)}**: {models.describe_model(n)}"
                                              for n in models.list_models()))
    temperature = middle.select_slider("Temperature T", ui.SETTINGS["distill_t"].options, key="distill_t",
                                       help="Softmax temperature for teacher and student: 1 is the plain softmax; "
                                            "higher values show more of how the teacher ranks the wrong classes.")
    alpha = right.select_slider("Weight α of the teacher", ui.SETTINGS["distill_alpha"].options, key="distill_alpha",
                                help="0: labels only (the student is then the label-only student); 1: the teacher's "
                                     "soft targets only.")
    cfg = DistillConfig(teacher=teacher, model=student, temperature=float(temperature), alpha=float(alpha))
    problem = ui.distill_problem(cfg)
    if problem:
        st.warning(problem, icon="⚠️")
        st.stop()
    methods = ui.distill_methods((teacher.model, student), teacher.dataset)
else:
    st.caption("The same model as the sidebar's, trained on a small share of the training images: chosen by k-center "
               "greedy on the full model's features, per class (every region of each class gets a close image, "
               "Sener & Savarese), or at random per class. Both train for as many steps as the full model.")
    left, last = st.columns([5, 3])
    share = left.select_slider("Share of the training images kept", ui.SETTINGS["distill_subset"].options,
                               key="distill_subset", format_func=lambda p: f"{p} %",
                               help="Per class: every class keeps this share of its images, at least one.")
    methods = ui.distill_methods((teacher.model,), teacher.dataset)

ui.fit_setting("distill_method", methods, describe=METHOD_LABELS.get)
method = last.selectbox("Explanation method", methods, key="distill_method", format_func=METHOD_LABELS.get,
                        help="The maps below and their rank correlation with the teacher's use this method.")

if kind == "knowledge":
    compress_it = st.toggle("Also compress the distilled student with the sidebar's setting", key="distill_compress",
                            help="The distilled student is a trained model like any other: this applies the "
                                 "sidebar's pruning and quantization to a copy of it.")
    result = ui.distill_comparison(cfg, method, setup.compression if compress_it else None)
    pair = ("label_only", "distilled")
    if cfg.alpha == 0:
        st.info("With α = 0 the teacher has no say: the distilled student is the label-only student.",
                icon=":material/info:")
    if compress_it and not setup.compression.pipeline():
        st.caption("The sidebar compresses nothing right now: its row is the distilled student itself.")
else:
    result = ui.subset_comparison(teacher, share / 100, method)
    pair = ("random", "kcenter")

n_test = len(data.y_test)
st.markdown(verdict(result.table, *pair, n_test))
ui.chart(figures_distillation.accuracy_intervals(result.table, 1 / data.num_classes, SHORT_LABELS[kind]),
         key="distill_accuracy")
st.dataframe(display_table(result.table), hide_index=True)
st.caption("Size is the stored size as the Overview counts it (32 bits per parameter, fewer once compressed). "
           "Same answer: share of the test images on which the model answers as the teacher does. Maps like the "
           f"teacher's: rank correlation ρ of the maps, mean ± std over {PROBE_SIZE} class-balanced test images, |map| ranked on the pixels either map marks.")

st.header("Do students explain like their teachers?")
names = ["teacher", *pair[::-1]]
rows = result.table.set_index("model")
means = {name: rows.loc[name, "map_spearman"] for name in names[1:]}
st.caption(figures_distillation.MAPS_CAPTION + f" Mean over the {PROBE_SIZE} test images of the table: "
           + ", ".join(f"{rows.loc[n, 'label']} {means[n]:.2f}" for n in names[1:]) + ".")
for row, index in enumerate(result.shown):
    titles = [f"{SHORT_LABELS[kind][name]}<br>says "
              f"{data.classes[result.predictions[name][row]]}"
              + ("" if name == "teacher" else f"<br>ρ {result.spearman[name][row]:.2f}") for name in names]
    fig = figures_distillation.maps_row(data.x_test[int(index)], [(t, result.maps[n][row]) for t, n in zip(titles, names)])
    ui.chart(fig, key=f"distill_maps_{index}", caption=False)

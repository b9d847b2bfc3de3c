"""A/B: a frozen setting (A) beside the sidebar's current one (B), on the same screen."""
import streamlit as st

import ui
from core import figures
from core.stats import accuracy_interval, compare_accuracies, format_interval

setup = ui.current_setup()
st.title("A/B: two settings side by side")
frozen = ui.ab_frozen_setup()
if frozen is None:
    st.markdown("Freeze one setting as **A**, then change the sidebar: this page shows A beside the sidebar's "
                "current setting (**B**), for example magnitude pruning at 50 % beside random pruning at 50 %. "
                "A stays while you switch pages, and the address bar carries it (`?ab=`).")
    st.button("Freeze the current setting as A", on_click=ui.ab_freeze, type="primary", icon=":material/ac_unit:",
              key="ab_freeze_page")
    st.stop()

ui.trained_models(list(dict.fromkeys([frozen.train, setup.train])))  # one bar when A uses another model
sides = {"A (frozen)": frozen, "B (the sidebar now)": setup}
reports = {name: ui.report(side) for name, side in sides.items()}
_, again, swap, clear = st.columns([3, 1, 1, 1])
again.button("Freeze B as A", on_click=ui.ab_freeze, key="ab_refreeze", width="stretch")
swap.button("Swap A and B", on_click=ui.ab_swap, key="ab_swap", width="stretch",
            help="The sidebar takes A's setting, and A the sidebar's.")
clear.button("Forget A", on_click=ui.ab_clear, key="ab_clear", width="stretch")
if frozen == setup:
    st.info("A and B are the same setting: change the sidebar to compare.", icon="ℹ️")

columns = dict(zip(sides, st.columns(2, border=True)))
for name, side in sides.items():
    rep, col = reports[name], columns[name]
    n = len(rep.compressed.labels)
    with col:
        st.subheader(name, anchor=False)
        st.caption(ui.describe_setup(side))
        acc, agree = st.columns(2)  # pairs: values such as 229.5 kB stay whole in half a screen
        acc.metric("Test accuracy", ui.percent(rep.compressed.accuracy),
                   help=f"On {n:,} test images; the original scores {ui.percent(rep.original.accuracy)}.")
        agree.metric("Agreement with the original", figures.format_percent(rep.agreement))
        size, ratio = st.columns(2)
        size.metric("Size", figures.format_bytes(rep.size_compressed_bytes))
        ratio.metric("Compression ratio", figures.format_ratio(rep.compression_ratio))
        st.metric("Sparsity", figures.format_percent(rep.sparsity))
        st.caption(f"95 % interval of the accuracy (Wilson, {n:,} test images): "
                   f"{format_interval(*accuracy_interval(rep.compressed.accuracy, n))}.")

a, b = (r.compressed for r in reports.values())
if frozen.train.dataset == setup.train.dataset:  # the same test images: the two accuracies compare
    st.markdown(compare_accuracies(a.accuracy, b.accuracy, len(a.labels)))

st.header("Accuracy per class")
for name, col in zip(sides, st.columns(2)):
    data = ui.dataset(sides[name].train.dataset)
    with col:
        st.markdown(f"**{name}**")
        rep = reports[name]
        ui.chart(figures.per_class_accuracy(data.classes, rep.original.per_class_accuracy,
                                            rep.compressed.per_class_accuracy), key=f"ab_per_class_{name[0]}",
                 caption=name.startswith("A"))

st.header("Weights of the largest layer")
for name, col in zip(sides, st.columns(2)):
    side = sides[name]
    layer = ui.largest_layer(side.train)
    with col:
        st.markdown(f"**{name}**: {ui.layer_labels(side.train)[layer]}")
        ui.chart(ui.weight_histograms(side)[layer], key=f"ab_weights_{name[0]}", caption=name.startswith("A"))

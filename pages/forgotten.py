"""Forgotten examples: which test images a compressed population gets wrong that the originals agree on."""
from dataclasses import replace

import streamlit as st

import ui
from ui.engine import engine_caption
from core.explain import attribution
from core.figures import population as figures_population
from core.studies.population import population_configs

GALLERY = 6

setup = ui.current_setup()
ui.trained_model(setup.train)
c = setup.compression

st.title("Which examples does a compressed model forget?")
st.caption(ui.describe_setup(setup))
st.markdown("Hooker et al. (2019) train a *population* of models and compress each one. An example is "
            "**forgotten** when the compressed models' majority vote differs from the originals' majority vote: "
            "compression changed the answer, not just the confidence.")
engine_caption("The population's models train")
left, right = st.columns(2)
ui.fit_setting("pie_method", ui.available_methods(setup), describe=attribution.METHOD_LABELS.get)
size = left.slider("Models in each population", *ui.SETTINGS["pie_size"].bounds, key="pie_size",
                   help="Each is trained with another seed (about 10 s each, once; then cached on disk).")
method = right.selectbox("Explanation method for the gallery", ui.available_methods(setup), key="pie_method",
                         format_func=attribution.METHOD_LABELS.get)
ui.trained_models(population_configs(setup.train, size))  # progress bars on first use
view = ui.population_view(setup.train, size, c)
ui.prefetch_population(setup.train, size, c)  # the next arrow-key step finds its votes ready
forgotten = view["forgotten"]
n = len(ui.dataset(setup.train.dataset).y_test)
cols = st.columns(3)
cols[0].metric("Forgotten examples", f"{len(forgotten):,}", help=f"Out of {n:,} test images.")
cols[1].metric("Forgotten rate", ui.percent(len(forgotten) / n))
cols[2].metric("Mean accuracy", ui.percent(view["accuracy"][1]),
               ui.delta((view['accuracy'][1] - view['accuracy'][0]) * 100, 1, "pts"),
               help=f"Mean over the compressed population; originals: {ui.percent(view['accuracy'][0])}.")

# The curve covers every sparsity, so it is keyed without the sidebar's: a pruning-slider move only moves its marker.
curve = ui.pie_table(setup.train, size, replace(c, prune_amount=0.0))
ui.chart(figures_population.pie_curve_figure(curve, c.prune_amount), key="pie_curve")
ui.chart(figures_population.class_impact_figure(view["impact"]), key="class_impact")

st.header("The most forgotten examples")
if forgotten.empty:
    st.info("No example is forgotten at this setting: the two populations vote the same way on every test image. "
            "Raise the pruning rate or lower the bit width.")
else:
    top = forgotten.head(GALLERY)
    maps_o, maps_c = ui.population_saliency(setup.train, size, c, tuple(int(i) for i in top["index"]),
                                            tuple(int(t) for t in top["modal_original"]), method)
    data = ui.dataset(setup.train.dataset)
    for row, (_, example) in enumerate(top.iterrows()):
        fig = figures_population.pie_gallery_row(data.x_test[int(example["index"])], maps_o[row], maps_c[row],
                                                 example, data.classes)
        ui.chart(fig, key=f"pie_{int(example['index'])}", caption=row == 0)

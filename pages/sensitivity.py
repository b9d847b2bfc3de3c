"""Layer sensitivity: each layer compressed alone, and per-layer settings found from it.

The analysis (every layer x every setting) is measured once per model and setting and shared; the
search runs when asked; the plan it finds (or one from a link) is in the URL as `sens_plan`.
"""
import pandas as pd
import streamlit as st

import ui
from ui.engine import engine_caption
from core.explain import attribution
from core.figures import format_bytes, format_percent, format_ratio
from core.figures import sensitivity as figures_sensitivity
from core.studies import plan_search
from core.studies.layer_plan import LayerPlan
from core.studies.sensitivity import SensitivityConfig, neutral

setup = ui.current_setup()
ui.trained_model(setup.train)
c = setup.compression
st.title("Which layers decide it?")
st.caption(ui.describe_setup(setup) + " Here one layer at a time is pruned or quantized, with the sidebar's "
           "method, scheme and range; every other layer stays as trained.")
engine_caption("The layers of this analysis are measured")
ui.fit_setting("sens_method", ui.available_methods(setup), describe=attribution.METHOD_LABELS.get)
left, right = st.columns(2)
metric = left.selectbox("Colour by", list(figures_sensitivity.METRICS), key="sens_metric",
                        format_func=figures_sensitivity.METRICS.get)
method = right.selectbox("Explanation method", ui.available_methods(setup), key="sens_method",
                         format_func=attribution.METHOD_LABELS.get,
                         help="Explanation agreement compares each compressed model's maps with the original's "
                              "on the same probe images as the Trade-offs page.")
cfg = SensitivityConfig(base=neutral(c), method=method)
if problem := ui.sensitivity_problem(setup.train, cfg):
    st.warning(problem)
    st.stop()
table = ui.sensitivity_table(setup.train, cfg)
ui.wide_chart(figures_sensitivity.sensitivity_heatmap(table, metric, c.prune_amount, c.weight_bits), key="sens_map",
              min_width=640)  # on a phone the cells keep room for their numbers: it scrolls sideways
weights, outputs = st.columns(2)
with weights:
    ui.chart(figures_sensitivity.sqnr_bars(table, "weight"), key="sens_sqnr_weights")
with outputs:
    ui.chart(figures_sensitivity.sqnr_bars(table, "activation"), key="sens_sqnr_outputs")

st.header("Per-layer settings from it")
goal = st.radio("Find", ["reasons", "size"], key="sens_goal", horizontal=True,
                format_func={"reasons": "the smallest model still right for the same reasons",
                             "size": "the most accurate model of a given size"}.get)
one, two = st.columns(2)
original_acc = table.attrs["original_accuracy"]
if goal == "size":
    target = one.select_slider("Size target (times smaller than fp32)", ui.SETTINGS["sens_target"].options,
                               key="sens_target", format_func=lambda v: f"{v}×")
    values = (float(target),)
else:
    drop = one.select_slider("Accuracy may drop by at most (points)", ui.SETTINGS["sens_drop"].options,
                             key="sens_drop")
    floor = two.select_slider("Explanation agreement at least (Spearman of |map|)",
                              ui.SETTINGS["sens_floor"].options, key="sens_floor")
    values = (float(drop) / 100, float(floor))
if st.button("Search", key="sens_search", type="primary",
             help="Greedy, as AIMET's AutoQuant and NNCF's accuracy control: layers the table shows to be "
                  "insensitive are compressed first; with constraints, every step is measured and kept only "
                  "when both still hold."):
    found = ui.plan_search_result(setup.train, cfg, goal, values)
    st.session_state["sens_plan"] = found.plan.text()  # before its text box is drawn; into the URL with it
    st.session_state["_sens_steps"] = found.steps
    if not found.met:
        st.warning(f"{values[0]:g}× smaller cannot be reached with these rates and bit widths: the plan below is "
                   f"the smallest the search found ({format_ratio(found.figures['ratio'])}).", icon="⚠️")
text = st.text_input("Per-layer plan (edit it, or open a link with one)", key="sens_plan",
                     help="layer:p<share pruned>b<bits>, comma-separated, e.g. conv1:p0.5b4,fc1:p0.9b2; "
                          "layers left out stay dense fp32.") or ""
if not text.strip():
    st.info("No plan yet: press Search, or type one.", icon=":material/info:")
    st.stop()
if problem := ui.plan_check(setup.train, cfg, text):
    st.warning(f"This plan cannot be shown: {problem}", icon="⚠️")
    st.stop()
plan = LayerPlan.parse(text)
figures = ui.plan_figures(setup.train, cfg, plan.text())
uniform = ui.uniform_settings(setup.train, cfg)
if goal == "size":
    other = plan_search.best_uniform_at_size(uniform, figures["size_bits"])
    versus = "the most accurate uniform setting no larger than it"
else:
    other = plan_search.smallest_uniform_meeting(uniform, original_acc - values[0], values[1])
    versus = "the smallest uniform setting that meets the same two constraints"
    kept = figures["accuracy"] >= original_acc - values[0] - 1e-9 and figures["spearman_abs"] >= values[1] - 1e-9
    (st.success if kept else st.warning)(
        f"This plan {'meets' if kept else 'does NOT meet'} both constraints: accuracy {ui.percent(figures['accuracy'])} "
        f"(original {ui.percent(original_acc)}, allowed down to {ui.percent(original_acc - values[0])}), "
        f"explanation agreement {figures['spearman_abs']:.2f} (at least {values[1]:.2f}).")


def _row(name: str, f: dict) -> dict:
    return {"model": name, "size": format_bytes(f["size_bits"] / 8), "times smaller": format_ratio(f["ratio"]),
            "accuracy": ui.percent(f["accuracy"]), "prediction agreement": ui.percent(f["agreement"]),
            "explanation agreement": f"{f['spearman_abs']:.2f}"}


rows = [_row("per-layer plan", figures)]
if other is not None:
    rows.append(_row(f"uniform: prune {format_percent(other['prune'])}, {int(other['bits'])} bits", other))
st.dataframe(pd.DataFrame(rows), hide_index=True)
if other is None:
    st.caption(f"No uniform setting (every layer at the same rate and bit width) qualifies as {versus}.")
else:
    st.caption(f"Compared with {versus} (every layer the same rate and bit width, pruned layer by layer): the plan "
               f"is {other['size_bits'] / figures['size_bits']:.1f}× {'smaller' if other['size_bits'] >= figures['size_bits'] else 'larger'}. "
               "Sizes count the cheapest storage of every weight as the Overview's Size card does.")
keys = list(dict.fromkeys(table.key))
st.dataframe(pd.DataFrame([{"layer": k, "pruned": format_percent(plan.of(k).prune),
                            "bits": "32 (float)" if plan.of(k).bits == 32 else str(plan.of(k).bits)} for k in keys]),
             hide_index=True)
steps = st.session_state.get("_sens_steps")
if steps is not None and len(steps):
    with st.expander("How the search got there (every step tried)"):
        st.dataframe(steps, hide_index=True)
applied = st.session_state.get("plan") == plan.text() and c.prune_amount == 0 and c.weight_bits == 32
st.button("Applied to the sidebar" if applied else "Apply to the sidebar", key="sens_apply", type="primary",
          on_click=ui.apply_plan, args=(plan.text(),), disabled=applied, icon=":material/input:",
          help="The sidebar's Per-layer plan then holds this plan (and the link, as plan=...): the Overview and "
               "every other page show the model it makes.")
st.caption("Applying sets the sidebar's pruning rate to 0 % and bit width to 32, so that the layers the plan leaves "
           "out stay as trained; the sidebar's Per-layer plan group says so and has a button to clear it.")

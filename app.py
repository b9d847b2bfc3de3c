"""Compression Lens: see what pruning and quantization do to a neural network.

Router: page config, the pages, and the shared sidebar (drawn here, before the page, so every page
sees the same settings); then the page in one keyed fragment (ui/page_run.py) with everything a
compression setting changes: its header, the page, the measured sparsity under the pruning rate, the
share link, the URL. A pruning or bit-width move reruns only that fragment, not the navigation and the
sidebar (issue 11 §2: the browser's wait from a slider release to updated charts). Run with `make run`.
"""
import sys

import streamlit as st

# The first run after a server starts imports torch, captum and plotly (`import ui`, about 5 s).
# The page config, the real page titles and a message go out before that, instead of Streamlit's
# file-name page list over a blank page. Presentation mode is read here without `ui` (ui.presenting
# reads the same two places; the link's words for "on" are ui.url_state.flag's).
COLD = "ui" not in sys.modules
PRESENT = st.session_state.get("present", st.query_params.get("present", "0").strip().lower()
                               in ("1", "true", "yes", "on"))
# Presentation mode (?present=1) starts with the sidebar collapsed: the projector shows the charts.
st.set_page_config(page_title="Compression Lens", page_icon="🔬", layout="wide",
                   initial_sidebar_state="collapsed" if PRESENT else "auto")

PAGES = {
    "overview": ("pages/overview.py", "Overview", ":material/dashboard:"),
    "weights": ("pages/weights.py", "Weights", ":material/bar_chart:"),
    "sparsity": ("pages/sparsity.py", "Sparsity", ":material/grid_on:"),
    "saliency": ("pages/saliency.py", "Saliency", ":material/visibility:"),
    "tradeoffs": ("pages/tradeoffs.py", "Trade-offs", ":material/show_chart:"),
    "families": ("pages/families.py", "Compare families", ":material/stacked_line_chart:"),
    "sensitivity": ("pages/sensitivity.py", "Layer sensitivity", ":material/layers:"),
    "forgotten": ("pages/forgotten.py", "Forgotten examples", ":material/psychology_alt:"),
    "sanity": ("pages/sanity.py", "Sanity check", ":material/shuffle:"),
    "diagnosis": ("pages/diagnosis.py", "Diagnosis", ":material/troubleshoot:"),
    "distillation": ("pages/distillation.py", "Distillation", ":material/model_training:"),
    "quality": ("pages/quality.py", "Explanation quality", ":material/fact_check:"),
    "global_view": ("pages/global_view.py", "Global view", ":material/hub:"),
    "draw": ("pages/draw.py", "Your digit", ":material/draw:"),
    "lessons": ("pages/lessons.py", "Lessons", ":material/school:"),
    "ab": ("pages/ab.py", "A/B", ":material/compare:"),
    "scrub": ("pages/scrub.py", "Scrub", ":material/swipe:"),
    "deployment": ("pages/deployment.py", "Deployment", ":material/speed:"),
    "export": ("pages/export.py", "Export", ":material/download:"),
    "upload": ("pages/upload.py", "Your model", ":material/upload_file:"),
    "glossary": ("pages/glossary.py", "Glossary", ":material/menu_book:"),
}
# ?page=<name> opens that page (links and tests); the path (/weights) works as well.
start = st.query_params.get("page", "overview")
start = start if start in PAGES else "overview"
navigation = st.navigation([
    st.Page(path, title=title, icon=icon, url_path=name, default=(name == start))
    for name, (path, title, icon) in PAGES.items()
])
if COLD:
    waiting = st.empty()
    waiting.info("Preparing the model: the server has just started and is loading PyTorch (a few seconds, "
                 "once).", icon=":material/hourglass_top:")
import ui  # noqa: E402 (after the page list and the message above, see COLD)

ui.run_started()  # background guesses wait while this run is under way (ui.prefetch_neighbours ends it)

if COLD:
    waiting.empty()
ui.sidebar()
# Keep ?page= naming the page on screen, so a copied link opens the same page.
shown = next(name for name, (_, title, _) in PAGES.items() if title == navigation.title)
if st.query_params.get("page") != shown:
    st.query_params["page"] = shown
ui.sidebar_strip()  # presentation mode: the main sliders above the page (outside the fragment, as in the sidebar)
st.session_state[ui.page_run.FULL] = True
ui.page_run.page(navigation, shown)  # header, page, the sidebar's setting-dependent parts, URL, prefetch
ui.freeze_heap()  # once per process, after the first page has loaded torch, plotly and the models

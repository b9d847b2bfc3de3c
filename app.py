"""Compression Lens: see what pruning and quantization do to a neural network.

Router only: page config, the pages, and the shared sidebar (drawn here, before the
page, so every page sees the same settings). Run with `make run`.
"""
import streamlit as st

import ui

st.set_page_config(page_title="Compression Lens", page_icon="🔬", layout="wide")

PAGES = {
    "overview": ("pages/overview.py", "Overview", ":material/dashboard:"),
    "weights": ("pages/weights.py", "Weights", ":material/bar_chart:"),
    "sparsity": ("pages/sparsity.py", "Sparsity", ":material/grid_on:"),
    "saliency": ("pages/saliency.py", "Saliency", ":material/visibility:"),
    "tradeoffs": ("pages/tradeoffs.py", "Trade-offs", ":material/show_chart:"),
    "forgotten": ("pages/forgotten.py", "Forgotten examples", ":material/psychology_alt:"),
    "sanity": ("pages/sanity.py", "Sanity check", ":material/shuffle:"),
}
# ?page=<name> opens that page (links and tests); the path (/weights) works as well.
start = st.query_params.get("page", "overview")
start = start if start in PAGES else "overview"
navigation = st.navigation([
    st.Page(path, title=title, icon=icon, url_path=name, default=(name == start))
    for name, (path, title, icon) in PAGES.items()
])
ui.sidebar()
# Keep ?page= naming the page on screen, so a copied link opens the same page.
shown = next(name for name, (_, title, _) in PAGES.items() if title == navigation.title)
if st.query_params.get("page") != shown:
    st.query_params["page"] = shown
navigation.run()
ui.freeze_heap()  # once per process, after the first page has loaded torch, plotly and the models

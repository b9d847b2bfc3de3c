"""The Global view's embedding as a chart one can click: the picked test images beside it (issue 10 §2).

Plotly's hover cannot show an image in Streamlit, so a click on a dot (or a box or lasso around a few)
reruns the page with the selection; its test images are kept in session state (`cache.GLOBAL_SELECTION`,
as the Saliency page keeps its choice: not in the URL) and drawn beside the chart with both models'
answers and confidences, each with the Diagnosis gallery's button that opens it on the Saliency page.
"""
from __future__ import annotations

from functools import partial

import streamlit as st

from core import figures
from core.studies.global_view import selected_indices
from ui import cache
from ui.diagnosis_view import TILE_WIDTH, open_on_saliency
from ui.panels import for_projector
from ui.setup import Setup
from ui.url_state import presenting

CHART_KEY = "global_embedding"


def _selected(n_test: int) -> None:
    # A callback: runs before the rerun that draws the gallery. An empty selection (a double click) clears it.
    points = st.session_state[CHART_KEY].selection.points
    st.session_state[cache.GLOBAL_SELECTION] = selected_indices(points, n_test)


def _clear() -> None:
    st.session_state[cache.GLOBAL_SELECTION] = []


def embedding_with_gallery(setup: Setup, fig, n_test: int) -> None:
    """The embedding chart (selectable) with the picked images in a column beside it, then the chart's caption."""
    chart_column, gallery_column = st.columns([3, 1])
    with chart_column:
        st.plotly_chart(for_projector(fig) if presenting() else fig, key=CHART_KEY, theme=None,
                        on_select=partial(_selected, n_test), selection_mode=("points", "box", "lasso"),
                        config={"displaylogo": False})
    with gallery_column:
        gallery(setup)
    st.caption(figures.figure_caption(fig))


def gallery(setup: Setup) -> None:
    """The picked test images (session state), each with both answers and an Open button; a hint when none."""
    tiles, picked = cache.global_selection(setup)
    if not tiles:
        st.info("Click a dot to see its test image here, with both models' answers.", icon=":material/touch_app:")
        return
    more = f" (the first {len(tiles)} of {picked:,} picked)" if picked > len(tiles) else ""
    st.markdown(f"**Picked test images**{more}")
    with st.container(height=470, key="global_gallery"):
        for tile in tiles:
            with st.container(width=TILE_WIDTH, key=f"global_tile_{tile.index}"):
                st.image(tile.picture, width="content")
                st.markdown(tile.caption)
                if st.button("Open on the Saliency page", key=f"global_open_{tile.index}", on_click=open_on_saliency,
                             args=(tile.index,), icon=":material/visibility:",
                             help=f"Test image {tile.index} on the Saliency page, with both models' maps"):
                    st.switch_page("pages/saliency.py")
    st.button("Clear", key="global_clear", on_click=_clear, icon=":material/close:")

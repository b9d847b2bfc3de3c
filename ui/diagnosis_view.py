"""Page pieces of the diagnosis (issue 10 §1) and the comparison in words (§4).

- `summary_box`: the summary in words, at the top of the Overview.
- `group_gallery`: a group's test images with both answers, each with a button that opens it on
  the Saliency page (its settings set in the button's callback, the page switch in the same run).
"""
from __future__ import annotations

import streamlit as st

from core.studies.diagnosis import GROUP_NAMES
from ui import cache
from ui.setup import Setup
from ui.url_state import fit

TILE_WIDTH = 150  # px: room for a caption's two answers on three short lines


def summary_box(setup: Setup) -> None:
    """The comparison in words (3-5 sentences from the report), in a box under the Overview's cards."""
    summary = cache.comparison_summary(setup)
    with st.container(border=True, key="comparison_summary"):
        st.markdown(f"**In words.** {summary.text}")
        st.caption(summary.note)


def open_on_saliency(index: int) -> None:
    # A callback: the only moment another page's widget values may be set.
    st.session_state["saliency_mode"] = "by index"
    st.session_state["saliency_index"] = index


def group_gallery(setup: Setup, group: str) -> None:
    """Up to cache.GALLERY_SIZE images of `group`, from the page setting diag_first on, each with an Open button."""
    count = cache.diagnosis(setup).counts[group]
    if count == 0:
        st.info(f"No test image is {GROUP_NAMES[group].lower()} at this setting.", icon="ℹ️")
        return
    fit("diag_first", high=count - 1)
    first = st.number_input(f"First image of the group (0 to {count - 1})", 0, count - 1, key="diag_first", step=1)
    tiles = cache.diagnosis_gallery(setup, group, int(first))
    st.caption(f"Images {first + 1}–{first + len(tiles)} of {count:,}. *Open* shows the image on the Saliency page, "
               "with both models' maps.")
    # A wrapping row of fixed-width tiles: six to a row on a laptop, two on a phone.
    with st.container(horizontal=True, gap="small", key="diag_gallery"):
        for tile in tiles:
            with st.container(width=TILE_WIDTH, key=f"diag_tile_{tile.index}"):
                st.image(tile.picture, width="content")
                st.markdown(tile.caption)
                if st.button("Open", key=f"diag_open_{tile.index}", on_click=open_on_saliency, args=(tile.index,),
                             icon=":material/visibility:", help=f"Test image {tile.index} on the Saliency page"):
                    st.switch_page("pages/saliency.py")

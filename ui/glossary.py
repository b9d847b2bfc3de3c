"""The glossary in the sidebar of every page: a popover with every term (text: core.glossary)."""
from __future__ import annotations

import streamlit as st

from core.glossary import glossary_markdown

GLOSSARY_OPEN = "_glossary_open"  # session state: whether the popover is open (its text is drawn then)
CLOSED_HEIGHT_PX = 400


def glossary_popover() -> None:
    """A "Glossary" popover at the foot of the sidebar; the Glossary page shows the same text.

    Its text is drawn only while it is open (opening it reruns the app): closed, its forty terms were part of
    every page the browser re-rendered at each step of a run (issue 11 §2)."""
    with st.sidebar.popover("Glossary", icon=":material/menu_book:", width="stretch", key=GLOSSARY_OPEN,
                            on_change="rerun") as box:
        if not box.open:
            # The popover is placed as it opens, before its text arrives: sized for an empty box, it would
            # open downwards, off the screen at 720p (as the share link's, ui.page_frame.share_link).
            st.container(height=CLOSED_HEIGHT_PX, border=False)
            return
        st.markdown(glossary_markdown())

"""The glossary in the sidebar of every page: a popover with every term (text: core.glossary)."""
from __future__ import annotations

import streamlit as st

from core.glossary import glossary_markdown
from ui.panels import lazy_popover

GLOSSARY_OPEN = "_glossary_open"  # session state: whether the popover is open (its text is drawn then)


def glossary_popover() -> None:
    """A "Glossary" popover at the foot of the sidebar; the Glossary page shows the same text.

    Its text is drawn only while it is open (opening it reruns the app): closed, its forty terms were part of
    every page the browser re-rendered at each step of a run (issue 11 §2)."""
    with lazy_popover(st.sidebar, "Glossary", ":material/menu_book:", GLOSSARY_OPEN) as open_:
        if open_:
            st.markdown(glossary_markdown())

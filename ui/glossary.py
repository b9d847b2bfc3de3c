"""The glossary in the sidebar of every page: a popover with every term (text: core.glossary)."""
from __future__ import annotations

import streamlit as st

from core.glossary import glossary_markdown


def glossary_popover() -> None:
    """A "Glossary" popover at the foot of the sidebar; the Glossary page shows the same text."""
    with st.sidebar.popover("Glossary", icon=":material/menu_book:", width="stretch"):
        st.markdown(glossary_markdown())

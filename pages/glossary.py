"""Glossary: every word the app uses, for a first-year student (the text lives in core/glossary.py)."""
import streamlit as st

import ui
from core.glossary import glossary_markdown

ui.current_setup()  # the shared sidebar's settings stay as they are
st.title("Glossary")
st.markdown("The words the charts and captions use, in plain language. The same list opens from "
            "**Glossary** at the foot of the sidebar on every page.")
st.markdown(glossary_markdown())

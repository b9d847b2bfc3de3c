"""The content floor: a bare Streamlit app with one slider and only what a pruning move changes most on the
Overview, drawn as the app draws it: its six metric cards (two flex rows of three, deltas and help) and its
per-class accuracy bars (core.figures.per_class_accuracy, the same figure builder), from made-up numbers.

benchmarks/bench_browser.py times it beside the one-slider floor (benchmarks/floor_app.py) and the app, with
the app's probe (the Sparsity card's text changed and the run over; the floor's is its chart's title, redrawn
by Plotly): app / content floor is the app's own cost (the rest of the page, its sidebar slots, the URL, the
fragment's bookkeeping) over a bare app that shows the same numbers the same way.
"""
import sys
from pathlib import Path

import numpy as np
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core import figures  # noqa: E402

rate = st.slider("Pruning rate", 0, 100, 0, step=1, format="%d%%")
keep = 1.0 - rate / 100.0
original = np.linspace(0.96, 0.995, 10)
compressed = np.clip(original - (rate / 100.0) ** 3 * np.linspace(0.05, 0.6, 10), 0.0, 1.0)
cards = [  # label, value, delta, delta colour: the Overview's six, with their kinds of value
    ("Test accuracy", f"{compressed.mean() * 100:.1f} %", f"{(compressed - original).mean() * 100:+.1f} pts", "normal"),
    ("Size", f"{431.1 * (0.1 + 0.9 * keep):.1f} kB", f"{-90 * (1 - keep):.0f} %", "inverse"),
    ("Compression ratio", f"{1 / (0.1 + 0.9 * keep):.1f}×", None, "normal"),
    ("Sparsity", f"{rate} %", None, "normal"),
    ("MACs per image", f"{int(506_577 * (0.2 + 0.8 * keep)):,}", f"{1 / (0.2 + 0.8 * keep):.1f}× fewer", "off"),
    ("Agreement", f"{100 - rate / 10:.1f} %", None, "normal"),
]
# As ui.panels.metric_cards draws them: two flex rows of three equal cards (its CARDS_CSS, drawn once there).
st.html('<style>[class*="st-key-card_row_"] > [data-testid="stElementContainer"] '
        '{ flex: 1 1 0 !important; min-width: 12rem; }</style>')
rows = [st.container(horizontal=True, key=f"card_row_{i}") for i in range(2)]
for column, (label, value, change, colour) in zip([rows[i // 3] for i in range(6)], cards):
    column.metric(label, value, change, delta_color=colour, delta_arrow="off" if colour == "off" else "auto",
                  help=f"What {label.lower()} means.")
st.plotly_chart(figures.per_class_accuracy([str(c) for c in range(10)], original, compressed), key="per_class",
                theme=None, config={"displaylogo": False})

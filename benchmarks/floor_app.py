"""The latency floor: a bare Streamlit app with one slider and one Plotly line chart.

benchmarks/bench.py times a slider key press to the chart updated here and in the real
app; whatever the real app adds on top of this is the dashboard's own cost.
"""
import numpy as np
import plotly.graph_objects as go
import streamlit as st

rate = st.slider("Pruning rate", 0, 100, 0, step=1, format="%d%%")
x = np.linspace(0.0, 1.0, 50)
fig = go.Figure(go.Scatter(x=x, y=x ** (1.0 + rate / 10.0), mode="lines"))
fig.update_layout(title=f"rate {rate} %", height=400)
st.plotly_chart(fig, key="line")

"""The floor of in-figure scrubbing: a bare Streamlit app with one tiny Plotly figure and a slider of 21 frames.

benchmarks/bench_scrub.py drags this slider like the Scrub page's: whatever the board takes on top
of this is the board's own cost (Plotly's animation machinery, the slider and Chromium's frame
are in both). Same frame options as the board: immediate, duration 0, no redraw.
"""
import plotly.graph_objects as go
import streamlit as st

stops = list(range(0, 101, 5))
text = [f"Pruning rate {s} %" for s in stops]
jump = dict(mode="immediate", frame=dict(duration=0, redraw=False), transition=dict(duration=0))
fig = go.Figure(
    data=[go.Scatter(x=stops, y=[100 - s / 2 for s in stops], mode="lines"),
          go.Scatter(x=[0], y=[100], mode="markers", marker_size=18),
          go.Scatter(x=[0], y=[110], mode="text", text=[text[0]], cliponaxis=False)],
    frames=[go.Frame(name=str(s), data=[{}, dict(type="scatter", x=[s], y=[100 - s / 2]),
                                        dict(type="scatter", text=[t])], traces=[0, 1, 2])
            for s, t in zip(stops, text)],
    layout=dict(height=400, showlegend=False, yaxis=dict(range=[0, 115]), sliders=[dict(steps=[
        dict(label=f"{s} %", method="animate", args=[[str(s)], jump]) for s in stops])]))
st.title("Scrub floor")
st.plotly_chart(fig, key="floor", theme=None)

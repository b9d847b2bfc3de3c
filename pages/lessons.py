"""Lessons: guided walks through the app for a class; each step sets the controls and says what to notice."""
import streamlit as st

import ui

ui.current_setup()  # the shared sidebar's settings (a lesson changes them step by step)

st.title("Lessons")
st.markdown("Each lesson is a short guided walk: a step sets the controls for you, opens the right chart and "
            "says what to look for. Use **Next** and **Back** in the box above the page; the address bar keeps "
            "the lesson and the step, so a link opens the same step on another laptop.")
ui.prepare_panel()  # "Prepare the class": train every model the lessons use before the class arrives
lessons, errors = ui.all_lessons()
for error in errors:  # a broken file never hides the others
    st.error(f"This lesson file cannot be used: {error}", icon="🚫")
for lesson in lessons:
    with st.container(border=True):
        text, button = st.columns([5, 1], vertical_alignment="center")
        text.subheader(lesson.title, anchor=False)
        text.markdown(lesson.summary)
        text.caption(f"{len(lesson.steps)} steps: " + " · ".join(step.title for step in lesson.steps))
        button.button("Start", key=f"start_{lesson.name}", on_click=ui.start_lesson, args=(lesson.name,),
                      type="primary", icon=":material/play_arrow:", width="stretch")
st.caption("Teachers: a lesson is a small TOML file in the lessons/ folder (see the README). Its text names "
           "figures as placeholders such as `{accuracy}`, filled in from the step's own settings when it is shown. "
           "A file with a mistake is named above with its line number; the other lessons keep working.")

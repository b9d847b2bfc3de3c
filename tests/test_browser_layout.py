"""Real-browser test of every page at every screen size a class uses: a phone (390×844), a
projector (1280×720), a laptop (1366×768) and a desktop (1920×1080).

Each page is opened in turn (one server, one browser context per size), waited for until its
run has finished and its charts are drawn, then screenshotted into artifacts/layout/ (the
view as it opens, `<size>-<page>-fold.png`, and the whole page, `<size>-<page>.png`; kept as CI
artifacts, git-ignored) and checked in the page itself:
- no two text boxes intersect (the SVG texts of each Plotly chart, and the page's headings);
- no chart text is cut off at the edge of its chart, and no chart is wider than the window;
- every plot area is large enough to read and to click (the trade-off map once was an 80 px strip);
- no Streamlit exception.
Look at the screenshots too: the checks find collisions, not everything that looks wrong.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from browser_kit import ARTIFACTS, IDLE_JS, TRAIN_TIMEOUT_MS

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ARTIFACTS / "layout"
SIZES = {"phone": (390, 844), "projector": (1280, 720), "laptop": (1366, 768), "desktop": (1920, 1080)}
# Every page app.py routes (one file each in pages/), the slow ones last so the quick ones report first.
SLOW = ("tradeoffs", "forgotten", "sanity", "scrub", "sensitivity")
PAGES = sorted((p.stem for p in (ROOT / "pages").glob("*.py")), key=lambda name: (name in SLOW, name))
MIN_PLOT_PX = 60     # a plot area smaller than this (either side) cannot be read or clicked
OVERLAP_PX = 3       # boxes may touch (rounding, line boxes); they must not overlap by more than this
CLIP_PX = 2

# Every chart has drawn its SVG (Plotly draws after the run that sent it) and the app is idle.
READY_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const idle = app && app.getAttribute('data-test-script-state') === 'notRunning'
    && !document.querySelector('[data-testid="stStatusWidget"]')
    && !document.querySelector('[data-testid="stSkeleton"]');
  const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')];
  return idle && document.querySelector('[data-testid="stMain"] h1') !== null
    && charts.every(c => c.querySelector('.main-svg .cartesianlayer, .main-svg .imagelayer'));
}"""

# The layout checks, run in the page: returns a list of problems in words.
CHECK_JS = """([overlapPx, clipPx, minPlotPx]) => {
  const problems = [];
  const shown = el => {
    for (let e = el; e && e.nodeType === 1; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.display === 'none' || s.visibility === 'hidden' || parseFloat(s.opacity) === 0) return false;
    }
    return true;
  };
  const label = t => t.textContent.trim().replace(/\\s+/g, ' ').slice(0, 60);
  const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > overlapPx
    && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > overlapPx;
  const width = document.documentElement.clientWidth;
  const headings = [...document.querySelectorAll('[data-testid="stMain"] :is(h1, h2, h3)')]
    .filter(shown).map(h => ({text: label(h), r: h.getBoundingClientRect()})).filter(b => b.r.width > 0);
  for (let i = 0; i < headings.length; i++)
    for (let j = i + 1; j < headings.length; j++)
      if (overlap(headings[i].r, headings[j].r))
        problems.push(`headings overlap: "${headings[i].text}" and "${headings[j].text}"`);
  document.querySelectorAll('[data-testid="stPlotlyChart"]').forEach((chart, n) => {
    const plot = chart.querySelector('.js-plotly-plot');
    const svg = plot && plot.querySelector('.main-svg');
    if (!svg) return;
    const frame = svg.getBoundingClientRect();
    const name = (plot.querySelector('.gtitle') || {}).textContent || `chart ${n + 1}`;
    // A board that scrolls sideways on purpose (ui.wide_chart) may be wider than the window.
    const box = chart.closest('[data-testid="stVerticalBlock"]');
    const scrolls = box && getComputedStyle(box).overflowX === 'auto';
    if (frame.right > width + 1 && !scrolls)
      problems.push(`"${name}" is wider than the window (${Math.round(frame.right)} > ${width})`);
    const texts = [...plot.querySelectorAll('svg text')].filter(t => t.textContent.trim() && shown(t))
      .map(t => ({text: label(t), r: t.getBoundingClientRect()})).filter(b => b.r.width > 0 && b.r.height > 0);
    for (const t of texts) {
      const out = Math.max(frame.left - t.r.left, t.r.right - frame.right, frame.top - t.r.top, t.r.bottom - frame.bottom);
      if (out > clipPx) problems.push(`"${name}": "${t.text}" is cut off at the chart's edge (${Math.round(out)} px)`);
      for (const h of headings)
        if (overlap(t.r, h.r)) problems.push(`"${name}": "${t.text}" overlaps the heading "${h.text}"`);
    }
    for (let i = 0; i < texts.length; i++)
      for (let j = i + 1; j < texts.length; j++)
        if (overlap(texts[i].r, texts[j].r))
          problems.push(`"${name}": "${texts[i].text}" overlaps "${texts[j].text}"`);
    // Plot areas with axes to read (pictures and hidden-axis strips have their own size).
    plot.querySelectorAll('.draglayer .nsewdrag').forEach(d => {
      const r = d.getBoundingClientRect(), id = d.getAttribute('data-subplot');
      const sub = plot.querySelector(`.cartesianlayer .subplot.${id}`);
      if (!sub || sub.querySelector('image') || !sub.querySelector('.xtick text, .ytick text')) return;
      if (r.width > 0 && Math.min(r.width, r.height) < minPlotPx)
        problems.push(`"${name}": a plot area is only ${Math.round(r.width)}×${Math.round(r.height)} px`);
    });
  });
  if (document.querySelector('[data-testid="stException"]')) problems.push('the page shows an exception');
  return [...new Set(problems)];
}"""


def open_page(page, base: str, name: str, timeout: float = TRAIN_TIMEOUT_MS) -> None:
    """Load page `name` and wait until its run has finished and every chart is drawn."""
    page.goto(f"{base}/?page={name}")
    page.wait_for_function(READY_JS, timeout=timeout, polling=250)
    page.wait_for_timeout(400)  # Plotly re-lays out once it knows its width; and a second run may start
    page.wait_for_function(READY_JS, timeout=timeout, polling=250)


def layout_problems(page) -> list[str]:
    """What CHECK_JS finds on the page as it is now."""
    return page.evaluate(CHECK_JS, [OVERLAP_PX, CLIP_PX, MIN_PLOT_PX])


def screenshots(page, size: str, name: str) -> None:
    """The view as it opens, then the whole page (the window grown to its height: Streamlit scrolls inside)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{size}-{name}-fold.png"))
    width, height = SIZES[size]
    full = page.evaluate("""() => Math.max(...[...document.querySelectorAll(
        '[data-testid="stMain"], [data-testid="stAppViewContainer"]')].map(e => e.scrollHeight))""")
    if full > height:
        page.set_viewport_size({"width": width, "height": min(int(full) + 20, 12_000)})
        page.wait_for_timeout(300)
        page.screenshot(path=str(SHOTS / f"{size}-{name}.png"))
        page.set_viewport_size({"width": width, "height": height})
    else:
        page.screenshot(path=str(SHOTS / f"{size}-{name}.png"))


def test_every_page_at_every_screen_size(app_url, browser):
    """Every page at a phone's, a projector's, a laptop's and a desktop's size: no text over text, nothing cut off."""
    found: dict[str, list[str]] = {}
    for size, (width, height) in SIZES.items():
        context = browser.new_context(viewport={"width": width, "height": height})
        try:
            page = context.new_page()
            for name in PAGES:
                open_page(page, app_url, name)
                problems = layout_problems(page)
                screenshots(page, size, name)
                if problems:
                    found[f"{size} {name}"] = problems
        finally:
            context.close()
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "problems.json").write_text(json.dumps(found, indent=1, ensure_ascii=False))
    assert not found, "layout problems (screenshots in artifacts/layout/):\n" + "\n".join(
        f"{where}: {problem}" for where, problems in found.items() for problem in problems)


# Lesson steps at a projector's 1280×720, each with what it talks about: the first chart of its page,
# or (on the Overview) the metric cards.
LESSON_STEPS = {"how-low-can-the-bits-go&step=3": '[data-testid="stPlotlyChart"]',   # Weights
                "how-low-can-the-bits-go&step=9": '[data-testid="stPlotlyChart"]',   # Trade-offs
                "explanations&step=1": '[data-testid="stPlotlyChart"]',              # Saliency
                "magnitude-vs-random&step=3": '[data-testid="stMetric"]'}            # Overview
IN_VIEW_PX = 60  # at least this much of it shows above the fold


def test_a_lesson_step_leaves_what_it_talks_about_in_view(app_url, browser):
    """At 1280×720, with and without presentation mode, the lesson box leaves its chart on screen.

    Also writes artifacts/layout/teaching-lesson.png, the README's picture of the teaching layout.
    """
    width, height = SIZES["projector"]
    context = browser.new_context(viewport={"width": width, "height": height})
    hidden = []
    try:
        page = context.new_page()
        for present in ("0", "1"):
            for step, subject in LESSON_STEPS.items():
                page.goto(f"{app_url}/?lesson={step}&present={present}")
                page.wait_for_function(READY_JS, timeout=TRAIN_TIMEOUT_MS, polling=250)
                page.locator(".st-key-lesson_step").wait_for(timeout=TRAIN_TIMEOUT_MS)
                page.wait_for_function(READY_JS, timeout=TRAIN_TIMEOUT_MS, polling=250)
                top = page.locator(subject).first.bounding_box()["y"]
                if top > height - IN_VIEW_PX:
                    hidden.append(f"lesson={step}, present={present}: {subject} starts at y = {top:.0f}")
                if (step, present) == ("how-low-can-the-bits-go&step=3", "1"):
                    SHOTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(SHOTS / "teaching-lesson.png"))
    finally:
        context.close()
    assert not hidden, "the lesson box pushes what it talks about below the fold:\n" + "\n".join(hidden)

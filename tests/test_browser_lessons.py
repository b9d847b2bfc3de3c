"""Real-browser test of a lesson in presentation mode, on a projector-sized 1280×720 window:
the sidebar starts collapsed, text and metric values are large, Next and Back change the
controls and the link, and ?hide= hides sidebar controls.

Reuses the server fixture of tests/test_browser.py and the thread helper of
tests/test_browser_draw.py. Screenshots go to artifacts/browser-lesson-*.png (git-ignored).
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from browser_kit import ARTIFACTS, RERUN_TIMEOUT_MS, TRAIN_TIMEOUT_MS
from browser_kit import screenshot as _screenshot
from browser_kit import wait_idle as _wait_idle

from core.lessons import parse_lesson
from ui import url_state

pytestmark = pytest.mark.browser
PROJECTOR = {"width": 1280, "height": 720}
BITS_LESSON = parse_lesson((url_state.LESSONS_DIR / "how-low-can-the-bits-go.toml").read_text(),
                           "lessons/how-low-can-the-bits-go.toml", url_state.lesson_parsers())


def test_a_lesson_in_presentation_mode(app_url, page):
    """Start a lesson on a projector: big text, collapsed sidebar, Next / Back set the controls."""
    _lesson_walk(page, app_url)


def _settings(page) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(urlsplit(page.url).query).items()}


def _step(page, number: int) -> None:
    page.get_by_text(f"step {number} of {len(BITS_LESSON.steps)}").wait_for(timeout=RERUN_TIMEOUT_MS)
    _wait_idle(page)


def _lesson_walk(page, app_url: str) -> None:
    page.set_viewport_size(PROJECTOR)
    page.goto(f"{app_url}/?page=lessons&present=1")
    page.get_by_role("heading", name="Lessons").wait_for(timeout=TRAIN_TIMEOUT_MS)
    _wait_idle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert (sidebar.bounding_box() or {"width": 0})["width"] < 50 or not sidebar.is_visible()  # collapsed

    page.locator(".st-key-start_how-low-can-the-bits-go button").click()
    page.get_by_role("heading", name="Original vs compressed").wait_for(timeout=TRAIN_TIMEOUT_MS)
    _step(page, 1)
    assert _settings(page)["lesson"] == "how-low-can-the-bits-go" and _settings(page)["bits"] == "8"
    card = page.locator('[data-testid="stMetricValue"]').first.inner_text().strip()  # test accuracy
    box = page.locator(".st-key-lesson_step").inner_text()
    assert f"accuracy is {card}" in box and "{" not in box  # the step's figure is the card's
    value = page.locator('[data-testid="stMetricValue"]').first
    assert float(value.evaluate("e => getComputedStyle(e.querySelector('p')).fontSize").rstrip("px")) >= 40

    page.get_by_role("button", name="Next").click()
    _step(page, 2)
    assert _settings(page)["bits"] == "4" and _settings(page)["step"] == "2"
    page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=RERUN_TIMEOUT_MS)
    assert page.locator('[data-testid="stException"]').count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-lesson-projector.png"))  # what the class sees
    _screenshot(page, "lesson-step")  # the whole page

    page.get_by_role("button", name="Back").click()
    _step(page, 1)
    assert _settings(page)["bits"] == "8" and "step" not in _settings(page)
    assert page.locator('[data-testid="stException"]').count() == 0


def test_hide_hides_sidebar_controls_and_keeps_their_values(app_url, page):
    """?hide=method,scope: those controls are gone from the sidebar, their values from the link apply.

    A page of its own (a fresh browser context), apart from the lesson in presentation mode.
    """
    page.goto(f"{app_url}/?page=overview&method=random&prune=30&hide=method,scope")
    page.get_by_role("heading", name="Original vs compressed").wait_for(timeout=TRAIN_TIMEOUT_MS)
    _wait_idle(page)
    page.get_by_text("30% random pruning (global)").wait_for(timeout=RERUN_TIMEOUT_MS)  # the hidden value applies
    # Widgets appear once their code has loaded in this fresh browser context: wait for a shown one.
    sidebar = page.get_by_test_id("stSidebarUserContent")  # the page's text names the sliders too
    sidebar.get_by_text("Bit width").wait_for(timeout=RERUN_TIMEOUT_MS)
    assert sidebar.get_by_text("Pruning method").count() == 0 and sidebar.get_by_text("Pruning scope").count() == 0

"""Real-browser test of the Diagnosis page and the summary in words, in Debian's Chromium.

Uses the shared server of conftest.py (a fresh model cache: the first page trains LeNet-5, about 10 s).
Screenshots go to artifacts/ (git-ignored).
"""
from __future__ import annotations

import re

import pytest

from browser_kit import RERUN_TIMEOUT_MS, TRAIN_TIMEOUT_MS
from browser_kit import expect as _expect
from browser_kit import screenshot as _screenshot
from browser_kit import wait_idle as _wait_idle

SUMMARY = ".st-key-comparison_summary"

pytestmark = pytest.mark.browser


def _open_diagnosis(page, app_url: str) -> None:
    """The Diagnosis page at 90 % pruning and 4 bits, its two charts drawn, the run over, no error shown."""
    page.goto(f"{app_url}/?page=diagnosis&prune=90&bits=4")
    page.get_by_role("heading", name="Which mistakes did compression add?").wait_for(timeout=TRAIN_TIMEOUT_MS)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2",
                           timeout=RERUN_TIMEOUT_MS)
    _wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0


def test_open_an_image_from_the_diagnosis_on_the_saliency_page(app_url, page):
    """The Diagnosis page draws its charts and gallery; a click on Open shows that image on the Saliency page."""
    page.set_viewport_size({"width": 1280, "height": 720})
    _open_diagnosis(page, app_url)
    assert page.get_by_text(re.compile(r"now read as")).count() >= 1
    _screenshot(page, "diagnosis")

    first = page.locator('[class*="st-key-diag_open_"]').first
    index = int(re.search(r"st-key-diag_open_(\d+)", first.get_attribute("class")).group(1))
    first.locator("button").first.click()
    page.get_by_role("heading", name="Do the explanations survive?").wait_for(timeout=RERUN_TIMEOUT_MS)
    _wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    _expect(page.get_by_label(re.compile(r"First test image"))).to_have_value(str(index))
    page.locator(f".st-key-saliency_{index}").wait_for(timeout=RERUN_TIMEOUT_MS)
    assert f"saliency_index={index}" in page.url and "page=saliency" in page.url


def test_the_summary_follows_the_pruning_slider(app_url, page):
    """The Overview's summary in words changes when the pruning slider moves (keyboard, two PageUps: 20 %)."""
    page.goto(f"{app_url}/?page=overview&prune=60")
    summary = page.locator(SUMMARY)
    summary.wait_for(timeout=TRAIN_TIMEOUT_MS)
    _wait_idle(page)
    before = summary.inner_text()
    assert before.startswith("In words.")
    slider = page.get_by_role("slider", name="Pruning rate")
    slider.focus()
    page.keyboard.press("PageUp")
    _expect(slider).to_have_attribute("aria-valuetext", "70%", timeout=RERUN_TIMEOUT_MS)
    _wait_idle(page)
    slider.focus()
    page.keyboard.press("PageUp")
    _expect(slider).to_have_attribute("aria-valuetext", "80%", timeout=RERUN_TIMEOUT_MS)
    _wait_idle(page)
    _expect(summary).not_to_have_text(before, timeout=RERUN_TIMEOUT_MS)
    assert page.locator('[data-testid="stException"]').count() == 0
    _screenshot(page, "overview-summary")


def test_the_diagnosis_page_on_a_phone(app_url, page):
    """At 390 px wide the page draws without an error; the screenshot is kept to look at."""
    page.set_viewport_size({"width": 390, "height": 844})
    _open_diagnosis(page, app_url)
    _screenshot(page, "diagnosis-phone")

"""Real-browser test of "Your digit": draw a "1" on the canvas with the mouse in Chromium, see both
models answer and follow the pruning slider, then upload a bad file and a good one.

Reuses the server fixture of tests/test_browser.py (a fresh model cache) and its Chromium
settings. Screenshots go to artifacts/browser-draw-*.png (git-ignored).
"""
from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw
from browser_kit import RERUN_TIMEOUT_MS, TRAIN_TIMEOUT_MS
from browser_kit import screenshot as _screenshot
from browser_kit import wait_idle as _wait_idle

pytestmark = pytest.mark.browser
CANVAS = 280  # the page's canvas, in CSS pixels


def _answers(page) -> dict[str, str]:
    """The metric cards "Original model says" / "Compressed model says": {"Original": "1", ...}."""
    cards = page.locator('[data-testid="stMetric"]').filter(has_text="model says")
    return {card.locator('[data-testid="stMetricLabel"]').inner_text().split()[0]:
            card.locator('[data-testid="stMetricValue"]').inner_text().strip() for card in cards.all()}


def _compressed_ranking(page) -> str:
    """The compressed model's top-3 list (the second ordered list of the page)."""
    return page.locator('[data-testid="stMarkdownContainer"] ol').nth(1).inner_text()


def _draw_one(page) -> None:
    """A vertical stroke down the middle of the canvas, in small mouse moves like a hand."""
    canvas = page.locator("canvas.upper-canvas")  # Fabric.js's drawing layer; it mounts after the page's run
    canvas.wait_for(state="visible", timeout=RERUN_TIMEOUT_MS)
    box = canvas.bounding_box()
    assert round(box["width"]) == CANVAS, box
    x, top = box["x"] + CANVAS / 2, box["y"] + 45
    page.mouse.move(x, top)
    page.mouse.down()
    for step in range(1, 31):
        page.mouse.move(x + step * 0.3, top + step * 6.3)  # 190 px down, a slight slant
    page.mouse.up()


def _png_of_seven() -> bytes:
    image = Image.new("L", (300, 400), 255)
    ImageDraw.Draw(image).line([(75, 60), (225, 60), (135, 340)], fill=0, width=25, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_draw_a_digit_then_upload_one(app_url, page):
    """A drawn "1" is read by both models, the compressed one follows the slider; uploads are checked."""
    _draw_then_upload(page, app_url)


def _draw_then_upload(page, app_url: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{app_url}/?page=draw")
    page.get_by_role("heading", name="Your digit").wait_for(timeout=TRAIN_TIMEOUT_MS)
    page.get_by_text("Draw a digit on the black square").wait_for(timeout=TRAIN_TIMEOUT_MS)
    _wait_idle(page)

    _draw_one(page)
    page.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stMetric"]')]
                                  .filter(m => m.innerText.includes('model says')).length == 2""",
                           timeout=RERUN_TIMEOUT_MS)
    _wait_idle(page)
    assert _answers(page) == {"Original": "1", "Compressed": "1"}, _answers(page)
    page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=RERUN_TIMEOUT_MS)  # the saliency row
    assert page.locator('[data-testid="stException"]').count() == 0
    _screenshot(page, "draw-canvas")

    before = _compressed_ranking(page)
    slider = page.get_by_role("slider", name="Pruning rate")
    for key, percent in (("End", 100), ("PageDown", 90)):  # few presses, each once the app is idle:
        _wait_idle(page)                                    # a press during a rerun can be lost
        slider.press(key)
        expect(slider).to_have_attribute("aria-valuetext", f"{percent}%", timeout=RERUN_TIMEOUT_MS)
    page.wait_for_function(f"""() => {{
        const lists = document.querySelectorAll('[data-testid="stMarkdownContainer"] ol');
        return lists.length > 1 && lists[1].innerText != {before!r}; }}""", timeout=RERUN_TIMEOUT_MS)
    _wait_idle(page)
    assert _answers(page)["Original"] == "1", _answers(page)
    assert page.locator('[data-testid="stException"]').count() == 0

    page.get_by_text("Upload a picture").click()
    uploader = page.locator('[data-testid="stFileUploader"] input[type="file"]')
    uploader.wait_for(state="attached", timeout=RERUN_TIMEOUT_MS)
    _wait_idle(page)
    uploader.set_input_files({"name": "notes.png", "mimeType": "image/png", "buffer": b"not a picture\n" * 20})
    page.locator('[data-testid="stAlertContentError"]').filter(has_text="not an image").wait_for(
        timeout=RERUN_TIMEOUT_MS)
    _wait_idle(page)
    assert not _answers(page), _answers(page)

    uploader.set_input_files({"name": "seven.png", "mimeType": "image/png", "buffer": _png_of_seven()})
    page.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stMetric"]')]
                                  .some(m => m.innerText.includes('Original model says'))""",
                           timeout=RERUN_TIMEOUT_MS)
    _wait_idle(page)
    assert _answers(page)["Original"] == "7", _answers(page)
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0
    _screenshot(page, "draw-upload")

"""Real-browser test of the Global view's clickable embedding, in Debian's Chromium.

Uses the shared server of conftest.py (a fresh model cache; the small MLP on 8x8 digits trains in about a
second). A click on a dot of the embedding shows that test image beside the chart, and its Open button
shows it on the Saliency page. Screenshots go to artifacts/ (git-ignored).
"""
from __future__ import annotations

import re

import pytest

from browser_kit import ARTIFACTS, RERUN_TIMEOUT_MS, TRAIN_TIMEOUT_MS
from browser_kit import wait_idle as _wait_idle

# The page position of the first point of the first trace (a class's dots in the original's panel), from
# Plotly's own axes (l2p: data -> pixels inside the plot area, _offset: the plot area inside the figure).
POINT_JS = """() => {
  const gd = document.querySelector('.st-key-global_embedding .js-plotly-plot');
  const trace = gd._fullData[0], layout = gd._fullLayout;
  const xa = layout[trace.xaxis.replace('x', 'xaxis')], ya = layout[trace.yaxis.replace('y', 'yaxis')];
  const box = gd.getBoundingClientRect();
  return {x: box.left + xa._offset + xa.l2p(trace.x[0]), y: box.top + ya._offset + ya.l2p(trace.y[0]),
          index: Number(trace.customdata[0][0])};
}"""

pytestmark = pytest.mark.browser


def test_clicking_a_dot_shows_its_image_and_opens_it_on_the_saliency_page(app_url, page):
    """Click one dot: its test image appears beside the chart with both answers; Open goes to the Saliency page."""
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{app_url}/?page=global_view&model=mlp&dataset=digits&prune=80")
    page.get_by_role("heading", name="What has the model learned as a whole?").wait_for(timeout=TRAIN_TIMEOUT_MS)
    page.locator(".st-key-global_embedding .js-plotly-plot .main-svg").first.wait_for(timeout=RERUN_TIMEOUT_MS)
    _wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_text("Click a dot to see its test image here").count() == 1
    page.locator(".st-key-global_embedding").hover()
    point = page.evaluate(POINT_JS)
    # Hover first, then a press of a human's length: Plotly finds the point under the pointer on hover, and an
    # instant down-up with no hover before it reached no point.
    page.mouse.move(point["x"], point["y"])
    page.wait_for_timeout(300)
    page.mouse.down()
    page.wait_for_timeout(100)
    page.mouse.up()
    tile = page.locator(f".st-key-global_tile_{point['index']}")
    tile.locator("img").wait_for(timeout=RERUN_TIMEOUT_MS)  # the tile's box may arrive before its picture
    _wait_idle(page)
    assert tile.locator("img").count() == 1
    assert re.search(r"original \d \(\d+ %\)", tile.inner_text()) and "compressed" in tile.inner_text()
    assert page.locator('[data-testid="stException"]').count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-global-view-click.png"))

    page.locator(f".st-key-global_open_{point['index']} button").first.click()
    page.get_by_role("heading", name="Do the explanations survive?").wait_for(timeout=RERUN_TIMEOUT_MS)
    page.locator(f".st-key-saliency_{point['index']}").wait_for(timeout=RERUN_TIMEOUT_MS)
    assert f"saliency_index={point['index']}" in page.url

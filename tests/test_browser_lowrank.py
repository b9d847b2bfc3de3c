"""Real browser: low-rank factorization end to end. The Low-rank group opens from the sidebar, its
slider moved with the keyboard shrinks the Overview's Size card and lands in the address bar, and
that address opens the same setting again (LeNet-5 on the small digits set)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from browser_kit import IDLE_JS, RERUN_TIMEOUT_MS, TRAIN_TIMEOUT_MS

SETTINGS = {"dataset": "digits", "model": "lenet5", "page": "overview"}

pytestmark = pytest.mark.browser


def _open(page, url: str) -> None:
    page.goto(url)
    page.get_by_role("heading", name="Original vs compressed").wait_for(timeout=TRAIN_TIMEOUT_MS)
    page.wait_for_function(IDLE_JS, timeout=RERUN_TIMEOUT_MS)


def _size(page) -> str:
    card = page.locator('[data-testid="stMetric"]').filter(has_text="Size").first
    return card.locator('[data-testid="stMetricValue"]').inner_text().strip()


def _settled_size(page) -> str:
    """The Size card once the last key press's rerun has landed (a press may start its rerun late)."""
    seen = [_size(page), page.url]
    for _ in range(20):
        page.wait_for_timeout(250)
        page.wait_for_function(IDLE_JS, timeout=RERUN_TIMEOUT_MS)
        now = [_size(page), page.url]
        if now == seen:
            return now[0]
        seen = now
    return seen[0]


def _kilobytes(text: str) -> float:
    number, unit = text.split()
    return float(number) * {"B": 1e-3, "kB": 1.0, "MB": 1e3}[unit]


def test_low_rank_from_the_sidebar_to_the_size_card_and_back_from_the_link(app_url, page):
    _open(page, f"{app_url}/?{urlencode(SETTINGS)}")
    dense = _size(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Low-rank (off)").click()  # the collapsed group opens
    slider = sidebar.get_by_role("slider", name="Low-rank: share kept")
    slider.wait_for(timeout=RERUN_TIMEOUT_MS)
    slider.focus()
    for _ in range(50):  # one step (0.01) per press, each a rerun; stop as soon as the card changed
        slider.press("ArrowLeft")
        page.wait_for_function(IDLE_JS, timeout=RERUN_TIMEOUT_MS)
        if _size(page) != dense:
            break
    shrunk = _settled_size(page)
    assert _kilobytes(shrunk) < _kilobytes(dense), (dense, shrunk)
    rank = parse_qs(urlsplit(page.url).query)["rank"][0]
    assert 0.05 <= float(rank) < 1.0
    assert not page.locator('[data-testid="stException"]').count()

    _open(page, page.url)  # the address bar's link, in a fresh session: the same setting, the same size
    assert _size(page) == shrunk
    assert page.locator('[data-testid="stSidebar"]').get_by_text("Low-rank", exact=True).count()  # open, not "(off)"

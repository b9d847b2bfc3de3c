"""Real-browser test of a failover: Chromium on two replicas behind nginx (scripts/replicas.py), the
replica it is on killed; Streamlit's own frontend reconnects through nginx to the other replica, and the
next interaction (a click on the page, which the new session has not drawn) shows the notice and the
settings of the link. Screenshot: artifacts/browser-failover.png.
"""
from __future__ import annotations

import shutil
from urllib.parse import parse_qs, urlsplit

import pytest
from browser_kit import ARTIFACTS, RERUN_TIMEOUT_MS, TRAIN_TIMEOUT_MS
from browser_kit import wait_idle as _wait_idle

from scripts import replicas
from ui import reconnect

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(shutil.which("nginx") is None and not replicas.Path(replicas.NGINX).exists(),
                                 reason="nginx is not installed (`make test` installs Debian's package)")]


def test_a_killed_replicas_browser_comes_back_on_the_other_with_a_notice(browser, tmp_path):
    """Kill the browser's replica: it reconnects to the other, and says its settings came back from the link."""
    with replicas.start(2, env={"COMPRESSION_LENS_CACHE": str(tmp_path)}) as pair:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            response = page.goto(f"{pair.url}/?page=overview&model=mlp&dataset=digits&prune=30")
            served = response.headers["x-lens-replica"]
            page.get_by_role("heading", name="Original vs compressed").wait_for(timeout=TRAIN_TIMEOUT_MS)
            _wait_idle(page)
            assert page.get_by_text("your settings came back from the link").count() == 0
            victim = next(r for r in pair.replicas if r.address == served)
            pair.kill(victim.index)

            # The frontend notices the closed websocket, pings /_stcore/health through nginx and reconnects.
            page.wait_for_timeout(1500)
            _wait_idle(page, TRAIN_TIMEOUT_MS)
            slider = page.get_by_role("slider", name="Pruning rate")
            # The first click is on something the page fragment drew, which the new session does not hold:
            # Streamlit alone would drop it without a word (ui.rerun_requests).
            page.locator('[data-testid="stExpander"] summary').filter(has_text="Layer by layer").click()
            page.get_by_text(reconnect.RESTARTED.split(";")[0]).wait_for(timeout=TRAIN_TIMEOUT_MS)
            _wait_idle(page, TRAIN_TIMEOUT_MS)
            assert parse_qs(urlsplit(page.url).query)["prune"] == ["30"]  # the link's setting
            assert slider.get_attribute("aria-valuetext") == "30%"
            assert page.locator('[data-testid="stException"]').count() == 0
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "browser-failover.png"))

            slider.focus()
            page.keyboard.press("ArrowRight")  # the next interaction: the notice is gone, the move counts
            page.wait_for_function("() => !document.body.innerText.includes('your settings came back from the link')",
                                   timeout=RERUN_TIMEOUT_MS)
            _wait_idle(page)
            assert slider.get_attribute("aria-valuetext") == "31%"
        finally:
            context.close()

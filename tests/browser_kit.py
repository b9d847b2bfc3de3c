"""What every real-browser test shares: timeouts, "the app is idle", Playwright's expect, screenshots.

Screenshots go to artifacts/ (git-ignored) so that a person can look at them.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
# Generous: the first page load trains the model, and the 2 cores are shared.
TRAIN_TIMEOUT_MS = 180_000
RERUN_TIMEOUT_MS = 60_000
# The app has finished a run: Streamlit's script state is idle and its "running" widget is gone.
IDLE_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return app && app.getAttribute('data-test-script-state') === 'notRunning'
    && !document.querySelector('[data-testid="stStatusWidget"]');
}"""


def expect(locator):
    """Playwright's expect(); imported here so that a missing playwright fails in the `browser` fixture."""
    from playwright.sync_api import expect as playwright_expect
    return playwright_expect(locator)


def wait_idle(page, timeout: float = RERUN_TIMEOUT_MS) -> None:
    page.wait_for_function(IDLE_JS, timeout=timeout)


def screenshot(page, name: str) -> None:
    """artifacts/browser-<name>.png of the whole page at the tab's width.

    The viewport grows to the page's full height first (Streamlit scrolls inside its own
    container, so a plain full-page screenshot would stop at the fold), then is put back.
    """
    size = page.viewport_size
    height = page.evaluate("""() => Math.max(...[...document.querySelectorAll(
        '[data-testid="stMain"], [data-testid="stAppViewContainer"], [data-testid="stSidebarContent"]')]
        .map(e => e.scrollHeight), 720)""")
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 40, 8000)})
    page.wait_for_timeout(300)  # let Plotly re-layout to the new size
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"browser-{name}.png"))
    page.set_viewport_size(size)

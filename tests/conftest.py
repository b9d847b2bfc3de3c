"""Shared test set-up: one torch thread (the machine has 2 shared cores)."""
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

torch.set_num_threads(1)


# ---------------------------------------------------------------- AppTest
from streamlit.runtime.pages_manager import PagesManager  # noqa: E402

LEGACY_PAGES_INIT = PagesManager.__init__  # Streamlit's own, before any fixture patches it


@pytest.fixture(autouse=True)
def _navigation_like_a_server(monkeypatch):
    """Rerun app.py on every AppTest run, as a running server does.

    With a folder named pages/, Streamlit starts in its legacy multipage mode until the
    first st.navigation call switches it off for the rest of the process. AppTest switches
    it back on before every run, so each rerun after the first would execute the page file
    alone, without the sidebar drawn by app.py. Clearing the flag after AppTest resets it
    restores the server's behaviour. (Harmless for tests that do not use AppTest.)
    """
    def init(self, *args, **kwargs):
        LEGACY_PAGES_INIT(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


APP = str(ROOT / "app.py")
APP_TIMEOUT = 180  # seconds: a session's first run may train LeNet-5 on mnist5k


class Calls:
    """Counts the calls of a function, then calls it: "this move started no new sweep", without timing."""

    def __init__(self, fn):
        self.fn, self.count = fn, 0

    def __call__(self, *args, **kwargs):
        self.count += 1
        return self.fn(*args, **kwargs)


def open_app(page: str = "overview", **params: object):
    """A fresh AppTest session of app.py on `page`, with `params` in the URL, after its first run."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT)
    at.query_params["page"] = page
    for key, value in params.items():
        at.query_params[key] = str(value)
    return at.run()


def model_group(at):
    """`at` with the sidebar's "Model" group opened (closed, it draws no widgets: ui.sidebar), after a run."""
    from ui.sidebar import GROUP_OPEN

    at.session_state[GROUP_OPEN + "model"] = True
    return at.run()


# ---------------------------------------------------------------- the small model
SMALL = {"model": "mlp", "dataset": "digits"}  # URL settings: the small MLP on 8x8 digits (trains in about a second)


@pytest.fixture(scope="session")
def small_cache(tmp_path_factory):
    """One temporary model cache for every test's small models (never ~/.cache)."""
    return tmp_path_factory.mktemp("small-models")


@pytest.fixture
def small(monkeypatch, small_cache) -> dict[str, str]:
    """URL settings for the small MLP on digits, trained into the temporary cache."""
    monkeypatch.setenv("COMPRESSION_LENS_CACHE", str(small_cache))
    return SMALL


# ---------------------------------------------------------------- real-browser fixtures
# One server and one Playwright for every browser test in the session: Playwright's sync API
# allows one instance per thread, so the browser tests of several files must share it.
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with code {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"streamlit did not answer {url}/_stcore/health within {timeout:.0f} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser's path; fails (never skips) when it is not installed, before any server starts."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test`, which installs Debian's chromium "
                    "(never `playwright install`).")
    return CHROMIUM


@pytest.fixture(scope="session")
def app_url(chromium, tmp_path_factory):
    """The URL of the dashboard, served by a subprocess that is always stopped at the end."""
    tmp = tmp_path_factory.mktemp("browser")
    port, log = _free_port(), tmp / "streamlit.log"
    env = {**os.environ, "COMPRESSION_LENS_CACHE": str(tmp / "models")}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def browser(chromium):
    """Debian's Chromium through Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: run `make test` (it installs requirements.txt).")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser):
    """A fresh tab, wide enough for the six metric cards."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield context.new_page()
    finally:
        context.close()


# The app's background threads (jobs, prefetch guesses) are daemons: one an AppTest started may still be
# inside torch when the interpreter exits, and a daemon thread stopped there aborts the process after every
# test has passed ("terminate called without an active exception", exit code 134). Let them finish first.
BACKGROUND_GRACE_S = 120.0


def pytest_sessionfinish(session, exitstatus):
    if "ui.jobs" not in sys.modules:
        return
    deadline = time.monotonic() + BACKGROUND_GRACE_S
    for thread in sys.modules["ui.jobs"].live_workers():
        thread.join(timeout=max(0.0, deadline - time.monotonic()))

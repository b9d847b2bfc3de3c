"""What the browser benchmarks share: Debian's Chromium settings, a Streamlit server on a free port, the probe."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: run `make bench` (it installs Debian's chromium).")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(script: str = "app.py", options: list[str] = (), cwd: Path = ROOT) -> tuple[subprocess.Popen, str]:
    """`streamlit run script` on a free port (the app's default model cache); waits for health.

    options: extra Streamlit settings as "section.name=value" (e.g. runner.postScriptGC=false).
    cwd: the checkout to serve (another one is a baseline: benchmarks/bench_browser.py --baseline).
    """
    port = free_port()
    extra = [arg for option in options for arg in ("--" + option.split("=", 1)[0], option.split("=", 1)[1])]
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port),
                             "--server.headless", "true", "--browser.gatherUsageStats", "false", *extra],
                            cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"streamlit run {script} did not start")


def stop_server(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """Stop a server start_server started: SIGTERM, then SIGKILL if it has not ended within `timeout` s."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# Set t0 at the key release; t1 at the first frame after the probe's text changed AND the
# script finished (Streamlit's script state idle, no "running" widget).
INSTRUMENT_JS = """([selector, containing]) => {
  const probe = () => {
    const e = [...document.querySelectorAll(selector)].find(e => e.textContent.includes(containing));
    return e ? e.textContent : null;
  };
  const idle = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app && app.getAttribute('data-test-script-state') === 'notRunning'
      && !document.querySelector('[data-testid="stStatusWidget"]');
  };
  const L = window.__lat = {armed: false, t0: null, t1: null, before: null, probe};
  document.addEventListener('keyup', () => { if (L.armed && L.t0 === null) L.t0 = performance.now(); }, true);
  let pending = false;
  new MutationObserver(() => {
    if (L.t0 === null || L.t1 !== null || pending) return;
    const now = probe();  // null or empty while an element is being redrawn: not updated yet
    if (now && now !== L.before && idle()) {
      pending = true;
      requestAnimationFrame(() => { L.t1 = performance.now(); pending = false; });
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
}"""
IDLE_JS = """() => document.querySelector('[data-testid="stApp"]')
    ?.getAttribute('data-test-script-state') === 'notRunning'"""
ARM_JS = "() => { const L = window.__lat; L.t0 = null; L.t1 = null; L.before = L.probe(); L.armed = true; }"

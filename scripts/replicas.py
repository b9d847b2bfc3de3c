"""`make serve REPLICAS=N`: N Streamlit processes of the app behind nginx, everything on 127.0.0.1.

- Each replica is `streamlit run app.py` on its own loopback port (8601, 8602, ... by default), one
  torch thread (OMP_NUM_THREADS=1; ui/cache.py also calls torch.set_num_threads(1)), its log in the
  run folder. All share the one on-disk model cache ($COMPRESSION_LENS_CACHE, written atomically):
  a model one replica trained is loaded, not retrained, by the others.
- They share one `server.cookieSecret`, new for every run (passed in the environment, never on a
  command line `ps` shows): the XSRF cookie Streamlit signs for uploads is then valid on every replica,
  also after a failover.
- nginx (Debian's package; `make nginx` installs it) runs from a config generated from
  scripts/nginx.conf.template into the run folder: it listens on 127.0.0.1:PORT, proxies the websocket
  (/_stcore/stream) with HTTP/1.1 and a long read timeout, and keeps each browser on one replica with
  a cookie of its own (`lens_replica`, see the template). A replica that stops answering is skipped
  (`proxy_next_upstream error timeout`): its browsers reconnect to another one, and the app says so
  (ui/reconnect.py).
- A replica that dies is not restarted while the class runs: its students now live on another
  replica, and a restarted one would take their HTTP requests (images, /media) back from under
  their websocket. Restart the whole set between classes.

Ctrl-C or SIGTERM stops nginx and every replica; the children also get SIGTERM if this launcher is
killed outright (Linux's parent-death signal), so nothing is left running.

Used by `make serve`, benchmarks/load.py (--replicas) and tests/test_replicas.py: `start(n)` returns
a running `Replicas`; `stop()` ends it.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = Path(__file__).resolve().parent / "nginx.conf.template"
HOST = "127.0.0.1"  # loopback only: nothing here listens anywhere else
FIRST_PORT = 8601
# Debian puts it in /usr/sbin, which a plain user's PATH may lack.
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "nginx")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def upload_limit_mb() -> int:
    """Streamlit's server.maxUploadSize from the app's .streamlit/config.toml (200 MB, Streamlit's default)."""
    config = ROOT / ".streamlit" / "config.toml"
    server = tomllib.loads(config.read_text()).get("server", {}) if config.exists() else {}
    return int(server.get("maxUploadSize", 200))


def render_config(port: int, replica_ports: list[int], run_dir: Path) -> str:
    """The nginx config for these ports, from the template (its placeholders are @NAME@)."""
    servers = "\n".join(f"        server {HOST}:{p} max_fails=1 fail_timeout=10s;" for p in replica_ports)
    # As root, nginx runs its worker as an unprivileged user; it must read the run folder.
    user = "user nobody nogroup;" if os.geteuid() == 0 else ""
    text = TEMPLATE.read_text()
    for name, value in {"RUN": str(run_dir), "PORT": str(port), "SERVERS": servers, "USER": user,
                        "UPLOAD_MB": str(upload_limit_mb())}.items():
        text = text.replace(f"@{name}@", value)
    return text


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the launcher dies, whatever killed it (Linux prctl)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except OSError:
        pass


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass
class Replica:
    index: int
    port: int
    proc: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def address(self) -> str:
        """How nginx names it (its X-Lens-Replica header and access log)."""
        return f"{HOST}:{self.port}"


@dataclass
class Replicas:
    """A running set: nginx on `port` in front of `replicas`; files (config, logs) in `run_dir`."""
    port: int
    run_dir: Path
    replicas: list[Replica]
    nginx: subprocess.Popen | None = None
    owns_run_dir: bool = False
    stopped: bool = field(default=False, init=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def pids(self) -> list[int]:
        """The replicas' process ids (alive or not)."""
        return [r.proc.pid for r in self.replicas]

    def kill(self, index: int) -> None:
        """SIGKILL one replica (a crash, as a test or a fault drill wants it) and reap it."""
        replica = self.replicas[index]
        replica.proc.kill()
        replica.proc.wait(timeout=30)

    def stop(self) -> None:
        """Stop nginx and every replica (SIGTERM, then SIGKILL after 15 s); remove a temporary run folder."""
        if self.stopped:
            return
        self.stopped = True
        procs = [r.proc for r in self.replicas] + ([self.nginx] if self.nginx else [])
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()  # nginx: fast shutdown (a graceful quit would wait for every websocket)
        deadline = time.monotonic() + 15
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.owns_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> Replicas:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _start_replica(index: int, port: int, nginx_port: int, secret: str, run_dir: Path, app: str,
                   options: list[str], env: dict[str, str]) -> Replica:
    log = run_dir / f"replica-{index}.log"
    extra = [arg for option in options for arg in ("--" + option.split("=", 1)[0], option.split("=", 1)[1])]
    command = [sys.executable, str(ROOT / "scripts" / "replica.py"), "run", app, "--server.address", HOST,
               "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--browser.serverAddress", HOST, "--browser.serverPort", str(nginx_port), *extra]
    child_env = {**os.environ, **env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                 "STREAMLIT_SERVER_COOKIE_SECRET": secret, "COMPRESSION_LENS_REPLICA": str(index)}
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=child_env, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent)
    return Replica(index, port, proc, log)


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{log.name}: exited with code {proc.returncode}:\n{log.read_text()[-2000:]}")
        if healthy(url):
            return
        time.sleep(0.3)
    raise RuntimeError(f"{url}/_stcore/health did not answer within {timeout:.0f} s ({log})")


def start(n: int = 2, port: int | None = None, replica_ports: list[int] | None = None, run_dir: Path | None = None,
          app: str = "app.py", options: list[str] = (), env: dict[str, str] | None = None,
          timeout: float = 120.0) -> Replicas:
    """Start n replicas and nginx in front of them; return once nginx and every replica answer /_stcore/health.

    port: nginx's (default: a free one); replica_ports: one per replica (default: free ones);
    run_dir: where the config and logs go (default: a new temporary folder, removed by stop());
    options: extra Streamlit settings as "section.name=value"; env: extra environment for the replicas.
    """
    if n < 1:
        raise ValueError("at least one replica")
    if shutil.which(NGINX) is None and not Path(NGINX).exists():
        raise RuntimeError("nginx is not installed: `make nginx` installs Debian's package")
    owns = run_dir is None
    run_dir = Path(tempfile.mkdtemp(prefix="lens-replicas-")) if owns else Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run_dir.chmod(0o755)  # nginx's worker (an unprivileged user under root) reads and writes below it
    port = port or free_port()
    replica_ports = list(replica_ports or [free_port() for _ in range(n)])
    if len(replica_ports) != n:
        raise ValueError("one port per replica")
    secret = secrets.token_hex(32)
    running = Replicas(port, run_dir, [], owns_run_dir=owns)
    try:
        for i, p in enumerate(replica_ports):
            running.replicas.append(_start_replica(i, p, port, secret, run_dir, app, list(options), env or {}))
        config = run_dir / "nginx.conf"
        config.write_text(render_config(port, replica_ports, run_dir))
        log = run_dir / "nginx-error.log"
        running.nginx = subprocess.Popen([NGINX, "-p", str(run_dir), "-c", str(config), "-e", str(log)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_parent)
        for replica in running.replicas:
            _wait(replica.url, replica.proc, replica.log, timeout)
        _wait(running.url, running.nginx, log, 30)
    except BaseException:
        running.stop()
        raise
    return running


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--replicas", type=int, default=2, help="how many Streamlit processes (default 2)")
    p.add_argument("--port", type=int, default=8501, help="nginx's port on 127.0.0.1 (default 8501)")
    p.add_argument("--first-replica-port", type=int, default=FIRST_PORT,
                   help=f"replica i listens on this + i (default {FIRST_PORT})")
    p.add_argument("--run-dir", type=Path, default=ROOT / "run" / "replicas",
                   help="config and logs (default run/replicas in the project, git-ignored)")
    args = p.parse_args()
    ports = [args.first_replica_port + i for i in range(args.replicas)]
    print(f"Starting {args.replicas} replica(s) on {', '.join(map(str, ports))} and nginx on {HOST}:{args.port} ...")
    running = start(args.replicas, args.port, ports, args.run_dir)

    def stop(signum, _frame) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    print(f"Open {running.url}/ (logs and nginx.conf in {running.run_dir}); Ctrl-C stops everything.")
    dead: set[int] = set()
    try:
        while running.nginx.poll() is None:
            for r in running.replicas:
                if r.index not in dead and r.proc.poll() is not None:
                    dead.add(r.index)
                    print(f"replica {r.index} ({r.address}) exited with code {r.proc.returncode}: its students "
                          f"move to the others ({len(running.replicas) - len(dead)} left); see {r.log}")
            time.sleep(1)
        print(f"nginx exited with code {running.nginx.returncode}: see {running.run_dir / 'nginx-error.log'}")
    except KeyboardInterrupt:
        pass
    finally:
        print("Stopping nginx and the replicas ...")
        running.stop()


if __name__ == "__main__":
    main()

"""A class on one server: N simulated students, each a real Streamlit websocket session.

Each student (benchmarks/load_client.py) opens the link (?page=overview), moves the pruning slider
four times, switches to Saliency, moves the bit-width slider twice, thinking 1-2 s (seeded random)
between interactions; students start spread over --ramp seconds. Wait = rerun message sent ->
the final script_finished received. Each session checks that the sidebar's "Measured: x % of
weights zero" caption is its own setting (a mismatch otherwise: another session's state leaked).

Prints per N: p50 / p95 / max wait per interaction type, kB received per interaction, errors,
mismatches, reruns/s, server RSS and CPU (from /proc; this client's own CPU beside it: it shares
the machine), and the 1-minute load average before and during the run.

`make load` (or `.venv/bin/python benchmarks/load.py --students 1,10,30,60`). Starts the app on
loopback (benchmarks/serve.py) unless --url names a running server (loopback only; --pid then
lets it read that server's RSS and CPU). A benchmark, not a test: pytest never collects it.

`--replicas 1,2,4` (`make load REPLICAS=1,2,4`): for each count, starts that many replicas behind nginx
(scripts/replicas.py) and runs the same classes through it, each student with its own cookie jar (so
the balancer keeps it on one replica); RSS and CPU are the replicas' together; a summary per count.
"""
from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_client import Result, Student, summarize  # noqa: E402

KINDS = ("open", "prune", "page", "bits")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def proc_sample(pid: int | list[int] | None) -> tuple[float, float] | None:
    """(RSS in MB, CPU seconds user+system, all its threads) of a process, from /proc; summed over a list."""
    if pid is None:
        return None
    if isinstance(pid, list):  # the replicas together (a dead one counts nothing)
        samples = [x for x in map(proc_sample, pid) if x]
        return (sum(x[0] for x in samples), sum(x[1] for x in samples)) if samples else None
    try:
        rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, ValueError):
        return None
    return rss_pages * PAGE / 2**20, (int(fields[11]) + int(fields[12])) / TICKS


async def monitor(pid: int | None, out: dict, stop: asyncio.Event) -> None:
    """Peak RSS and the highest 1-minute load average while the students run."""
    while not stop.is_set():
        sample = proc_sample(pid)
        if sample:
            out["rss_peak"] = max(out.get("rss_peak", 0.0), sample[0])
        out["load_peak"] = max(out.get("load_peak", 0.0), os.getloadavg()[0])
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass


async def run_class(url: str, n: int, seed: int, ramp: float, limit: float, pid: int | list[int] | None,
                    settle: float = 0.0, cookies: bool = False, follow: bool = False) -> dict:
    # Alone, a student also reads the server's CPU per interaction (with more, it would be everyone's).
    probe = (lambda: (proc_sample(pid) or (0.0, math.nan))[1]) if n == 1 and pid else None
    students = [Student(url, seed * 1_000_000 + n * 1000 + i, probe=probe,  # no class repeats another's moves
                        cookies=cookies, follow=seed * 1_000_000 + n * 1000 if follow else None)
                for i in range(n)]
    before = proc_sample(pid)
    stats: dict = {"load_before": os.getloadavg()[0]}
    stop = asyncio.Event()
    watcher = asyncio.create_task(monitor(pid, stats, stop))

    async def one(i: int, s: Student) -> None:
        await asyncio.sleep(ramp * i / max(n, 1))
        await s.session()

    start, cpu0 = time.perf_counter(), time.process_time()
    tasks = [asyncio.create_task(one(i, s)) for i, s in enumerate(students)]
    done, pending = await asyncio.wait(tasks, timeout=limit)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    stats["wall"], stats["client_cpu"] = time.perf_counter() - start, time.process_time() - cpu0
    stop.set()
    await watcher
    stats["load_end"] = os.getloadavg()[0]
    stats["cut"] = len(pending)
    after = proc_sample(pid)
    await asyncio.sleep(settle)  # the sessions have closed: what the server gives back
    stats["settle"] = settle
    stats["rss_settled"] = (proc_sample(pid) or (None,))[0]
    if before and after:
        stats["rss_before"], stats["rss_after"] = before[0], after[0]
        stats["server_cpu"] = after[1] - before[1]
    stats["results"] = [r for s in students for r in s.results]
    if cookies:  # behind the balancer: how many students each replica got
        stats["per_replica"] = Counter(s.replica or "?" for s in students)
    return stats


def report(n: int, stats: dict) -> None:
    results: list[Result] = stats["results"]
    by_kind: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        by_kind[r.kind].append(r)
    wall = stats["wall"]
    print(f"\n== {n} student(s): {wall:.1f} s, {len(results)} interactions, "
          f"{len(results) / wall:.2f} reruns/s" + (f", {stats['cut']} cut at the time limit" if stats["cut"] else ""))
    print(f"   {'interaction':<12}{'n':>4}{'p50 s':>8}{'p95 s':>8}{'max s':>8}{'kB/run':>9}{'msgs':>6}"
          + ("  server CPU ms (median)" if n == 1 else ""))
    for kind in (*KINDS, *sorted(set(by_kind) - set(KINDS))):
        rs = [r for r in by_kind.get(kind, []) if not r.error]
        if not by_kind.get(kind):
            continue
        s = summarize([r.wait for r in rs])
        kb = sum(r.received for r in rs) / max(len(rs), 1) / 1000
        msgs = sum(r.messages for r in rs) / max(len(rs), 1)
        cpu = [r.server_cpu * 1000 for r in rs if not math.isnan(r.server_cpu)]
        print(f"   {kind:<12}{s['n']:>4}{s['p50']:>8.2f}{s['p95']:>8.2f}{s['max']:>8.2f}{kb:>9.1f}{msgs:>6.0f}"
              + (f"{statistics.median(cpu):>10.0f}" if cpu else ""))
    errors = [r for r in results if r.error]
    mismatches = [r for r in results if r.mismatch]
    print(f"   errors: {len(errors)}   mismatches: {len(mismatches)}")
    if "per_replica" in stats:
        print("   students per replica: " + ", ".join(f"{k} {v}" for k, v in sorted(stats["per_replica"].items())))
    for r in (errors + mismatches)[:5]:
        print(f"     {r.kind}: {r.error or r.mismatch}")
    if "rss_before" in stats:
        cpu = stats["server_cpu"]
        print(f"   server: RSS {stats['rss_before']:.0f} -> {stats['rss_after']:.0f} MB (peak "
              f"{stats.get('rss_peak', 0):.0f}; {stats['rss_settled']:.0f} MB {stats['settle']:.0f} s after the last "
              f"session closed; {(stats['rss_after'] - stats['rss_before']) / n:.1f} MB per session), CPU {cpu:.1f} s = {100 * cpu / wall:.0f} % of one core")
    else:
        print("   server: RSS/CPU unknown (pass --pid with --url)")
    print(f"   client CPU {stats['client_cpu']:.1f} s ({100 * stats['client_cpu'] / wall:.0f} % of one core);"
          f" load average (1 min) before {stats['load_before']:.2f}, during: peak {stats['load_peak']:.2f},"
          f" at end {stats['load_end']:.2f} (2 cores)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--students", default="1,10,30", help="class sizes, comma-separated (default 1,10,30)")
    p.add_argument("--url", help="a running server (loopback only); default: start app.py on a free port")
    p.add_argument("--pid", type=int, help="that server's process id, for its RSS and CPU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ramp", type=float, default=3.0, help="students start spread over this many seconds")
    p.add_argument("--limit", type=float, default=300.0, help="seconds per class size before cutting it off")
    p.add_argument("--settle", type=float, default=5.0,
                   help="seconds after a class before the server's RSS is read again (Streamlit keeps a closed "
                        "session for server.disconnectedSessionTTL, 120 s by default)")
    p.add_argument("--follow", action="store_true",
                   help="a guided class: every student sets the same values as the teacher says (each at its own "
                        "pace), so the server's shared caches serve most reruns; default: each student their own")
    p.add_argument("--max-students", type=int, default=100, help="refuse larger classes (bounded load)")
    p.add_argument("--replicas", help="replica counts behind nginx, comma-separated (e.g. 1,2,4); "
                                      "default: one plain server")
    args = p.parse_args()
    sizes = [int(x) for x in args.students.split(",") if x.strip()]
    if any(not 1 <= n <= args.max_students for n in sizes):
        raise SystemExit(f"class sizes must be 1..{args.max_students}")
    if args.replicas:
        counts = [int(x) for x in args.replicas.split(",") if x.strip()]
        if args.url or any(not 1 <= c <= 8 for c in counts):
            raise SystemExit("--replicas takes counts 1..8 and starts its own servers (no --url)")
        return replica_classes(counts, sizes, args)
    from serve import start_server, stop_server

    proc = None
    if args.url:
        if urlparse(args.url).hostname not in LOOPBACK:
            raise SystemExit("--url must be a loopback address (127.0.0.1, localhost, ::1)")
        url, pid = args.url, args.pid
    else:
        proc, url = start_server("app.py")
        pid = proc.pid
    print(f"server {url} (pid {pid or '?'}); load average {os.getloadavg()}")
    if args.follow:
        print("guided class (--follow): every student sets the same values, each at its own pace")
    try:
        # A first student warms the server (imports torch, trains or loads the model) and is not counted.
        warm = asyncio.run(run_class(url, 1, args.seed + 999, 0.0, args.limit, pid))
        print(f"warm-up session: {len(warm['results'])} interactions, "
              f"{sum(bool(r.error) for r in warm['results'])} errors, {warm['wall']:.1f} s")
        for n in sizes:
            report(n, asyncio.run(run_class(url, n, args.seed, args.ramp, args.limit, pid, args.settle, args.follow)))
    finally:
        stop_server(proc, timeout=30)


def replica_classes(counts: list[int], sizes: list[int], args) -> None:
    """The same classes through nginx in front of 1, 2, 4 ... replicas (scripts/replicas.py), then a summary."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from scripts import replicas

    rows = []
    for count in counts:
        with replicas.start(count) as running:
            pids = running.pids()
            print(f"\n##### {count} replica(s) behind nginx at {running.url} (pids {', '.join(map(str, pids))}); "
                  f"load average {os.getloadavg()}")

            async def warm_all() -> list[dict]:  # one uncounted student per replica, straight to it
                return await asyncio.gather(*(run_class(r.url, 1, args.seed + 999 + r.index, 0.0, args.limit,
                                                        r.proc.pid) for r in running.replicas))
            warm = asyncio.run(warm_all())
            print(f"warm-up: {sum(len(w['results']) for w in warm)} interactions on {count} replica(s), "
                  f"{sum(bool(r.error) for w in warm for r in w['results'])} errors")
            for n in sizes:
                stats = asyncio.run(run_class(running.url, n, args.seed, args.ramp, args.limit, pids, args.settle,
                                              cookies=True))
                report(n, stats)
                rows.append((count, n, stats))
    print("\n== Summary: the same class through nginx (waits over every interaction; RSS, CPU: all replicas)")
    print(f"   {'replicas':>8}{'students':>9}{'inter./s':>9}{'p50 s':>7}{'p95 s':>7}{'max s':>7}{'errors':>7}"
          f"{'mism.':>6}{'RSS MB':>8}{'CPU %':>7}{'load avg (peak)':>17}")
    for count, n, stats in rows:
        results = stats["results"]
        s = summarize([r.wait for r in results if not r.error])
        cpu = 100 * stats.get("server_cpu", math.nan) / stats["wall"]
        print(f"   {count:>8}{n:>9}{len(results) / stats['wall']:>9.2f}{s['p50']:>7.2f}{s['p95']:>7.2f}{s['max']:>7.2f}"
              f"{sum(bool(r.error) for r in results):>7}{sum(bool(r.mismatch) for r in results):>6}"
              f"{stats.get('rss_after', math.nan):>8.0f}{cpu:>7.0f}"
              f"{stats['load_before']:>8.2f} ({stats['load_peak']:.2f})")
    print("   CPU % is of one core (2 on this machine); load average: 1 minute, before the class (peak during it).")


if __name__ == "__main__":
    main()

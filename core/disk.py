"""What the app keeps on disk, kept whole through crashes, full or read-only disks and several server processes.

Used by core.training (trained models), core.distillation.store (distilled and subset models) and the
background jobs of ui.jobs (sweeps, populations, sensitivity), which keep nothing but a marker:

- `atomic_write(path, write)`: the bytes go to a temporary file in the same folder, flushed and
  fsync'd, then `os.replace`d over `path` (and the folder fsync'd): a reader sees the old file or the
  new one, never half of one, even when the process is SIGKILLed or the power goes mid-write.
- `claim(path, what)`: an advisory lock (fcntl.flock through the `filelock` package, on `path` +
  ".lock") so that two server processes never make the same file at once: the second waits for the
  first, then finds its file. The kernel drops a flock when its holder dies, so a SIGKILLed holder
  never blocks anyone; a timeout bounds a hung one. While it works, the holder keeps a marker
  (`path` + ".running") saying what it does; a marker found by the next holder is the trace of a
  run that was interrupted (the server stopped), and the claim reports it.
- `load_or_make(path, load, make, save, what)`: a file-backed result: loaded when intact, else made
  (under the claim) and saved; a damaged file is deleted and made again; a folder that cannot keep
  anything (read-only, full, a file where the folder should be) costs only the keeping. Every one
  of these gets a notice in words (`Kept.notice`).
"""
from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Generic, Iterator, TypeVar

from filelock import FileLock, Timeout

T = TypeVar("T")
LOCK_TIMEOUT = 900.0   # seconds one process waits for another making the same file (LeNet-5: ~10 s alone)
_WHY = {errno.EROFS: "is read-only", errno.EACCES: "is read-only", errno.EPERM: "is read-only",
        errno.ENOSPC: "is on a full disk", errno.EDQUOT: "is over its disk quota",
        errno.ENOTDIR: "cannot be made (a file stands where a folder should be)",
        errno.EEXIST: "cannot be made (a file stands where a folder should be)"}


def not_kept(folder: Path, err: OSError) -> str:
    """Why nothing is kept in `folder`, in the app's words ("The model cache folder … is read-only: …")."""
    why = _WHY.get(err.errno, f"cannot be written ({err.strerror or err})")
    return f"The model cache folder {folder} {why}: models are trained in memory and not kept."


def interrupted(what: str) -> str:
    """The notice for a run found interrupted by a stopped server."""
    return f"{what[:1].upper()}{what[1:]} was interrupted (the server stopped); it started again."


def _fsync_folder(folder: Path) -> None:
    # The rename itself must reach the disk too; some file systems refuse fsync on a folder: then
    # the rename is as durable as the file system makes it, and the file is whole either way.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write `path` whole or not at all: `write(f)` fills a temporary file beside it, which replaces it.

    Raises OSError (read-only folder, full disk, ...) with no temporary file left behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


@dataclass(frozen=True)
class Claim:
    """What `claim` found. held: this process holds the lock (False: none could be taken, see
    `problem`, or the wait timed out). waited: another process held it first, so its file may be there
    now. interrupted: what a previous holder was doing when its process died (None: nothing)."""

    held: bool
    waited: bool = False
    interrupted: str | None = None
    problem: OSError | None = None


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".running")


def _clear_leftovers(path: Path) -> str | None:
    """Under the lock: the previous holder's marker (what it was doing), and its half-written temporary files."""
    marker, what = _marker(path), None
    if marker.exists():
        what = marker.read_text(errors="replace").strip() or "a run"
    for tmp in path.parent.glob(path.name + ".*.tmp"):  # only the lock holder writes `path`: these are dead
        tmp.unlink(missing_ok=True)
    return what


@contextmanager
def claim(path: Path, what: str, timeout: float = LOCK_TIMEOUT,
          waiting: Callable[[], None] | None = None) -> Iterator[Claim]:
    """Hold the lock of `path` (waiting up to `timeout` s for another process) while the block runs.

    `what` ("a training run of …") is written to the marker, for the notice if this process dies
    before the block ends; `waiting()` is called once if another process holds the lock. The block
    always runs: without the lock when it cannot be taken (see Claim).
    """
    lock = FileLock(path.with_name(path.name + ".lock"), timeout=0, fallback_to_soft=False)
    waited = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire()
        except Timeout:
            waited = True
            if waiting is not None:
                waiting()
            lock.acquire(timeout=timeout)
    except Timeout:
        yield Claim(held=False, waited=True)
        return
    except OSError as err:
        yield Claim(held=False, problem=err)
        return
    try:
        found = _clear_leftovers(path)
        try:
            _marker(path).write_text(what)
        except OSError:  # a full disk: the lock still holds; only the trace of a crash is lost
            pass
        yield Claim(held=True, waited=waited, interrupted=found)
    finally:  # finished or failed, not interrupted: a SIGKILL never gets here, and leaves the marker
        _marker(path).unlink(missing_ok=True)
        lock.release()


@dataclass(frozen=True, eq=False)
class Kept(Generic[T]):
    """A file-backed result: from_cache (loaded, not made), kept (on disk now), notice (words, or None)."""

    value: T
    from_cache: bool
    kept: bool
    notice: str | None = None


def _load(path: Path, load: Callable[[], T]) -> tuple[T | None, str | None]:
    """(value, None) when `path` loads, (None, why) when it is damaged, (None, None) when absent."""
    if not path.exists():
        return None, None
    try:
        return load(), None
    except (ValueError, RuntimeError) as err:  # core.training.load_checkpoint's refusals
        return None, str(err)


def load_or_make(path: Path, load: Callable[[], T], make: Callable[[], T], save: Callable[[T], None],
                 what: str, timeout: float | None = None, waiting: Callable[[], None] | None = None) -> Kept[T]:
    """`load()` when `path` is intact, else `make()` then `save(value)` under `claim(path, what)`.

    `load` raises ValueError/RuntimeError for a damaged file: it is deleted (under the lock) and made
    again. `save` may raise OSError: the value is then kept in memory only. Every step that went
    wrong is said in `notice`.
    """
    value, _ = _load(path, load)
    if value is not None:
        return Kept(value, from_cache=True, kept=True)
    notices: list[str] = []
    with claim(path, what, LOCK_TIMEOUT if timeout is None else timeout, waiting) as held:
        value, damage = _load(path, load)  # again, under the lock: another process may have made it meanwhile
        if value is not None:
            return Kept(value, from_cache=True, kept=True)
        if damage:
            notices.append(f"The saved model at {path} was damaged ({damage}); it was retrained.")
            if held.held:
                path.unlink(missing_ok=True)
        if held.interrupted:
            notices.append(interrupted(held.interrupted))
        if held.waited and not held.held:
            notices.append("Another server process has been making this model for too long; this one made its own.")
        value, problem = make(), held.problem
        if problem is None:
            try:
                save(value)
            except OSError as err:
                problem = err
    if problem is not None:
        notices.append(not_kept(path.parent, problem))
    return Kept(value, from_cache=False, kept=problem is None, notice=" ".join(notices) or None)


@contextmanager
def running(folder: Path, key: str, what: str) -> Iterator[str | None]:
    """Mark work that keeps no file (a sweep) as running in `folder`; yields the interrupted notice, or None.

    Never waits: another process doing the same work (a replica) does its own; a folder that
    cannot be written only loses the trace.
    """
    with claim(folder / key, what, timeout=0) as held:
        yield interrupted(held.interrupted) if held.interrupted else None

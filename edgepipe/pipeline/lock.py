"""One build at a time per output folder.

Each artifact is already written whole (temp file + rename); the lock keeps
two builds into the same folder from interleaving, so a ``model.tflite`` and
the ``report.json`` next to it always come from the same build. The lock is
``fcntl.flock`` on ``<out>/.edgepipe.lock``: the kernel releases it when the
holder dies, so a killed build never leaves a stale lock. A second build waits
up to ``timeout`` seconds, then stops with exit 2 and says who holds it.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from edgepipe.errors import EdgepipeError

LOCK_NAME = ".edgepipe.lock"
DEFAULT_TIMEOUT = 30.0


class OutputLockedError(EdgepipeError):
    """Another build holds the output folder."""

    def __init__(self, out_dir: Path, holder: str, timeout: float):
        super().__init__(
            f"{out_dir}: another edgepipe build ({holder}) is writing to this folder; waited {timeout:g} s "
            "(wait for it to finish, build into another --out, or raise --lock-timeout)")


@contextmanager
def output_lock(out_dir: str | Path, timeout: float = DEFAULT_TIMEOUT) -> Iterator[Path]:
    """Hold the output folder's lock; a folder this call created is removed again if left empty."""
    try:
        import fcntl
    except ImportError:  # not POSIX: artifacts are still written atomically
        yield Path(out_dir)
        return
    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    fd = _acquire(path, timeout, fcntl)
    try:
        yield out
    finally:
        path.unlink(missing_ok=True)  # before unlocking: a waiter then retries on a fresh file
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        if created:
            try:
                out.rmdir()
            except OSError:
                pass  # not empty: artifacts were written


def _acquire(path: Path, timeout: float, fcntl) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # the previous holder removed the folder it had created: make it again
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            if time.monotonic() >= deadline:
                raise OutputLockedError(path.parent, holder, timeout) from None
            time.sleep(0.1)
            continue
        if _same_file(fd, path):
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()}\n".encode())
            return fd
        os.close(fd)  # the holder removed this file as we locked it: lock the new one


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _holder(fd: int) -> str:
    text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    return text or "pid unknown"

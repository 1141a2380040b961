"""One build at a time per output folder, and the folder's one atomic swap.

The lock is ``fcntl.flock`` on ``<out>/.edgepipe.lock``: the kernel releases
it when the holder dies, so a killed build never leaves a stale lock (a lock
*file* may stay behind after a kill; it is empty of meaning and reused). A
second build waits up to ``timeout`` seconds, then stops with exit 2 and says
who holds it.

The lock file is opened with ``O_NOFOLLOW`` and must be a regular file with a
single link: a symlink (or hard link) planted at ``<out>/.edgepipe.lock`` is
refused with exit 2 naming the path, and its target is never opened, truncated
or written. ``<out>`` itself must not be a symlink either (the swap below
replaces the folder entry).

The emit stage builds the new output folder beside ``<out>`` and calls
:func:`replace_folder`, which swaps it in while the lock is held: the staged
folder gets its own lock file, locked *before* the swap, so from the swap
until the end of the build ``<out>/.edgepipe.lock`` is always a file this
build holds. Waiters that opened the old lock file see, once they get it, that
it is no longer the file at ``<out>/.edgepipe.lock`` and retry.

An output folder belongs to edgepipe: it may hold only what a previous build
wrote (the files its ``manifest.json`` or ``report.json`` list, those two
files, the lock file and edgepipe's temporary files). Anything else stops the
build with exit 2 before it starts, rather than being thrown away by the swap.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from edgepipe.emit.files import exchange_folders, fsync_dir, output_error
from edgepipe.errors import EdgepipeError, InputError

LOCK_NAME = ".edgepipe.lock"
DEFAULT_TIMEOUT = 30.0
#: Files a build writes whatever the target; the rest are listed in the previous manifest/report.
#: What an edgepipe command writes into an output folder besides the artifacts its manifest lists
#: (``edgepipe fit`` adds fit.json and pareto.svg to the build it publishes).
OWN_NAMES = frozenset({LOCK_NAME, "manifest.json", "report.json", "model.tflite", "fit.json", "pareto.svg"})
_REMOVE = "remove it if no build is running"
_TEMP_FILE = re.compile(r"^\..+\.tmp$")  # files.write_atomic's temporary names


class OutputLockedError(EdgepipeError):
    """Another build holds the output folder."""

    def __init__(self, out_dir: Path, holder: str, timeout: float):
        super().__init__(
            f"{out_dir}: another edgepipe build ({holder}) is writing to this folder; waited {timeout:g} s "
            "(wait for it to finish, build into another --out, or raise --lock-timeout)")


@dataclass
class _Held:
    """The lock files this process holds for one output folder (the original, then the staged one)."""

    path: Path
    fds: list[int] = field(default_factory=list)


_HELD: dict[str, _Held] = {}
_HELD_GUARD = threading.Lock()


def _key(out: Path) -> str:
    return os.path.abspath(out)


@contextmanager
def output_lock(out_dir: str | Path, timeout: float = DEFAULT_TIMEOUT) -> Iterator[Path]:
    """Hold the output folder's lock; a folder this call created is removed again if left empty."""
    try:
        import fcntl
    except ImportError:  # not POSIX: artifacts are still written atomically
        yield Path(out_dir)
        return
    out = Path(out_dir)
    refuse_symlink(out, "an output folder")
    created = not os.path.lexists(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(out, exc) from exc
    path = out / LOCK_NAME
    held = _Held(path, [_acquire(path, timeout, fcntl)])
    try:
        check_owned(out)
        with _HELD_GUARD:
            _HELD[_key(out)] = held
        try:
            yield out
        finally:
            with _HELD_GUARD:
                _HELD.pop(_key(out), None)
    finally:
        _release(held, fcntl)
        if created:
            try:
                out.rmdir()
            except OSError:
                pass  # not empty: artifacts were written


def _release(held: _Held, fcntl) -> None:
    # Unlink before unlocking, so a waiter retries on a fresh file; only a file this build holds.
    try:
        st = os.lstat(held.path)
        if any(_is(fd, st) for fd in held.fds):
            os.unlink(held.path)
    except OSError:
        pass
    for fd in held.fds:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def replace_folder(out: Path, staged: Path) -> None:
    """Swap the complete folder ``staged`` in at ``out`` in one step; remove the old one.

    With ``renameat2(RENAME_EXCHANGE)`` (Linux) there is no moment at which
    ``out`` is missing or mixed: before the swap it is the previous build, after
    it the new one. Elsewhere it falls back to two renames (``out`` aside to
    ``<out>.edgepipe-old-*``, ``staged`` to ``out``), between which ``out`` is
    briefly missing and the previous build is in that sibling.
    """
    held = _HELD.get(_key(out))
    if held is not None:
        import fcntl

        held.fds.append(_create_locked(staged / LOCK_NAME, fcntl))
    check_owned(out)  # nothing foreign appeared while the build ran
    fsync_dir(staged)
    if not os.path.lexists(out):
        os.rename(staged, out)
    elif not exchange_folders(staged, out):
        aside = staged.with_name(staged.name.replace(".edgepipe-tmp-", ".edgepipe-old-"))
        os.rename(out, aside)
        os.rename(staged, out)
        staged = aside
    fsync_dir(out.absolute().parent)
    shutil.rmtree(staged, ignore_errors=True)  # the previous build, now beside the output


def check_owned(out: Path) -> None:
    """Refuse (exit 2) an output folder holding entries that no edgepipe build wrote."""
    own = set(OWN_NAMES)
    for doc, key in (("manifest.json", "artifacts"), ("report.json", "artifacts")):
        try:
            listed = json.loads((out / doc).read_text())[key]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        names = [a.get("path", "") for a in listed] if isinstance(listed, list) else [
            Path(str(a.get("path", k))).name if isinstance(a, dict) else k for k, a in listed.items()]
        own |= {Path(str(n)).parts[0] for n in names if n and not Path(str(n)).is_absolute()}
        own |= {Path(str(n)).name for n in names if n}
    foreign = sorted(e for e in os.listdir(out) if e not in own and not _TEMP_FILE.match(e))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise InputError(str(out), "an empty folder or one an edgepipe build wrote",
                         f"files edgepipe did not write ({shown})",
                         "a build replaces the whole folder: move them, or build into another --out")


def refuse_symlink(path: Path, what: str, fix: str = "pass the real path") -> None:
    """Exit 2 if ``path`` is a symlink: edgepipe never follows one in its output."""
    if os.path.islink(path):
        raise InputError(str(path), what, f"a symlink to {os.readlink(path)}",
                         f"edgepipe does not follow symlinks in its output; {fix}")


def _acquire(path: Path, timeout: float, fcntl) -> int:
    deadline = time.monotonic() + timeout
    while True:
        fd = _open_lock(path)
        if fd is None:  # the previous holder removed the folder it had created: make it again
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise output_error(path.parent, exc) from exc
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
            _note_holder(fd, path)
            return fd
        os.close(fd)  # the holder removed or swapped this file as we locked it: lock the new one


def _open_lock(path: Path) -> int | None:
    """The lock file, opened without following a symlink; None if its folder is gone."""
    refuse_symlink(path, "edgepipe's lock file", _REMOVE)
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        return None
    except OSError as exc:
        refuse_symlink(path, "edgepipe's lock file", _REMOVE)  # ELOOP: a symlink planted since the check
        raise output_error(path.parent, exc) from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        found = "a hard link to another file" if stat.S_ISREG(st.st_mode) else "something other than a file"
        raise InputError(str(path), "edgepipe's lock file (a regular file or nothing)", found,
                         "edgepipe never writes through a link it did not make; " + _REMOVE)
    return fd


def _create_locked(path: Path, fcntl) -> int:
    """A new lock file at ``path`` (``O_EXCL | O_NOFOLLOW``), locked by this process."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _note_holder(fd, path)
    return fd


def _note_holder(fd: int, path: Path) -> None:
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
    except OSError as exc:
        os.close(fd)
        raise output_error(path.parent, exc) from exc


def _is(fd: int, st: os.stat_result) -> bool:
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (st.st_dev, st.st_ino)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return _is(fd, os.lstat(path))
    except FileNotFoundError:
        return False


def _holder(fd: int) -> str:
    text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    return text or "pid unknown"

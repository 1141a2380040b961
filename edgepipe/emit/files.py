"""Artifacts are written whole or not at all, never through a symlink, as strict JSON.

Each file goes to a temporary name in the same folder (created with
``O_CREAT | O_EXCL``, so a symlink planted at that name is never followed)
and is renamed into place (``os.replace`` is atomic on POSIX and replaces a
symlink at the destination rather than writing through it). A build's output
folder as a whole is replaced as one transaction on top of this (see
:mod:`edgepipe.pipeline.emit_stage`); :func:`exchange_folders` is its one
atomic step.

JSON written here is RFC 8259 JSON: a non-finite float (``inf``, ``-inf``,
``nan``; e.g. the SQNR of an output that is exact) is written as ``null``,
never as Python's ``Infinity``/``NaN``, which ``JSON.parse`` and most other
parsers reject.

An ``OSError`` while writing (read-only folder, a parent that is a file, a
full disk) becomes an :class:`~edgepipe.errors.InputError` naming the path
(exit 2), and no temporary file is left behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

from edgepipe.errors import InputError


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # O_EXCL: no symlink
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts are shared files
        os.replace(tmp, path)
    except OSError as exc:
        raise output_error(path, exc) from exc
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)
    return path


def output_error(path: str | Path, exc: OSError) -> InputError:
    """``path: expected a writable location, found <the system's reason>`` (exit 2)."""
    reason = exc.strerror or str(exc)
    return InputError(str(path), "a location edgepipe can write", reason.lower() if reason else type(exc).__name__,
                      "free space, fix the permissions or build into another --out")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, doc: dict) -> Path:
    """Strict JSON (RFC 8259): non-finite floats are written as ``null``."""
    text = json.dumps(finite(doc), indent=2, sort_keys=False, default=_jsonable, allow_nan=False)
    return write_atomic(path, text + "\n")


def finite(value):
    """``value`` as plain JSON data with every non-finite float (``inf``, ``-inf``, ``nan``) replaced by ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return finite(_jsonable(value))


def _jsonable(value):
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def fsync_dir(path: str | Path) -> None:
    """Make a folder's entries (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange_folders(a: str | Path, b: str | Path) -> bool:
    """Swap the folders at ``a`` and ``b`` in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False, having changed nothing, where the system or file system
    cannot (not Linux, an old C library, a file system without the flag).
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError, ImportError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL):  # the flag is not supported here
        return False
    raise OSError(err, os.strerror(err), str(b))


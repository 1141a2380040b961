"""Capture what C++ code writes to file descriptors 1 and 2.

TensorFlow's converter, Keras' exporter and LiteRT's delegate print banners
from C++ straight to the process's stdout/stderr, where Python's redirection
cannot reach. A build run from CMake or CI must print only edgepipe's own
output (and ``--json`` exactly one document), so noisy calls run inside
:func:`captured`, and the text is kept for error messages.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from contextlib import contextmanager, nullcontext, redirect_stdout
from typing import Iterator


class Captured:
    """The text written while capturing (filled in when the block exits)."""

    text: str = ""


@contextmanager
def captured(fds: tuple[int, ...] = (1, 2)) -> Iterator[Captured]:
    """Redirect ``fds`` to one temporary file for the duration of the block."""
    result = Captured()
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = {fd: os.dup(fd) for fd in fds}
        py_out = io.StringIO()
        try:
            for fd in fds:
                os.dup2(sink.fileno(), fd)
            with redirect_stdout(py_out) if 1 in fds else nullcontext():
                yield result
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            result.text = sink.read().decode("utf-8", "replace") + py_out.getvalue()

"""How the pipeline reports progress without printing.

The library calls a :class:`Progress`; the CLI passes one that draws rich
progress bars on stderr, the Python API a silent one.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


class Progress:
    """Silent progress; subclass to show it."""

    def stage(self, name: str) -> None:
        """A pipeline stage starts."""

    def note(self, message: str) -> None:
        """Something the user should know (a warning, a decision)."""

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """A counted task; yields ``update(done)``."""
        yield lambda done: None


SILENT = Progress()

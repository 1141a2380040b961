"""Typed errors that build their own sentence.

Every error a user can cause derives from :class:`EdgepipeError`; the CLI
catches that root once, prints ``error: <message>`` and exits with
:data:`EXIT_USAGE`. A message always names *where* (file, key, tensor),
*what was expected* and *what was found*, and, where there is one, the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130  # Ctrl-C: the shell's convention (128 + SIGINT)


class EdgepipeError(Exception):
    """Root of every error caused by usage or input. Exit code 2."""

    exit_code = EXIT_USAGE


class InternalError(EdgepipeError):
    """Something edgepipe relies on did not hold: its own bug or a tool's, not the user's input. Exit 3."""

    exit_code = EXIT_INTERNAL


class ConfigError(EdgepipeError):
    """A target profile or project config is malformed or inconsistent."""

    def __init__(self, where: str, problem: str, fix: str | None = None):
        self.where, self.problem, self.fix = where, problem, fix
        msg = f"{where}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)


class InputError(EdgepipeError):
    """A model or data file is missing, unreadable or does not fit the model."""

    def __init__(self, where: str, expected: str, found: str, fix: str | None = None):
        self.where, self.expected, self.found, self.fix = where, expected, found, fix
        msg = f"{where}: expected {expected}, found {found}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)


class UnknownNameError(EdgepipeError):
    """A name (target, layer, example) that is not known; lists close matches."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        msg = f"unknown {kind} {name!r}"
        if close:
            msg += f"; did you mean {', '.join(close)}?"
        msg += f" Known: {', '.join(known) if known else '(none)'}"
        self.kind, self.name, self.known, self.close = kind, name, known, close
        super().__init__(msg)


class MissingDependencyError(EdgepipeError):
    """An optional dependency needed for this command is not installed."""

    def __init__(self, module: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the Python package {module!r}, which is not installed "
            f"(install it with: pip install 'edgepipe[{extra}]')"
        )

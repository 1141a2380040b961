"""The errors of running work elsewhere; each one line, each with its exit code."""

from __future__ import annotations

from edgepipe.errors import EdgepipeError, InternalError


class WorkerLost(InternalError):
    """A worker died while running one item (a signal, a native crash, its node gone). Exit 3."""

    def __init__(self, item: str, how: str, where: str = "local process"):
        self.item, self.how, self.where = item, how, where
        super().__init__(f"the worker running {item} was lost ({where}): {how}")


class RemoteError(InternalError):
    """An error raised in a worker whose class could not be rebuilt here. Exit 3."""


class ClusterUnreachable(EdgepipeError):
    """``--ray ADDRESS`` names no Ray cluster this machine can join. Exit 2: the address is the user's input."""

    def __init__(self, address: str, problem: str, fix: str | None = None):
        self.address, self.problem, self.fix = address, problem, fix
        msg = f"--ray {address}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)

"""Items as Ray tasks on a cluster someone started with ``ray start --head``.

``ray`` is imported only here, only when ``--ray ADDRESS`` is given (the
``edgepipe[ray]`` extra). Each item is one task (``num_cpus=1``, no retries: a
build that crashes its worker would crash it again); results come back in input
order with the same error semantics as local processes. The driver joins the
cluster and leaves it (``ray.shutdown()``); the cluster keeps running.

Ray prints some messages from the cluster (a worker that died, for instance)
straight to ``sys.stdout`` whatever ``log_to_driver`` says; while connected,
``sys.stdout`` points at stderr so stdout can carry one JSON document.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
from typing import Any, Callable, Iterable

from edgepipe.errors import MissingDependencyError
from edgepipe.scale.calls import describe_item, make_call, run_call, unpack_error
from edgepipe.scale.errors import ClusterUnreachable, RemoteError, WorkerLost

CONNECT_TIMEOUT = 5.0  # seconds for the TCP check of the address before Ray (which would retry for ever) dials it
START_HINT = "start a cluster with `ray start --head --port=6379` and pass the HOST:PORT it prints"


def parse_address(address: str) -> tuple[str, int] | None:
    """``host:port`` or ``ray://host:port`` -> (host, port); ``auto`` -> None (Ray finds the local cluster)."""
    if address == "auto":
        return None
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterUnreachable(address, "expected HOST:PORT (or ray://HOST:PORT, or auto)", START_HINT)
    return host, int(port)


def _reachable(host: str, port: int) -> str | None:
    """None if something accepts TCP connections at host:port, else why not."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def check_address(address: str) -> None:
    """Refuse, in one line, an address Ray would otherwise retry for ever."""
    parsed = parse_address(address)
    if parsed is None:
        return
    why = _reachable(*parsed)
    if why:
        raise ClusterUnreachable(address, f"no Ray cluster answers there ({why.lower()})", START_HINT)
    if address.startswith("ray://"):
        return
    dialled = _dialled(address)
    if dialled and dialled != parsed:
        why = _reachable(*dialled)
        if why:
            raise ClusterUnreachable(
                address, f"Ray dials {dialled[0]}:{dialled[1]} for this address and nothing answers there "
                f"({why.lower()})", "a head bound to 127.0.0.1 only needs RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 "
                "in the environment of both `ray start` and edgepipe")


def _dialled(address: str) -> tuple[str, int] | None:
    """The host:port Ray itself connects to: it replaces a loopback host by this node's address."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        host, _, port = canonicalize_bootstrap_address(address).rpartition(":")
        return host.strip("[]"), int(port)
    except Exception:  # noqa: BLE001 - a private helper; without it, trust the address as given
        return None


class RayExecutor:
    """``map`` over Ray tasks on the cluster at ``address``; use as a context manager."""

    kind = "ray"

    def __init__(self, address: str):
        self.address = address
        self._ray = None
        self._stdout = contextlib.ExitStack()

    def __enter__(self) -> RayExecutor:
        self.connect()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def connect(self) -> None:
        try:
            import ray
        except ImportError:
            raise MissingDependencyError("ray", "ray", f"--ray {self.address}") from None
        check_address(self.address)
        self._stdout.enter_context(contextlib.redirect_stdout(sys.stderr))
        try:
            ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR,
                     namespace="edgepipe")
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            self._stdout.close()
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ClusterUnreachable(self.address, f"Ray could not join the cluster: {first}") from None
        self._ray = ray

    def close(self) -> None:
        if self._ray is not None:
            self._ray.shutdown()
            self._ray = None
        self._stdout.close()

    def describe(self) -> dict:
        ray = self._ray
        nodes = [n for n in ray.nodes() if n.get("Alive")] if ray else []
        cpus = ray.cluster_resources().get("CPU", 0) if ray else 0
        return {"kind": self.kind, "address": self.address, "nodes": len(nodes), "cpus": int(cpus)}

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *, return_exceptions: bool = False,
            on_done: Callable[[int, Any], None] | None = None) -> list:
        """As :meth:`edgepipe.scale.local.LocalExecutor.map`, but the first error cancels the tasks not yet ended."""
        ray = self._ray
        if ray is None:
            raise RuntimeError("RayExecutor.map outside its `with` block")
        items = list(items)
        task = ray.remote(num_cpus=1, max_retries=0)(run_call)
        refs = [task.remote(make_call(fn, item)) for item in items]
        index_of = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(items)
        errors: dict[int, BaseException] = {}
        remaining = list(refs)
        try:
            while remaining:
                ready, remaining = ray.wait(remaining, num_returns=1)
                for ref in ready:
                    index = index_of[ref]
                    value = self._collect(ref, index, items[index])
                    results[index] = value
                    if isinstance(value, BaseException):
                        errors[index] = value
                    if on_done is not None:
                        on_done(index, value)
                if errors and not return_exceptions and remaining:
                    for ref in remaining:
                        ray.cancel(ref)
                    remaining = []
        except BaseException:
            for ref in remaining:
                ray.cancel(ref)
            raise
        if errors and not return_exceptions:
            raise errors[min(errors)]
        return results

    def _collect(self, ref, index: int, item: Any) -> Any:
        from ray.exceptions import RayError, RayTaskError

        where = f"Ray cluster {self.address}"
        try:
            status, value = self._ray.get(ref)
        except RayTaskError as exc:  # run_call never raises: the task could not even start (e.g. no edgepipe there)
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
            return RemoteError(f"{describe_item(index, item)} could not run on the {where}: "
                               f"{type(cause).__name__}: {_first_line(cause)} "
                               "(every node needs this edgepipe version and its extras installed)")
        except RayError as exc:
            return WorkerLost(describe_item(index, item), f"{type(exc).__name__}: {_first_line(exc)}", where)
        return value if status == "ok" else unpack_error(value)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]

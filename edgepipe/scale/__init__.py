"""Run one function over many items: on local processes, or on a Ray cluster with ``--ray ADDRESS``.

::

    from edgepipe.scale import executor_for, WorkerLost
    with executor_for(ray_address=None, workers=2) as ex:
        results = ex.map(fn, items)    # fn: a module-level function; results in input order
        ex.kind                         # "local" or "ray"
        ex.describe()                   # {"kind", "host", "workers"} or {"kind", "address", "nodes", "cpus"}

``ex.map(fn, items, return_exceptions=False, on_done=None)``: an exception
raised by ``fn`` is raised in the caller with its class and attributes (an
:class:`~edgepipe.errors.EdgepipeError` keeps its exit code), or takes the
item's place in the list with ``return_exceptions=True``. A worker that dies
(a signal, a native crash, its node lost) is :class:`WorkerLost` (exit 3)
naming the item. ``on_done(index, result_or_exception)`` is called in the
caller as each item ends. Each call runs in the caller's working folder with
the caller's ``EDGEPIPE_*`` environment, and ``TF_ENABLE_ONEDNN_OPTS=0``.
See docs/scale-out.md.
"""

from __future__ import annotations

from edgepipe.scale.errors import ClusterUnreachable, RemoteError, WorkerLost

__all__ = ["ClusterUnreachable", "RemoteError", "WorkerLost", "executor_for"]


def executor_for(ray_address: str | None = None, workers: int = 2):
    """Local worker processes (``workers`` of them), or the Ray cluster at ``ray_address``; a context manager."""
    if ray_address:
        from edgepipe.scale.ray_cluster import RayExecutor

        return RayExecutor(ray_address)
    from edgepipe.scale.local import LocalExecutor

    return LocalExecutor(workers)

"""What travels to a worker and back: one call, its result or its error.

A worker (a local process or a Ray task) runs :func:`run_call`, which never
raises: it returns ``("ok", result)`` or ``("error", packed)``. The packed
error rebuilds the same exception class in the caller without calling its
``__init__`` (edgepipe's errors take several arguments, which plain pickling
of an exception cannot replay), so ``exit_code`` and every attribute survive.
"""

from __future__ import annotations

import os
import pickle
import signal
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from edgepipe import __version__
from edgepipe.errors import InternalError
from edgepipe.scale.errors import RemoteError

# Environment a build reads that a Ray worker would not otherwise see (local workers inherit it anyway).
FORWARDED_ENV_PREFIXES = ("EDGEPIPE_", "NO_COLOR", "FORCE_COLOR")
WORKER_ENV = {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}


class _RemoteTraceback(Exception):
    """The worker's traceback, chained as ``__cause__`` so ``--debug`` shows where it happened."""

    def __init__(self, text: str):
        self.text = text
        super().__init__(text)

    def __str__(self) -> str:
        return f"\n\"\"\"\n{self.text}\"\"\""


@dataclass(frozen=True)
class Call:
    """One item for one function, with the caller's working folder and environment."""

    fn: Callable[[Any], Any]
    item: Any
    cwd: str = ""
    env: dict = field(default_factory=dict)
    version: str = __version__


def make_call(fn: Callable[[Any], Any], item: Any) -> Call:
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}
    return Call(fn, item, os.getcwd(), env)


def run_call(call: Call) -> tuple[str, Any]:
    """In the worker: run one call in the caller's folder and environment; never raises."""
    saved_env = {k: os.environ.get(k) for k in (*call.env, *WORKER_ENV)}
    saved_cwd = os.getcwd()
    try:
        if call.version != __version__:
            raise InternalError(f"this worker has edgepipe {__version__}, the caller {call.version} "
                                "(install the same edgepipe version on every node)")
        for key, value in WORKER_ENV.items():
            os.environ.setdefault(key, value)
        os.environ.update(call.env)
        if call.cwd and os.path.isdir(call.cwd):
            os.chdir(call.cwd)
        result = call.fn(call.item)
        pickle.dumps(result)
        return "ok", result
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the caller
        return "error", pack_error(exc)
    finally:
        os.chdir(saved_cwd)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def pack_error(exc: BaseException) -> tuple:
    """(class, args, attributes, traceback text), or a RemoteError's when the class does not pickle."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    packed = (type(exc), exc.args, dict(getattr(exc, "__dict__", {})), text)
    try:
        pickle.loads(pickle.dumps(packed))
    except Exception:  # noqa: BLE001 - any unpicklable part: keep the type's name and the message
        return RemoteError, (f"{type(exc).__name__}: {exc}",), {}, text
    return packed


def unpack_error(packed: tuple) -> BaseException:
    """The worker's exception, same class and attributes, its traceback as ``__cause__``."""
    cls, args, attrs, text = packed
    try:
        exc = cls.__new__(cls, *args)
        exc.args = args
        exc.__dict__.update(attrs)
    except Exception:  # noqa: BLE001 - a class that refuses to be rebuilt this way
        exc = RemoteError(f"{cls.__name__}: {args[0] if len(args) == 1 else args}")
    exc.__cause__ = _RemoteTraceback(text)
    return exc


def describe_item(index: int, item: Any) -> str:
    """How an error names an item: its ``label`` if it has one (``target rpi4``), else ``item 3 (<short repr>)``."""
    label = getattr(item, "label", None)
    if isinstance(label, str) and label:
        return label
    text = repr(item)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"item {index} ({text})"


def signal_name(exitcode: int | None) -> str:
    """``-9`` -> ``killed by SIGKILL``; a positive code -> ``exited with code N``."""
    if exitcode is None:
        return "ended without an exit code"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with code {exitcode}"

"""A PyTorch ``nn.Module`` from a factory function, exported to ONNX and converted like an ONNX file.

The convention (docs/onnx-pytorch.md): ``model: nets/kws.py:make`` (a file,
relative to the config) or ``model: mypkg.nets:make`` (an importable module)
names a function called with no arguments that returns ``(module,
example_input)``. ``example_input`` is a tensor, a tuple of tensors, or a dict
of tensors by input name; its shapes (channels-first, as the module takes them)
fix the model's input shapes, and its batch size does not matter.

Names: a dict example names the inputs, else ``input`` (``input_0``, ``input_1``
… for several); outputs are named by ``module.output_names`` if the module has
it, by the keys of the dict ``forward`` returns, else ``output`` (``output_0`` …).

Export uses ``torch.onnx.export`` with the TorchScript-based exporter
(``dynamo=False``): it needs nothing beyond torch and keeps module paths in ONNX
node names (``/features/conv1/Conv``); the batch axis is exported dynamic.
The converted model is then checked against the module itself (PyTorch on
CPU, float32, ``eval()`` mode), not against the exported ONNX.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from edgepipe.errors import InputError
from edgepipe.foreign.converted import Converted, ForeignConversionError
from edgepipe.foreign.deps import TORCH_EXTRA, need
from edgepipe.foreign.spec import ForeignSpec

PURPOSE = "loading a PyTorch model"
OPSET = 17
_RETURNS = "a function returning (torch.nn.Module, example_input)"
_CHUNK = 64


def load_torch(spec: ForeignSpec) -> Converted:
    """The factory's module, exported and converted (see the module docstring)."""
    torch = need("torch", TORCH_EXTRA, PURPOSE)
    need("onnx", TORCH_EXTRA, PURPOSE)
    need("onnxruntime", TORCH_EXTRA, PURPOSE)
    from edgepipe.foreign import onnx_model

    module, example = _call_factory(spec, torch)
    in_names, args = _inputs(example, torch, spec.where)
    module.eval()
    with torch.no_grad():
        out = module(*args)
    out_names, _ = _outputs(module, out, torch, spec.where)
    data = _export(module, args, in_names, out_names, torch, spec.where)
    proto = onnx_model.parse(data, f"{spec.where} (exported to ONNX)")
    return onnx_model.convert(proto, data, spec.where, "torch", _runner(module, out_names, torch),
                              f"PyTorch {torch.__version__.split('+')[0]}",
                              steps=[f"torch.onnx.export (torch {torch.__version__}, opset {OPSET}, TorchScript "
                                     "exporter, dynamic batch)"])


def _call_factory(spec: ForeignSpec, torch):
    """(module, example) from the factory; anything wrong with them is the user's input (exit 2)."""
    func = _factory(spec)
    try:
        result = func()
    except Exception as exc:  # noqa: BLE001 - the user's code
        raise InputError(spec.where, _RETURNS, f"it raised {type(exc).__name__}: {exc}") from None
    if not (isinstance(result, tuple) and len(result) == 2):
        found = f"a tuple of {len(result)}" if isinstance(result, tuple) else f"a {type(result).__name__}"
        raise InputError(spec.where, _RETURNS, found)
    module, example = result
    if not isinstance(module, torch.nn.Module):
        raise InputError(spec.where, _RETURNS, f"({type(module).__name__}, …)")
    return module, example


def _factory(spec: ForeignSpec):
    if spec.path is not None:
        if not spec.path.is_file():
            raise InputError(str(spec.path), "a Python file defining the model factory", "no such file")
        name = f"edgepipe_model_{abs(hash(str(spec.path.resolve())))}"
        loader = importlib.util.spec_from_file_location(name, spec.path)
        mod = importlib.util.module_from_spec(loader)
        sys.path.insert(0, str(spec.path.resolve().parent))  # so the file can import its neighbours
        try:
            loader.loader.exec_module(mod)
        except Exception as exc:  # noqa: BLE001 - the user's code
            raise InputError(str(spec.path), "a Python file that imports", f"{type(exc).__name__}: {exc}") from None
        finally:
            sys.path.remove(str(spec.path.resolve().parent))
    else:
        try:
            mod = importlib.import_module(spec.module)
        except Exception as exc:  # noqa: BLE001 - the user's code
            raise InputError(spec.where, f"an importable module {spec.module!r}", f"{type(exc).__name__}: {exc}",
                             "put it on PYTHONPATH, or name the file: path/to/file.py:factory") from None
    func = getattr(mod, spec.factory, None)
    if not callable(func):
        raise InputError(spec.where, f"a function named {spec.factory!r}",
                         "nothing by that name" if func is None else f"a {type(func).__name__}")
    return func


def _inputs(example, torch, where: str) -> tuple[list[str], tuple]:
    """(input names, positional args) from the example input."""
    if isinstance(example, torch.Tensor):
        names, tensors = ["input"], [example]
    elif isinstance(example, dict) and example:
        names, tensors = [str(k) for k in example], list(example.values())
    elif isinstance(example, (tuple, list)) and example:
        tensors = list(example)
        names = ["input"] if len(tensors) == 1 else [f"input_{i}" for i in range(len(tensors))]
    else:
        raise InputError(where, "an example input: a tensor, a tuple of tensors or a dict of them by name",
                         f"{type(example).__name__} {_short(example)}")
    for name, t in zip(names, tensors):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise InputError(f"{where}: example input {name!r}", "a float tensor",
                             f"{type(t).__name__} {getattr(t, 'dtype', '')}".strip())
    return names, tuple(t.detach().float().cpu() for t in tensors)


def _outputs(module, out, torch, where: str) -> tuple[list[str], list]:
    """(output names, tensors) of what ``forward`` returned."""
    if isinstance(out, dict):
        names, tensors = [str(k) for k in out], list(out.values())
    elif isinstance(out, (tuple, list)):
        tensors = list(out)
        names = ["output"] if len(tensors) == 1 else [f"output_{i}" for i in range(len(tensors))]
    else:
        names, tensors = ["output"], [out]
    given = getattr(module, "output_names", None)
    if given is not None:
        if len(given) != len(tensors):
            raise InputError(f"{where}: output_names", f"{len(tensors)} names (forward returns {len(tensors)})",
                             f"{len(given)}: {list(given)}")
        names = [str(n) for n in given]
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        raise InputError(where, "forward() returning a tensor, a tuple or a dict of tensors",
                         ", ".join(type(t).__name__ for t in tensors))
    return names, tensors


def _export(module, args, in_names, out_names, torch, where: str) -> bytes:
    """The ONNX bytes of ``module`` (batch axis dynamic); a failure names the op (exit 3)."""
    dynamic = {n: {0: "batch"} for n in [*in_names, *out_names]}
    with tempfile.TemporaryDirectory(prefix="edgepipe-torch-") as tmp:
        path = Path(tmp, "model.onnx")
        try:
            from edgepipe.fdcapture import captured

            with captured(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, args, str(path), input_names=in_names, output_names=out_names,
                                  dynamic_axes=dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True)
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types
            text = " ".join(str(exc).split())[:300]
            raise ForeignConversionError(f"{where}: torch.onnx.export (torch {torch.__version__}) failed: "
                                         f"{type(exc).__name__}: {text}") from exc
        return path.read_bytes()


def _runner(module, out_names, torch):
    """``run(arrays) -> outputs``: the module itself on CPU in float32, chunked, no gradients."""

    def run(arrays: list) -> list:
        parts = []
        with torch.no_grad():
            for s in range(0, len(arrays[0]), _CHUNK):
                out = module(*[torch.from_numpy(np.ascontiguousarray(a[s:s + _CHUNK], np.float32)) for a in arrays])
                _, tensors = _outputs(module, out, torch, "")
                parts.append([t.detach().cpu().numpy() for t in tensors])
        return [np.concatenate([p[k] for p in parts]) for k in range(len(out_names))]

    return run


def _short(value) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."

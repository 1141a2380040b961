"""Peak RAM from tensor lifetimes, planned like the runtime's arena, plus persistent state.

Each non-constant tensor of the main subgraph lives from the op that writes it
(model inputs: from the start) to the last op that reads it (model outputs: to
the end). Tensors are placed greedily, largest first, at the lowest
16-byte-aligned offset that does not overlap a tensor alive at the same time —
the strategy of TFLite Micro's ``GreedyMemoryPlanner``. The plan's high-water
mark is the activation estimate; the sum of simultaneously live bytes is a
lower bound no planner can beat.

Variables (a streaming model's resource variables, legacy ``is_variable``
tensors) are not planned: they hold state between invokes, so the runtime
keeps them for the whole inference (TFLM allocates them persistently, outside
the planned area). Their bytes are added to the peak and reported apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgepipe.tflite.model import TfliteModel

ALIGN = 16


@dataclass(frozen=True)
class MemoryPlan:
    """``peak_bytes`` = planned activations + ``persistent_bytes``; ``lower_bound_bytes`` is for activations."""

    peak_bytes: int
    lower_bound_bytes: int
    tensor_count: int
    largest_tensor: str
    largest_tensor_bytes: int
    peak_op: int
    persistent_bytes: int = 0
    persistent: tuple[tuple[str, int], ...] = ()  # (variable name, aligned bytes)

    @property
    def activation_bytes(self) -> int:
        """High-water mark of the planned (non-persistent) tensors alone."""
        return self.peak_bytes - self.persistent_bytes

    def to_dict(self) -> dict:
        return {
            "peak_bytes": self.peak_bytes, "peak_activation_bytes": self.activation_bytes,
            "persistent_bytes": self.persistent_bytes,
            "persistent": [{"name": name, "bytes": size} for name, size in self.persistent],
            "lower_bound_bytes": self.lower_bound_bytes,
            "planned_tensors": self.tensor_count, "largest_tensor": self.largest_tensor,
            "largest_tensor_bytes": self.largest_tensor_bytes, "peak_op_index": self.peak_op,
            "method": "greedy-by-size over tensor lifetimes (like TFLM GreedyMemoryPlanner) + persistent variables",
        }


def lifetimes(model: TfliteModel) -> dict[int, tuple[int, int]]:
    """Tensor index -> (first op, last op) for the main subgraph's activations (not constants, not variables)."""
    n_ops = len(model.operators)
    life: dict[int, list[int]] = {}
    for t in model.inputs:
        life[t] = [0, 0]
    for op in model.operators:
        for t in op.inputs + op.outputs:
            if t < 0 or model.tensors[t].is_constant or model.tensors[t].is_variable:
                continue
            span = life.setdefault(t, [op.index, op.index])
            span[0] = min(span[0], op.index)
            span[1] = max(span[1], op.index)
    for t in model.outputs:
        life.setdefault(t, [n_ops - 1, n_ops - 1])[1] = max(n_ops - 1, 0)
    return {t: (a, b) for t, (a, b) in life.items()}


def plan_memory(model: TfliteModel) -> MemoryPlan:
    """Greedy placement of activations, plus every variable; the high-water mark and a lower bound."""
    life = lifetimes(model)
    sizes = {t: _aligned(model.tensors[t].nbytes) for t in life}
    activations = _greedy_peak(life, sizes)
    persistent = tuple((v.name, _aligned(v.nbytes)) for v in model.variables)
    persistent_bytes = sum(size for _, size in persistent)
    live = [sum(sizes[t] for t, (a, b) in life.items() if a <= i <= b) for i in range(max(len(model.operators), 1))]
    largest = max(life, key=lambda t: sizes[t]) if life else -1
    return MemoryPlan(
        peak_bytes=activations + persistent_bytes, lower_bound_bytes=max(live) if live else 0,
        tensor_count=len(life), largest_tensor=model.tensors[largest].name if largest >= 0 else "",
        largest_tensor_bytes=sizes.get(largest, 0),
        peak_op=int(max(range(len(live)), key=live.__getitem__)) if live else 0,
        persistent_bytes=persistent_bytes, persistent=persistent,
    )


def _greedy_peak(life: dict[int, tuple[int, int]], sizes: dict[int, int]) -> int:
    """Largest first, each at the lowest offset clear of every tensor alive at the same time."""
    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    peak = 0
    for t in sorted(life, key=lambda t: (-sizes[t], t)):
        first, last = life[t]
        overlapping = sorted((o, s) for o, s, a, b in placed if a <= last and first <= b)
        offset = 0
        for o, s in overlapping:
            if offset + sizes[t] <= o:
                break
            offset = max(offset, o + s)
        placed.append((offset, sizes[t], first, last))
        peak = max(peak, offset + sizes[t])
    return peak


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN

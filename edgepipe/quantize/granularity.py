"""Weight granularity per target and op kind, and what a target's runtime can run per layer.

Why per-tensor FULLY_CONNECTED weights on microcontrollers and Ethos-U: TFLite
Micro (CMSIS-NN) keeps a multiplier and a shift per output channel in its
arena for per-channel weights, and Vela encodes per-channel scales into the
weight stream. On MLPerf Tiny's FC-only anomaly-detection autoencoder (ad01)
per-channel made the arena 22,048 B instead of 4,640 B, the file 319 KB instead
of 279 KB, and the Ethos-U55 estimate 265 us instead of 208 us (docs/quantization.md).
Convolutions keep per-channel weights everywhere: their per-channel ranges
differ far more, and TFLite's int8 depthwise kernels require them.
On LiteRT (XNNPACK) per-channel FC costs nothing measurable, so it stays.

``auto`` tries per-tensor where it pays and keeps it only if the measured
accuracy still meets the profile's budget (or is no worse than per-channel):
see :mod:`edgepipe.pipeline.accuracy_aware`.
"""

from __future__ import annotations

#: Runtimes that pay for per-channel FULLY_CONNECTED data (arena, weight stream).
PER_CHANNEL_COSTS = ("tflm", "ethos-u")


def fc_per_tensor(profile, setting: str) -> tuple[bool, str]:
    """(per-tensor FULLY_CONNECTED weights?, why) for ``quantization.fc_weights`` on this target."""
    if setting == "per-tensor":
        return True, "quantization.fc_weights: per-tensor"
    if setting == "per-channel":
        return False, "quantization.fc_weights: per-channel"
    runtime = _runtime(profile)
    if runtime in PER_CHANNEL_COSTS:
        return True, (f"auto: {runtime} keeps per-channel multipliers and shifts for FULLY_CONNECTED "
                      "weights (arena, flash); per-tensor unless accuracy needs per-channel")
    return False, f"auto: per-channel FULLY_CONNECTED weights cost nothing measurable on {runtime}"


def int16_layers_allowed(profile) -> tuple[bool, str]:
    """Can this target's runtime run some layers with 16-bit activations (int16x8 kernels)?

    TFLite Micro has int16x8 CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, SOFTMAX, ADD and
    QUANTIZE (requantize int8 <-> int16) kernels, CMSIS-NN s16 versions of the first three;
    Vela maps 16-bit activations to the Ethos-U NPU; LiteRT runs them (not on XNNPACK: on its
    built-in kernels). An int8-only accelerator on LiteRT (an Edge TPU delegate) runs int8 only.
    Every candidate is still run on the device's kernels and judged by the target's backend.
    """
    runtime = _runtime(profile)
    if runtime in ("tflm", "ethos-u"):
        return True, f"{runtime} has int16x8 kernels"
    if profile.accelerator.int8_only:
        return False, "an int8-only accelerator on LiteRT runs int8 ops only"
    return True, "LiteRT's built-in kernels run int16x8 ops"


def _runtime(profile) -> str:
    return getattr(profile.runtime, "value", str(profile.runtime))

"""Quantization techniques that keep accuracy, one module per technique.

- :mod:`.recipes`: per-op quantization recipes through ai-edge-quantizer (public API):
  int16 activations or float for named layers, weight granularity per op kind.
- :mod:`.granularity`: which weight granularity each target's runtime pays least for.
- :mod:`.equalize`: cross-layer equalization of Conv/Depthwise -> Conv pairs (BN folded first).
- :mod:`.bias_correction`: empirical bias correction from representative data.
- :mod:`.flatbuffer`: ai-edge-quantizer's external weight buffers put back inline (TFLM, firmware).
- :mod:`.graph`: who feeds whom in a Keras model; :mod:`.options`: the settings as resolved.

Keep-or-revert (a transform is kept only if it brings the int8 model closer to the float one)
lives in :mod:`edgepipe.pipeline.accuracy_aware`, which measures on the device's kernels.

Every module imports TensorFlow, Keras and ai-edge-quantizer lazily (``edgepipe verify``
and ``inspect`` never import them).
"""

"""Harness throughput vs a naive per-sample ``set_tensor``/``invoke`` loop, side by side.

Same .tflite, same samples, same kernels (LiteRT XNNPACK); the naive loop
quantizes one sample, invokes, reads the output, and runs once with 1 thread
and once with the harness's thread count; the ratio is against the faster of
the two. The harness
(``edgepipe.harness.harness.evaluate``) reads the data in chunks (here also
from a memory-mapped ``.npy``), runs batched invokes when the batch axis can
be freed, and accumulates every metric against precomputed float outputs, so
it does strictly more work than the loop. Both runs must give the same
integer outputs; the script checks that before printing.

    .venv/bin/python benchmarks/harness_benchmark.py [--samples 10000] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def models(x: np.ndarray):
    """(name, keras model, input samples): a tiny 8x8 CNN and a 32x32 CNN (digits upsampled)."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    tiny = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(h), name="tiny_8x8")

    inp = keras.Input((32, 32, 1))
    h = inp
    for width in (16, 32, 64):
        h = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(h)
        h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(64, activation="relu")(h)
    cnn = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(h), name="cnn_32x32")
    big = np.kron(x, np.ones((1, 4, 4, 1), np.float32))
    return [(tiny, x), (cnn, big)]


def naive(model_bytes: bytes, x: np.ndarray, threads: int) -> tuple[float, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model_bytes, num_threads=threads)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scale, zp = inp["quantization"]
    outs = []
    t0 = time.perf_counter()
    for i in range(len(x)):
        q = np.clip(np.round(x[i:i + 1] / scale) + zp, -128, 127).astype(np.int8)
        it.set_tensor(inp["index"], q)
        it.invoke()
        outs.append(it.get_tensor(out["index"]).copy())
    return time.perf_counter() - t0, np.concatenate(outs)


def harness(model_bytes: bytes, x, y: np.ndarray, float_out: np.ndarray, threads: int) -> tuple[float, dict, object]:
    from edgepipe.runtimes.litert import LiteRTRunner
    from edgepipe.tflite.model import parse_tflite
    from edgepipe.harness.harness import EvalData, evaluate

    t0 = time.perf_counter()
    runner = LiteRTRunner(model_bytes, threads=threads, kernels="xnnpack")  # batch and chunk sizes: defaults
    data = EvalData(x, y, n_classes=10)
    acc = evaluate(data, lambda start, chunk: [float_out[start:start + len(chunk)]], runner, parse_tflite(model_bytes))
    return time.perf_counter() - t0, acc, runner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from sklearn.datasets import load_digits

    from edgepipe.keras_io import import_tensorflow

    import_tensorflow()  # quietly, before Keras
    from edgepipe.config.schema import IODtype, Scheme
    from edgepipe.keras_io.convert import ConvertSettings, convert
    from edgepipe.runtimes.litert import LiteRTRunner

    d = load_digits()
    base = (d.images.astype(np.float32) / 16.0)[..., None]
    reps = -(-args.samples // len(base))
    settings = ConvertSettings(Scheme.INT8, IODtype.INT8, IODtype.INT8, True, False)
    print(f"LiteRT XNNPACK; harness {args.threads} thread(s); {os.cpu_count()} cores on this host "
          f"(load average {os.getloadavg()[0]:.1f} at start)")
    print(f"{'model':<10} {'samples':>7} {'naive 1t':>9} {f'naive {args.threads}t':>9} {'harness':>9} "
          f"{'harness(mmap)':>14} {'naive/s':>8} {'harness/s':>9} {'ratio':>6}  batching")
    for model, x_small in models(base):
        x = np.concatenate([x_small] * reps)[: args.samples]
        y = np.concatenate([d.target] * reps)[: args.samples]
        model_bytes = convert(model, x_small[:100], settings)
        float_out = np.asarray(model.predict(x, batch_size=256, verbose=0), np.float32)
        LiteRTRunner(model_bytes, threads=args.threads).raw(x[:64])  # warm up the library once
        t_n1, naive_out = naive(model_bytes, x, 1)
        t_nt, _ = naive(model_bytes, x, args.threads)
        t_h, acc, runner = harness(model_bytes, x, y, float_out, args.threads)
        with tempfile.TemporaryDirectory() as tmp:
            np.save(Path(tmp) / "x.npy", x)
            t_mm, acc_mm, _ = harness(model_bytes, np.load(Path(tmp) / "x.npy", mmap_mode="r"), y, float_out,
                                      args.threads)
        raw = runner.raw(x)[0]
        assert np.array_equal(raw, naive_out), "harness and naive loop must give the same integer outputs"
        assert acc_mm == acc, "streaming from a memory map must give the same figures"
        n, best = len(x), min(t_n1, t_nt)
        print(f"{model.name:<10} {n:>7} {t_n1:>8.3f}s {t_nt:>8.3f}s {t_h:>8.3f}s {t_mm:>13.3f}s "
              f"{n / best:>8.0f} {n / t_h:>9.0f} {best / t_h:>5.1f}x  {runner.batch_size}/invoke, {runner.batch_note}")

if __name__ == "__main__":
    main()

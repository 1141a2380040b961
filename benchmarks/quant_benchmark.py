"""Accuracy-keeping quantization on models edgepipe did not train: plain PTQ vs each technique vs all.

Models (none designed for edgepipe):

- ``dscnn``: MLPerf Tiny's keyword-spotting DS-CNN (depthwise-heavy), rebuilt in code
  (benchmarks/prune_models.py), trained briefly on scikit-learn's digits resized to 49x10;
- ``xception``: mini-Xception (SeparableConv2D modules), same, at 32x32;
- ``lenet``: LeNet-5 (LeCun et al. 1998: conv 6 5x5, pool, conv 16 5x5, pool, FC 120, FC 84, FC 10)
  at 32x32, same data: a CNN whose weights are mostly FULLY_CONNECTED;
- ``vww``: MLPerf Tiny's visual-wake-words MobileNetV1 0.25 (depthwise-heavy, published weights
  ``vww_96.h5`` and ``vww_96_int8.tflite``), on 96x96 crops of the two photographs scikit-learn
  bundles; every crop is "no person", so the figure is the SQNR of the int8 outputs against the float ones;
- ``ad01``: MLPerf Tiny's anomaly-detection autoencoder (FC-only), the published trained model
  ``ad01.h5`` and its published ``ad01_int8.tflite`` from a checkout of github.com/mlcommons/tiny
  (``--tiny PATH``); inputs: the 40 real log-mel windows the reference submission ships
  (``datasets/dcase01/*.bin``), each repeated with 9 small perturbations (400 vectors). Skipped
  (saying so) without ``--tiny``.

Variants: ``plain`` (the TFLite converter, per-channel weights: edgepipe's previous default),
``fc-per-tensor`` (ai-edge-quantizer, FULLY_CONNECTED weights per tensor), ``equalize``
(cross-layer equalization), ``bias-corr`` (empirical bias correction), ``eq+bc``, ``int16-worst``
(the layer attribution ranks worst and its readers with 16-bit activations, the rest int8),
and ``all``: what a build does on an MCU target -- equalization and bias correction each kept
only if they bring the int8 model closer to the float one on a *validation* split, FC weights
per tensor unless that costs more than 1 point of agreement there. Figures are on a separate
test split: top-1 agreement with the float model (digits classifiers), SQNR of the outputs against the float
model's in dB (all; the only figure for vww and ad01), top-1 accuracy against labels,
``.tflite`` bytes, the TFLite Micro arena (measured, bisection),
and the target's latency estimate. ``gap``: the share of plain PTQ's agreement gap a variant
recovers ((agree - plain) / (100 - plain)).

    .venv/bin/python benchmarks/quant_benchmark.py --tiny /path/to/mlcommons/tiny [--target esp32-s3]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # SeparableConv2D + BN can crash oneDNN in fit (DESIGN.md)
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

AD_SAMPLE = "benchmark/reference_submissions/anomaly_detection/datasets/dcase01"
AD_MODELS = "benchmark/training/anomaly_detection/trained_models"


# -- models and data ---------------------------------------------------------------
def lenet(classes: int = 10):
    import keras
    from keras import layers as L

    inputs = keras.Input((32, 32, 1), name="image")
    x = L.Conv2D(6, 5, activation="relu", name="c1")(inputs)
    x = L.AveragePooling2D(2, name="s2")(x)
    x = L.Conv2D(16, 5, activation="relu", name="c3")(x)
    x = L.AveragePooling2D(2, name="s4")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dense(120, activation="relu", name="f5")(x)
    x = L.Dense(84, activation="relu", name="f6")(x)
    return keras.Model(inputs, L.Dense(classes, activation="softmax", name="out")(x), name="lenet")


def digits_splits(name: str, seed: int = 0):
    """(train, rep, val, test) as (x, y) pairs, the digits resized as the model expects."""
    from prune_models import inputs_for
    from sklearn.datasets import load_digits

    d = load_digits()
    x, _ = inputs_for("dscnn" if name == "dscnn" else "xception", d.images / 16.0, seed)
    y = d.target.astype("int64")
    idx = np.random.default_rng(seed).permutation(len(x))
    x, y = x[idx], y[idx]
    tr, val, te = (x[:1000], y[:1000]), (x[1000:1300], y[1000:1300]), (x[1300:], y[1300:])
    return tr, (tr[0][::5], None), val, te


def trained(name: str, epochs: int, cache: Path | None):
    """The model trained on the digits (or read back from ``cache``), and its rep/val/test splits."""
    import keras
    from prune_models import dscnn, xception

    tr, rep, val, te = digits_splits(name)
    saved = cache / f"{name}-{epochs}.keras" if cache else None
    if saved is not None and saved.exists():
        return keras.models.load_model(saved), rep[0], val, te
    keras.utils.set_random_seed(0)
    model = {"dscnn": dscnn, "xception": xception, "lenet": lenet}[name]()
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*tr, validation_data=val, epochs=epochs, batch_size=64, verbose=0)
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        model.save(saved)
    return model, rep[0], val, te


def ad01(tiny: Path):
    from edgepipe.keras_io.load import load_keras_model

    loaded = load_keras_model(tiny / AD_MODELS / "ad01.h5")
    model = getattr(loaded, "model", loaded[0] if isinstance(loaded, tuple) else loaded)
    windows = np.concatenate([np.fromfile(f, dtype=np.float32).reshape(-1, 640)
                              for f in sorted((tiny / AD_SAMPLE).glob("*.bin"))])
    rng = np.random.default_rng(0)
    spread = windows.std(axis=0, keepdims=True)
    x = np.concatenate([windows + rng.normal(0, 0.05, windows.shape) * spread for _ in range(10)]).astype("float32")
    x = x[rng.permutation(len(x))]
    published = (tiny / AD_MODELS / "ad01_int8.tflite").read_bytes()
    return model, x[:200], (x[200:300], None), (x[300:], None), published


def vww(tiny: Path):
    """MLPerf Tiny's visual-wake-words MobileNetV1 (published weights) on 96x96 crops of the two
    photographs scikit-learn ships (no COCO here: the figure is SQNR against the float logits)."""
    import tensorflow as tf
    from sklearn.datasets import load_sample_images

    from edgepipe.keras_io.load import load_keras_model

    folder = tiny / "benchmark/training/visual_wake_words/trained_models"
    loaded = load_keras_model(folder / "vww_96.h5")
    model = getattr(loaded, "model", loaded[0] if isinstance(loaded, tuple) else loaded)
    images, rng, crops = load_sample_images().images, np.random.default_rng(0), []
    for i in range(600):
        im = images[i % 2]
        side = int(rng.integers(96, 400))
        top, left = int(rng.integers(0, im.shape[0] - side)), int(rng.integers(0, im.shape[1] - side))
        crops.append(tf.image.resize(im[top:top + side, left:left + side] / 255.0, (96, 96)).numpy())
    x = np.asarray(crops, "float32")
    return model, x[:200], (x[200:350], None), (x[350:], None), (folder / "vww_96_int8.tflite").read_bytes()


# -- variants ----------------------------------------------------------------------
def settings(per_channel: bool = True):
    from edgepipe.config.schema import IODtype, Scheme
    from edgepipe.keras_io.convert import ConvertSettings

    return ConvertSettings(Scheme.INT8, IODtype.INT8, IODtype.INT8, per_channel, False)


def tf_int8(model, rep, per_channel: bool = True) -> bytes:
    from edgepipe.keras_io.convert import convert

    return convert(model, rep, settings(per_channel))


def aeq(model, rep, per_tensor_fc: bool, layers: dict | None = None) -> bytes:
    from edgepipe.quantize.recipes import Recipe, convert_with_recipe

    return convert_with_recipe(model, rep, settings(), Recipe(("FULLY_CONNECTED",) if per_tensor_fc else (),
                                                             layers or {}))


def figures(tflite: bytes, model, x: np.ndarray) -> tuple[float | None, float]:
    """(top-1 agreement with the float model in % for the digits classifiers else None, output SQNR in dB)."""
    from edgepipe.runtimes.base import REFERENCE, in_process_runner

    q = in_process_runner(REFERENCE, tflite).predict(x)
    f = model.predict(x, verbose=0, batch_size=128)
    sqnr = float(10 * np.log10(np.sum(f ** 2) / max(np.sum((f - q) ** 2), 1e-20)))
    if f.shape[-1] == 10 and np.allclose(f.sum(-1), 1, atol=1e-3):  # the digits classifiers
        return float(np.mean(q.argmax(-1) == f.argmax(-1)) * 100), sqnr
    return None, sqnr


def closeness(tflite: bytes, model, x: np.ndarray) -> tuple[float, float]:
    """What keep-or-revert compares (higher is closer): agreement, then SQNR to break ties."""
    agree, sqnr = figures(tflite, model, x)
    return (agree if agree is not None else sqnr, sqnr)


def variants(model, rep, val, has_fc: bool, tolerance, per_channel: bool = True):
    """name -> (tflite bytes, note): per-channel weights (edgepipe's default) or per tensor everywhere."""
    from edgepipe.quantize.bias_correction import correct_biases
    from edgepipe.quantize.equalize import equalize

    eq, pairs = equalize(model)
    bc, layers = correct_biases(model, rep, per_tensor=not per_channel)
    both, _ = correct_biases(eq, rep, per_tensor=not per_channel)
    out = {"plain": (tf_int8(model, rep, per_channel), "converter")}
    if has_fc and per_channel:
        out["fc-per-tensor"] = (aeq(model, rep, True), "ai-edge-quantizer")
    out["equalize"] = (tf_int8(eq, rep, per_channel), f"{len(pairs)} pairs")
    out["bias-corr"] = (tf_int8(bc, rep, per_channel), f"{len(layers)} layers")
    out["eq+bc"] = (tf_int8(both, rep, per_channel), "")
    if per_channel:
        out["int16-worst"] = int16_worst(model, rep, val, out["plain"][0])
    made = {"plain": out["plain"][0], "equalize": (eq, out["equalize"][0]), "bias": bc, "both": (both, out["eq+bc"][0])}
    out["all"] = keep_or_revert(model, rep, val, has_fc and per_channel, made, tolerance, per_channel)
    return out


def int16_worst(model, rep, val, plain: bytes):
    from edgepipe.harness.attribution import attribute
    from edgepipe.quantize.recipes import layer_scopes

    worst = [e.layer for e in attribute(model, plain, val[0][:128]).worst(1)]
    scopes = layer_scopes(model, tuple(worst))
    return aeq(model, rep, False, {s: "int16" for s in scopes}), f"{', '.join(worst)} int16"


def keep_or_revert(model, rep, val, has_fc: bool, made: dict, tolerance, per_channel: bool):
    """What a build on an MCU target does, with every technique on and judged: per-tensor FC weights
    first (back to per-channel if the validation figure misses ``tolerance``, the profile's gate),
    then equalization and bias correction, each kept only if closer to the float model on the
    validation split (never on the test split the table reports)."""
    from edgepipe.quantize.bias_correction import correct_biases

    def make(m):
        return aeq(m, rep, True) if fc_pt else tf_int8(m, rep, per_channel)

    fc_pt, kept = False, []
    best_model, best = model, made["plain"]
    score = closeness(best, model, val[0])
    if has_fc:
        pt = aeq(model, rep, True)
        pt_score = closeness(pt, model, val[0])
        if tolerance(pt_score[0], score[0]):
            fc_pt, best, score = True, pt, pt_score
            kept.append("fc-pt")
    eq_model = made["equalize"][0]
    eq_bytes = make(eq_model)
    if closeness(eq_bytes, model, val[0]) > score:
        best_model, best, score = eq_model, eq_bytes, closeness(eq_bytes, model, val[0])
        kept.append("eq")
    bc_model = correct_biases(best_model, rep, per_tensor_dense=fc_pt, per_tensor=not per_channel)[0]
    bc_bytes = make(bc_model)
    if closeness(bc_bytes, model, val[0]) > score:
        best = bc_bytes
        kept.append("bc")
    return best, "+".join(kept) or "none kept"


# -- figures -----------------------------------------------------------------------
def costs(tflite: bytes, profile, npu) -> tuple[int | None, float, float]:
    """(TFLM arena, the MCU's latency estimate in µs, the Ethos-U (Vela) estimate in µs)."""
    from edgepipe.backends import backend_for
    from edgepipe.backends.base import IOContract
    from edgepipe.estimate.latency import cpu_latency
    from edgepipe.runtimes.tflm import TflmError, measure_arena
    from edgepipe.tflite.model import parse_tflite

    try:
        arena = measure_arena(tflite).bytes
    except TflmError:
        arena = None
    tfl = parse_tflite(tflite)
    judged = backend_for(npu).judge(tfl, IOContract("int8", "int8"))
    vela = judged.sections.get("latency", {}).get("target", {}).get("seconds", float("nan"))
    return arena, cpu_latency(tfl, profile).seconds * 1e6, vela * 1e6


def accuracy(tflite: bytes, test) -> str:
    from edgepipe.runtimes.base import REFERENCE, in_process_runner

    if test[1] is None:
        return "-"
    return f"{np.mean(in_process_runner(REFERENCE, tflite).predict(test[0]).argmax(-1) == test[1]) * 100:.1f}"


def table(name: str, model, rows: dict, test, profile, npu, published: bytes | None = None) -> None:
    from edgepipe.fdcapture import captured

    plain, _ = figures(rows["plain"][0], model, test[0])
    f_acc = "-" if test[1] is None else f"{np.mean(model.predict(test[0], verbose=0).argmax(-1) == test[1]) * 100:.1f}"
    print(f"\n{name} (float accuracy {f_acc}, {len(test[0])} test samples)")
    print(f"| variant | agree % | gap recovered | SQNR dB | accuracy | bytes | TFLM arena B | {profile.name} µs | "
          f"{npu.name} µs | note |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    if published is not None:
        rows = {"published int8": (published, "mlcommons/tiny"), **rows}
    for variant, (data, note) in rows.items():
        agree, sqnr = figures(data, model, test[0])
        gap = "-" if agree is None or plain >= 100 else f"{(agree - plain) / (100 - plain) * 100:.0f}%"
        with captured():
            arena, us, npu_us = costs(data, profile, npu)
        shown = "-" if agree is None else f"{agree:.2f}"
        print(f"| {variant} | {shown} | {gap} | {sqnr:.1f} | {accuracy(data, test)} | {len(data):,} | "
              f"{arena if arena is not None else 'n/a':,} | {us:.0f} | {npu_us:.0f} | {note} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", type=Path, help="a checkout of github.com/mlcommons/tiny (for ad01)")
    ap.add_argument("--target", default="esp32-s3", help="MCU profile for the latency estimate")
    ap.add_argument("--npu", default="ethos-u55", help="Ethos-U profile for the Vela estimate")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--models", default="dscnn,xception,lenet,vww,ad01")
    ap.add_argument("--cache", type=Path, help="keep the trained models here and reuse them")
    args = ap.parse_args()

    from edgepipe.api import registry
    from edgepipe.fdcapture import captured

    profile, npu = registry().get(args.target).profile, registry().get(args.npu).profile
    for name in args.models.split(","):
        if name in ("ad01", "vww"):
            if args.tiny is None:
                print(f"\n{name}: skipped (give --tiny PATH, a checkout of github.com/mlcommons/tiny)")
                continue
            model, rep, val, test, published = (ad01 if name == "ad01" else vww)(args.tiny)
        else:
            with captured():
                model, rep, val, test = trained(name, args.epochs, args.cache)
            published = None
        has_fc = any(type(layer).__name__ == "Dense" for layer in model.layers)
        gate = profile.accuracy
        tolerance = (lambda new, old: new >= gate.min_sqnr_db) if name in ("ad01", "vww") else \
            (lambda new, old: new >= old - gate.max_drop)
        with captured():
            rows = variants(model, rep, val, has_fc, tolerance)
        table(name, model, rows, test, profile, npu, published)
        if any(type(layer).__name__ in ("DepthwiseConv2D", "SeparableConv2D") for layer in model.layers):
            with captured():
                rows = variants(model, rep, val, has_fc, tolerance, per_channel=False)
            table(f"{name}, per-tensor weights (quantization.per_channel: false)", model, rows, test, profile, npu)


if __name__ == "__main__":
    main()

"""Channel pruning against the alternatives, on real data, in one process.

For a small ResNet-style CNN (residual adds) and a MobileNet-style CNN
(depthwise separable blocks), both trained on scikit-learn's digits
upsampled to 32x32, this compares:

  a  float32 TFLite
  b  plain int8 post-training quantization
  c  channel pruning (25% and 50%) + fine-tuning with distillation + int8
  d  2:4 sparsity + fine-tuning with distillation + int8
  e  sensitivity-aware channel pruning (prune.target) to the MACs that c at
     50% reached, + the same fine-tuning + int8: uniform vs allocated ratios
     at the same MAC reduction

and prints size, params, MACs, host latency (LiteRT, same thread count for
all, interleaved repeats, median), int8 top-1 on a held-out split that
neither training nor early stopping saw and top-1 agreement with the float
model on it, then the ratios c/a, c/b, d/b and e/b, and for c 50% and e the
float agreement just after pruning (BatchNormalization recalibrated, before
fine-tuning), where the choice of channels shows before training hides it.

For three published architectures rebuilt in ``prune_models.py`` (the MLPerf
Tiny keyword-spotting DS-CNN at 49x10x1, Arriaga et al.'s mini-Xception at
32x32x1, a detector-style head with a Permute and a box output) it compares
instead, side by side at the same MAC reduction: uniform ``--ratio`` pruning,
``prune.target`` macs at the MACs uniform reached, and ``prune.target``
latency priced by the ``--device`` profile's per-kernel latency model, at the
largest latency fraction whose MACs do not exceed uniform's (both targets use
one sensitivity measurement, BatchNormalization re-calibrated per trial).
Each is recovered with labels (BN recalibration, fine-tuning with labels +
distillation) and without (BN recalibration, least-squares reconstruction,
distillation alone; every step before fine-tuning kept only if it brings the
model closer to the original on the val inputs, as a build does). It prints
size vs float32, MACs, min and median host latency of every model (LiteRT,
one thread, interleaved rounds) and the speed-up of both over plain int8,
the ``--device`` latency estimate of the int8 ``.tflite`` and its speed-up
over plain int8, top-1 agreement of the int8 model with the float32 one,
top-1 against the labels and, for the detector, the box's relative MSE; the
note gives kept/units per prunable group.

    .venv/bin/python benchmarks/prune_benchmark.py            # about 9 min on 2 cores
    .venv/bin/python benchmarks/prune_benchmark.py --quick    # smoke run
    .venv/bin/python benchmarks/prune_benchmark.py --models resnet --variants c,e   # uniform vs target only
    .venv/bin/python benchmarks/prune_benchmark.py --models dscnn,xception,detector --epochs 10 --finetune-epochs 3
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from dataclasses import dataclass
from types import SimpleNamespace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TensorFlow 2.21's oneDNN kernels can segfault training SeparableConv2D + BatchNormalization models
# (the mini-Xception); edgepipe's fine-tuning child turns them off the same way.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from keras import layers as L  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from edgepipe.config.targets import TargetRegistry  # noqa: E402
from edgepipe.estimate.latency import estimate_latency  # noqa: E402
from edgepipe.keras_io.names import output_names  # noqa: E402
from edgepipe.prune import sensitivity  # noqa: E402
from edgepipe.prune.allocate import choose, latency_model  # noqa: E402
from edgepipe.prune.channel import prune_space  # noqa: E402
from edgepipe.prune.cost import CostModel  # noqa: E402
from edgepipe.prune import PruneSettings, apply_mn_sparsity, finetune, prune_model  # noqa: E402
from edgepipe.prune.recalibrate import recalibrate_batchnorm  # noqa: E402
from edgepipe.prune.rebuild import kept_indices  # noqa: E402
from edgepipe.prune.reconstruct import reconstruct  # noqa: E402
from edgepipe.prune.recovery import agreement, predict_named  # noqa: E402
from edgepipe.prune.stats import model_stats  # noqa: E402
from edgepipe.tflite.model import parse_tflite  # noqa: E402

try:
    from benchmarks import prune_models  # noqa: E402
except ImportError:  # run as a script: benchmarks/ is on sys.path
    import prune_models  # noqa: E402

SIDE = 32


# -- data -------------------------------------------------------------------
def load_data(seed: int):
    """Digits upsampled to 32x32 in [0, 1]: train, val (early stopping), test."""
    digits = load_digits()
    x = tf.image.resize(digits.images[..., None] / 16.0, (SIDE, SIDE)).numpy().astype("float32")
    y = digits.target.astype("int64")
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=0.3, stratify=y, random_state=seed)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=0.15, stratify=y_rest, random_state=seed)
    return (x_train, y_train), (x_val, y_val), (x_test, y_test)


# -- models -------------------------------------------------------------------
def batch_norm(name: str) -> L.BatchNormalization:
    """Momentum 0.9: with ~17 steps an epoch, 0.99 leaves the moving statistics near
    their initial values and eval-mode accuracy at chance."""
    return L.BatchNormalization(momentum=0.9, name=name)


def conv_bn(x, filters, name, kernel=3, strides=1, relu=True):
    x = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = batch_norm(f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x) if relu else x


def residual_block(x, filters, name, strides=1):
    """Two 3x3 convs plus a shortcut (1x1 projection when the shape changes)."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, f"{name}_proj", kernel=1, strides=strides, relu=False)
    y = conv_bn(x, filters, f"{name}_a", strides=strides)
    y = conv_bn(y, filters, f"{name}_b", relu=False)
    return L.ReLU(name=f"{name}_out")(L.Add(name=f"{name}_add")([shortcut, y]))


def separable_block(x, filters, name, strides=1):
    x = L.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = L.ReLU(6.0, name=f"{name}_dw_relu")(batch_norm(f"{name}_dw_bn")(x))
    x = L.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    return L.ReLU(6.0, name=f"{name}_pw_relu")(batch_norm(f"{name}_pw_bn")(x))


def classifier(name: str, stem: int, block, plan: list[tuple[int, int]]) -> keras.Model:
    """stem conv -> one block per (filters, strides) -> global pool -> softmax."""
    inputs = keras.Input((SIDE, SIDE, 1), name="image")
    x = conv_bn(inputs, stem, "stem")
    for index, (filters, strides) in enumerate(plan, 1):
        x = block(x, filters, f"b{index}", strides)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(10, activation="softmax", name="classifier")(x), name=name)


def resnet() -> keras.Model:
    """Residual blocks at 16x16 (32 ch) and 8x8 (64 ch)."""
    return classifier("resnet", 16, residual_block, [(32, 2), (32, 1), (64, 2), (64, 1)])


def mobilenet() -> keras.Model:
    """Depthwise-separable blocks down to 4x4 (256 ch)."""
    return classifier("mobilenet", 32, separable_block, [(64, 2), (96, 1), (128, 2), (128, 1), (256, 2)])


def train(model: keras.Model, data, val, epochs: int) -> keras.Model:
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=4, restore_best_weights=True)
    model.fit(*data, validation_data=val, epochs=epochs, batch_size=64, verbose=0, callbacks=[stop])
    return model


# -- conversion and measurement ---------------------------------------------------
@contextlib.contextmanager
def quiet():
    """The converter prints its SavedModel signature to fd 1/2: keep the table readable."""
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def convert(model: keras.Model, calibration: np.ndarray | None) -> bytes:
    """Batch fixed to 1; full integer with int8 I/O when calibration data is given."""
    inputs = keras.Input(batch_shape=(1, *model.input_shape[1:]), name="image")
    fixed = keras.Model(inputs, model(inputs))
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    if calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([s[None]] for s in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with quiet():
        return converter.convert()


class Runner:
    """One LiteRT interpreter; quantizes inputs when the model is int8."""

    def __init__(self, flatbuffer: bytes, threads: int):
        self.interp = Interpreter(model_content=flatbuffer, num_threads=threads)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]
        outs = self.interp.get_output_details()
        # several outputs (the detector): the class scores are the 10-wide one, the other is the box
        self.out = next((o for o in outs if o["shape"][-1] == 10), outs[0])
        self.extra = [o for o in outs if o is not self.out]

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        if self.inp["dtype"] != np.int8:
            return x[None].astype(np.float32)
        scale, zero = self.inp["quantization"]
        return np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)[None]

    def predict(self, x: np.ndarray) -> int:
        self.interp.set_tensor(self.inp["index"], self._prepare(x))
        self.interp.invoke()
        return int(np.argmax(self.interp.get_tensor(self.out["index"])[0]))

    def outputs(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Dequantized (class scores, other outputs) for one sample."""
        self.interp.set_tensor(self.inp["index"], self._prepare(x))
        self.interp.invoke()
        return self._read(self.out), [self._read(o) for o in self.extra]

    def _read(self, detail) -> np.ndarray:
        value = self.interp.get_tensor(detail["index"])[0].astype(np.float32)
        scale, zero = detail["quantization"]
        return (value - zero) * scale if detail["dtype"] == np.int8 else value

    def time_invokes(self, count: int) -> float:
        start = time.perf_counter()
        for _ in range(count):
            self.interp.invoke()
        return (time.perf_counter() - start) / count


def top1(runner: Runner, x: np.ndarray, y: np.ndarray) -> float:
    return 100.0 * float(np.mean([runner.predict(s) == t for s, t in zip(x, y)]))


def latencies(runners: dict[str, Runner], sample: np.ndarray, rounds: int, per_round: int):
    """Median seconds per invoke; variants interleaved so drift hits all alike."""
    return {name: med for name, (_, med) in latency_stats(runners, sample, rounds, per_round).items()}


def latency_stats(runners: dict[str, Runner], sample: np.ndarray, rounds: int, per_round: int):
    """(min, median) seconds per invoke over ``rounds`` interleaved rounds of ``per_round`` invokes."""
    for runner in runners.values():
        if sample is not None:  # else: timed on whatever the input tensor holds (time does not depend on it)
            runner.predict(sample)
        runner.time_invokes(per_round)  # warm-up
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            times[name].append(runner.time_invokes(per_round))
    return {name: (float(np.min(t)), float(np.median(t))) for name, t in times.items()}


# -- variants -----------------------------------------------------------------------
@dataclass
class Variant:
    label: str
    model: keras.Model
    int8: bool
    note: str = ""


def just_pruned_agreement(pruned: keras.Model, model: keras.Model, data, test) -> float:
    """Float top-1 agreement with the unpruned model on the test split, on a recalibrated copy of the
    pruned model (fresh BatchNormalization statistics, no training): what the channel choice alone costs."""
    copy = keras.models.clone_model(pruned)
    copy.set_weights(pruned.get_weights())
    recalibrate_batchnorm(copy, data[0])
    ref = np.argmax(model.predict(test[0], verbose=0), -1)
    return 100.0 * float(np.mean(np.argmax(copy.predict(test[0], verbose=0), -1) == ref))


def make_variants(model, data, val, test, args) -> list[Variant]:
    ft = {"epochs": args.finetune_epochs, "learning_rate": 1e-3, "batch_size": 64,
          "temperature": 4.0, "alpha": 0.5, "patience": 4}
    want = set(args.variants.split(","))
    variants = [Variant("a float32", model, False), Variant("b int8 PTQ", model, True)]
    uniform_macs = None
    for ratio in (0.25, 0.5):
        if "c" not in want and not ("e" in want and ratio == 0.5):
            continue
        settings = PruneSettings(ratio=ratio, finetune=ft)
        pruned = prune_model(model, settings, channel_multiple=args.channel_multiple)
        if ratio == 0.5:
            uniform_macs = pruned.totals.macs_ratio
            agree = just_pruned_agreement(pruned.model, model, data, test)
        rec = finetune(pruned.model, model, data, val, settings)
        note = f"val {rec.initial_eval_accuracy:.3f}->{rec.best_eval_accuracy:.3f}"
        if ratio == 0.5:
            note += f"; just pruned agree {agree:.1f}%"
        if "c" in want:
            variants.append(Variant(f"c pruned {int(ratio * 100)}% +KD int8", pruned.model, True, note))
    if "e" in want:
        settings = PruneSettings(target={"macs": round(uniform_macs, 4)}, finetune=ft)
        pruned = prune_model(model, settings, args.channel_multiple, data=data[0][: args.calibration])
        agree = just_pruned_agreement(pruned.model, model, data, test)
        rec = finetune(pruned.model, model, data, val, settings)
        note = (f"val {rec.initial_eval_accuracy:.3f}->{rec.best_eval_accuracy:.3f}; just pruned agree "
                f"{agree:.1f}%; ratios " + " ".join(f"{g.owner}:{g.ratio:.2f}" for g in pruned.allocation.groups))
        variants.append(Variant(f"e target macs={uniform_macs:.3f}", pruned.model, True, note))
    if "d" in want:
        settings = PruneSettings(method="mn", n=2, m=4, finetune=ft)
        sparse = apply_mn_sparsity(model, settings)
        finetune(sparse.model, model, data, val, settings)
        note = f"2:4 sparsity {sparse.sparsity:.2f} of masked kernels"
        variants.append(Variant("d 2:4 +KD int8", sparse.model, True, note))
    return variants


def runners_for(variants: list[Variant], data, args) -> tuple[dict, dict]:
    """(flatbuffer, LiteRT runner) per variant label: int8 variants calibrated on the first training samples."""
    calibration = data[0][: args.calibration]
    flatbuffers = {v.label: convert(v.model, calibration if v.int8 else None) for v in variants}
    return flatbuffers, {label: Runner(fb, args.threads) for label, fb in flatbuffers.items()}


def measure(variants: list[Variant], data, test, args) -> list[dict]:
    flatbuffers, runners = runners_for(variants, data, args)
    lat = latencies(runners, test[0][0], args.rounds, args.per_round)
    reference = [runners["a float32"].predict(s) for s in test[0]]
    rows = []
    for v in variants:
        stats = model_stats(v.model).values()
        rows.append({
            "label": v.label, "size": len(flatbuffers[v.label]),
            "params": sum(s.params for s in stats), "macs": sum(s.macs for s in stats),
            "latency": lat[v.label], "top1": top1(runners[v.label], *test), "note": v.note,
            "agree": 100.0 * float(np.mean([runners[v.label].predict(s) == r for s, r in zip(test[0], reference)])),
        })
    return rows


# -- report ---------------------------------------------------------------------------
def print_table(name: str, rows: list[dict]) -> None:
    print(f"\n== {name} ==")
    print(f"{'variant':<24}{'size KiB':>10}{'params':>10}{'MACs':>12}{'latency ms':>12}{'top-1 %':>9}"
          f"{'agree %':>9}  note")
    for r in rows:
        print(f"{r['label']:<24}{r['size'] / 1024:>10.1f}{r['params']:>10,}{r['macs']:>12,}"
              f"{r['latency'] * 1e3:>12.3f}{r['top1']:>9.2f}{r['agree']:>9.2f}  {r['note']}")
    a, b = rows[0], rows[1]
    for row in rows[2:]:
        print(_ratios(row, a, b))


def _ratios(r: dict, a: dict, b: dict) -> str:
    return (f"{r['label']:<24} vs a: {a['size'] / r['size']:5.2f}x smaller, "
            f"top-1 {r['top1'] - a['top1']:+.2f} pts | vs b: {b['size'] / r['size']:5.2f}x smaller, "
            f"{b['latency'] / r['latency']:5.2f}x faster, top-1 {r['top1'] - b['top1']:+.2f} pts")


def goal_line(rows: list[dict]) -> str:
    """The issue's goal for 50% channels: <=1.0 pt drop vs float, >=8x smaller, >=1.8x faster."""
    a, b = rows[0], rows[1]
    c = next((r for r in rows if "50%" in r["label"]), None)
    if c is None:
        return "goal at 50%: not run (variant c left out)"
    checks = {
        "top-1 drop <= 1.0 pt vs float": a["top1"] - c["top1"] <= 1.0,
        ">= 8x smaller than float32": a["size"] / c["size"] >= 8.0,
        ">= 1.8x faster than int8 PTQ": b["latency"] / c["latency"] >= 1.8,
    }
    return "goal at 50%: " + ", ".join(f"{k}: {'met' if ok else 'NOT met'}" for k, ok in checks.items())


# -- architectures edgepipe did not design: uniform vs target, with and without labels -------------------
EXTERNAL = tuple(prune_models.BUILDERS)
#: The detector's Flatten head learns shift-invariant classes slowly (an epoch takes ~1.5 s): it gets 3x --epochs.
EPOCH_SCALE = {"detector": 3}


def load_external(name: str, seed: int):
    """The same digits split as ``load_data``, shaped for ``name``; the detector's labels are
    ``{"cls": digit, "box": (x0, y0, x1, y1) / 32}``."""
    digits = load_digits()
    x, boxes = prune_models.inputs_for(name, digits.images / 16.0, seed)
    y = digits.target.astype("int64")
    rest, test = train_test_split(np.arange(len(y)), test_size=0.3, stratify=y, random_state=seed)
    train_i, val_i = train_test_split(rest, test_size=0.15, stratify=y[rest], random_state=seed)

    def split(i):
        return x[i], (y[i] if boxes is None else {"cls": y[i], "box": boxes[i]})
    return split(train_i), split(val_i), split(test)


def class_labels(y) -> np.ndarray:
    return y["cls"] if isinstance(y, dict) else y


def tasks_of(model: keras.Model) -> dict[str, str]:
    return {n: ("regression" if n == "box" else "classification") for n in output_names(model)}


def train_external(model: keras.Model, data, val, epochs: int) -> keras.Model:
    if isinstance(data[1], dict):  # box coordinates in [0, 1]: weigh their MSE up to the cross-entropy's scale
        model.compile(keras.optimizers.Adam(2e-3), {"cls": "sparse_categorical_crossentropy", "box": "mse"},
                      loss_weights={"cls": 1.0, "box": 20.0}, metrics={"cls": ["accuracy"]})
    else:
        model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    model.fit(*data, validation_data=val, epochs=epochs, batch_size=64, verbose=0, callbacks=[stop])
    return model


def closeness_error(model: keras.Model, original: keras.Model, x: np.ndarray) -> float:
    """The build's gate figure: mean over outputs of 1 - top-1 agreement (classes) or relative MSE (box)."""
    figs = agreement(predict_named(model, x), predict_named(original, x), tasks_of(original))
    return float(np.mean([1 - f["agreement"] / 100 if "agreement" in f else f["relative_mse"] for f in figs.values()]))


def gated(name: str, step, model: keras.Model, original: keras.Model, x_check: np.ndarray) -> str:
    """Run ``step`` and keep it only if it brings ``model`` closer to ``original`` on ``x_check``."""
    before, weights = closeness_error(model, original, x_check), model.get_weights()
    step()
    after = closeness_error(model, original, x_check)
    if after >= before:
        model.set_weights(weights)
    return f"{name} {before:.3f}->{after:.3f}{'' if after < before else ' reverted'}"


def recover(pruned, original: keras.Model, data, val, settings: PruneSettings, labels: bool):
    """A copy of the pruned model after what a build does: with labels, BN recalibration (gated) then
    fine-tuning with labels + distillation; without, BN recalibration and least-squares reconstruction
    (each gated on the val inputs) then distillation alone. Returns (model, note)."""
    model = keras.models.clone_model(pruned.model)
    model.set_weights(pruned.model.get_weights())
    steps = [gated("bn", lambda: recalibrate_batchnorm(model, data[0]), model, original, val[0])]
    if not labels:
        steps.append(gated("lsq", lambda: reconstruct(model, original, data[0], pruned.kept_indices),
                           model, original, val[0]))
    train_pair, val_pair = (data, val) if labels else ((data[0], None), (val[0], None))
    rec = finetune(model, original, train_pair, val_pair, settings, tasks=tasks_of(original))
    steps.append(f"KD err {closeness_error(model, original, val[0]):.3f} ({len(rec.history)} ep)")
    return model, "; ".join(steps)


def external_variants(model: keras.Model, data, val, args) -> list[Variant]:
    """Uniform ``--ratio``, then a MAC target and a latency target (the ``--device`` profile's cost model)
    at the MACs uniform reached, and that latency target again with the first conv free to prune (the
    default excludes it); each recovered with and without labels. The targets are allocated as a build
    allocates them: from damage measured with BatchNormalization re-calibrated per trial, and for the
    label-free rows (whose build reconstructs) after the least-squares refit too."""
    ft = {"epochs": args.finetune_epochs, "learning_rate": 1e-3, "batch_size": 64,
          "temperature": 4.0, "alpha": 0.5, "patience": 3}
    variants = [Variant("a float32", model, False), Variant("b int8 PTQ", model, True)]
    uniform = prune_model(model, PruneSettings(ratio=args.ratio, finetune=ft), args.channel_multiple)
    settings = PruneSettings(ratio=args.ratio, finetune=ft)  # only .finetune is read by finetune()
    space = prune_space(model, PruneSettings(), args.channel_multiple)
    x, macs = data[0][: args.calibration], uniform.totals.macs_ratio
    by_mode = {labels: [("uniform", uniform), *targeted(model, x, macs, args, reconstruct=not labels)]
               for labels in (True, False)}
    for row in range(len(by_mode[True])):
        for labels in (True, False):
            tag, pruned = by_mode[labels][row]
            student, note = recover(pruned, model, data, val, settings, labels)
            note = f"{pruned_note(getattr(pruned, 'space', space), pruned)}; {note}"
            variants.append(Variant(f"{tag} {'labels' if labels else 'no lab'}", student, True, note))
    return variants


def targeted(model: keras.Model, x: np.ndarray, macs: float, args, reconstruct: bool) -> list[tuple[str, object]]:
    """(tag, pruned) of the MAC target, the latency target and the latency target with the first conv
    free (only the outputs frozen), at ``macs``; damage measured after the refit when ``reconstruct``."""
    space = prune_space(model, PruneSettings(), args.channel_multiple)
    sens, measured_on = sensitivity.measure(space, x, reconstruct=reconstruct)
    latency = latency_model(model, "latency", args.profile)
    free = prune_space(model, PruneSettings(exclude=output_layers(model)), args.channel_multiple)
    free_sens = sensitivity.measure(free, x, reconstruct=reconstruct)
    return [("macs tgt", built(space, choose(space, "macs", macs, sens, measured_on))),
            ("lat tgt", built(space, latency_at_macs(space, sens, measured_on, latency, macs))),
            ("lat+1st", built(free, latency_at_macs(free, *free_sens, latency, macs)))]


def latency_at_macs(space, sens, measured_on: str, latency, macs: float):
    """The latency-target allocation with the largest latency fraction whose MACs are at most ``macs``
    (bisection over the fraction; the measured sensitivities are reused)."""
    costs = CostModel(space.graph)
    full = costs.macs(space.keep_id(space.full()))
    lo, hi, best = 0.02, 1.0, None
    for _ in range(14):
        mid = (lo + hi) / 2
        alloc = choose(space, "latency", mid, sens, measured_on, latency=latency)
        if costs.macs(space.keep_id(list(alloc.kept))) <= macs * full + 1e-9:
            lo, best = mid, alloc
        else:
            hi = mid
    return best if best is not None else choose(space, "latency", lo, sens, measured_on, latency=latency)


def built(space, allocation) -> SimpleNamespace:
    """What ``recover`` reads of a PruneResult (model, kept_indices), for an allocation made here."""
    model, plans = space.build(list(allocation.kept))
    return SimpleNamespace(model=model, kept_indices=kept_indices(plans),
                           kept=list(allocation.kept), space=space)


def output_layers(model: keras.Model) -> list[str]:
    """The layers that make outputs: ``exclude`` without the default's first conv."""
    from edgepipe.prune.graph import DependencyGraph

    graph = DependencyGraph(model)
    return [p for p in graph.output_paths if p in set(graph.layer_names)]


def pruned_note(space, pruned) -> str:
    """Kept/units of each prunable group, by the layer that owns its filters."""
    kept = getattr(pruned, "kept", None) or [g.kept for g in pruned.groups]
    return " ".join(f"{_owner(space.blocks[i])}:{kept[i]}/{space.units(i)}" for i in space.prunable)


def _owner(block) -> str:
    return next((m.layer for m in block.members if m.role == "out"), block.members[0].layer)


def measure_external(variants: list[Variant], data, test, args) -> list[dict]:
    flatbuffers, runners = runners_for(variants, data, args)
    lat = latency_stats(runners, test[0][0], args.rounds, args.per_round)
    reference = [runners["a float32"].outputs(s) for s in test[0]]
    ref_cls = np.array([np.argmax(c) for c, _ in reference])
    ref_box = np.array([e[0] for _, e in reference]) if reference[0][1] else None
    rows = []
    for v in variants:
        outs = [runners[v.label].outputs(s) for s in test[0]]
        cls = np.array([np.argmax(c) for c, _ in outs])
        stats = model_stats(v.model).values()
        box = ""
        if ref_box is not None:
            mse = np.mean(np.square(np.array([e[0] for _, e in outs]) - ref_box)) / np.var(ref_box)
            box = f"box rMSE {mse:.3f}; "
        device = estimate_latency(parse_tflite(flatbuffers[v.label], v.label), args.profile).seconds
        rows.append({
            "label": v.label, "size": len(flatbuffers[v.label]), "macs": sum(s.macs for s in stats),
            "params": sum(s.params for s in stats), "lat_min": lat[v.label][0], "lat_med": lat[v.label][1],
            "device": device, "agree": 100.0 * float(np.mean(cls == ref_cls)),
            "top1": 100.0 * float(np.mean(cls == class_labels(test[1]))), "note": box + v.note,
        })
    return rows


def print_external(name: str, rows: list[dict], device: str) -> None:
    a, b = rows[0], rows[1]
    print(f"\n== {name} ==")
    print(f"{'variant':<16}{'KiB':>6}{'fp32/x':>7}{'MACs':>10}{'host ms min':>12}{'med':>7}{'b/x min':>8}"
          f"{'med':>6}{device + ' ms':>{max(len(device) + 4, 10)}}{'b/x':>6}{'agree %':>8}{'top-1 %':>8}"
          "  note (kept/units per group; val error vs original after each step)")
    for r in rows:
        print(f"{r['label']:<16}{r['size'] / 1024:>6.1f}{a['size'] / r['size']:>7.2f}{r['macs']:>10,}"
              f"{r['lat_min'] * 1e3:>12.3f}{r['lat_med'] * 1e3:>7.3f}{b['lat_min'] / r['lat_min']:>8.2f}"
              f"{b['lat_med'] / r['lat_med']:>6.2f}{r['device'] * 1e3:>{max(len(device) + 4, 10)}.2f}"
              f"{b['device'] / r['device']:>6.2f}{r['agree']:>8.2f}{r['top1']:>8.2f}  {r['note']}")


def run_external(name: str, args) -> None:
    started = time.time()
    keras.utils.set_random_seed(args.seed)
    data, val, test = load_external(name, args.seed)
    model = train_external(prune_models.BUILDERS[name](), data, val, args.epochs * EPOCH_SCALE.get(name, 1))
    rows = measure_external(external_variants(model, data, val, args), data, test, args)
    print_external(f"{name} {model.input_shape[1:]} ({time.time() - started:.0f} s)", rows, args.profile.name)


# -- why the host barely speeds up: widths vs time, and the most pruning can give -------------------------
def one_layer(kind: str, side: int, cin: int, cout: int) -> keras.Model:
    """A model of one layer, to time one kernel at one width."""
    inputs = keras.Input((side, side, cin))
    layer = {"conv1x1": lambda: L.Conv2D(cout, 1), "conv3x3": lambda: L.Conv2D(cout, 3, padding="same"),
             "dw3x3": lambda: L.DepthwiseConv2D(3, padding="same"), "dense": lambda: L.Dense(cout)}[kind]()
    return keras.Model(inputs, layer(inputs))


def explain_host(args) -> None:
    """Per-invoke overhead, time against channel count per kernel, and host speed-up at 50 % and 90 % uniform
    pruning (first conv excluded as by default, or only the outputs frozen): what bounds the host speed-up."""
    rng = np.random.default_rng(0)
    cases = {("invoke overhead: Dense 4->2", 1, 4, 2): one_layer("dense", 1, 4, 2)}
    for kind, side in (("conv1x1", 16), ("conv3x3", 16), ("dw3x3", 16)):
        for c in (8, 16, 24, 32, 48, 64, 96, 128):
            cin = c if kind == "dw3x3" else 64
            cases[(kind, side, cin, c)] = one_layer(kind, side, cin, c)
    flat = {k: convert(m, rng.uniform(size=(20, *m.input_shape[1:])).astype("float32")) for k, m in cases.items()}
    stats = latency_stats({k: Runner(v, 1) for k, v in flat.items()}, None, args.rounds, args.per_round * 4)
    print("\n== one int8 layer, host LiteRT/XNNPACK, 1 thread: (kind, side, Cin, Cout) min / median us ==")
    for key, (lo, med) in stats.items():
        print(f"{str(key):<40}{lo * 1e6:>8.2f}{med * 1e6:>8.2f}")
    for name in args.models.split(","):
        print_bound(name, args, rng)


def print_bound(name: str, args, rng) -> None:
    model = prune_models.BUILDERS[name]() if name in EXTERNAL else {"resnet": resnet, "mobilenet": mobilenet}[name]()
    x = rng.uniform(size=(40, *model.input_shape[1:])).astype("float32")
    flat = {("plain int8", 1.0): convert(model, x)}
    for tag, exclude in (("first conv excluded", None), ("outputs only", output_layers(model))):
        for ratio in (0.5, 0.9):
            pruned = prune_model(model, PruneSettings(ratio=ratio, exclude=exclude), args.channel_multiple)
            flat[(f"uniform {ratio:.0%}, {tag}", pruned.totals.macs_ratio)] = convert(pruned.model, x)
    stats = latency_stats({k: Runner(v, 1) for k, v in flat.items()}, None, args.rounds, args.per_round)
    base = stats[("plain int8", 1.0)]
    print(f"\n== {name}: host speed-up over plain int8 (untrained weights; time does not depend on them) ==")
    for (label, macs), (lo, med) in stats.items():
        print(f"{label:<36} MACs x{macs:.3f}  min {lo * 1e6:7.1f} us ({base[0] / lo:.2f}x)  "
              f"median {med * 1e6:7.1f} us ({base[1] / med:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=30)
    parser.add_argument("--calibration", type=int, default=200)
    parser.add_argument("--channel-multiple", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny epochs and repeats")
    parser.add_argument("--models", default="resnet,mobilenet",
                        help="comma-separated: resnet, mobilenet (designed here); dscnn, xception, detector "
                             "(published architectures: uniform vs target, with and without labels)")
    parser.add_argument("--ratio", type=float, default=0.5, help="uniform ratio for dscnn/xception/detector")
    parser.add_argument("--variants", default="c,d,e", help="comma-separated among c, d, e (a and b always run)")
    parser.add_argument("--device", default="nucleo-l4r5zi",
                        help="target profile whose latency estimate the latency target uses and the table shows")
    parser.add_argument("--explain-host", action="store_true",
                        help="instead: time one int8 layer per channel count and each --models at 50%%/90%% uniform "
                             "pruning, to show what bounds the host speed-up")
    args = parser.parse_args()
    args.profile = TargetRegistry().get(args.device).profile
    if args.explain_host:
        explain_host(args)
        return
    if args.quick:
        args.epochs, args.finetune_epochs, args.rounds, args.per_round = 2, 1, 3, 5
    keras.utils.set_random_seed(args.seed)
    data, val, test = load_data(args.seed)
    print(f"digits (each model's heading names its input shape): train {len(data[0])}, val {len(val[0])}, "
          f"test {len(test[0])}; "
          f"LiteRT num_threads={args.threads}, {args.rounds} interleaved rounds x "
          f"{args.per_round} invokes, min and median; channel_multiple={args.channel_multiple}; device estimate: "
          f"{args.profile.name} ({args.profile.cost_model.kernels}, {args.profile.cost_model.core})")
    builders = {"resnet": resnet, "mobilenet": mobilenet}
    for name in args.models.split(","):
        if name in EXTERNAL:
            run_external(name, args)
            continue
        started = time.time()
        model = train(builders[name](), data, val, args.epochs)
        rows = measure(make_variants(model, data, val, test, args), data, test, args)
        print_table(f"{model.name} ({time.time() - started:.0f} s)", rows)
        print(goal_line(rows))


if __name__ == "__main__":
    main()

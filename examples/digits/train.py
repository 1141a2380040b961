"""Train the bundled example: a small CNN on scikit-learn's 8x8 digits.

Writes ``model.keras`` and ``data.npz`` beside this script. Both are
committed so ``edgepipe build --example digits`` runs in seconds; run this
script only to regenerate them (about a minute on 2 cores).

The data is stored raw (pixel values 0..16 as uint8); ``edgepipe.yaml``
scales it to [0, 1] with ``preprocess.scale``, exactly as at training time.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

HERE = Path(__file__).resolve().parent
SCALE = 1 / 16


def build_model() -> keras.Model:
    inp = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", name="conv1")(inp)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(64, 3, padding="same", name="conv3")(x)
    x = keras.layers.BatchNormalization(name="bn3")(x)
    x = keras.layers.ReLU(name="relu3")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.2, name="drop")(x)
    out = keras.layers.Dense(10, activation="softmax", name="classifier")(x)
    return keras.Model(inp, out, name="digits_cnn")


def main() -> None:
    keras.utils.set_random_seed(0)
    digits = load_digits()
    x = digits.images.astype(np.uint8)[..., None]
    y = digits.target.astype(np.int64)
    x_tr, x_ev, y_tr, y_ev = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    model = build_model()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_tr * SCALE, y_tr, epochs=40, batch_size=32, verbose=2, validation_data=(x_ev * SCALE, y_ev))
    _, acc = model.evaluate(x_ev * SCALE, y_ev, verbose=0)
    print(f"eval accuracy {acc:.4f}")
    model.save(HERE / "model.keras")
    np.savez_compressed(HERE / "data.npz", x_calib=x_tr[:200], x_eval=x_ev, y_eval=y_ev,
                        x_train=x_tr, y_train=y_tr)


if __name__ == "__main__":
    main()

"""BatchNormalization recalibration restores a pruned model without labels."""

import keras
import numpy as np

from edgepipe.prune import PruneSettings, prune_model
from edgepipe.prune.recalibrate import recalibrate_batchnorm


def _accuracy(model, x, y):
    return float(np.mean(model.predict(x, verbose=0).argmax(axis=1) == y))


def test_recalibration_recovers_accuracy_lost_to_stale_statistics():
    from sklearn.datasets import load_digits

    keras.utils.set_random_seed(3)
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    y = d.target
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(16, 3, padding="same", name="c1")(inp)
    h = keras.layers.BatchNormalization(name="b1")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(32, 3, padding="same", name="c2")(h)
    h = keras.layers.BatchNormalization(name="b2")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(32, 3, padding="same", name="c3")(h)
    h = keras.layers.BatchNormalization(name="b3")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(10, activation="softmax", name="head")(h)
    model = keras.Model(inp, out)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:1400], y[:1400], epochs=12, batch_size=32, verbose=0)
    pruned = prune_model(model, PruneSettings(ratio=0.6)).model
    before = _accuracy(pruned, x[1400:], y[1400:])
    rec = recalibrate_batchnorm(pruned, x[:300])
    after = _accuracy(pruned, x[1400:], y[1400:])
    assert set(rec.layers) == {"b1", "b2", "b3"} and rec.samples == 300
    assert after > before + 0.05, (before, after)
    # the statistics are now those of the data at each BN's input
    feed = keras.Model(pruned.inputs, pruned.get_layer("b2").input)
    acts = feed.predict(x[:300], verbose=0)
    np.testing.assert_allclose(pruned.get_layer("b2").moving_mean.numpy(), acts.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)

"""Random architectures from a seed: every block kind the dependency graph knows.

Each block returns a new tensor; widths are drawn small so a model builds,
prunes and runs in well under a second.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers as L
from prune_helpers import conv_bn_relu, randomize_statistics

MERGES = [L.Add, L.Subtract, L.Multiply, L.Maximum, L.Minimum, L.Average]


class _Builder:
    def __init__(self, seed: int, rank: int):
        self.rng = np.random.default_rng(seed)
        self.rank, self.count = rank, 0

    def name(self, kind: str) -> str:
        self.count += 1
        return f"{kind}{self.count}"

    def width(self) -> int:
        return int(self.rng.choice([4, 6, 8, 12]))

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def conv(self, x, filters: int, kernel: int = 3):
        conv = L.Conv1D if self.rank == 1 else L.Conv2D
        return conv(filters, kernel, padding="same", name=self.name("conv"))(x)

    # -- blocks ---------------------------------------------------------
    def residual(self, x):
        width = x.shape[-1]
        y = conv_bn_relu(x, width, self.name("res"))
        y = L.BatchNormalization(name=self.name("bn"))(self.conv(y, width))
        shortcut = x if self.rng.random() < 0.6 else self.conv(x, width, kernel=1)
        if self.rng.random() < 0.2:
            return L.ReLU(name=self.name("relu"))(shortcut + y)  # a keras op, not a layer
        merge = self.pick(MERGES)
        return L.ReLU(name=self.name("relu"))(merge(name=self.name("merge"))([shortcut, y]))

    def depthwise(self, x):
        depthwise = L.DepthwiseConv1D if self.rank == 1 else L.DepthwiseConv2D
        multiplier = int(self.rng.choice([1, 2]))
        x = depthwise(3, padding="same", depth_multiplier=multiplier, name=self.name("dw"))(x)
        x = L.BatchNormalization(name=self.name("bn"))(x)
        return self.conv(L.ReLU(name=self.name("relu"))(x), self.width(), kernel=1)

    def separable(self, x):
        separable = L.SeparableConv1D if self.rank == 1 else L.SeparableConv2D
        multiplier = int(self.rng.choice([1, 2]))
        x = separable(self.width(), 3, padding="same", depth_multiplier=multiplier,
                      name=self.name("sep"))(x)
        return L.PReLU(name=self.name("prelu"))(L.BatchNormalization(name=self.name("bn"))(x))

    def concat(self, x):
        a = self.conv(x, self.width(), kernel=1)
        b = L.Activation("swish", name=self.name("act"))(self.conv(x, self.width()))
        x = L.Concatenate(name=self.name("cat"))([a, b, a] if self.rng.random() < 0.3 else [a, b])
        return L.BatchNormalization(name=self.name("bn"))(x)

    def squeeze_excite(self, x):
        width = x.shape[-1]
        pool = L.GlobalAveragePooling1D if self.rank == 1 else L.GlobalAveragePooling2D
        g = pool(name=self.name("se_pool"))(x)
        g = L.Dense(max(2, width // 2), activation="relu", name=self.name("se_fc"))(g)
        g = L.Dense(width, activation="sigmoid", name=self.name("se_gate"))(g)
        g = L.Reshape((1,) * self.rank + (width,), name=self.name("se_shape"))(g)
        return L.Multiply(name=self.name("se_mul"))([x, g])

    def downsample(self, x):
        if x.shape[1] < 4:
            return x
        if self.rank == 1:
            return L.MaxPooling1D(2, name=self.name("pool"))(x)
        pool = self.pick([L.MaxPooling2D, L.AveragePooling2D])(2, name=self.name("pool"))(x)
        return L.Dropout(0.1, name=self.name("drop"))(pool)

    def head(self, x, classes: int):
        kind = self.pick(["gap", "gmp", "flatten"])
        if kind == "flatten":
            x = L.Flatten(name="flatten")(x)
            x = L.Dense(self.width(), activation="relu", name="hidden")(x)
        else:
            pools = {1: (L.GlobalAveragePooling1D, L.GlobalMaxPooling1D),
                     2: (L.GlobalAveragePooling2D, L.GlobalMaxPooling2D)}[self.rank]
            x = pools[kind == "gmp"](name="pool_head")(x)
        activation = self.pick([None, "softmax"])
        return L.Dense(classes, activation=activation, name="classifier")(x)


def random_model(seed: int, rank: int = 2) -> keras.Model:
    """A random CNN (rank 2: 12x12x3 images, rank 1: 16x4 sequences)."""
    keras.utils.set_random_seed(seed)
    b = _Builder(seed, rank)
    shape = (12, 12, 3) if rank == 2 else (16, 4)
    inputs = keras.Input(shape)
    x = conv_bn_relu(inputs, b.width(), "stem")
    blocks = [b.residual, b.depthwise, b.separable, b.concat, b.squeeze_excite, b.downsample]
    for _ in range(int(b.rng.integers(3, 6))):
        x = b.pick(blocks)(x)
    model = keras.Model(inputs, b.head(x, classes=5), name=f"random{seed}")
    return randomize_statistics(model, seed)

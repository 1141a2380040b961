"""Four published architectures, rebuilt in Keras code for the prune benchmark.

None of them was designed for edgepipe, and none is downloaded: each is written
from its paper / reference description and trained briefly on scikit-learn's
digits, which ``inputs_for`` reshapes to what the model expects.

- ``dscnn``: the MLPerf Tiny keyword-spotting DS-CNN (Zhang et al. 2017,
  "Hello Edge"; the MLPerf Tiny v0.5+ reference): Conv 64 10x4 stride 2 ->
  4x [DepthwiseConv 3x3 + BN + ReLU, Conv 1x1 64 + BN + ReLU] -> AvgPool ->
  Dense. Input (49, 10, 1), the MFCC shape; 10 classes here instead of 12.
- ``xception``: mini-Xception (Arriaga, Ploeger, Valdenegro 2017, the
  real-time face-emotion model): two plain 3x3 convs, then four residual
  modules of two SeparableConv2D + BN with a 3x3/2 MaxPool, and a strided
  1x1 conv + BN shortcut, ending in a class-wide conv and global average
  pooling. Input 32x32x1 (the paper uses 48x48 or 64x64).
- ``resnet8``: the MLPerf Tiny image-classification ResNet-8 (the EEMBC
  ResNet v1 for CIFAR-10): a 3x3 stem and three residual stacks of two 3x3
  convs (16, 32, 64 filters), the first with an identity shortcut, the
  others strided with a 1x1 conv shortcut, then AvgPool -> Dense. Input
  32x32x3.
- ``detector``: a small detector-style head: a strided conv backbone whose
  feature map goes through Permute((2, 1, 3)) and Flatten into a class head
  (Dense 64 -> Dense 10) and a box regression head (Dense 4, the digit's
  box as (x0, y0, x1, y1) / 32; the 24x24 digit is shifted by 0-8 pixels).
  Exercises the Permute rule and two outputs.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers as L


def _bn(name: str) -> L.BatchNormalization:
    # momentum 0.9: with ~17 steps an epoch 0.99 leaves the moving statistics near their initial values
    return L.BatchNormalization(momentum=0.9, name=name)


def dscnn(classes: int = 10) -> keras.Model:
    """MLPerf Tiny KWS DS-CNN (benchmark/training/keyword_spotting/keras_model.py, 'ds_cnn')."""
    filters = 64
    inputs = keras.Input((49, 10, 1), name="image")
    x = L.Conv2D(filters, (10, 4), strides=(2, 2), padding="same", name="conv1")(inputs)
    x = L.ReLU(name="conv1_relu")(_bn("conv1_bn")(x))
    x = L.Dropout(0.2, name="drop1")(x)
    for i in range(1, 5):
        x = L.DepthwiseConv2D(3, padding="same", name=f"dw{i}")(x)
        x = L.ReLU(name=f"dw{i}_relu")(_bn(f"dw{i}_bn")(x))
        x = L.Conv2D(filters, 1, padding="same", name=f"pw{i}")(x)
        x = L.ReLU(name=f"pw{i}_relu")(_bn(f"pw{i}_bn")(x))
    x = L.Dropout(0.4, name="drop2")(x)
    x = L.AveragePooling2D(pool_size=x.shape[1:3], name="avgpool")(x)
    x = L.Flatten(name="flatten")(x)
    return keras.Model(inputs, L.Dense(classes, activation="softmax", name="classifier")(x), name="dscnn")


def xception(classes: int = 10, side: int = 32) -> keras.Model:
    """mini-Xception (Arriaga et al. 2017; the 'mini_XCEPTION' of oarriaga/face_classification)."""
    inputs = keras.Input((side, side, 1), name="image")
    x = inputs
    for i in (1, 2):
        x = L.Conv2D(8, 3, use_bias=False, name=f"base{i}")(x)
        x = L.ReLU(name=f"base{i}_relu")(_bn(f"base{i}_bn")(x))
    for m, filters in enumerate((16, 32, 64, 128), 1):
        shortcut = L.Conv2D(filters, 1, strides=2, padding="same", use_bias=False, name=f"m{m}_short")(x)
        shortcut = _bn(f"m{m}_short_bn")(shortcut)
        x = L.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"m{m}_sep1")(x)
        x = L.ReLU(name=f"m{m}_sep1_relu")(_bn(f"m{m}_sep1_bn")(x))
        x = L.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"m{m}_sep2")(x)
        x = _bn(f"m{m}_sep2_bn")(x)
        x = L.MaxPooling2D(3, strides=2, padding="same", name=f"m{m}_pool")(x)
        x = L.Add(name=f"m{m}_add")([x, shortcut])
    x = L.Conv2D(classes, 3, padding="same", name="class_conv")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Activation("softmax", name="classifier")(x), name="xception")


def detector(classes: int = 10, side: int = 32) -> keras.Model:
    """conv backbone -> Permute((2, 1, 3)) -> Flatten -> {class head, box head}."""
    inputs = keras.Input((side, side, 1), name="image")
    x = inputs
    for i, (filters, strides) in enumerate(((16, 1), (32, 2), (64, 2), (64, 2)), 1):
        x = L.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"c{i}")(x)
        x = L.ReLU(name=f"c{i}_relu")(_bn(f"c{i}_bn")(x))
    x = L.Permute((2, 1, 3), name="permute")(x)  # (H, W, C) -> (W, H, C), as some detector heads lay out
    x = L.Flatten(name="flatten")(x)
    cls = L.Dense(64, activation="relu", name="cls_hidden")(x)
    cls = L.Dense(classes, activation="softmax", name="cls")(cls)
    box = L.Dense(4, name="box")(x)
    return keras.Model(inputs, {"cls": cls, "box": box}, name="detector")


def resnet8(classes: int = 10, filters: int = 16) -> keras.Model:
    """MLPerf Tiny image-classification ResNet-8 (benchmark/training/image_classification/keras_model.py,
    'resnet_v1_eembc'; 16 filters as in the v0.5 reference): three residual stacks, the first with an
    identity shortcut (its convolutions share channels with the stem), the others strided with a 1x1 one."""
    inputs = keras.Input((32, 32, 3), name="image")
    x = L.Conv2D(filters, 3, padding="same", name="stem")(inputs)
    x = L.ReLU(name="stem_relu")(_bn("stem_bn")(x))
    for s, width in enumerate((filters, 2 * filters, 4 * filters), 1):
        stride = 1 if s == 1 else 2
        y = L.Conv2D(width, 3, strides=stride, padding="same", name=f"s{s}_conv1")(x)
        y = L.ReLU(name=f"s{s}_relu1")(_bn(f"s{s}_bn1")(y))
        y = _bn(f"s{s}_bn2")(L.Conv2D(width, 3, padding="same", name=f"s{s}_conv2")(y))
        if stride != 1:
            x = L.Conv2D(width, 1, strides=stride, padding="same", name=f"s{s}_short")(x)
        x = L.ReLU(name=f"s{s}_relu")(L.Add(name=f"s{s}_add")([x, y]))
    x = L.AveragePooling2D(pool_size=x.shape[1:3], name="avgpool")(x)
    x = L.Flatten(name="flatten")(x)
    return keras.Model(inputs, L.Dense(classes, activation="softmax", name="classifier")(x), name="resnet8")


BUILDERS = {"dscnn": dscnn, "xception": xception, "detector": detector, "resnet8": resnet8}


def inputs_for(name: str, images: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """Digits (N, 8, 8) in [0, 1] as the model's input, plus per-sample boxes for the detector.

    dscnn: resized to 49x10 (the MFCC time x coefficient grid); xception: resized
    to 32x32; resnet8: 32x32 with the grey repeated in three channels; detector: the digit, upsampled 3x to 24x24, pasted at a random
    place of a 32x32 canvas, with its box (x0, y0, x1, y1) / 32."""
    x = images[..., None].astype("float32")
    if name == "dscnn":
        return tf.image.resize(x, (49, 10)).numpy(), None
    if name == "xception":
        return tf.image.resize(x, (32, 32)).numpy(), None
    if name == "resnet8":  # CIFAR-10's shape: 32x32 RGB
        return np.repeat(tf.image.resize(x, (32, 32)).numpy(), 3, axis=-1), None
    small = tf.image.resize(x, (24, 24)).numpy()
    rng = np.random.default_rng(seed)
    canvas = np.zeros((len(x), 32, 32, 1), "float32")
    boxes = np.zeros((len(x), 4), "float32")
    for i, (top, left) in enumerate(rng.integers(0, 9, size=(len(x), 2))):
        canvas[i, top:top + 24, left:left + 24] = small[i]
        boxes[i] = (left / 32, top / 32, (left + 24) / 32, (top + 24) / 32)
    return canvas, boxes

"""Light image augmentation that compiles under XLA (used for MiAMix views).

Random horizontal flip and random translation (the standard "pad and random
crop" of CIFAR training), drawn per sample and done with one gather, so it runs
in `tf.data`, eagerly and under `jit_compile=True`.
"""

import tensorflow as tf

from keras_miamix.ops.sampling import fold_seed
from keras_miamix.ops.sampling import uniform


def random_flip_translate(images, seed, max_shift=0.125, flip=True, fill="reflect"):
    """Per-sample random horizontal flip and integer translation.

    Args:
        images: (B, H, W, C) float tensor.
        seed: stateless seed.
        max_shift: largest shift as a fraction of each side (0.125 is the
            4-pixel shift of CIFAR training at 32x32).
        flip: whether to flip horizontally with probability 0.5.
        fill: "reflect" (mirror at the border) or "constant" (zeros).

    Returns:
        (B, H, W, C) augmented images.
    """
    batch = tf.shape(images)[0]
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    max_dy = tf.cast(tf.floor(tf.cast(height, tf.float32) * max_shift), tf.int32)
    max_dx = tf.cast(tf.floor(tf.cast(width, tf.float32) * max_shift), tf.int32)
    dy = uniform([batch], fold_seed(seed, 1), -max_dy, max_dy + 1, dtype=tf.int32)
    dx = uniform([batch], fold_seed(seed, 2), -max_dx, max_dx + 1, dtype=tf.int32)
    rows = tf.range(height)[None, :, None] - dy[:, None, None]
    cols = tf.range(width)[None, None, :] - dx[:, None, None]
    if flip:
        do_flip = uniform([batch], fold_seed(seed, 3)) < 0.5
        cols = tf.where(do_flip[:, None, None], width - 1 - cols, cols)
    valid = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    if fill == "reflect":
        rows = _reflect(rows, height)
        cols = _reflect(cols, width)
    else:
        rows = tf.clip_by_value(rows, 0, height - 1)
        cols = tf.clip_by_value(cols, 0, width - 1)
    idx = tf.reshape(rows * width + cols, [batch, -1])
    flat = tf.reshape(images, [batch, height * width, -1])
    out = tf.gather(flat, idx, batch_dims=1)
    out = tf.reshape(out, tf.shape(images))
    if fill != "reflect":
        out = tf.where(valid[..., None], out, tf.zeros_like(out))
    return out


def _reflect(index, size):
    """Mirror indices into [0, size) (reflection without repeating the edge)."""
    period = tf.maximum(2 * size - 2, 1)
    index = tf.math.floormod(index, period)
    return tf.where(index >= size, period - index, index)

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
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    rows, cols = flip_translate_maps(batch, height, width, seed, max_shift, flip,
                                     reflect=fill == "reflect")
    valid = (rows >= 0)[:, :, None] & (rows < height)[:, :, None] & (
        (cols >= 0) & (cols < width))[:, None, :]
    rows = tf.clip_by_value(rows, 0, height - 1)
    cols = tf.clip_by_value(cols, 0, width - 1)
    idx = tf.reshape(rows[:, :, None] * width + cols[:, None, :], [batch, -1])
    flat = tf.reshape(images, [batch, height * width, -1])
    out = tf.gather(flat, idx, batch_dims=1)
    out = tf.reshape(out, shape)
    if fill != "reflect":
        out = tf.where(valid[..., None], out, tf.zeros_like(out))
    return out


def flip_translate_maps(batch, height, width, seed, max_shift=0.125, flip=True, reflect=True):
    """The separable pixel maps of `random_flip_translate`: output pixel
    (r, c) of sample b is input pixel (rows[b, r], cols[b, c]).

    With `reflect` the maps are mirrored into the image (the "reflect" fill);
    else they may point outside it (the "constant" fill marks those pixels).
    MiAMix gathers its partners' views through these maps directly
    (`ops.mixing.gather_partners`), without a copy of the batch per view.

    Returns:
        rows (B, H) and cols (B, W), int32.
    """
    max_dy = tf.cast(tf.floor(tf.cast(height, tf.float32) * max_shift), tf.int32)
    max_dx = tf.cast(tf.floor(tf.cast(width, tf.float32) * max_shift), tf.int32)
    dy = uniform([batch], fold_seed(seed, 1), -max_dy, max_dy + 1, dtype=tf.int32)
    dx = uniform([batch], fold_seed(seed, 2), -max_dx, max_dx + 1, dtype=tf.int32)
    rows = tf.range(height)[None, :] - dy[:, None]
    cols = tf.range(width)[None, :] - dx[:, None]
    if flip:
        do_flip = uniform([batch], fold_seed(seed, 3)) < 0.5
        cols = tf.where(do_flip[:, None], width - 1 - cols, cols)
    if reflect:
        rows = _reflect(rows, height)
        cols = _reflect(cols, width)
    return rows, cols


def _reflect(index, size):
    """Mirror indices into [0, size) (reflection without repeating the edge)."""
    period = tf.maximum(2 * size - 2, 1)
    index = tf.math.floormod(index, period)
    return tf.where(index >= size, period - index, index)

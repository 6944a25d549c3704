"""Light image augmentation that compiles under XLA (used for MiAMix views).

Random horizontal flip and random translation (the standard "pad and random
crop" of CIFAR training), drawn per sample and done with one gather, so it runs
in `tf.data`, eagerly and under `jit_compile=True`.
"""

from keras_miamix import backend as kb
from keras_miamix.backend import numpy as knp
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
    shape = kb.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    rows, cols = flip_translate_maps(batch, height, width, seed, max_shift, flip,
                                     reflect=fill == "reflect")
    valid = (rows >= 0)[:, :, None] & (rows < height)[:, :, None] & (
        (cols >= 0) & (cols < width))[:, None, :]
    rows = knp.minimum(knp.maximum(rows, 0), height - 1)
    cols = knp.minimum(knp.maximum(cols, 0), width - 1)
    idx = knp.reshape(rows[:, :, None] * width + cols[:, None, :], (batch, -1))
    flat = knp.reshape(images, (batch, height * width, -1))
    out = kb.batch_gather(flat, idx)
    out = knp.reshape(out, shape)
    if fill != "reflect":
        out = knp.where(valid[..., None], out, knp.zeros_like(out))
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
    max_dy = _max_shift(height, max_shift)
    max_dx = _max_shift(width, max_shift)
    dy = uniform([batch], fold_seed(seed, 1), -max_dy, max_dy + 1, dtype="int32")
    dx = uniform([batch], fold_seed(seed, 2), -max_dx, max_dx + 1, dtype="int32")
    rows = knp.arange(height, dtype="int32")[None, :] - dy[:, None]
    cols = knp.arange(width, dtype="int32")[None, :] - dx[:, None]
    if flip:
        do_flip = uniform([batch], fold_seed(seed, 3)) < 0.5
        cols = knp.where(do_flip[:, None], width - 1 - cols, cols)
    if reflect:
        rows = _reflect(rows, height)
        cols = _reflect(cols, width)
    return rows, cols


def _reflect(index, size):
    """Mirror indices into [0, size) (reflection without repeating the edge)."""
    period = knp.maximum(2 * size - 2, 1)
    index = knp.mod(index, period)
    return knp.where(index >= size, period - index, index)


def _max_shift(size, fraction):
    """floor(size * fraction) as an int32 scalar (a Python int for a static
    size, as JAX and PyTorch draw integers with static bounds)."""
    if isinstance(size, int):
        return int(size * fraction)
    return kb.cast(knp.floor(kb.cast(size, "float32") * fraction), "int32")

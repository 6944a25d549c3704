"""The one base image augmentation of the library, XLA-compatible.

Random horizontal flip and random translation with zero padding: the standard
"pad by 4 and random crop" of CIFAR training (torchvision's and OpenMixup's
`RandomCrop(32, padding=4)`, whose padding is constant 0), drawn per sample
and done with one gather, so it runs in `tf.data`, eagerly and under
`jit_compile=True`. The training pipeline augments every method's batch with
`random_flip_translate`, and MiAMix draws its two views from the same
`flip_translate_maps`, so every method sees one augmentation with one padding
mode.
"""

from keras_miamix import backend as kb
from keras_miamix.backend import numpy as knp
from keras_miamix.ops.mixing import gather_partners
from keras_miamix.ops.sampling import fold_seed
from keras_miamix.ops.sampling import uniform


def random_flip_translate(images, seed, max_shift=0.125, flip=True, per_sample=True):
    """Random horizontal flip and integer translation, zero-padded.

    Args:
        images: (B, H, W, C) float tensor.
        seed: stateless seed.
        max_shift: largest shift as a fraction of each side (0.125 is the
            4-pixel shift of CIFAR training at 32x32).
        flip: whether to flip horizontally with probability 0.5.
        per_sample: draw a flip and a shift per sample (True) or one for the
            whole batch.

    Returns:
        (B, H, W, C) augmented images; pixels shifted in from outside are 0.
    """
    batch, height, width = kb.shape(images)[:3]
    rows, cols = flip_translate_maps(batch, height, width, seed, max_shift, flip, per_sample)
    identity = knp.arange(batch, dtype="int32")
    return gather_partners(images, identity, rows, cols, zero_outside=True)


def flip_translate_maps(batch, height, width, seed, max_shift=0.125, flip=True,
                        per_sample=True):
    """The separable pixel maps of `random_flip_translate`: output pixel
    (r, c) of sample b is input pixel (rows[b, r], cols[b, c]), and is 0
    where that lies outside the image (`gather_partners(...,
    zero_outside=True)`). MiAMix gathers its partners' views through these
    maps directly (`ops.mixing.mix_batch`), without a copy of the batch per
    view.

    Args:
        batch, height, width: the batch's sizes.
        seed: stateless seed.
        max_shift: largest shift as a fraction of each side.
        flip: whether to flip horizontally with probability 0.5.
        per_sample: one draw per sample (True), or one draw shared by the
            whole batch (the MiAMix paper's batch-level augmentation).

    Returns:
        rows (B, H) and cols (B, W), int32, possibly outside [0, H) / [0, W).
    """
    max_dy = _max_shift(height, max_shift)
    max_dx = _max_shift(width, max_shift)
    draws = batch if per_sample else 1
    dy = uniform([draws], fold_seed(seed, 1), -max_dy, max_dy + 1, dtype="int32")
    dx = uniform([draws], fold_seed(seed, 2), -max_dx, max_dx + 1, dtype="int32")
    rows = knp.arange(height, dtype="int32")[None, :] - dy[:, None]
    cols = knp.arange(width, dtype="int32")[None, :] - dx[:, None]
    if flip:
        do_flip = uniform([draws], fold_seed(seed, 3)) < 0.5
        cols = knp.where(do_flip[:, None], width - 1 - cols, cols)
    if not per_sample:
        rows = knp.broadcast_to(rows, (batch, height))
        cols = knp.broadcast_to(cols, (batch, width))
    return rows, cols


def _max_shift(size, fraction):
    """floor(size * fraction) as an int32 scalar (a Python int for a static
    size, as JAX and PyTorch draw integers with static bounds)."""
    if isinstance(size, int):
        return int(size * fraction)
    return kb.cast(knp.floor(kb.cast(size, "float32") * fraction), "int32")

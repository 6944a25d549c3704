"""Augmentations of mixing masks (MiAMix, section 3.2.3), batch-first.

Rotation and shear are done by transforming output coordinates and gathering
the nearest source pixel (the image-transform op behind
`keras.ops.image.affine_transform` has no XLA kernel). Pixels whose source
falls outside the mask take the value 1 (keep the anchor), so augmentation
never brings partner pixels in from nowhere; a binary mask stays binary and its
mean changes only through the border. Smoothing is a box (average) filter with
a per-sample window, one average pooling per candidate window.
"""

import math

from keras_miamix import backend as kb
from keras_miamix.backend import numpy as knp
from keras_miamix.ops.sampling import fold_seed
from keras_miamix.ops.sampling import sample_uniform
from keras_miamix.ops.sampling import uniform


def affine_matrices(angle, shear):
    """Forward 2x2 maps (B, 2, 2) in (row, col) coordinates.

    Rotation by `angle` followed by a horizontal shear by `shear` (radians).
    """
    cos, sin = knp.cos(angle), knp.sin(angle)
    tan = knp.tan(shear)
    # Rotation R = [[cos, -sin], [sin, cos]], shear S = [[1, 0], [tan, 1]]
    # acting on (row, col): the column shifts in proportion to the row.
    r = knp.stack([knp.stack([cos, -sin], -1), knp.stack([sin, cos], -1)], -2)
    s = knp.stack(
        [knp.stack([knp.ones_like(tan), knp.zeros_like(tan)], -1),
         knp.stack([tan, knp.ones_like(tan)], -1)],
        -2,
    )
    return knp.matmul(s, r)


def warp_masks(masks, matrices, fill_value=1.0):
    """Applies per-sample linear maps about the image centre, nearest neighbour.

    Args:
        masks: (B, H, W, 1).
        matrices: (B, 2, 2) forward maps in (row, col) coordinates.
        fill_value: value where the source lies outside the mask.

    Returns:
        (B, H, W, 1) warped masks.
    """
    batch, height, width = kb.shape(masks)[:3]
    hf, wf = kb.cast(kb.convert(height), "float32"), kb.cast(kb.convert(width), "float32")
    rows = kb.cast(knp.arange(height), "float32") + 0.5 - hf / 2.0
    cols = kb.cast(knp.arange(width), "float32") + 0.5 - wf / 2.0
    rr = knp.broadcast_to(rows[:, None], (height, width))
    cc = knp.broadcast_to(cols[None, :], (height, width))
    coords = knp.reshape(knp.stack([rr, cc], 0), (2, -1))  # (2, HW)
    inverse = _inverse_2x2(matrices)
    src = knp.matmul(inverse, knp.broadcast_to(coords[None], (batch, 2, height * width)))
    src_r = knp.floor(src[:, 0] + hf / 2.0)
    src_c = knp.floor(src[:, 1] + wf / 2.0)
    valid = (src_r >= 0) & (src_r < hf) & (src_c >= 0) & (src_c < wf)
    flat_idx = kb.cast(
        _clip(src_r, 0.0, hf - 1) * wf + _clip(src_c, 0.0, wf - 1), "int32"
    )
    flat = knp.reshape(masks, (batch, height * width))
    warped = kb.batch_gather(flat, flat_idx)
    warped = knp.where(valid, warped, knp.full_like(warped, fill_value))
    return knp.reshape(warped, (batch, height, width, 1))


def _clip(x, low, high):
    return knp.minimum(knp.maximum(x, low), high)


def _inverse_2x2(m):
    """Inverses of (B, 2, 2) matrices, in closed form (TensorFlow's
    `tf.linalg.inv` where it computes; the same to float rounding)."""
    if kb.is_tensorflow():
        import tensorflow as tf

        return tf.linalg.inv(m)
    a, b, c, d = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
    det = a * d - b * c
    return knp.stack([knp.stack([d, -b], -1), knp.stack([-c, a], -1)], -2) / det[:, None, None]


def random_rotate_shear(masks, seed, max_angle=15.0, max_shear=10.0):
    """Rotates by U(-max_angle, max_angle) and shears by U(-max_shear, max_shear)
    degrees (per sample) about the image centre; outside pixels keep the anchor.
    """
    batch = kb.shape(masks)[0]
    angle = sample_uniform([batch], fold_seed(seed, 1), -max_angle, max_angle)
    shear = sample_uniform([batch], fold_seed(seed, 2), -max_shear, max_shear)
    matrices = affine_matrices(angle * (math.pi / 180.0), shear * (math.pi / 180.0))
    return warp_masks(masks, matrices)


def box_filter(masks, window):
    """Average filter of odd size `window` (int), edge-normalised.

    Each output pixel is the mean over the window's pixels that lie inside the
    image (as TensorFlow's SAME average pooling, which leaves the padding out
    of the count), so a constant mask stays constant.
    """
    return _box_filter(masks, knp.zeros((kb.shape(masks)[0],), "int32"), [int(window)])


def _box_filter(masks, pick, windows):
    """Box filter of window `windows[pick[b]]` for sample b, separably.

    Running sums over a zero-padded copy: along the rows, each larger window
    adds its two outer shifts to the previous one and every sample keeps the
    sum of its own window; then the same along the columns; then the division
    by the number of pixels inside the image. About a dozen elementwise passes
    over the masks in every mode, where one average pooling per window (the
    masks pooled as the channels of one image) cost 3 to 5 times more under
    XLA on CPU, and its normalisation constant-folded for seconds at 224 px.
    """
    windows = sorted(int(w) for w in windows)
    radii = [w // 2 for w in windows]
    r_max = radii[-1]
    shape = kb.shape(masks)
    height, width = shape[1], shape[2]
    radius = kb.gather(kb.convert(radii, "int32"), pick)

    def axis_sum(x, axis, size):
        padding = [[0, 0]] * 4
        padding[axis] = [r_max, r_max]
        padded = knp.pad(x, padding)

        def shifted(d):
            start = r_max + d
            if axis == 1:
                return padded[:, start:start + size]
            return padded[:, :, start:start + size]

        total = shifted(0)
        out = total
        previous = 0
        for r in radii:
            for d in range(previous + 1, r + 1):
                total = total + shifted(d) + shifted(-d)
            previous = r
            if len(radii) > 1:
                out = knp.where((radius == r)[:, None, None, None], total, out)
            else:
                out = total
        return out

    sums = axis_sum(axis_sum(masks, 1, height), 2, width)

    def count(size):
        pos = knp.arange(size, dtype="int32")[None, :]
        r = radius[:, None]
        return kb.cast(knp.minimum(pos + r, size - 1) - knp.maximum(pos - r, 0) + 1, masks.dtype)

    counts = count(height)[:, :, None, None] * count(width)[:, None, :, None]
    return sums / counts


def smoothing_windows(height, width, max_window=None):
    """Odd window sizes MiAMix draws from: 3, 5, ... up to about side / 8.

    The paper gives no sizes; following the project's method notes the
    candidates are the odd sizes from 3 to max(5, min(H, W) // 8): (3, 5) at
    32 px, (3, 5, 7) at 64 px, 3 to 27 at 224 px, so the smoothing of the
    mixing edge grows with the image. The size must be static (Python ints),
    as the windows set the filter's shape.
    """
    if not (isinstance(height, int) and isinstance(width, int)):
        raise ValueError(
            "MiAMix's default `smoothing_windows` scale with the image size, which "
            "this graph does not know statically; pass `smoothing_windows` (odd "
            "sizes, e.g. (3, 5)) or give the images a fixed size. Received "
            f"height={height!r}, width={width!r}.")
    if max_window is None:
        max_window = max(5, min(height, width) // 8)
    return tuple(range(3, max_window + 1, 2))


def random_box_filter(masks, seed, windows):
    """Box filter whose odd window is drawn per sample uniformly from `windows`
    (MiAMix's default candidates: `smoothing_windows`); see `_box_filter`."""
    batch = kb.shape(masks)[0]
    windows = [int(w) for w in windows]
    pick = uniform([batch], seed, 0, len(windows), dtype="int32")
    # `_box_filter` takes the windows sorted; map each draw to its window's
    # position there, so that `windows[i]` keeps probability 1 / len(windows).
    order = sorted(range(len(windows)), key=lambda i: windows[i])
    rank = [order.index(i) for i in range(len(windows))]
    return _box_filter(masks, kb.gather(kb.convert(rank, "int32"), pick), windows)

"""AugMix's operations and chains, per image and vectorised over the batch.

Hendrycks et al., "AugMix: A Simple Data Processing Method to Improve
Robustness and Uncertainty", ICLR 2020; the official code
(google-research/augmix, `augmentations.py`, `cifar.py`) applies Pillow
operations to one uint8 image at a time with NumPy's global random state.
Here each operation is Pillow's, written in the ops of the computing backend
(`keras_miamix.backend`) on batches of uint8 levels (float32 tensors holding
whole numbers 0..255), every image with its own operation and parameters, all
in one pass over the batch and from a stateless seed, so that it runs inside
`tf.data`, under XLA and `jax.jit` without freezing any draw at trace time.

The operations (Pillow 13, `ImageOps` / `Image.transform` / `ImageEnhance`):

* autocontrast, equalize, posterize, solarize: per-channel lookup tables,
  built from each image's histogram where needed, equal to Pillow's tables
  (autocontrast in float64 as Pillow; under JAX without x64 in exact
  integers, one level above Pillow's where its rounding falls short of a
  whole-number result);
* rotate, shear_x, shear_y, translate_x, translate_y: Pillow's affine
  transform with bilinear resampling (`Image.transform(..., AFFINE,
  resample=BILINEAR)`, `Image.rotate`): the pixel centre mapped to the source,
  out-of-image sources black, clamped neighbours, the value truncated;
  computed in float32 where Pillow uses float64, so an output can differ by
  one level where the interpolated value is within float32 rounding of an
  integer;
* with `all_ops`: color, contrast, brightness, sharpness, Pillow's blends
  with a degenerate image (gray, mean gray, black, `ImageFilter.SMOOTH`),
  `(uint8)(a + f * (b - a))` in float32 as Pillow.

Parameters follow `augmentations.py`: a level ~ U(0.1, severity) per use;
posterize keeps `4 - int(level * 4 / 10)` bits, rotate `int(level * 3)`
degrees, solarize's threshold `256 - int(level * 25.6)`, shear
`level * 0.03`, translate `int(level * size / 30)` pixels (the official
`IMAGE_SIZE / 3` with the image's own size), the enhancements a factor
`level * 0.18 + 0.1`; rotation, shear and translation get a random sign.
"""

import math

import numpy as np

from keras_miamix import backend as kb
from keras_miamix.backend import numpy as knp
from keras_miamix.ops.sampling import fold_seed
from keras_miamix.ops.sampling import sample_beta
from keras_miamix.ops.sampling import sample_dirichlet
from keras_miamix.ops.sampling import uniform

OPS = ("autocontrast", "equalize", "posterize", "rotate", "solarize", "shear_x", "shear_y",
       "translate_x", "translate_y")
ALL_OPS = OPS + ("color", "contrast", "brightness", "sharpness")
_LUT_OPS = ("autocontrast", "equalize", "posterize", "solarize")
_AFFINE_OPS = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
_ENHANCE_OPS = ("color", "contrast", "brightness", "sharpness")
# ImageFilter.SMOOTH: [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13, as float32.
_SMOOTH_SIDE = float(np.float32(1) / np.float32(13))
_SMOOTH_CENTRE = float(np.float32(5) / np.float32(13))


def _float(size):
    """A size (an int or a scalar tensor) as a float32 scalar."""
    return kb.cast(kb.convert(size), "float32")


# -------------------------------------------------------------- histograms
def channel_histograms(levels):
    """(N, C, 256) int32 counts of each channel's levels; `levels` (N, H, W, C)
    float32 whole numbers 0..255."""
    n, channels = kb.shape(levels)[0], levels.shape[-1]
    index = kb.cast(levels, "int32")
    offsets = (knp.arange(n, dtype="int32")[:, None, None, None] * (channels * 256)
               + knp.arange(channels, dtype="int32")[None, None, None, :] * 256)
    ids = knp.reshape(index + offsets, (-1,))
    counts = kb.segment_sum(knp.ones_like(ids), ids, n * channels * 256)
    return knp.reshape(counts, (n, channels, 256))


def _float64_available():
    """Whether the computing backend has float64 (JAX only with x64 on)."""
    if kb.name() != "jax":
        return True
    import jax

    return bool(jax.config.read("jax_enable_x64"))


def autocontrast_lut(hist):
    """`ImageOps.autocontrast(image)` (no cutoff) as (N, C, 256) tables: each
    channel stretched from its lowest to its highest level to 0..255,
    `int(i * scale + offset)` with `scale = 255 / (hi - lo)`, clipped; the
    identity where the channel has one level. Computed in float64 as Pillow
    (whose rounding gives one less than the exact `(i - lo) * 255 / (hi - lo)`
    at some whole-number results); where the backend has no float64 (JAX
    without x64), exactly in integers."""
    present = hist > 0
    levels = knp.arange(256, dtype="int32")
    lo = knp.min(knp.where(present, levels, 255), axis=-1, keepdims=True)
    hi = knp.max(knp.where(present, levels, 0), axis=-1, keepdims=True)
    span = knp.maximum(hi - lo, 1)
    if _float64_available():
        scale = 255.0 / kb.cast(span, "float64")
        offset = -kb.cast(lo, "float64") * scale
        value = kb.cast(levels, "float64") * scale + offset
        # int() truncates toward zero; negative values clip to 0 anyway.
        stretched = knp.clip(kb.cast(value, "int32"), 0, 255)
    else:
        stretched = knp.clip(knp.floor_divide((levels - lo) * 255, span), 0, 255)
    return knp.where(hi > lo, stretched, levels + knp.zeros_like(stretched))


def equalize_lut(hist):
    """`ImageOps.equalize(image)` as (N, C, 256) tables (Pillow 13: step =
    (count - count of the top level) // 255; older releases, which the
    official AugMix ran with, divided by 256):
    `(step // 2 + count below i) // step`, the identity where a channel has
    one level or step is 0."""
    levels = knp.arange(256, dtype="int32")
    total = knp.sum(hist, axis=-1, keepdims=True)
    present = hist > 0
    top = knp.max(knp.where(present, levels, -1), axis=-1, keepdims=True)
    top_count = knp.sum(knp.where(levels == top, hist, 0), axis=-1, keepdims=True)
    step = knp.floor_divide(total - top_count, 255)
    distinct = knp.sum(kb.cast(present, "int32"), axis=-1, keepdims=True)
    below = kb.cumsum(hist, axis=-1, exclusive=True)
    safe = knp.maximum(step, 1)
    table = knp.minimum(knp.floor_divide(knp.floor_divide(safe, 2) + below, safe), 255)
    identity = levels + knp.zeros_like(table)
    return knp.where((distinct > 1) & (step > 0), table, identity)


def posterize_lut(bits):
    """`ImageOps.posterize(image, bits)` for per-image `bits` (N,): the top
    `bits` bits of every level, as (N, 1, 256) tables."""
    levels = knp.arange(256, dtype="int32")[None, None, :]
    drop = (8 - kb.cast(bits, "int32"))[:, None, None]
    quantum = knp.power(2, drop)
    return knp.floor_divide(levels, quantum) * quantum


def solarize_lut(threshold):
    """`ImageOps.solarize(image, threshold)`: levels at or above the per-image
    threshold (N,) inverted, as (N, 1, 256) tables."""
    levels = knp.arange(256, dtype="int32")[None, None, :]
    t = kb.cast(threshold, "int32")[:, None, None]
    return knp.where(levels < t, levels, 255 - levels)


def apply_lut(levels, tables):
    """`levels` (N, H, W, C) through per-image, per-channel tables (N, C or 1,
    256) of int32, gathered in one op."""
    n, channels = kb.shape(levels)[0], levels.shape[-1]
    tables = knp.broadcast_to(tables, (n, channels, 256))
    flat = knp.reshape(kb.cast(tables, "float32"), (-1,))
    index = (kb.cast(levels, "int32")
             + knp.arange(n, dtype="int32")[:, None, None, None] * (channels * 256)
             + knp.arange(channels, dtype="int32")[None, None, None, :] * 256)
    return kb.gather(flat, index)


# ------------------------------------------------------------------ affine
def rotation_coefficients(degrees, width, height):
    """Pillow's `Image.rotate(degrees)` (counter-clockwise about the centre) as
    the six coefficients (N, 6) of its inverse affine map, `(x, y)` of the
    output pixel centre to the source: `Image.rotate`'s matrix."""
    angle = -degrees * (math.pi / 180.0)
    cos, sin = knp.cos(angle), knp.sin(angle)
    cx, cy = width / 2.0, height / 2.0
    c = cos * -cx + sin * -cy + cx
    f = -sin * -cx + cos * -cy + cy
    zero = knp.zeros_like(cos)
    return knp.stack([cos, sin, c, -sin, cos, f], axis=-1) + zero[:, None]


def affine_bilinear(levels, coefficients):
    """Pillow's `Image.transform(size, AFFINE, data, resample=BILINEAR)` of
    each image (N, H, W, C) by its own `data` (N, 6): output pixel (x, y)
    samples the source at `(a0 (x + .5) + a1 (y + .5) + a2, a3 (x + .5) +
    a4 (y + .5) + a5)`; sources outside the image give 0 (black), the
    neighbours are clamped to the image, the value truncated to a level."""
    n, height, width, channels = kb.shape(levels)
    a = [coefficients[:, i][:, None, None] for i in range(6)]
    xs = (kb.cast(knp.arange(width), "float32") + 0.5)[None, None, :]
    ys = (kb.cast(knp.arange(height), "float32") + 0.5)[None, :, None]
    x_in = a[0] * xs + a[1] * ys + a[2]
    y_in = a[3] * xs + a[4] * ys + a[5]
    inside = (x_in >= 0) & (x_in < _float(width)) & (y_in >= 0) & (y_in < _float(height))
    x_src, y_src = x_in - 0.5, y_in - 0.5
    x0, y0 = knp.floor(x_src), knp.floor(y_src)
    dx, dy = (x_src - x0)[..., None], (y_src - y0)[..., None]
    x0, y0 = kb.cast(x0, "int32"), kb.cast(y0, "int32")
    c0 = knp.clip(x0, 0, width - 1)
    c1 = knp.clip(x0 + 1, 0, width - 1)
    r0 = knp.clip(y0, 0, height - 1)
    has_r1 = (y0 + 1 >= 0) & (y0 + 1 < height)
    r1 = knp.where(has_r1, y0 + 1, r0)
    flat = knp.reshape(levels, (n * height * width, channels))
    base = knp.arange(n, dtype="int32")[:, None, None] * (height * width)

    def pick(r, c):
        return kb.gather(flat, base + r * width + c)

    top_left, top_right = pick(r0, c0), pick(r0, c1)
    bottom_left, bottom_right = pick(r1, c0), pick(r1, c1)
    top = top_left + (top_right - top_left) * dx
    bottom = bottom_left + (bottom_right - bottom_left) * dx
    value = top + (bottom - top) * dy
    return knp.where(inside[..., None], knp.floor(value), 0.0)


# ----------------------------------------------------------------- enhance
def luminance(levels):
    """Pillow's RGB -> "L": `(19595 R + 38470 G + 7471 B + 2^15) >> 16`, (N, H, W, 1)
    float32 levels; a one-channel image is its own."""
    if levels.shape[-1] == 1:
        return levels
    pixels = kb.cast(levels, "int32")
    total = (pixels[..., 0] * 19595 + pixels[..., 1] * 38470 + pixels[..., 2] * 7471
             + 32768)
    return kb.cast(knp.floor_divide(total, 65536), "float32")[..., None]


def smooth(levels):
    """`image.filter(ImageFilter.SMOOTH)`: the 3x3 kernel [1 1 1; 1 5 1; 1 1 1] / 13
    in float32, summed row by row from the bottom as Pillow, rounded; the
    border rows and columns copied."""
    height, width = kb.shape(levels)[1:3]

    def row(r):
        left, mid, right = r[:, :, :-2], r[:, :, 1:-1], r[:, :, 2:]
        return left * _SMOOTH_SIDE + mid * _SMOOTH_CENTRE + right * _SMOOTH_SIDE

    def side_row(r):
        left, mid, right = r[:, :, :-2], r[:, :, 1:-1], r[:, :, 2:]
        return left * _SMOOTH_SIDE + mid * _SMOOTH_SIDE + right * _SMOOTH_SIDE

    if isinstance(height, int) and isinstance(width, int) and min(height, width) < 3:
        return levels  # Pillow's filter leaves images smaller than the kernel alone
    total = 0.5 + side_row(levels[:, 2:])
    total = total + row(levels[:, 1:-1])
    total = total + side_row(levels[:, :-2])
    inner = knp.floor(knp.clip(total, 0.0, 255.0))
    middle = knp.concatenate([levels[:, 1:-1, :1], inner, levels[:, 1:-1, -1:]], axis=2)
    return knp.concatenate([levels[:, :1], middle, levels[:, -1:]], axis=1)


def blend(degenerate, levels, factor):
    """`Image.blend(degenerate, image, factor)` for factors in [0, 1] (N,):
    `trunc(d + f * (x - d))` in float32."""
    f = kb.cast(factor, "float32")[:, None, None, None]
    return knp.floor(degenerate + f * (levels - degenerate))


def degenerate_images(levels, which):
    """The degenerate image of each enhancement (N,) index into
    `_ENHANCE_OPS`: gray, mean gray (Pillow's `int(mean + 0.5)`), black,
    smoothed."""
    gray = luminance(levels)
    color = knp.broadcast_to(gray, kb.shape(levels))
    mean = knp.floor(knp.mean(gray, axis=(1, 2, 3), keepdims=True) + 0.5)
    contrast = knp.broadcast_to(mean, kb.shape(levels))
    black = knp.zeros_like(levels)
    sharp = smooth(levels)
    w = which[:, None, None, None]
    return knp.where(w == 0, color, knp.where(w == 1, contrast,
                                              knp.where(w == 2, black, sharp)))


# ---------------------------------------------------------------- one step
def apply_ops(levels, op, level, sign, all_ops=False):
    """One AugMix operation per image: `op` (N,) int32 index into `OPS` (or
    `ALL_OPS`), at `level` (N,) in [0.1, severity] with `sign` (N,) +-1
    for the geometric ones; -1 leaves an image unchanged. `levels` (N, H, W,
    C) float32 whole numbers; returns the same."""
    names = ALL_OPS if all_ops else OPS
    height, width = kb.shape(levels)[1:3]
    ix = {name: i for i, name in enumerate(names)}
    # Lookup-table operations (the identity table for the others).
    hist = channel_histograms(levels)
    identity = knp.arange(256, dtype="int32")[None, None, :] + knp.zeros_like(hist)
    bits = 4 - kb.cast(level * 4.0 / 10.0, "int32")
    threshold = 256 - kb.cast(level * 256.0 / 10.0, "int32")
    candidates = {
        "autocontrast": autocontrast_lut(hist),
        "equalize": equalize_lut(hist),
        "posterize": posterize_lut(bits),
        "solarize": solarize_lut(threshold),
    }
    table = identity
    for name in _LUT_OPS:
        chosen = (op == ix[name])[:, None, None]
        table = knp.where(chosen, candidates[name] + knp.zeros_like(identity), table)
    out = apply_lut(levels, table)
    # Affine operations (the identity map for the others: an exact copy).
    degrees = kb.cast(kb.cast(level * 30.0 / 10.0, "int32"), "float32") * sign
    shear = level * 0.3 / 10.0 * sign
    wf, hf = _float(width), _float(height)
    shift_x = kb.cast(kb.cast(level * (wf / 3.0) / 10.0, "int32"), "float32") * sign
    shift_y = kb.cast(kb.cast(level * (hf / 3.0) / 10.0, "int32"), "float32") * sign
    one, zero = knp.ones_like(level), knp.zeros_like(level)
    maps = {
        "rotate": rotation_coefficients(degrees, wf, hf),
        "shear_x": knp.stack([one, shear, zero, zero, one, zero], -1),
        "shear_y": knp.stack([one, zero, zero, shear, one, zero], -1),
        "translate_x": knp.stack([one, zero, shift_x, zero, one, zero], -1),
        "translate_y": knp.stack([one, zero, zero, zero, one, shift_y], -1),
    }
    coefficients = knp.stack([one, zero, zero, zero, one, zero], -1)
    for name in _AFFINE_OPS:
        coefficients = knp.where((op == ix[name])[:, None], maps[name], coefficients)
    out = affine_bilinear(out, coefficients)
    if all_ops:
        which = knp.clip(op - ix["color"], 0, 3)
        enhanced = blend(degenerate_images(out, which), out, level * 1.8 / 10.0 + 0.1)
        out = knp.where((op >= ix["color"])[:, None, None, None], enhanced, out)
    return out


def augment_and_mix(levels, seed, width=3, depth=-1, severity=3.0, alpha=1.0,
                    all_ops=False):
    """AugMix of each image (`cifar.py`'s `aug`): `width` chains of `depth`
    operations (U{1, 2, 3} per chain with depth -1), each chosen uniformly and
    at its own level; chain weights ~ Dirichlet(alpha, ..., alpha) and the
    skip weight m ~ Beta(alpha, alpha), per image; returns
    `(1 - m) x + m sum_i w_i chain_i(x)` (float32, not quantised) and a dict
    of the draws.

    Args:
        levels: (B, H, W, C) float32 whole numbers 0..255, C 1 or 3.
        seed: stateless seed.
    """
    batch, height, widthpx, channels = kb.shape(levels)
    n_ops = len(ALL_OPS if all_ops else OPS)
    n = batch * width
    chains = knp.reshape(knp.broadcast_to(levels[:, None], (batch, width, height, widthpx,
                                                            channels)),
                         (n, height, widthpx, channels))
    if depth > 0:
        depths = knp.full((n,), depth, dtype="int32")
        steps = depth
    else:
        depths = uniform([n], fold_seed(seed, 1), 1, 4, dtype="int32")
        steps = 3
    ops, lvls, signs = [], [], []
    for step in range(steps):
        s = fold_seed(seed, 10 + step)
        op = uniform([n], fold_seed(s, 1), 0, n_ops, dtype="int32")
        op = knp.where(depths > step, op, -1)
        level = uniform([n], fold_seed(s, 2), 0.1, float(severity))
        sign = knp.where(uniform([n], fold_seed(s, 3)) > 0.5, -1.0, 1.0)
        chains = apply_ops(chains, op, level, sign, all_ops)
        ops.append(op)
        lvls.append(level)
        signs.append(sign)
    weights = sample_dirichlet(knp.full((batch, width), float(alpha)), fold_seed(seed, 2))
    m = sample_beta([batch], alpha, alpha, fold_seed(seed, 3))
    chains = knp.reshape(chains, (batch, width, height, widthpx, channels))
    mix = knp.sum(chains * weights[:, :, None, None, None], axis=1)
    m4 = m[:, None, None, None]
    mixed = (1.0 - m4) * levels + m4 * mix
    info = {"ops": knp.reshape(knp.stack(ops, -1), (batch, width, steps)),
            "levels": knp.reshape(knp.stack(lvls, -1), (batch, width, steps)),
            "signs": knp.reshape(knp.stack(signs, -1), (batch, width, steps)),
            "chain_weights": weights, "skip_weight": m, "chains": chains}
    return mixed, info

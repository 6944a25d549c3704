"""Mask generators: one pure, batch-first function per mixing method.

Every generator has the signature `(lam, height, width, seed, **params)` and
returns float32 masks of shape (B, H, W, 1) in [0, 1] (MixUp's constant mask
comes as (B, 1, 1, 1), which broadcasts the same way), where `lam` (B,) is the
share of the *anchor* image x_i that the mask should keep and where a mask
value of 1 keeps the anchor and 0 takes the partner x_j. The mixing function in
`keras_miamix.ops.mixing` then computes `mask * x_i + (1 - mask) * x_j` and takes
the label weight from the mask's mean, so the label always matches the pixels.

ResizeMix, which pastes the whole (resized) partner, also returns the source
pixel of the partner for every output pixel; SaliencyMix's box is placed by
the partner's saliency peak, which it takes instead of a seed.

Everything is vectorised over the batch (one mask per sample, no loop, no
`tf.map_fn`), written in the ops of the computing backend
(`keras_miamix.backend`), and compiles under `tf.function(jit_compile=True)`
and `jax.jit`.
"""

import math

from keras_miamix import backend as kb
from keras_miamix.backend import numpy as knp
from keras_miamix.ops.sampling import fold_seed
from keras_miamix.ops.sampling import normal_pair
from keras_miamix.ops.sampling import sample_uniform


def _grid(height, width):
    """Row and column indices as float32 tensors of shape (1, H, W)."""
    rows = kb.cast(knp.arange(height), "float32")[None, :, None]
    cols = kb.cast(knp.arange(width), "float32")[None, None, :]
    return rows, cols


def _batch_size(lam):
    return kb.shape(lam)[0]


def _float(x):
    """A size (an int or a scalar tensor) as a float32 scalar."""
    return kb.cast(kb.convert(x), "float32")


def _box_mask(y1, y2, x1, x2, height, width):
    """(B, H, W, 1) masks that are 0 inside [y1, y2) x [x1, x2) and 1 outside."""
    rows, cols = _grid(height, width)
    y1, y2, x1, x2 = (kb.cast(v, "float32")[:, None, None] for v in (y1, y2, x1, x2))
    inside = (rows >= y1) & (rows < y2) & (cols >= x1) & (cols < x2)
    return 1.0 - kb.cast(inside, "float32")[..., None]


def _clipped_box(cut_h, cut_w, height, width, seed):
    """Box of size (cut_h, cut_w) around a uniform integer centre, clipped.

    Follows the official CutMix code: centre (cy, cx) uniform on the pixel grid,
    corners `c -/+ cut // 2` clipped to the image.
    """
    batch = kb.shape(cut_h)[0]
    hf, wf = _float(height), _float(width)
    cy = knp.floor(sample_uniform([batch], fold_seed(seed, 1)) * hf)
    cx = knp.floor(sample_uniform([batch], fold_seed(seed, 2)) * wf)
    return _box_around(cy, cx, cut_h, cut_w, height, width)


def _box_around(cy, cx, cut_h, cut_w, height, width):
    """Corners `c -/+ cut // 2` of boxes around integer centres (cy, cx),
    clipped to the image (not shifted), as float32 (B,) tensors."""
    hf, wf = _float(height), _float(width)
    cy, cx = kb.cast(cy, "float32"), kb.cast(cx, "float32")
    half_h, half_w = knp.floor(cut_h / 2.0), knp.floor(cut_w / 2.0)
    y1 = _clip(cy - half_h, 0.0, hf)
    y2 = _clip(cy + half_h, 0.0, hf)
    x1 = _clip(cx - half_w, 0.0, wf)
    x2 = _clip(cx + half_w, 0.0, wf)
    return y1, y2, x1, x2


def mixup_mask(lam, height, width, seed=None):
    """MixUp (Zhang et al., 2018): the constant mask `lam`.

    Returned as (B, 1, 1, 1), which broadcasts against (B, H, W, C) images and
    has the same mean as the full mask, at a fraction of the cost; use
    `keras.ops.broadcast_to(mask, [B, H, W, 1])` for the full-size mask.
    """
    del seed, height, width
    lam = kb.cast(lam, "float32")
    return lam[:, None, None, None]


def cutmix_mask(lam, height, width, seed):
    """CutMix (Yun et al., 2019): a box of the partner in the anchor.

    The box is `H * sqrt(1 - lam)` by `W * sqrt(1 - lam)` (truncated to whole
    pixels as in the official code), centred at a uniform pixel and clipped at
    the border. Clipping shrinks the box, so the mask's mean (the label weight)
    is at least `lam`.
    """
    lam = kb.cast(lam, "float32")
    ratio = knp.sqrt(1.0 - lam)
    cut_h = knp.floor(_float(height) * ratio)
    cut_w = knp.floor(_float(width) * ratio)
    y1, y2, x1, x2 = _clipped_box(cut_h, cut_w, height, width, seed)
    return _box_mask(y1, y2, x1, x2, height, width)


def saliencymix_mask(lam, height, width, peak_rows, peak_cols):
    """SaliencyMix (Uddin et al., 2021): a box of the partner around its
    saliency peak.

    The box is CutMix's, `H * sqrt(1 - lam)` by `W * sqrt(1 - lam)` truncated
    to whole pixels, with corners `peak -/+ cut // 2` clipped at the border
    (not shifted), as the official `saliency_bbox`; `peak_rows`/`peak_cols`
    (B,) are the partner's saliency maximum (`ops.saliency.saliency_peaks`).
    Unlike the other generators it takes the peaks instead of a seed.
    """
    lam = kb.cast(lam, "float32")
    ratio = knp.sqrt(1.0 - lam)
    cut_h = knp.floor(_float(height) * ratio)
    cut_w = knp.floor(_float(width) * ratio)
    y1, y2, x1, x2 = _box_around(peak_rows, peak_cols, cut_h, cut_w, height, width)
    return _box_mask(y1, y2, x1, x2, height, width)


def _clip(x, low, high):
    return knp.minimum(knp.maximum(x, low), high)


def fourier_grey_masks(batch_size, height, width, decay_power, seed):
    """Low-frequency grey images of FMix, (B, H, W), before binarisation.

    Fourier coefficients are standard complex normals scaled by
    `1 / max(f, 1 / max(H, W)) ** decay_power`; the inverse real FFT gives the
    grey image (the paper's spectrum, vectorised over the batch; the official
    NumPy code's differs, anisotropic and real: see `layers.FMix`).
    """
    h = _float(height)
    w = _float(width)
    w_half = width // 2 + 1
    # numpy.fft.fftfreq(height) and rfftfreq(width).
    ky = kb.cast(knp.arange(height), "float32")
    ky = knp.where(ky < knp.ceil(h / 2.0), ky, ky - h) / h
    kx = kb.cast(knp.arange(w_half), "float32") / w
    freqs = knp.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    scale = 1.0 / knp.maximum(freqs, 1.0 / knp.maximum(h, w)) ** decay_power
    shape = [batch_size, height, w_half]
    real, imag = normal_pair(shape, fold_seed(seed, 1))
    return _irfft2(real * scale, imag * scale, height, width)


def _irfft2(real, imag, height, width):
    """The inverse real 2-D FFT over the last two axes of `real + i imag`."""
    backend_name = kb.name()
    if backend_name == "tensorflow":
        import tensorflow as tf

        return tf.signal.irfft2d(tf.complex(real, imag), fft_length=[height, width])
    if backend_name == "jax":
        import jax

        return jax.numpy.fft.irfft2(real + 1j * imag, s=(height, width)).astype("float32")
    import torch

    return torch.fft.irfft2(torch.complex(real, imag), s=(height, width))


def top_count_mask(values, num):
    """Boolean mask of the `num` largest entries of each row, without a full sort.

    Equal to taking the first `num` indices of a stable descending argsort
    (ties broken by the lower index) of the values quantised to 24 bits
    (float32's resolution near 1). Two ways to the same result, chosen at
    trace time: `_top_count_sorted` on TensorFlow outside XLA (dynamic
    shapes) and `_top_count_static` under XLA, on JAX and on PyTorch (static
    shapes).

    Args:
        values: (B, N) floats normalised to [0, 1] per row.
        num: (B,) int32 counts in [0, N].

    Returns:
        (B, N) boolean tensor with exactly `num[b]` True entries in row b.
    """
    key = kb.cast(_clip(values, 0.0, 1.0) * float((1 << _KEY_BITS) - 1), "int32")
    num = kb.cast(num, "int32")
    if kb.static_shapes():
        entries = values.shape[-1]
        if entries is not None and entries <= _SMALL_ROW_ENTRIES:
            return _top_count_static(key, num)
        # Two 12-bit levels: each level is a scatter over every entry (the
        # later ones skip most), and at (64, 224 * 224) two cost 12.9 ms,
        # three 8-bit levels 13.2 and four 6-bit levels 18.7; at
        # (128, 32 * 32) three 8-bit levels cost 1.45 ms and two 12-bit
        # levels 4.15 (their 4096-bucket sums over every row).
        return _top_count_static(key, num, bits_per_level=12, levels=2)
    return _top_count_sorted(key, num)


_SMALL_ROW_ENTRIES = 128 * 128
_KEY_BITS = 24
_BUCKET_BITS = 8


def _crossing_bucket(hist, need):
    """Per row of a (B, bins) histogram, the bucket where the count from the
    top reaches `need`, and how many entries of that bucket are still needed
    (rows with need <= 0 get a bucket the callers ignore: they take nothing
    from those rows).

    On TensorFlow outside XLA the count from the top, non-increasing along
    the buckets, gives the crossing bucket as the number of buckets where it
    reaches `need`, less one, and the count above it as the largest count that
    falls short: two reductions, where the argmax and gather below cost twice
    as much in `tf.data`. Under XLA the argmax and gather fuse and are the
    cheaper (2.51 against 2.65 ms for FMix at 128x32x32x3)."""
    if kb.static_shapes():
        above = kb.cumsum(hist, axis=1, reverse=True, exclusive=True)
        need_col = need[:, None]
        crossing = (above < need_col) & (above + hist >= need_col)
        b_star = kb.cast(knp.argmax(kb.cast(crossing, "int32"), axis=1), "int32")
        return b_star, need - kb.batch_gather(above, b_star[:, None])[:, 0]
    import tensorflow as tf

    from_top = tf.reduce_sum(hist, axis=1, keepdims=True) - tf.cumsum(hist, axis=1, exclusive=True)
    reached = from_top >= need[:, None]
    b_star = tf.reduce_sum(tf.cast(reached, tf.int32), axis=1) - 1
    return b_star, need - tf.reduce_max(tf.where(reached, 0, from_top), axis=1)


def _top_count_sorted(key, num):
    """On TensorFlow outside XLA: one 256-bucket histogram of the keys' top 8
    bits per row (one segment sum over all entries) finds each row's crossing
    bucket; the entries above it are taken, and only the entries of the
    crossing bucket (about N / 256 per row, gathered with a dynamic count) are
    sorted, by row, then key descending, then index, and the first `need` of
    each row taken. At (128, 32 * 32) it takes 1.7 ms where the three-level
    histogram took 4.2 (and a 4096-bucket histogram with a second level 7.1);
    at (64, 224 * 224) about the same as the latter (17 against 19 ms)."""
    import tensorflow as tf

    batch = tf.shape(key)[0]
    bins = 1 << _BUCKET_BITS
    bucket = tf.bitwise.right_shift(key, _KEY_BITS - _BUCKET_BITS)
    rows = tf.range(batch)
    hist = tf.math.unsorted_segment_sum(
        tf.ones_like(bucket), bucket + rows[:, None] * bins, batch * bins)
    b_star, need = _crossing_bucket(tf.reshape(hist, [batch, bins]), num)
    # Rows with num == 0: the bucket one past the last, so nothing is taken.
    b_star = tf.where(num > 0, b_star, bins)
    take = bucket > b_star[:, None]
    # The entries of the crossing bucket, row-major (so by index within a row).
    cand = tf.cast(tf.where(tf.equal(bucket, b_star[:, None])), tf.int32)
    cand_row = cand[:, 0]
    # Descending on (batch - 1 - row, key): rows in order, within a row the
    # larger keys first; the stable sort keeps equal keys in index order.
    order_key = (tf.cast(batch - 1 - cand_row, tf.int64) * (1 << _KEY_BITS)
                 + tf.cast(tf.gather_nd(key, cand), tf.int64))
    order = tf.argsort(order_key, direction="DESCENDING", stable=True)
    row_sorted = tf.gather(cand_row, order)
    row_start = tf.cumsum(
        tf.math.unsorted_segment_sum(tf.ones_like(cand_row), cand_row, batch), exclusive=True)
    rank = tf.range(tf.shape(order)[0]) - tf.gather(row_start, row_sorted)
    chosen = rank < tf.gather(need, row_sorted)
    return tf.tensor_scatter_nd_update(take, tf.gather(cand, order), chosen)


def _top_count_static(key, num, bits_per_level=8, levels=3):
    """With static shapes: each level builds a per-row histogram of the next
    `bits_per_level` bits of the entries that share the prefix found so far (one segment
    sum over every entry, static shapes) and extends the prefix by the bucket
    where the count from the top crosses `num`; at the end the prefix is the
    threshold key, and ties are ranked by a cumulative sum. `bits_per_level *
    levels` must be 24 (`_KEY_BITS`)."""
    batch = kb.shape(key)[0]
    bins = 1 << bits_per_level
    total_bits = bits_per_level * levels
    need = num
    prefix = knp.zeros_like(num)
    row_offset = knp.arange(batch, dtype="int32")[:, None] * bins
    ones = knp.ones_like(key)
    for level in range(levels):
        shift = total_bits - bits_per_level * (level + 1)
        bucket = knp.bitwise_and(knp.right_shift(key, shift), bins - 1)
        segment = bucket + row_offset
        if level > 0:
            # Entries outside the prefix get a negative segment, which the
            # sum drops: XLA skips those updates, where a shared overflow
            # bucket cost each of them a write (9.2 against 5.3 ms a level
            # at (64, 224 * 224)).
            same = knp.right_shift(key, shift + bits_per_level) == prefix[:, None]
            segment = knp.where(same, segment, -1)
        hist = knp.reshape(kb.segment_sum(ones, segment, batch * bins), (batch, bins))
        b_star, need = _crossing_bucket(hist, need)
        prefix = prefix * bins + b_star
    # `prefix` is the threshold key; take every larger key and, among keys equal
    # to it, the first `need` by index. The last histogram counts the keys equal
    # to the threshold: when a row needs all of them (nearly always, ties at the
    # threshold are rare) no ranking is needed; else a cumulative sum ranks the
    # ties (an XLA cumsum over every entry costs as much as the rest together).
    threshold = prefix[:, None]
    tie_count = kb.batch_gather(hist, b_star[:, None])[:, 0]
    positive = (num > 0)[:, None]

    def all_ties():
        return (key >= threshold) & positive

    def ranked_ties():
        equal = key == threshold
        tie_rank = kb.cumsum(kb.cast(equal, "int32"), axis=1)
        return ((key > threshold) | (equal & (tie_rank <= need[:, None]))) & positive

    all_needed = knp.all((need == tie_count) | (num <= 0))
    return kb.cond(all_needed, all_ties, ranked_ties)


def binarise_top_fraction(grey, lam, seed, max_soft=0.0):
    """Sets the `lam * N` largest pixels of each grey mask to 1, the rest to 0.

    `grey` is (B, H, W); the count is ceil or floor of `lam * H * W` with equal
    chance (official FMix). With `max_soft > 0` the `soft` pixels either side
    of the threshold ramp linearly from 1 to 0, where `soft = N * min(max_soft,
    lam, 1 - lam)` (official `binarise_mask`; this path ranks pixels with one
    argsort). No loop over the batch either way.

    Returns:
        (B, H, W, 1) float32 masks.
    """
    batch = kb.shape(grey)[0]
    # Static sizes where known (they choose `top_count_mask`'s path).
    height = grey.shape[1] if grey.shape[1] is not None else kb.shape(grey)[1]
    width = grey.shape[2] if grey.shape[2] is not None else kb.shape(grey)[2]
    n = height * width
    flat = knp.reshape(grey, [batch, n])
    lam = kb.cast(lam, "float32")
    target = lam * _float(n)
    use_ceil = sample_uniform([batch], seed) > 0.5
    num = knp.where(use_ceil, knp.ceil(target), knp.floor(target))
    if not max_soft:
        low = kb.amin(flat, axis=1, keepdims=True)
        span = knp.maximum(kb.amax(flat, axis=1, keepdims=True) - low, 1e-30)
        hard = top_count_mask((flat - low) / span, kb.cast(num, "int32"))
        return knp.reshape(kb.cast(hard, "float32"), [batch, height, width, 1])
    ranks = _descending_ranks(flat, batch, n)
    ranks_f = kb.cast(ranks, "float32")
    eff = knp.minimum(knp.minimum(float(max_soft), lam), 1.0 - lam)
    soft = knp.floor(_float(n) * eff)[:, None]
    low = num[:, None] - soft
    # np.linspace(1, 0, 2 * soft) over ranks [num - soft, num + soft).
    ramp = 1.0 - (ranks_f - low) / knp.maximum(2.0 * soft - 1.0, 1.0)
    mask = knp.where(ranks_f < low, 1.0, knp.where(ranks_f >= low + 2.0 * soft, 0.0, ramp))
    return knp.reshape(mask, [batch, height, width, 1])


def _descending_ranks(flat, batch, n):
    """(B, N) int32 rank of every entry in its row's stable descending order
    (ties by the lower index first)."""
    if kb.is_tensorflow():
        import tensorflow as tf

        order = tf.argsort(flat, axis=-1, direction="DESCENDING", stable=True)
        batch_idx = tf.broadcast_to(tf.range(batch)[:, None], [batch, n])
        positions = tf.broadcast_to(tf.range(n)[None, :], [batch, n])
        return tf.tensor_scatter_nd_update(
            tf.zeros([batch, n], tf.int32), tf.stack([batch_idx, order], -1), positions)
    # The inverse of a permutation is its argsort.
    order = _stable_argsort(-flat)
    return kb.cast(_stable_argsort(order), "int32")


def _stable_argsort(x):
    if kb.name() == "torch":
        import torch

        return torch.argsort(x, dim=-1, stable=True)
    return knp.argsort(x, axis=-1)


def fmix_mask(lam, height, width, seed, decay_power=3.0, max_soft=0.0):
    """FMix (Harris et al., 2020): a thresholded low-frequency Fourier image.

    The anchor keeps the `lam * H * W` (ceil or floor, equal chance) brightest
    pixels of a random low-frequency grey image; see `fourier_grey_masks` and
    `binarise_top_fraction`.
    """
    lam = kb.cast(lam, "float32")
    grey = fourier_grey_masks(_batch_size(lam), height, width, decay_power, fold_seed(seed, 1))
    return binarise_top_fraction(grey, lam, fold_seed(seed, 2), max_soft=max_soft)


def gridmix_mask(
    lam,
    height,
    width,
    seed,
    n_holes=(2, 6),
    hole_aspect_ratio=(1.0, 1.0),
    cut_area_ratio=(0.5, 1.0),
    cut_aspect_ratio=(0.5, 2.0),
):
    """GridMix (Baek et al., 2021): a grid of partner holes inside a crop.

    Follows OpenMixup's `gridmix`, with every random choice made per sample:
    a crop of area `cut_area_ratio * H * W` and aspect `cut_aspect_ratio`
    (both uniform in their ranges) at a uniform position; `n_holes` (an integer
    uniform in the inclusive range) cells across the crop, each cell of width
    `ceil(crop_w / n_holes)` and height `cell_w * hole_aspect_ratio`; in each
    cell a hole of `sqrt(1 - lam)` of the cell's sides (at least one pixel,
    at most the cell side minus one) takes the partner. Unlike the official code
    the crop is clipped to the image when the aspect ratio would make it wider
    or taller than the image.
    """
    lam = kb.cast(lam, "float32")
    batch = _batch_size(lam)
    hf, wf = _float(height), _float(width)

    def uniform(rng, salt):
        return sample_uniform([batch], fold_seed(seed, salt), float(rng[0]), float(rng[1]))

    holes = knp.floor(uniform((n_holes[0], n_holes[1] + 1), 1))
    holes = knp.minimum(holes, float(n_holes[1]))
    hole_ar = uniform(hole_aspect_ratio, 2)
    area = knp.floor(hf * wf * uniform(cut_area_ratio, 3))
    aspect = uniform(cut_aspect_ratio, 4)
    cut_w = knp.minimum(knp.floor(knp.sqrt(area / aspect)), wf)
    cut_h = knp.minimum(knp.floor(cut_w * aspect), hf)
    xc1 = knp.floor((wf - cut_w) * uniform((0.0, 1.0), 5))
    yc1 = knp.floor((hf - cut_h) * uniform((0.0, 1.0), 6))
    cell_w = knp.maximum(knp.ceil(cut_w / holes), 1.0)
    cell_h = knp.maximum(knp.floor(cell_w * hole_ar), 1.0)
    ratio = knp.sqrt(1.0 - lam)
    hole_w = knp.minimum(knp.maximum(knp.floor(cell_w * ratio), 1.0), cell_w - 1.0)
    hole_h = knp.minimum(knp.maximum(knp.floor(cell_h * ratio), 1.0), cell_h - 1.0)

    rows, cols = _grid(height, width)

    def per_sample(v):
        return v[:, None, None]

    dy = rows - per_sample(yc1)
    dx = cols - per_sample(xc1)
    in_crop = (dy >= 0) & (dy < per_sample(cut_h)) & (dx >= 0) & (dx < per_sample(cut_w))
    in_hole_y = knp.mod(dy, per_sample(cell_h)) < per_sample(hole_h)
    in_hole_x = knp.mod(dx, per_sample(cell_w)) < per_sample(hole_w)
    partner = in_crop & in_hole_y & in_hole_x
    return 1.0 - kb.cast(partner, "float32")[..., None]


def _gaussian_mask(lam, height, width, seed, inverse_metric=None):
    """Shared kernel of GMix and AGMix, as the official code (naver-ai/hmix-gmix,
    `gmix_gaussian_kernel` and `Mixup._mix_batch`) draws it.

    The blob `exp(-pi * d^T S^-1 d / (s * H * W))`, `s = min(lam, 1 - lam)`, is
    centred on a uniform integer pixel, with `S^-1` the identity (GMix) or
    `inverse_metric` (B, 2, 2) of determinant one (AGMix); its integral over the
    plane is `s * H * W`. The blob always holds the smaller share: for
    `lam < 0.5` it is the anchor (the mask is the kernel), otherwise the partner
    (the mask is one minus the kernel). A blob of area above half the image
    would be cut by the border so much that its share saturates (about 0.61 at
    most on 32x32), so a small lambda could never give the partner most of the
    image. The label weight is the mask's mean: border truncation only shrinks
    the blob, so it is a little above `lam` for `lam >= 0.5` and a little below
    it otherwise.
    """
    lam = kb.cast(lam, "float32")
    batch = _batch_size(lam)
    hf, wf = _float(height), _float(width)
    # Integer centres, as np.random.randint(0, H) (clipped: U * H can round up to H).
    cy = knp.minimum(knp.floor(sample_uniform([batch], fold_seed(seed, 1)) * hf), hf - 1.0)
    cx = knp.minimum(knp.floor(sample_uniform([batch], fold_seed(seed, 2)) * wf), wf - 1.0)
    rows, cols = _grid(height, width)
    dy = rows - cy[:, None, None]
    dx = cols - cx[:, None, None]
    if inverse_metric is None:
        quad = dy * dy + dx * dx
    else:
        a = inverse_metric[:, 0, 0][:, None, None]
        b = inverse_metric[:, 0, 1][:, None, None]
        c = inverse_metric[:, 1, 1][:, None, None]
        quad = a * dy * dy + 2.0 * b * dy * dx + c * dx * dx
    blob_share = knp.minimum(lam, 1.0 - lam)[:, None, None]
    kernel = knp.exp(-math.pi * quad / (knp.maximum(blob_share, 1e-6) * hf * wf))
    kernel = knp.where(blob_share <= 1e-6, knp.zeros_like(kernel), kernel)
    anchor_is_blob = (lam < 0.5)[:, None, None]
    return knp.where(anchor_is_blob, kernel, 1.0 - kernel)[..., None]


def gmix_mask(lam, height, width, seed):
    """GMix (Park et al., 2022; MiAMix paper eq. 3-4): a Gaussian blob.

    The paper's kernel `exp(-|p - c|^2 / (2 sigma^2))`, `sigma = sqrt(lam) N`,
    has an area of `2 pi lam N^2`, far more than the image for most lambdas.
    Following the official code (naver-ai/hmix-gmix) and the project's method
    notes, the kernel is `exp(-pi |p - c|^2 / (s H W))` with `s = min(lam,
    1 - lam)` the smaller share, whose integral is `s H W`, and the image with
    the smaller share is the blob (the anchor for `lam < 0.5`, else the
    partner). Two differences from the official code: H * W in place of its
    H^2 (its grid is square, so non-square images would break there), and one
    draw per sample where it draws one per batch. The label weight is the
    mask's mean (see `_gaussian_mask`).
    """
    return _gaussian_mask(lam, height, width, seed)


def agmix_inverse_metric(batch_size, seed, max_correlation=0.95):
    """Random inverse metrics `S^-1` of AGMix, (B, 2, 2), determinant one.

    `S = R [[1, q], [q, 1]] R^T / sqrt(1 - q^2)` with `q ~ U(-max_correlation,
    max_correlation)` and a rotation `R` by `theta ~ U(0, pi)`; dividing by
    `sqrt(det) = sqrt(1 - q^2)` keeps the kernel's area at the requested share
    whatever q and theta are.
    """
    q = sample_uniform([batch_size], fold_seed(seed, 1), -max_correlation, max_correlation)
    theta = sample_uniform([batch_size], fold_seed(seed, 2), 0.0, math.pi)
    cos, sin = knp.cos(theta), knp.sin(theta)
    # [[1, q], [q, 1]]^-1 = [[1, -q], [-q, 1]] / (1 - q^2); times sqrt(1 - q^2).
    norm = 1.0 / knp.sqrt(1.0 - q * q)
    m00, m01, m11 = norm, -q * norm, norm
    # R M R^T with R = [[cos, -sin], [sin, cos]].
    a = cos * cos * m00 - 2.0 * cos * sin * m01 + sin * sin * m11
    b = cos * sin * (m00 - m11) + (cos * cos - sin * sin) * m01
    c = sin * sin * m00 + 2.0 * cos * sin * m01 + cos * cos * m11
    return knp.stack([knp.stack([a, b], -1), knp.stack([b, c], -1)], -2)


def agmix_mask(lam, height, width, seed, max_correlation=0.95):
    """AGMix (MiAMix paper, section 3.1): GMix with a random rotated covariance.

    The Gaussian's covariance is `R [[1, q], [q, 1]] R^T`, `q ~ U(-1, 1)` kept
    within `max_correlation` (0.95) so that it stays invertible, `R` a random
    rotation. It is normalised to determinant one (divided by `sqrt(1 - q^2)`)
    so that the kernel's area stays `min(lam, 1 - lam) H W` whatever q and the
    rotation are (the project's method notes); see `gmix_mask` for the kernel
    and which image is the blob.
    """
    lam = kb.cast(lam, "float32")
    inv = agmix_inverse_metric(_batch_size(lam), fold_seed(seed, 7), max_correlation)
    return _gaussian_mask(lam, height, width, seed, inverse_metric=inv)


def resizemix_mask(tau, height, width, seed):
    """ResizeMix (Qin et al., 2020): the partner resized into a box.

    The box is `tau * W` by `tau * H` around a uniform integer centre, clipped at
    the border (OpenMixup's `resizemix`); the whole partner image is resized
    (nearest neighbour, the official default) into the clipped box.

    Args:
        tau: (B,) box scales, e.g. U(0.1, 0.8).

    Returns:
        masks: (B, H, W, 1), 0 inside the box.
        source_rows: (B, H) int32, the partner row shown in each output row
            (the identity outside the box, where the anchor is kept anyway).
        source_cols: (B, W) int32, likewise for columns (the resize is
            separable; `ops.mixing.gather_partners` applies the map).
    """
    tau = kb.cast(tau, "float32")
    cut_h = knp.floor(_float(height) * tau)
    cut_w = knp.floor(_float(width) * tau)
    y1, y2, x1, x2 = _clipped_box(cut_h, cut_w, height, width, seed)
    masks = _box_mask(y1, y2, x1, x2, height, width)
    source_rows = _nearest_source(y1, y2, height)
    source_cols = _nearest_source(x1, x2, width)
    return masks, source_rows, source_cols


def _nearest_source(start, stop, size):
    """(B, size) source index of each position when [0, size) is resized into
    [start, stop) by nearest neighbour (PyTorch 'nearest': floor); identity
    outside the interval."""
    pos = kb.cast(knp.arange(size), "float32")[None, :]
    sizef = _float(size)
    span = knp.maximum(stop - start, 1.0)[:, None]
    src = _clip(knp.floor((pos - start[:, None]) * sizef / span), 0.0, sizef - 1.0)
    inside = (pos >= start[:, None]) & (pos < stop[:, None])
    return kb.cast(knp.where(inside, src, pos + knp.zeros_like(src)), "int32")


MASK_GENERATORS = {
    "mixup": mixup_mask,
    "cutmix": cutmix_mask,
    "fmix": fmix_mask,
    "gridmix": gridmix_mask,
    "gmix": gmix_mask,
    "agmix": agmix_mask,
}

"""MiAMix's multi-stage masks and pairing (Liang et al., Algorithm 1).

Pure, batch-first functions over the mask generators of `ops.masks`, the mask
augmentations of `ops.mask_augment` and the samplers of `ops.sampling`; the
layer `keras_miamix.layers.MiAMix` is a thin wrapper around them.

Reading of the paper followed here (the issue that specified the layer):

* k ~ uniform on `k_choices` (default {1, ..., k_max}, k_max = 2).
* (lambda_1, ..., lambda_k, lambda_{k+1}) ~ Dirichlet(alpha, ..., alpha, k alpha)
  (eq. 9): lambda_j is the partner's share of layer j and lambda_{k+1} the
  anchor's, so the anchor keeps about half of the image whatever k is.
* mask_j = m_j(1 - lambda_j) keeps the anchor where it is 1, with m_j drawn
  from `methods` with probabilities proportional to `weights`.
* CutMix, FMix and GridMix masks are rotated and sheared with probability
  `p_aug` and smoothed with probability `p_smooth`; MixUp and AGMix (and GMix)
  masks never are (section 3.2.3).
* merge "mul": the product of the k masks (eq. 10); "sum": eq. 11 as written,
  the k masks added and clipped, `clip(sum_j mask_j, 0, 1)` (`merge_masks`).
* smoothing windows: the odd sizes from 3 to max(5, min(H, W) // 8) by
  default (the method notes), so the smoothing grows with the image: (3, 5)
  at 32 px, 3 to 27 at 224 px.

All samples of a batch are handled at once, with their own k, methods, ratios
and masks, and each method's generator runs only on the (B * K) layer rows
that drew it (`on_rows`); the rotation and the smoothing likewise run only on
the rows that drew them. Layers beyond a sample's k are all-ones and change
nothing. So the cost is about one mask per drawn layer (1.5 per sample with
k in {1, 2}) where computing every method on every row cost five.

The rows are chosen in one of two ways, picked at trace time, with the same
distributions (tests run the statistics both ways):

* outside XLA (eagerly, `tf.function`, `tf.data`): the rows are gathered with
  a dynamic count and the groups stitched back together; no functional
  control flow, which `tf.data` runs slowly (a `tf.cond` version of this
  measured 2.6x slower there);
* under XLA (static shapes): each method's rows are gathered into a block of
  a static capacity, mean + 4 standard deviations of its count, the blocks
  are concatenated and one gather puts the rows in place; a conditional falls
  back to computing every row in the rare batch (about one in 10,000 per
  method) that drew more. The rotated rows and the smoothed rows of all
  methods then get one block each (blocks per method held twice the rows).

On JAX and PyTorch (the same code in Keras' ops, `keras_miamix.backend`)
every computed method's generator and each augmentation run on all rows and
each row takes its own draw's result (the XLA path's fallback): the same
distributions, without the static blocks' bookkeeping, for about one mask
per method and row.
"""

import math

from keras_miamix import backend as kb
from keras_miamix.backend import numpy as knp
from keras_miamix.ops.mask_augment import random_box_filter
from keras_miamix.ops.mask_augment import random_rotate_shear
from keras_miamix.ops.mask_augment import smoothing_windows as size_windows
from keras_miamix.ops.masks import MASK_GENERATORS
from keras_miamix.ops.sampling import fold_seed
from keras_miamix.ops.sampling import in_xla_context
from keras_miamix.ops.sampling import random_permutation
from keras_miamix.ops.sampling import sample_categorical
from keras_miamix.ops.sampling import sample_dirichlet
from keras_miamix.ops.sampling import uniform

AUGMENTABLE_METHODS = ("cutmix", "fmix", "gridmix")

def row_capacity(n, fraction):
    """Static block size for the rows of `n` chosen each with probability
    `fraction`: the mean plus four standard deviations of the count, plus 2
    (a batch overflows it with probability about 1e-4 or less, and then takes
    the slower path that computes every row). A Python int when `n` is one;
    else (a batch size XLA only knows at compile time, as in a `tf.data`
    map) the same number as an int32 tensor, which XLA folds to a constant."""
    return _rows_above_mean(n, fraction, 4.0, 2)


def first_stage_rows(n, fraction, capacity):
    """Rows of a block computed unconditionally: the mean plus one standard
    deviation of the count (plus 1), at most `capacity`; the rest of the
    block is computed only in the batches (about one in six) that drew more.
    An int32 tensor (folded by XLA) when `n` or `capacity` is one."""
    first = _rows_above_mean(n, fraction, 1.0, 1)
    if isinstance(first, int) and isinstance(capacity, int):
        return min(capacity, first)
    import tensorflow as tf

    return tf.minimum(capacity, first)


def _rows_above_mean(n, fraction, sds, extra):
    """min(n, ceil(mean + sds * sd) + extra) of a Binomial(n, fraction) count:
    a Python int for an int `n`, else an int32 tensor computed in float64 (so
    that it equals the Python value)."""
    if isinstance(n, int):
        mean = n * fraction
        return min(n, int(math.ceil(mean + sds * math.sqrt(mean * (1.0 - fraction)))) + extra)
    import tensorflow as tf

    mean = tf.cast(n, tf.float64) * fraction
    rows = tf.math.ceil(mean + sds * tf.sqrt(mean * (1.0 - fraction)))
    return tf.minimum(tf.cast(n, tf.int32), tf.cast(rows, tf.int32) + extra)


def _two_stage(compute, count, capacity, first):
    """`compute(stage, start, size)`'s outputs for block rows [0, capacity):
    rows [0, first) always (stage 0), rows [first, capacity) only when
    `count` exceeds `first` (stage 1; else zeros, which the callers never
    read). Each stage must draw its own random numbers: stateless draws index
    rows from 0 in every call, so the callers fold the stage into their seeds
    (`stage_seed`)."""
    import tensorflow as tf

    outs = compute(0, 0, first)
    if isinstance(first, int) and isinstance(capacity, int) and first >= capacity:
        return outs
    rest = capacity - first

    def late():
        return compute(1, first, rest)

    def unused():
        return tuple(tf.zeros(tf.concat([[rest], tf.shape(o)[1:]], 0), o.dtype) for o in outs)

    tail = tf.cond(count > first, late, unused)
    return tuple(tf.concat([a, b], 0) for a, b in zip(outs, tail))


def _chosen_first(chosen, capacity):
    """For a block of `capacity` rows: the indices of the chosen rows first
    (a stable argsort of "not chosen"), their count, and each row's place in
    the block (its rank among the chosen rows, clipped to the block)."""
    import tensorflow as tf

    idx = tf.argsort(tf.cast(~chosen, tf.int32), stable=True)[:capacity]
    count = tf.reduce_sum(tf.cast(chosen, tf.int32))
    rank = tf.minimum(tf.cumsum(tf.cast(chosen, tf.int32), exclusive=True), capacity - 1)
    return idx, count, rank


def stage_seed(seed, stage):
    """The seed of a block's stage: `seed` itself for stage 0 (so draws are
    those of a single call), a folded sub-stream for stage 1."""
    return seed if stage == 0 else fold_seed(seed, 7919 + stage)


def on_rows(fn, chosen, inputs, bases, fraction):
    """`bases` with the rows where `chosen` is True replaced by `fn`'s output,
    `fn` being computed on those rows only.

    Args:
        fn: `fn(stage, *rows)` maps the chosen rows of each of `inputs` to a
            tuple of tensors shaped like the chosen rows of `bases` (or
            broadcastable to them); `stage` (a Python int, 0 outside XLA) must
            select the seed of its random draws (`stage_seed`).
        chosen: (n,) bool.
        inputs: tuple of (n, ...) tensors whose rows `fn` reads.
        bases: tuple of (n, ...) tensors; rows not chosen are kept.
        fraction: the probability that a row is chosen (sizes the static
            block under XLA; any value gives the same results, only speed).

    Outside XLA the rows are gathered with a dynamic count. Under XLA they are
    gathered into a block of `row_capacity(n, fraction)` rows, the chosen ones
    first; boolean inputs are False on the block's padding rows, whose outputs
    are discarded; and when more rows were chosen than the block holds, a
    conditional computes `fn` on every row instead.
    """
    if not kb.is_tensorflow():
        outs = fn(0, *inputs)
        return tuple(knp.where(_expand(chosen, b), _rows_like(o, b, kb.shape(b)[0]), b)
                     for o, b in zip(outs, bases))
    import tensorflow as tf

    if not in_xla_context():
        idx = tf.cast(tf.where(chosen)[:, 0], tf.int32)
        outs = fn(0, *[tf.gather(t, idx) for t in inputs])
        return tuple(
            tf.tensor_scatter_nd_update(b, idx[:, None], _rows_like(o, b, tf.shape(idx)[0]))
            for o, b in zip(outs, bases)
        )
    n = chosen.shape[0] if chosen.shape[0] is not None else tf.shape(chosen)[0]
    capacity = row_capacity(n, fraction)
    count = tf.reduce_sum(tf.cast(chosen, tf.int32))

    def block():
        idx, _, rank = _chosen_first(chosen, capacity)
        valid = tf.range(capacity) < count

        def compute(stage, start, size):
            gathered = []  # padding rows are never read back
            for t in inputs:
                g = tf.gather(t, idx[start:start + size])
                gathered.append(
                    g & _expand(valid[start:start + size], g) if g.dtype == tf.bool else g)
            return tuple(_rows_like(o, b, size) for o, b in zip(fn(stage, *gathered), bases))

        outs = _two_stage(compute, count, capacity, first_stage_rows(n, fraction, capacity))
        # Row r of the result is block row `rank[r]` where chosen, else base
        # row r: one gather and select, which XLA fuses into a single pass
        # (a scatter into the base copied it first).
        return tuple(tf.where(_expand(chosen, b), tf.gather(o, rank), b)
                     for o, b in zip(outs, bases))

    def every_row():
        outs = fn(0, *inputs)
        return tuple(tf.where(_expand(chosen, b), _rows_like(o, b, tf.shape(b)[0]), b)
                     for o, b in zip(outs, bases))

    if isinstance(capacity, int) and isinstance(n, int) and capacity >= n:
        return every_row()
    return tf.cond(count <= capacity, block, every_row)


def _xla_method_blocks(groups, masks_of, anchor_share, n, height, width):
    """Under XLA, the (n, H, W, 1) raw layer masks from one block of static
    capacity per method: each method's chosen rows are gathered into its
    block, the blocks are concatenated after an all-ones row (the inactive
    layers) and a single gather puts every row in place. One conditional
    falls back to computing every method on every row in the rare batch
    where a method drew more rows than its block holds.

    Args:
        groups: (method index, (n,) bool chosen, capacity, first-stage rows)
            per computed method (`_two_stage`).
        masks_of: method index -> fn(anchor_share, stage) returning
            (rows, H, W, 1) masks, drawn from the stage's seed (`stage_seed`).
        anchor_share: (n,) the anchor's share of each row.
    """
    ones = knp.ones((n, height, width, 1))
    if not kb.is_tensorflow():
        out = ones
        for i, chosen, _, _ in groups:
            out = knp.where(_expand(chosen, ones), masks_of(i)(anchor_share), out)
        return out
    import tensorflow as tf

    def blocks():
        parts = [ones[:1]]
        position = tf.zeros([n], tf.int32)
        offset = 1
        for i, chosen, capacity, first in groups:
            # The block's padding rows are never read back.
            idx, count, rank = _chosen_first(chosen, capacity)

            def compute(stage, start, size, i=i, idx=idx):
                return (masks_of(i)(tf.gather(anchor_share, idx[start:start + size]), stage),)

            parts.append(_two_stage(compute, count, capacity, first)[0])
            position = tf.where(chosen, offset + rank, position)
            offset = offset + capacity
        return tf.gather(tf.concat(parts, 0), position)

    def every_row():
        out = ones
        for i, chosen, _, _ in groups:
            out = tf.where(_expand(chosen, ones), masks_of(i)(anchor_share), out)
        return out

    if all(isinstance(c, int) and isinstance(n, int) and c >= n for _, _, c, _ in groups):
        return blocks()
    fits = tf.reduce_all(tf.stack(
        [tf.reduce_sum(tf.cast(chosen, tf.int32)) <= capacity
         for _, chosen, capacity, _ in groups]))
    return tf.cond(fits, blocks, every_row)


def _expand(flags, like):
    """(n,) flags reshaped to broadcast against `like` (n, ...)."""
    return knp.reshape(flags, (-1,) + (1,) * (kb.rank(like) - 1))


def _rows_like(values, base, rows):
    """`values` broadcast to `rows` rows of `base`'s trailing shape."""
    return knp.broadcast_to(values, (rows,) + tuple(kb.shape(base)[1:]))


def self_pairing(batch_size, p_self, seed):
    """Partners for MiAMix: a random permutation, or the sample itself.

    Returns:
        partner_index: (B,) int32.
        self_mixed: (B,) bool, True where the sample was paired with itself
            through the `p_self` draw.
    """
    perm = random_permutation(batch_size, fold_seed(seed, 1))
    self_mixed = uniform([batch_size], fold_seed(seed, 2)) < p_self
    partner = knp.where(self_mixed, knp.arange(batch_size, dtype="int32"), perm)
    return partner, self_mixed


def sample_mask_plan(batch_size, seed, alpha, k_choices, num_methods, weights):
    """Draws k, the per-layer methods and the Dirichlet ratios of each sample.

    Returns:
        k: (B,) int32 number of masks.
        methods: (B, K) int32 method indices (K = max(k_choices)); -1 where the
            layer is beyond the sample's k.
        lambdas: (B, K + 1) float32; column j < K is layer j's partner share
            (0 where inactive), the last column the anchor's share.
    """
    max_k = max(k_choices)
    pick = uniform([batch_size], fold_seed(seed, 1), 0, len(k_choices), dtype="int32")
    k = kb.gather(kb.convert(k_choices, "int32"), pick)
    layer = knp.arange(max_k, dtype="int32")[None, :]
    active = layer < k[:, None]  # (B, K)
    methods = sample_categorical(batch_size * max_k, weights, fold_seed(seed, 2))
    methods = knp.where(active, knp.reshape(methods, (batch_size, max_k)), -1)
    kf = kb.cast(k, "float32")[:, None]
    concentration = knp.concatenate(
        [knp.full((batch_size, max_k), float(alpha)), alpha * kf], axis=1
    )
    active_all = knp.concatenate([active, knp.ones((batch_size, 1), "bool")], axis=1)
    lambdas = sample_dirichlet(concentration, fold_seed(seed, 3), active=active_all)
    return k, methods, lambdas


def merge_masks(layer_masks, active, merge="mul"):
    """The merged mask of each sample from its k layer masks (section 3.2.4).

    Args:
        layer_masks: (B, K, H, W, 1) masks, 1 keeping the anchor (the masks of
            eq. 7 and 13); layers beyond a sample's k are all ones.
        active: (B, K) bool, the sample's first k layers.
        merge: "mul", the product of the masks (eq. 10): a pixel keeps the
            anchor only where every layer keeps it, so the partner's regions
            add up (their union for hard masks). "sum", eq. 11 as written:
            `clip(sum_j mask_j, 0, 1)` over the k active layers: a pixel
            keeps the anchor where any layer keeps it, so the partner shows
            only where every layer shows it (their intersection for hard
            masks), and soft masks add up to the anchor. Both give the k = 1
            mask itself. (Summing the partner shares instead,
            `1 - clip(sum_j (1 - mask_j))`, would equal "mul" on hard masks.)

    Returns:
        (B, H, W, 1) merged masks.
    """
    if merge == "mul":
        return knp.prod(layer_masks, axis=1)
    if merge == "sum":
        weights = kb.cast(active, layer_masks.dtype)[:, :, None, None, None]
        return knp.clip(knp.sum(layer_masks * weights, axis=1), 0.0, 1.0)
    raise ValueError(f"`merge` must be 'mul' or 'sum'; received merge={merge!r}.")


def multi_stage_masks(
    batch_size,
    height,
    width,
    seed,
    alpha=1.0,
    k_choices=(1, 2),
    methods=("mixup", "cutmix", "fmix", "gridmix", "agmix"),
    weights=(2.0, 1.0, 1.0, 1.0, 1.0),
    p_aug=0.25,
    p_smooth=0.5,
    merge="mul",
    max_angle=15.0,
    max_shear=10.0,
    smoothing_windows=None,
    method_kwargs=None,
):
    """MiAMix's stages 2-4 for a batch: number, methods, ratios, masks, merge.

    Args:
        batch_size, height, width: the batch's sizes.
        seed: stateless seed.
        alpha: Dirichlet concentration.
        k_choices: the numbers of masks k is drawn from, uniformly.
        methods: mask generator names (keys of `ops.masks.MASK_GENERATORS`).
        weights: sampling weights of `methods`; a method of weight 0 is never
            drawn and never computed.
        p_aug: probability that a CutMix/FMix/GridMix mask is rotated and
            sheared.
        p_smooth: probability that such a mask is smoothed.
        merge: "mul" or "sum".
        max_angle, max_shear: rotation and shear ranges in degrees.
        smoothing_windows: odd window sizes of the average filter; None: the
            odd sizes from 3 to max(5, min(H, W) // 8)
            (`ops.mask_augment.smoothing_windows`), which needs a static
            height and width.
        method_kwargs: optional dict of extra arguments per method name.

    Returns:
        dict with "masks" (B, H, W, 1) the merged masks, "layer_masks"
        (B, K, H, W, 1), "raw_layer_masks" (the same before rotation and
        smoothing), "k" (B,), "methods" (B, K), "lambdas" (B, K + 1),
        "rotated" (B, K) and "smoothed" (B, K) booleans.
    """
    method_kwargs = method_kwargs or {}
    if smoothing_windows is None:
        smoothing_windows = size_windows(height, width)
    max_k = max(k_choices)
    k, method_idx, lambdas = sample_mask_plan(
        batch_size, fold_seed(seed, 1), alpha, k_choices, len(methods), weights
    )
    n = batch_size * max_k
    if not isinstance(n, int) and kb.is_tensorflow():
        import tensorflow as tf

        if tf.get_static_value(n) is not None:
            n = int(tf.get_static_value(n))
    flat_methods = knp.reshape(method_idx, (n,))
    anchor_share = 1.0 - knp.reshape(lambdas[:, :max_k], (n,))
    draws = uniform([2, n], fold_seed(seed, 2))
    computed = [i for i, w in enumerate(weights) if w > 0]
    augmentable = [i for i in computed if methods[i] in AUGMENTABLE_METHODS]
    eligible = knp.any(
        flat_methods[:, None] == kb.convert(augmentable + [-2], "int32")[None, :], axis=1)
    rotated = eligible & (draws[0] < p_aug) if p_aug > 0 else knp.zeros((n,), "bool")
    smoothed = eligible & (draws[1] < p_smooth) if p_smooth > 0 else knp.zeros((n,), "bool")
    # Share of the (B * K) rows that are active, to size XLA's blocks.
    active_share = sum(k_choices) / (len(k_choices) * max_k)
    total_weight = float(sum(weights))

    def masks_of(i):
        gen = MASK_GENERATORS[methods[i]]
        kwargs = method_kwargs.get(methods[i], {})

        def fn(lam, stage=0):
            raw = gen(lam, height, width, stage_seed(fold_seed(seed, 10 + i), stage), **kwargs)
            return knp.broadcast_to(raw, (kb.shape(lam)[0], height, width, 1))

        return fn

    def augment(masks, rotate, smooth, salt, share):
        """Rotation, then smoothing, each on the rows that drew it; `share`
        is the chance that a row may be augmented (sizes XLA's blocks)."""
        if p_aug > 0:
            (masks,) = on_rows(
                lambda stage, m: (random_rotate_shear(
                    m, stage_seed(fold_seed(seed, 30 + salt), stage), max_angle, max_shear),),
                rotate, (masks,), (masks,), share * p_aug)
        if p_smooth > 0:
            (masks,) = on_rows(
                lambda stage, m: (random_box_filter(
                    m, stage_seed(fold_seed(seed, 50 + salt), stage), list(smoothing_windows)),),
                smooth, (masks,), (masks,), share * p_smooth)
        return masks

    if not kb.static_shapes():
        import tensorflow as tf

        # One dynamic group per method, each augmented within the group (its
        # small tensors), stitched back with the inactive rows. (A method of
        # weight 0 is never drawn, so the rest is the inactive layers.)
        rest = tf.cast(tf.where(flat_methods < 0)[:, 0], tf.int32)
        ones = tf.ones(tf.stack([tf.shape(rest)[0], height, width, 1]))
        indices, finals, raws = [rest], [ones], [ones]
        for i in computed:
            idx = tf.cast(tf.where(tf.equal(flat_methods, i))[:, 0], tf.int32)
            raw = masks_of(i)(tf.gather(anchor_share, idx))
            final = raw
            if i in augmentable:
                final = augment(raw, tf.gather(rotated, idx), tf.gather(smoothed, idx), i, 1.0)
            indices.append(idx)
            finals.append(final)
            raws.append(raw)
        layer_masks = tf.dynamic_stitch(indices, finals)
        raw_layer_masks = tf.dynamic_stitch(indices, raws)
    else:
        # A static block per method for the masks, then one block for the
        # rotated rows and one for the smoothed rows of every method at once
        # (blocks per method and augmentation would hold about twice the
        # rows that draw them).
        groups = []
        for i in computed:
            fraction = active_share * weights[i] / total_weight
            capacity = row_capacity(n, fraction)
            groups.append((i, flat_methods == i, capacity,
                           first_stage_rows(n, fraction, capacity)))
        raw_layer_masks = _xla_method_blocks(groups, masks_of, anchor_share, n, height, width)
        layer_masks = raw_layer_masks
        if augmentable:
            share = active_share * sum(weights[i] for i in augmentable) / total_weight
            layer_masks = augment(raw_layer_masks, rotated, smoothed, 0, share)

    layer_masks = knp.reshape(layer_masks, (batch_size, max_k, height, width, 1))
    merged = merge_masks(layer_masks, method_idx >= 0, merge)
    return {
        "masks": merged,
        "layer_masks": layer_masks,
        "raw_layer_masks": knp.reshape(raw_layer_masks, (batch_size, max_k, height, width, 1)),
        "k": k,
        "methods": method_idx,
        "lambdas": lambdas,
        "rotated": knp.reshape(rotated, (batch_size, max_k)),
        "smoothed": knp.reshape(smoothed, (batch_size, max_k)),
    }

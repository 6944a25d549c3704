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
* merge "mul": the product of the k masks (eq. 10); "sum": the partner shares
  added and clipped, `1 - clip(sum_j (1 - mask_j), 0, 1)`.

All samples of a batch are handled at once, with their own k, methods, ratios
and masks: every method's generator runs once on the flattened (B * K) layer
masks and each layer keeps the mask of the method it drew (no loop, no
`tf.map_fn`); layers beyond a sample's k are all-ones and change nothing.

Computing only the rows that drew a method (gathered into a block of static
size, with a `tf.cond` falling back to all rows when a batch draws more) was
measured: 14 instead of 20 ms per (128, 32, 32, 3) batch under `tf.function`,
but 110 instead of 42 ms inside `tf.data`, which runs the functional `If` ops
slowly. The layer is mostly used in `tf.data`, so every row is computed.
"""

import tensorflow as tf

from keras_miamix.ops.mask_augment import random_box_filter
from keras_miamix.ops.mask_augment import random_rotate_shear
from keras_miamix.ops.masks import MASK_GENERATORS
from keras_miamix.ops.sampling import fold_seed
from keras_miamix.ops.sampling import random_permutation
from keras_miamix.ops.sampling import sample_categorical
from keras_miamix.ops.sampling import sample_dirichlet
from keras_miamix.ops.sampling import uniform

AUGMENTABLE_METHODS = ("cutmix", "fmix", "gridmix")


def self_pairing(batch_size, p_self, seed):
    """Partners for MiAMix: a random permutation, or the sample itself.

    Returns:
        partner_index: (B,) int32.
        self_mixed: (B,) bool, True where the sample was paired with itself
            through the `p_self` draw.
    """
    perm = random_permutation(batch_size, fold_seed(seed, 1))
    self_mixed = uniform([batch_size], fold_seed(seed, 2)) < p_self
    partner = tf.where(self_mixed, tf.range(batch_size), perm)
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
    pick = uniform([batch_size], fold_seed(seed, 1), 0, len(k_choices), dtype=tf.int32)
    k = tf.gather(tf.constant(k_choices, tf.int32), pick)
    layer = tf.range(max_k)[None, :]
    active = layer < k[:, None]  # (B, K)
    methods = sample_categorical(batch_size * max_k, weights, fold_seed(seed, 2))
    methods = tf.where(active, tf.reshape(methods, [batch_size, max_k]), -1)
    kf = tf.cast(k, tf.float32)[:, None]
    concentration = tf.concat(
        [tf.fill([batch_size, max_k], float(alpha)), alpha * kf], axis=1
    )
    active_all = tf.concat([active, tf.ones([batch_size, 1], tf.bool)], axis=1)
    lambdas = sample_dirichlet(concentration, fold_seed(seed, 3), active=active_all)
    return k, methods, lambdas


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
    smoothing_windows=(3, 5),
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
        smoothing_windows: odd window sizes of the average filter.
        method_kwargs: optional dict of extra arguments per method name.

    Returns:
        dict with "masks" (B, H, W, 1) the merged masks, "layer_masks"
        (B, K, H, W, 1), "raw_layer_masks" (the same before rotation and
        smoothing), "k" (B,), "methods" (B, K), "lambdas" (B, K + 1),
        "rotated" (B, K) and "smoothed" (B, K) booleans.
    """
    method_kwargs = method_kwargs or {}
    max_k = max(k_choices)
    k, method_idx, lambdas = sample_mask_plan(
        batch_size, fold_seed(seed, 1), alpha, k_choices, len(methods), weights
    )
    n = batch_size * max_k
    flat_methods = tf.reshape(method_idx, [n])
    anchor_share = 1.0 - tf.reshape(lambdas[:, :max_k], [n])
    layer_masks = tf.ones([n, height, width, 1])
    for i, name in enumerate(methods):
        if weights[i] <= 0:
            continue
        gen = MASK_GENERATORS[name]
        masks_i = gen(anchor_share, height, width, fold_seed(seed, 10 + i),
                      **method_kwargs.get(name, {}))
        chosen = tf.reshape(flat_methods == i, [n, 1, 1, 1])
        layer_masks = tf.where(chosen, masks_i, layer_masks)

    augmentable = [i for i, name in enumerate(methods)
                   if name in AUGMENTABLE_METHODS and weights[i] > 0]
    rotated = tf.zeros([n], tf.bool)
    smoothed = tf.zeros([n], tf.bool)
    raw_layer_masks = layer_masks
    if augmentable:
        eligible = tf.reduce_any(
            flat_methods[:, None] == tf.constant(augmentable, tf.int32)[None, :], axis=1
        )
        draws = uniform([2, n], fold_seed(seed, 2))
        if p_aug > 0:
            rotated = eligible & (draws[0] < p_aug)
            warped = random_rotate_shear(layer_masks, fold_seed(seed, 3), max_angle, max_shear)
            layer_masks = tf.where(rotated[:, None, None, None], warped, layer_masks)
        if p_smooth > 0:
            smoothed = eligible & (draws[1] < p_smooth)
            blurred = random_box_filter(layer_masks, fold_seed(seed, 4), list(smoothing_windows))
            layer_masks = tf.where(smoothed[:, None, None, None], blurred, layer_masks)

    layer_masks = tf.reshape(layer_masks, [batch_size, max_k, height, width, 1])
    if merge == "mul":
        merged = tf.reduce_prod(layer_masks, axis=1)
    elif merge == "sum":
        merged = 1.0 - tf.clip_by_value(tf.reduce_sum(1.0 - layer_masks, axis=1), 0.0, 1.0)
    else:
        raise ValueError(f"`merge` must be 'mul' or 'sum'; received merge={merge!r}.")
    return {
        "masks": merged,
        "layer_masks": layer_masks,
        "raw_layer_masks": tf.reshape(raw_layer_masks, [batch_size, max_k, height, width, 1]),
        "k": k,
        "methods": method_idx,
        "lambdas": lambdas,
        "rotated": tf.reshape(rotated, [batch_size, max_k]),
        "smoothed": tf.reshape(smoothed, [batch_size, max_k]),
    }

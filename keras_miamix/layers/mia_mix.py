import keras

from keras_miamix import backend as kb
from keras_miamix.layers.base_mix_layer import IMAGES
from keras_miamix.layers.base_mix_layer import LABELS
from keras_miamix.layers.base_mix_layer import SAMPLE_WEIGHT
from keras_miamix.layers.base_mix_layer import SEGMENTATION_MASKS
from keras_miamix.layers.base_mix_layer import BaseMixLayer
from keras_miamix.layers.base_mix_layer import _spatial_size
from keras_miamix.layers.base_mix_layer import check_positive
from keras_miamix.layers.base_mix_layer import check_probability
from keras_miamix.ops.augment import flip_translate_maps
from keras_miamix.ops.masks import MASK_GENERATORS
from keras_miamix.ops.miamix import multi_stage_masks
from keras_miamix.ops.miamix import self_pairing
from keras_miamix.ops.mixing import gather_partners
from keras_miamix.ops.mixing import mix_batch
from keras_miamix.ops.sampling import fold_seed

DEFAULT_METHODS = ("mixup", "cutmix", "fmix", "gridmix", "agmix")
DEFAULT_WEIGHTS = (2.0, 1.0, 1.0, 1.0, 1.0)


@keras.saving.register_keras_serializable(package="keras_miamix")
class MiAMix(BaseMixLayer):
    """MiAMix: multi-stage augmented mixup.

    Liang, Liang and Jia, "MiAMix: Enhancing Image Classification through a
    Multi-stage Augmented Mixed Sample Data Augmentation Method", 2023
    (Algorithm 1, Table 1). Per sample, all vectorised over the batch:

    1. **Pairing.** Two views of the batch, each from its own per-sample random
       `augmentation` (section 3.2.1: a batch whose images all share one
       augmentation limits the mixes' diversity; `shared_augmentation=True`
       is that ablation): view A gives the anchors x_i, view B the partners.
       The partner is a random other sample (a permutation of the batch) or,
       with probability `p_self`, the sample itself taken from view B.
    2. **Number, methods and ratios.** k ~ uniform on `k_choices` (default
       {1, ..., k_max}); (lambda_1, ..., lambda_k, lambda_{k+1}) ~
       Dirichlet(alpha, ..., alpha, k * alpha); each of the k masks draws its
       method from `methods` with probabilities proportional to `weights`.
       lambda_j is the partner's share of layer j and lambda_{k+1} the
       anchor's (our reading of Algorithm 1 and eq. 9), so the anchor keeps
       about half of the image whatever k is.
    3. **Masks and their augmentation.** mask_j = m_j(1 - lambda_j) keeps the
       anchor where it is 1. CutMix, FMix and GridMix masks are rotated by
       U(-15, 15) degrees and sheared by U(-10, 10) degrees about the centre
       with probability `p_aug`, and smoothed by an average filter of a random
       odd window (by default from 3 to max(5, side // 8): 3 or 5 at 32 px,
       up to 27 at 224 px) with probability `p_smooth`; MixUp and
       AGMix masks never are (section 3.2.3). The paper gives no angles or
       windows: these defaults follow the project's method notes. Pixels
       rotated in from outside keep the anchor.
    4. **Merge and output.** `merge="mul"` multiplies the k masks (eq. 10):
       the partner's regions add up. `merge="sum"` is eq. 11 as written,
       `clip(sum_j mask_j, 0, 1)`: the anchor's regions add up, so the
       partner shows only where every mask shows it (Table 7 finds it worse;
       `ops.miamix.merge_masks`). The label weight is the merged
       mask's mean (`lambda_mode="merged"`, eq. 12) or the sampled anchor
       share lambda_{k+1} (`lambda_mode="orig"`, Table 7's ablation, whose
       labels then do not match the pixels). Then
       `x = mask * x_i + (1 - mask) * x_t`, and labels, sample weights and
       segmentation masks as in the other layers.

    Args:
        alpha: Dirichlet concentration, > 0. Defaults to 1.0 (Table 1).
        k_max: the largest number of masks; k is uniform on {1, ..., k_max}.
            Defaults to 2 (Table 1).
        k_choices: optional explicit set of counts k is drawn from uniformly,
            e.g. `(2,)` for a fixed k = 2 or `(1, 2, 3)` (Table 5); overrides
            `k_max`.
        methods: mask methods among "mixup", "cutmix", "fmix", "gridmix",
            "gmix" and "agmix". Defaults to Table 1's
            ("mixup", "cutmix", "fmix", "gridmix", "agmix").
        weights: sampling weights of `methods`, >= 0; a weight of 0 removes the
            method (Table 6). Defaults to (2, 1, 1, 1, 1).
        p_self: self-mixing probability in [0, 1]. Defaults to 0.10.
        p_aug: probability of rotating and shearing an eligible mask.
            Defaults to 0.25.
        p_smooth: probability of smoothing an eligible mask. Defaults to 0.5.
        merge: "mul" (default) or "sum".
        lambda_mode: "merged" (default) or "orig".
        augmentation: the per-sample augmentation giving the two views:
            "default" (random horizontal flip and random translation by up to
            1/8 of each side with zero padding, XLA-compatible: the training
            pipeline's own flip and crop, `ops.augment`), None (no
            augmentation: both views are the input), a Keras layer (e.g. a
            `keras.Sequential` of random layers; called with `training=True`)
            or a callable on a batch of float images. With segmentation masks,
            use "default" (applied to the images and masks together) or None.
        max_angle: rotation range of mask augmentation, degrees. Defaults to 15.
        max_shear: shear range of mask augmentation, degrees. Defaults to 10.
        smoothing_windows: odd window sizes of the smoothing filter. Defaults
            to None: the odd sizes from 3 to max(5, min(H, W) // 8) of the
            input (the project's method notes; (3, 5) at 32 px), which needs
            images of a static size.
        shared_augmentation: with the "default" `augmentation`, draw one flip
            and one shift per view for the whole batch instead of one per
            sample (the paper's ablation of per-sample augmentation, section
            3.2.1). Defaults to False.
        num_classes, label_smoothing, data_format, seed: see `MixUp`.

    With `return_info=True` the info dict also holds "k", "methods",
    "lambdas", "layer_masks" (each layer's final mask), "raw_layer_masks"
    (before rotation and smoothing), "rotated", "smoothed", "self_mixed" and
    the two views, "anchor_view" (sample i's view) and "partner_view" (the
    view of sample i's partner `partner_index[i]` that was mixed into it),
    channels-last.

    Example:

    >>> import keras, numpy as np
    >>> layer = MiAMix(num_classes=10, seed=0)
    >>> images = keras.random.uniform((8, 32, 32, 3), seed=0)
    >>> (mixed, labels), info = layer((images, np.arange(8) % 10), return_info=True)
    >>> sorted(info)[:4]
    ['anchor_view', 'k', 'label_weights', 'lam']
    """

    def __init__(
        self,
        alpha=1.0,
        k_max=2,
        k_choices=None,
        methods=DEFAULT_METHODS,
        weights=DEFAULT_WEIGHTS,
        p_self=0.10,
        p_aug=0.25,
        p_smooth=0.5,
        merge="mul",
        lambda_mode="merged",
        augmentation="default",
        max_angle=15.0,
        max_shear=10.0,
        smoothing_windows=None,
        shared_augmentation=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive("alpha", alpha)
        if k_choices is None:
            if int(k_max) != k_max or k_max < 1:
                raise ValueError(f"`k_max` must be an integer >= 1; received k_max={k_max!r}.")
            k_choices = tuple(range(1, int(k_max) + 1))
        k_choices = tuple(k_choices)
        if not k_choices or any(int(k) != k or k < 1 for k in k_choices):
            raise ValueError(
                "`k_choices` must be a non-empty sequence of integers >= 1; "
                f"received k_choices={k_choices!r}."
            )
        methods = tuple(str(m).lower() for m in methods)
        unknown = [m for m in methods if m not in MASK_GENERATORS]
        if unknown or not methods:
            raise ValueError(
                f"`methods` must be names among {sorted(MASK_GENERATORS)}; "
                f"received methods={methods!r}."
            )
        weights = tuple(float(w) for w in weights)
        if len(weights) != len(methods) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(
                "`weights` must give one non-negative weight per method, not all "
                f"zero; received weights={weights!r} for methods={methods!r}."
            )
        for name, value in (("p_self", p_self), ("p_aug", p_aug), ("p_smooth", p_smooth)):
            check_probability(name, value)
        if merge not in ("mul", "sum"):
            raise ValueError(f"`merge` must be 'mul' or 'sum'; received merge={merge!r}.")
        if lambda_mode not in ("merged", "orig"):
            raise ValueError(
                "`lambda_mode` must be 'merged' or 'orig'; received "
                f"lambda_mode={lambda_mode!r}."
            )
        windows = None
        if smoothing_windows is not None:
            windows = tuple(int(w) for w in smoothing_windows)
            if not windows or any(w < 1 or w % 2 == 0 for w in windows):
                raise ValueError(
                    "`smoothing_windows` must be odd sizes >= 1 or None; received "
                    f"smoothing_windows={smoothing_windows!r}."
                )
        if isinstance(augmentation, dict):
            augmentation = keras.saving.deserialize_keras_object(augmentation)
        if not (augmentation is None or augmentation == "default" or callable(augmentation)):
            raise ValueError(
                "`augmentation` must be 'default', None, a Keras layer or a callable; "
                f"received augmentation={augmentation!r}."
            )
        self.alpha = float(alpha)
        self.k_max = max(k_choices)
        self.k_choices = k_choices
        self.methods = methods
        # `weights` is a Keras Layer property (the layer's variables).
        self.method_weights = weights
        self.p_self = float(p_self)
        self.p_aug = float(p_aug)
        self.p_smooth = float(p_smooth)
        self.merge = merge
        self.lambda_mode = lambda_mode
        self.augmentation = augmentation
        self.max_angle = float(max_angle)
        self.max_shear = float(max_shear)
        self.smoothing_windows = windows
        if shared_augmentation and augmentation != "default":
            raise ValueError(
                "`shared_augmentation=True` needs the 'default' `augmentation` (a "
                "custom augmentation draws as it does); received "
                f"augmentation={augmentation!r}.")
        self.shared_augmentation = bool(shared_augmentation)

    def _views(self, images, seg, seed):
        """The anchor's view (and its segmentation masks), the batch the
        partners are taken from, and for the default augmentation the
        partners' pixel maps.

        Returns:
            (view_a, partner_source, seg_a, partner_seg_source, rows, cols):
            with the default augmentation `rows`/`cols` (B, H)/(B, W) map each
            sample's partner view into `partner_source` (drawn per sample, so
            one gather makes every partner's view, with no copy of the batch
            per view); else they are None and `partner_source` is the second
            view itself.
        """
        aug = self.augmentation
        if aug is None:
            return images, images, seg, seg, None, None
        if aug == "default":
            batch = kb.shape(images)[0]
            height, width = _spatial_size(images)
            if self.shared_augmentation:
                # One flip and shift per view, shared by the batch.
                rows_a, cols_a = flip_translate_maps(
                    batch, height, width, fold_seed(seed, 1), per_sample=False)
                rows_b, cols_b = flip_translate_maps(
                    batch, height, width, fold_seed(seed, 2), per_sample=False)
            else:
                # Anchor and partner maps from one draw over 2B rows.
                rows, cols = flip_translate_maps(2 * batch, height, width, seed)
                rows_a, rows_b = rows[:batch], rows[batch:]
                cols_a, cols_b = cols[:batch], cols[batch:]
            identity = kb.numpy.arange(batch, dtype="int32")
            view_a = gather_partners(images, identity, rows_a, cols_a, zero_outside=True)
            seg_a = None
            if seg is not None:
                squeeze = kb.rank(seg) == 3
                seg4 = seg[..., None] if squeeze else seg
                seg_a = gather_partners(seg4, identity, rows_a, cols_a, zero_outside=True)
                seg_a = seg_a[..., 0] if squeeze else seg_a
            return view_a, images, seg_a, seg, rows_b, cols_b
        if seg is not None:
            raise ValueError(
                "With segmentation masks, MiAMix's `augmentation` must be "
                "'default' or None, so that the masks get the same geometric "
                f"transforms as the images; received augmentation={aug!r}."
            )
        if isinstance(aug, keras.layers.Layer):
            return kb.cast(aug(images, training=True), "float32"), kb.cast(
                aug(images, training=True), "float32"), None, None, None, None
        return (kb.cast(aug(images), "float32"), kb.cast(aug(images), "float32"),
                None, None, None, None)

    def mix(self, data, seed):
        images = data[IMAGES]
        seg = data.get(SEGMENTATION_MASKS)
        # The static batch size where the graph knows it (tf.shape()[0] never
        # is): under XLA the blocks then skip their conditionals where a
        # block holds every row.
        batch = kb.shape(images)[0]
        height, width = _spatial_size(images)
        view_a, source, seg_a, seg_source, rows, cols = self._views(
            images, seg, fold_seed(seed, 1))
        partner, self_mixed = self_pairing(batch, self.p_self, fold_seed(seed, 2))
        plan = multi_stage_masks(
            batch,
            height,
            width,
            fold_seed(seed, 3),
            alpha=self.alpha,
            k_choices=self.k_choices,
            methods=self.methods,
            weights=self.method_weights,
            p_aug=self.p_aug,
            p_smooth=self.p_smooth,
            merge=self.merge,
            max_angle=self.max_angle,
            max_shear=self.max_shear,
            smoothing_windows=self.smoothing_windows,
        )
        label_weight = plan["lambdas"][:, -1] if self.lambda_mode == "orig" else None
        out = mix_batch(
            view_a,
            plan["masks"],
            partner,
            labels=data.get(LABELS),
            sample_weight=data.get(SAMPLE_WEIGHT),
            segmentation_masks=seg_a,
            partner_images=source,
            partner_segmentation_masks=seg_source,
            source_rows=rows,
            source_cols=cols,
            label_weight=label_weight,
            zero_outside=rows is not None,
        )
        info = {
            "masks": plan["masks"],
            "partner_index": partner,
            "label_weights": out["label_weights"],
            "lam": plan["lambdas"][:, -1],
            "lambdas": plan["lambdas"],
            "k": plan["k"],
            "methods": plan["methods"],
            "layer_masks": plan["layer_masks"],
            "raw_layer_masks": plan["raw_layer_masks"],
            "anchor_view": view_a,
            "partner_view": out["partners"],
            "rotated": plan["rotated"],
            "smoothed": plan["smoothed"],
            "self_mixed": self_mixed,
        }
        return out, info

    def get_config(self):
        config = super().get_config()
        aug = self.augmentation
        if aug is not None and aug != "default":
            aug = keras.saving.serialize_keras_object(aug)
        config.update(
            {
                "alpha": self.alpha,
                "k_max": self.k_max,
                "k_choices": self.k_choices,
                "methods": self.methods,
                "weights": self.method_weights,
                "p_self": self.p_self,
                "p_aug": self.p_aug,
                "p_smooth": self.p_smooth,
                "merge": self.merge,
                "lambda_mode": self.lambda_mode,
                "augmentation": aug,
                "max_angle": self.max_angle,
                "max_shear": self.max_shear,
                "smoothing_windows": self.smoothing_windows,
                "shared_augmentation": self.shared_augmentation,
            }
        )
        return config

import keras

from keras_miamix import backend as kb
from keras_miamix.backend import numpy as knp
from keras_miamix.layers.base_mix_layer import IMAGES
from keras_miamix.layers.base_mix_layer import LABELS
from keras_miamix.layers.base_mix_layer import SAMPLE_WEIGHT
from keras_miamix.layers.base_mix_layer import SEGMENTATION_MASKS
from keras_miamix.layers.base_mix_layer import BaseMixLayer
from keras_miamix.layers.base_mix_layer import check_positive
from keras_miamix.layers.base_mix_layer import check_range
from keras_miamix.ops.augmix import augment_and_mix


@keras.saving.register_keras_serializable(package="keras_miamix")
class AugMix(BaseMixLayer):
    """AugMix: each image mixed with chains of augmentations of itself.

    Hendrycks et al., "AugMix: A Simple Data Processing Method to Improve
    Robustness and Uncertainty", ICLR 2020; follows the official CIFAR code
    (google-research/augmix `cifar.py`'s `aug`, `augmentations.py`). Per
    image: `width` chains, each of `depth` operations (U{1, 2, 3} with the
    default -1) drawn uniformly from the official list (autocontrast,
    equalize, posterize, rotate, solarize, shear x/y, translate x/y; with
    `all_ops=True` also color, contrast, brightness and sharpness, which
    overlap the corruptions of CIFAR-C), each at its own level ~ U(0.1,
    severity); chain weights ~ Dirichlet(1, ..., 1) and m ~ Beta(1, 1); the
    output is `(1 - m) x + m sum_i w_i chain_i(x)`. The operations are
    Pillow's, reimplemented batch-first (`keras_miamix.ops.augmix`) on the
    images quantised to 0..255 by `value_range`.

    Unlike `keras.layers.AugMix`, which draws one Dirichlet and one Beta per
    batch and picks its operations with Python's `random` (so that inside
    `tf.data` every batch gets the chains chosen when the map was traced),
    every draw here is per image and stateless: each image of each batch of
    each epoch gets its own chains.

    AugMix mixes no two samples: labels and sample weights come out as they
    went in (labels as float32 one-hot rows, like the other layers). For the
    paper's Jensen-Shannon consistency loss, train with
    `keras_miamix.models.AugMixModel`.

    Args:
        width: chains per image (`mixture_width`), >= 1. Defaults to 3.
        depth: operations per chain (`mixture_depth`); -1 (default) draws
            it from {1, 2, 3} per chain.
        severity: the operations' largest level (`aug_severity`), in (0.1,
            10]. Defaults to 3.
        alpha: the Dirichlet and Beta concentration, > 0. Defaults to 1.
        all_ops: also the color, contrast, brightness and sharpness
            operations. Defaults to False (the official default).
        value_range: (low, high) of the input images; the operations work on
            them mapped to 0..255 and the output comes back in this range.
            Defaults to (0, 255).
        num_classes, label_smoothing, data_format, seed: see `MixUp`.

    Images must have 3 (RGB) or 1 channels.

    Example:

    >>> import keras
    >>> layer = AugMix(seed=0)
    >>> images = keras.random.uniform((4, 32, 32, 3), maxval=255, seed=0)
    >>> layer(images).shape
    TensorShape([4, 32, 32, 3])
    """

    def __init__(self, width=3, depth=-1, severity=3.0, alpha=1.0, all_ops=False,
                 value_range=(0, 255), **kwargs):
        super().__init__(**kwargs)
        if int(width) != width or width < 1:
            raise ValueError(f"`width` must be a positive integer; received width={width!r}.")
        if int(depth) != depth or not (depth == -1 or depth >= 1):
            raise ValueError("`depth` must be -1 (U{1, 2, 3} per chain) or a positive "
                             f"integer; received depth={depth!r}.")
        if not 0.1 < severity <= 10:
            raise ValueError(f"`severity` must be in (0.1, 10]; received severity={severity!r}.")
        check_positive("alpha", alpha)
        low, high = check_range("value_range", value_range)
        if not high > low:
            raise ValueError("`value_range` must be (low, high) with high > low; received "
                             f"value_range={value_range!r}.")
        self.width = int(width)
        self.depth = int(depth)
        self.severity = float(severity)
        self.alpha = float(alpha)
        self.all_ops = bool(all_ops)
        self.value_range = (float(low), float(high))

    def augment(self, images, seed):
        """(AugMix of `images`, the draws): channels-last float32 images in
        `value_range`."""
        channels = images.shape[-1]
        if channels not in (1, 3):
            raise ValueError("AugMix's operations need RGB (3-channel) or gray (1-channel) "
                             f"images; received images with {channels} channels.")
        low, high = self.value_range
        scale = 255.0 / (high - low)
        x = (images - low) * scale
        levels = knp.clip(knp.round(x), 0.0, 255.0)
        chains_mixed, info = augment_and_mix(
            levels, seed, width=self.width, depth=self.depth, severity=self.severity,
            alpha=self.alpha, all_ops=self.all_ops)
        # The skip term is the image itself, unquantised.
        m = info["skip_weight"][:, None, None, None]
        mixed = chains_mixed + (1.0 - m) * (x - levels)
        return mixed / scale + low, info

    def mix(self, data, seed):
        if SEGMENTATION_MASKS in data:
            raise ValueError("AugMix's geometric operations would move the pixels of "
                             "`segmentation_masks`, which it does not transform; drop them.")
        images = data[IMAGES]
        mixed, info = self.augment(images, seed)
        batch = kb.shape(images)[0]
        out = {IMAGES: mixed, "label_weights": knp.ones((batch,))}
        for key in (LABELS, SAMPLE_WEIGHT):
            if key in data:
                out[key] = data[key]
        info.update({
            # The image's own share, as the other layers' masks.
            "masks": (1.0 - info["skip_weight"])[:, None, None, None],
            "partner_index": knp.arange(batch, dtype="int32"),
            "label_weights": out["label_weights"],
            "lam": 1.0 - info["skip_weight"],
        })
        info["chains"] = info["chains"] / (255.0 / (self.value_range[1] - self.value_range[0])) \
            + self.value_range[0]
        return out, info

    def get_config(self):
        config = super().get_config()
        config.update({"width": self.width, "depth": self.depth, "severity": self.severity,
                       "alpha": self.alpha, "all_ops": self.all_ops,
                       "value_range": self.value_range})
        return config

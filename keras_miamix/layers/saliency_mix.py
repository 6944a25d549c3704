import keras

from keras_miamix import backend as kb
from keras_miamix.backend import numpy as knp
from keras_miamix.layers.base_mix_layer import IMAGES
from keras_miamix.layers.base_mix_layer import LABELS
from keras_miamix.layers.base_mix_layer import SAMPLE_WEIGHT
from keras_miamix.layers.base_mix_layer import SEGMENTATION_MASKS
from keras_miamix.layers.base_mix_layer import BaseMixLayer
from keras_miamix.layers.base_mix_layer import _spatial_size
from keras_miamix.layers.base_mix_layer import check_positive
from keras_miamix.layers.base_mix_layer import check_range
from keras_miamix.ops.masks import saliencymix_mask
from keras_miamix.ops.mixing import mix_batch
from keras_miamix.ops.saliency import fine_grained_saliency
from keras_miamix.ops.saliency import saliency_peaks
from keras_miamix.ops.sampling import fold_seed
from keras_miamix.ops.sampling import random_permutation
from keras_miamix.ops.sampling import sample_beta

BOX_MODES = ("sample", "batch")


@keras.saving.register_keras_serializable(package="keras_miamix")
class SaliencyMix(BaseMixLayer):
    """SaliencyMix: pastes the partner's most salient box into the anchor.

    Uddin et al., "SaliencyMix: A Saliency Guided Data Augmentation Strategy
    for Better Regularization", ICLR 2021; follows the official CIFAR code
    (`SaliencyMix_CIFAR/saliencymix.py`, `saliency_bbox`). lam ~ Beta(alpha,
    alpha); the box is `H * sqrt(1 - lam)` by `W * sqrt(1 - lam)` (whole
    pixels), centred on the first maximum (row-major) of the partner's
    saliency map, with corners `peak -/+ cut // 2` clipped at the border, not
    shifted; the label weight is the fraction of anchor pixels left after
    clipping. The map is OpenCV's fine-grained static saliency
    (`keras_miamix.ops.fine_grained_saliency`, bit-exact to
    `cv2.saliency.StaticSaliencyFineGrained` on uint8 images), computed for the
    whole batch at once on the images quantised to 0..255 by `value_range`.
    The official code computes it on *normalised float* images, whose raw
    bytes OpenCV then reads as gray levels; this layer uses the map of the
    image itself.

    `box="batch"` is the official code: one lam, one map (of the first
    sample's partner) and one box for the whole batch. `box="sample"` (the
    default) gives every sample its own lam, partner map and box, like the
    library's other layers. The official CIFAR command mixes a batch with
    probability 0.5 (`--cutmix_prob 0.5`); this layer, like `CutMix`, mixes
    every batch it is given.

    Args:
        alpha: Beta concentration (the official `--beta`), > 0. Defaults to 1.0.
        box: "sample" (default) or "batch", see above.
        value_range: (low, high) of the input images, mapped to 0..255 for the
            saliency map only. Defaults to (0, 255).
        num_classes, label_smoothing, data_format, seed: see `MixUp`.

    Images must have 3 (RGB) or 1 channels.

    Example:

    >>> import keras, numpy as np
    >>> layer = SaliencyMix(num_classes=10, seed=0)
    >>> images = keras.random.uniform((8, 32, 32, 3), maxval=255, seed=0)
    >>> mixed = layer({"images": images, "labels": np.arange(8) % 10})
    >>> mixed["labels"].shape
    TensorShape([8, 10])
    """

    def __init__(self, alpha=1.0, box="sample", value_range=(0, 255), **kwargs):
        super().__init__(**kwargs)
        check_positive("alpha", alpha)
        self.alpha = float(alpha)
        if box not in BOX_MODES:
            raise ValueError(f"`box` must be one of {BOX_MODES}; received box={box!r}.")
        self.box = box
        low, high = check_range("value_range", value_range)
        if not high > low:
            raise ValueError(
                "`value_range` must be (low, high) with high > low; received "
                f"value_range={value_range!r}.")
        self.value_range = (float(low), float(high))

    def gray_levels(self, images):
        """The images as integers 0..255 (float32), for the saliency map."""
        low, high = self.value_range
        levels = knp.round((images - low) * (255.0 / (high - low)))
        return knp.clip(levels, 0.0, 255.0)

    def mix(self, data, seed):
        images = data[IMAGES]
        channels = images.shape[-1]
        if channels not in (1, 3):
            raise ValueError(
                "SaliencyMix's saliency map needs RGB (3-channel) or gray "
                f"(1-channel) images; received images with {channels} channels.")
        batch = kb.shape(images)[0]
        height, width = _spatial_size(images)
        perm = random_permutation(batch, fold_seed(seed, 101))
        if self.box == "batch":
            lam = sample_beta([1], self.alpha, self.alpha, fold_seed(seed, 1))
            source = kb.gather(images, perm[:1])
        else:
            lam = sample_beta([batch], self.alpha, self.alpha, fold_seed(seed, 1))
            source = images
        saliency = fine_grained_saliency(self.gray_levels(source))
        rows, cols = saliency_peaks(saliency)
        if self.box == "sample":
            # The map of each sample's partner.
            saliency = kb.gather(saliency, perm)
            rows, cols = kb.gather(rows, perm), kb.gather(cols, perm)
        masks = saliencymix_mask(lam, height, width, rows, cols)
        if self.box == "batch":
            masks = knp.broadcast_to(masks, (batch,) + tuple(masks.shape[1:]))
            lam = knp.broadcast_to(lam, (batch,))
            saliency = knp.broadcast_to(saliency, (batch,) + tuple(saliency.shape[1:]))
            rows = knp.broadcast_to(rows, (batch,))
            cols = knp.broadcast_to(cols, (batch,))
        out = mix_batch(
            images,
            masks,
            perm,
            labels=data.get(LABELS),
            sample_weight=data.get(SAMPLE_WEIGHT),
            segmentation_masks=data.get(SEGMENTATION_MASKS),
        )
        info = {
            "masks": masks,
            "partner_index": perm,
            "label_weights": out["label_weights"],
            "lam": lam,
            "saliency": saliency,
            "peak_rows": rows,
            "peak_cols": cols,
        }
        return out, info

    def get_config(self):
        config = super().get_config()
        config.update({"alpha": self.alpha, "box": self.box,
                       "value_range": self.value_range})
        return config

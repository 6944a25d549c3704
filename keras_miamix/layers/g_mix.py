import keras

from keras_miamix.layers.base_mix_layer import BetaMixLayer
from keras_miamix.ops.masks import gmix_mask


@keras.saving.register_keras_serializable(package="keras_miamix")
class GMix(BetaMixLayer):
    """GMix: one image fills a Gaussian blob around a random pixel.

    Park et al., "A Unified Analysis of Mixed Sample Data Augmentation: A Loss
    Function Perspective", NeurIPS 2022; MiAMix paper eq. 3-4. The paper's
    `sigma = sqrt(lam) N` gives the blob an area larger than the image for most
    lambdas, so the kernel follows the official code (naver-ai/hmix-gmix):
    `exp(-pi |p - c|^2 / (s H W))` with `s = min(lam, 1 - lam)`, whose
    integral is the smaller share `s H W` (H * W instead of H^2 for non-square
    images), and the image with the smaller share is the blob: the anchor for
    `lam < 0.5`, else the partner, so the share follows lambda over its whole
    range. The label weight is the mask's mean (border truncation shrinks the
    blob, most for lambdas near 0.5).

    Args:
        alpha: Beta concentration, > 0. Defaults to 1.0.
        num_classes, label_smoothing, data_format, seed: see `MixUp`.

    Example:

    >>> import keras, numpy as np
    >>> layer = GMix(num_classes=10, seed=0)
    >>> images = keras.random.uniform((8, 37, 53, 3), seed=0)
    >>> mixed_images, mixed_labels = layer((images, np.arange(8) % 10))
    """

    mask_function = staticmethod(gmix_mask)

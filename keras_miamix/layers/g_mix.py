import keras

from keras_miamix.layers.base_mix_layer import BetaMixLayer
from keras_miamix.ops.masks import gmix_mask


@keras.saving.register_keras_serializable(package="keras_miamix")
class GMix(BetaMixLayer):
    """GMix: the partner fills a Gaussian blob around a random centre.

    Park et al., "A Unified Analysis of Mixed Sample Data Augmentation: A Loss
    Function Perspective", NeurIPS 2022; MiAMix paper eq. 3-4. The paper's
    `sigma = sqrt(lam) N` gives the blob an area larger than the image for most
    lambdas, so the kernel follows the official code (naver-ai/hmix-gmix):
    `exp(-pi |p - c|^2 / ((1 - lam) H W))`, whose integral is the partner's
    share `(1 - lam) H W` (H * W instead of H^2 for non-square images). The
    anchor's mask is one minus the kernel; the label weight is the mask's
    mean, a little above lam where the blob is cut by the border.

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

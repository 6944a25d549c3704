import keras

from keras_miamix.layers.base_mix_layer import BetaMixLayer
from keras_miamix.ops.masks import cutmix_mask


@keras.saving.register_keras_serializable(package="keras_miamix")
class CutMix(BetaMixLayer):
    """CutMix: pastes a box of the partner into the anchor.

    Yun et al., "CutMix: Regularization Strategy to Train Strong Classifiers
    with Localizable Features", ICCV 2019. Per sample, lam ~ Beta(alpha, alpha)
    and the box is `H * sqrt(1 - lam)` by `W * sqrt(1 - lam)` around a uniform
    centre, clipped at the border (the official code). The label weight is the
    fraction of pixels actually kept from the anchor, computed *after*
    clipping, so it always matches the image.

    Args:
        alpha: Beta concentration, > 0. Defaults to 1.0.
        num_classes, label_smoothing, data_format, seed: see `MixUp`.

    Example:

    >>> import keras, numpy as np
    >>> layer = CutMix(num_classes=10, seed=0)
    >>> images = keras.random.uniform((8, 32, 32, 3), seed=0)
    >>> mixed = layer({"images": images, "labels": np.arange(8) % 10})
    >>> mixed["images"].shape
    TensorShape([8, 32, 32, 3])
    """

    mask_function = staticmethod(cutmix_mask)

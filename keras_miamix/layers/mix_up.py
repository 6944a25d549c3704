import keras

from keras_miamix.layers.base_mix_layer import BetaMixLayer
from keras_miamix.ops.masks import mixup_mask


@keras.saving.register_keras_serializable(package="keras_miamix")
class MixUp(BetaMixLayer):
    """MixUp: blends two images with a per-sample ratio lam ~ Beta(alpha, alpha).

    Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018. The
    mask is the constant lam; the label weight is its mean, lam. Every sample
    has its own lam and its own partner (a random permutation of the batch).
    The default alpha=1.0 is the MiAMix paper's setting.

    Args:
        alpha: Beta concentration, > 0. Defaults to 1.0.
        num_classes: needed for integer labels.
        label_smoothing: applied to the labels before mixing.
        data_format: "channels_last" or "channels_first".
        seed: integer seed for reproducible draws.

    Example:

    >>> import keras, numpy as np
    >>> layer = MixUp(alpha=1.0, num_classes=10, seed=0)
    >>> images = keras.random.uniform((8, 32, 32, 3), seed=0)
    >>> labels = np.arange(8) % 10
    >>> mixed_images, mixed_labels = layer((images, labels))
    >>> mixed_labels.shape
    TensorShape([8, 10])
    """

    mask_function = staticmethod(mixup_mask)

import keras

from keras_miamix.layers.base_mix_layer import BetaMixLayer
from keras_miamix.ops.masks import agmix_mask


@keras.saving.register_keras_serializable(package="keras_miamix")
class AGMix(BetaMixLayer):
    """AGMix: GMix with a random, rotated covariance (augmented GMix).

    Liang et al., "MiAMix", section 3.1. The Gaussian's covariance is
    `R [[1, q], [q, 1]] R^T` with `q ~ U(-max_correlation, max_correlation)`
    (the paper's U(-1, 1), kept a little inside so that the covariance stays
    invertible) and `R` a rotation by `theta ~ U(0, pi)`. The covariance is
    divided by `sqrt(1 - q^2)` (determinant one), so the kernel's area stays
    the smaller share `min(lam, 1 - lam) H W` whatever q and theta are (the
    project's method notes); the kernel, and which image is the blob, are
    otherwise GMix's official form.
    The label weight is the mask's mean.

    Args:
        alpha: Beta concentration, > 0. Defaults to 1.0.
        max_correlation: bound of |q|, in (0, 1). Defaults to 0.95.
        num_classes, label_smoothing, data_format, seed: see `MixUp`.

    Example:

    >>> import keras, numpy as np
    >>> layer = AGMix(num_classes=10, seed=0)
    >>> images = keras.random.uniform((8, 32, 32, 3), seed=0)
    >>> mixed_images, mixed_labels = layer((images, np.arange(8) % 10))
    """

    mask_function = staticmethod(agmix_mask)

    def __init__(self, alpha=1.0, max_correlation=0.95, **kwargs):
        super().__init__(alpha=alpha, **kwargs)
        if not 0.0 < max_correlation < 1.0:
            raise ValueError(
                "`max_correlation` must be in (0, 1); received "
                f"max_correlation={max_correlation!r}."
            )
        self.max_correlation = float(max_correlation)

    def mask_kwargs(self):
        return {"max_correlation": self.max_correlation}

    def get_config(self):
        config = super().get_config()
        config["max_correlation"] = self.max_correlation
        return config

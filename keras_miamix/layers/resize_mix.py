import keras

from keras_miamix.layers.base_mix_layer import BaseMixLayer
from keras_miamix.layers.base_mix_layer import check_range
from keras_miamix.ops.masks import resizemix_mask
from keras_miamix.ops.sampling import fold_seed
from keras_miamix.ops.sampling import sample_uniform


@keras.saving.register_keras_serializable(package="keras_miamix")
class ResizeMix(BaseMixLayer):
    """ResizeMix: pastes the whole partner, shrunk, into a box of the anchor.

    Qin et al., "ResizeMix: Mixing Data with Preserved Object Information and
    True Labels", 2020; follows OpenMixup's `resizemix`. Per sample the scale
    `tau ~ U(scope)` sets a box of `tau * H` by `tau * W` around a uniform
    centre, clipped at the border; the partner image is resized into the
    clipped box by nearest neighbour (the official default). The label weight
    is the fraction of anchor pixels left, `1 - box area / (H W)`.

    Args:
        scope: range (min, max) of tau, within (0, 1]. Defaults to (0.1, 0.8).
        num_classes, label_smoothing, data_format, seed: see `MixUp`.

    Example:

    >>> import keras, numpy as np
    >>> layer = ResizeMix(num_classes=10, seed=0)
    >>> images = keras.random.uniform((8, 32, 32, 3), seed=0)
    >>> mixed_images, mixed_labels = layer((images, np.arange(8) % 10))
    """

    def __init__(self, scope=(0.1, 0.8), **kwargs):
        super().__init__(**kwargs)
        self.scope = tuple(float(v) for v in check_range("scope", scope, 0.0, 1.0))

    def generate_masks(self, batch_size, height, width, seed):
        tau = sample_uniform([batch_size], fold_seed(seed, 1), self.scope[0], self.scope[1])
        masks, rows, cols = resizemix_mask(tau, height, width, fold_seed(seed, 2))
        return {"masks": masks, "lam": 1.0 - tau * tau, "source_rows": rows, "source_cols": cols}

    def get_config(self):
        config = super().get_config()
        config["scope"] = self.scope
        return config

import keras

from keras_miamix.layers.base_mix_layer import BetaMixLayer
from keras_miamix.layers.base_mix_layer import check_range
from keras_miamix.ops.masks import gridmix_mask


@keras.saving.register_keras_serializable(package="keras_miamix")
class GridMix(BetaMixLayer):
    """GridMix: a grid of partner holes inside a random crop of the anchor.

    Baek et al., "GridMix: Strong regularization through local context
    mapping", Pattern Recognition 2021; follows OpenMixup's `gridmix` with every
    random choice made per sample: a crop of `cut_area_ratio` of the image and
    aspect `cut_aspect_ratio`, `n_holes` cells across it, and in each cell a
    hole of `sqrt(1 - lam)` of the cell's sides filled from the partner. The
    label weight is the fraction of anchor pixels actually kept. Unlike the
    official code, a crop wider or taller than the image is clipped to it.

    Args:
        alpha: Beta concentration, > 0. Defaults to 1.0.
        n_holes: inclusive integer range of holes across the crop, >= 1.
            Defaults to (2, 6).
        hole_aspect_ratio: range of the cell's height / width. Defaults to
            (1.0, 1.0).
        cut_area_ratio: range of the crop's area as a fraction of the image,
            within (0, 1]. Defaults to (0.5, 1.0).
        cut_aspect_ratio: range of the crop's height / width. Defaults to
            (0.5, 2.0).
        num_classes, label_smoothing, data_format, seed: see `MixUp`.

    Example:

    >>> import keras, numpy as np
    >>> layer = GridMix(num_classes=10, seed=0)
    >>> images = keras.random.uniform((8, 32, 32, 3), seed=0)
    >>> mixed_images, mixed_labels = layer((images, np.arange(8) % 10))
    """

    mask_function = staticmethod(gridmix_mask)

    def __init__(
        self,
        alpha=1.0,
        n_holes=(2, 6),
        hole_aspect_ratio=(1.0, 1.0),
        cut_area_ratio=(0.5, 1.0),
        cut_aspect_ratio=(0.5, 2.0),
        **kwargs,
    ):
        super().__init__(alpha=alpha, **kwargs)
        self.n_holes = tuple(int(v) for v in check_range("n_holes", n_holes, 1, integer=True))
        self.hole_aspect_ratio = tuple(
            float(v) for v in check_range("hole_aspect_ratio", hole_aspect_ratio, 1e-6)
        )
        self.cut_area_ratio = tuple(
            float(v) for v in check_range("cut_area_ratio", cut_area_ratio, 1e-6, 1.0)
        )
        self.cut_aspect_ratio = tuple(
            float(v) for v in check_range("cut_aspect_ratio", cut_aspect_ratio, 1e-6)
        )

    def mask_kwargs(self):
        return {
            "n_holes": self.n_holes,
            "hole_aspect_ratio": self.hole_aspect_ratio,
            "cut_area_ratio": self.cut_area_ratio,
            "cut_aspect_ratio": self.cut_aspect_ratio,
        }

    def get_config(self):
        config = super().get_config()
        config.update(self.mask_kwargs())
        return config

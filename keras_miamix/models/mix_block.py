import math

import keras

from keras_miamix import backend as kb
from keras_miamix.backend import numpy as knp


@keras.saving.register_keras_serializable(package="keras_miamix")
class MixBlock(keras.layers.Layer):
    """AutoMix's Mix Block: a learned mixing mask from a pair's features.

    Liu et al., "AutoMix: Unveiling the Power of Mixup" (eq. 7-8) and
    "Unveiling the Power of Mixup for Stronger Classifiers" (eq. 4-5). The
    papers leave the direction of the attention open; this computes
    OpenMixup's `PixelMixBlock` with its AutoMix CIFAR settings (embedded
    Gaussian attention, one shared query convolution, no key convolution, no
    lambda multiplication), which settles it:

    * z_i = features of the anchor, z_j = features of its partner (with
      lambda, resp. 1 - lambda, concatenated as a constant channel when
      `lambda_concat=True`, the paper's eq. 4);
    * a shared 1x1 convolution `W_q` to C / 2 channels embeds both;
    * `P = softmax_j(W_q z_i (W_q z_j)^T / sqrt(C / 2))`, each anchor
      position attending over the partner's positions;
    * the value comes from the partner, `v = W_v z_j` (one channel);
    * the partner's weight is `sigmoid(upsample(P v))` (nearest upsampling to
      the image size), and the returned anchor mask is its complement,
      `1 - sigmoid(upsample(P v))`; mixing gives
      `x_i * mask + x_j * (1 - mask)`, OpenMixup's
      `x * (1 - mask_lam_) + x[idx] * mask_lam_`.

    The attention and its products are computed in float32 whatever the
    dtype policy (OpenMixup forces float32 there too: float16 overflows).
    Weights start from N(0, 0.01) with zero biases (OpenMixup's
    `init_weights(init_linear='normal')`), so the first masks are near 0.5.

    Args:
        reduction: channel reduction of the embedding. Defaults to 2.
        lambda_concat: concatenate lambda as a channel. Defaults to False
            (the official CIFAR configs).
        weight_decay: L2 factor on its two kernels (`keras.regularizers.l2`,
            so `weight_decay / 2` gives PyTorch's SGD `weight_decay`, which
            OpenMixup applies to the Mix Block as to every weight). Defaults
            to 0.
        decay_all_weights: decay the two biases too, as PyTorch's SGD does
            in OpenMixup. Defaults to False (kernels only).

    Call arguments:
        features: (B, h, w, C) feature maps.
        lam: scalar lambda (one per batch, as in AutoMix).
        partner_index: (B,) int32 partners.
        image_size: (H, W) of the mask.
    """

    def __init__(self, reduction=2, lambda_concat=False, weight_decay=0.0,
                 decay_all_weights=False, **kwargs):
        super().__init__(**kwargs)
        if int(reduction) != reduction or reduction < 1:
            raise ValueError(f"`reduction` must be an integer >= 1; received {reduction!r}.")
        self.reduction = int(reduction)
        self.lambda_concat = bool(lambda_concat)
        if not weight_decay >= 0:
            raise ValueError(f"`weight_decay` must be >= 0; received {weight_decay!r}.")
        self.weight_decay = float(weight_decay)
        self.decay_all_weights = bool(decay_all_weights)
        init = keras.initializers.RandomNormal(stddev=0.01)
        self._init = init

    def build(self, features_shape):
        channels = int(features_shape[-1])
        in_channels = channels + (1 if self.lambda_concat else 0)
        self.inter_channels = max(channels // self.reduction, 1)
        reg = keras.regularizers.l2(self.weight_decay) if self.weight_decay else None
        bias_reg = reg if self.decay_all_weights else None
        self.query = keras.layers.Dense(self.inter_channels, kernel_initializer=self._init,
                                        bias_initializer="zeros", kernel_regularizer=reg,
                                        bias_regularizer=bias_reg, name="query")
        self.value = keras.layers.Dense(1, kernel_initializer=self._init,
                                        bias_initializer="zeros", kernel_regularizer=reg,
                                        bias_regularizer=bias_reg, name="value")
        self.query.build((None, in_channels))
        self.value.build((None, in_channels))
        self.built = True

    def call(self, features, lam, partner_index, image_size):
        z = kb.convert(features)
        batch, h, w = kb.shape(z)[0], kb.shape(z)[1], kb.shape(z)[2]
        z_partner = kb.gather(z, partner_index)
        if self.lambda_concat:
            lam_map = knp.full((batch, h, w, 1), kb.cast(lam, z.dtype), dtype=z.dtype)
            z = knp.concatenate([z, lam_map], axis=-1)
            z_partner = knp.concatenate([z_partner, 1.0 - lam_map], axis=-1)
        z = knp.reshape(z, (batch, h * w, -1))
        z_partner = knp.reshape(z_partner, (batch, h * w, -1))
        q = kb.cast(self.query(z), "float32")  # anchor positions
        k = kb.cast(self.query(z_partner), "float32")  # partner positions
        logits = knp.matmul(q, knp.swapaxes(k, 1, 2)) / math.sqrt(self.inter_channels)
        attention = kb.nn.softmax(logits, axis=-1)  # over the partner's positions
        v = kb.cast(self.value(z_partner), "float32")  # (B, hw, 1), from the partner
        partner = knp.reshape(knp.matmul(attention, v), (batch, h, w, 1))
        return 1.0 - kb.nn.sigmoid(nearest_upsample(partner, image_size))

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction, "lambda_concat": self.lambda_concat,
                       "weight_decay": self.weight_decay,
                       "decay_all_weights": self.decay_all_weights})
        return config


def nearest_upsample(x, size):
    """Nearest-neighbour resize of (B, h, w, C) to `size` by gathering rows and
    columns (source index floor(i * h / H), PyTorch's 'nearest'). Unlike
    `tf.image.resize`, whose gradient op has no XLA kernel, it differentiates
    under `jit_compile=True`."""
    h, w = kb.shape(x)[1], kb.shape(x)[2]
    out_h, out_w = size[0], size[1]
    rows = (knp.arange(out_h, dtype="int32") * h) // out_h
    cols = (knp.arange(out_w, dtype="int32") * w) // out_w
    return kb.gather(kb.gather(x, rows, axis=1), cols, axis=2)


def mask_loss(mask, lam, weight, margin=0.1):
    """AutoMix's mask loss `weight * max(|mean(mask) - lam| - margin, 0)`, the
    mean taken over the whole batch (OpenMixup's L1 mode with margin 0.1)."""
    return weight * knp.maximum(knp.abs(knp.mean(mask) - lam) - margin, 0.0)

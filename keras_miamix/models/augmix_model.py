import keras

from keras_miamix import backend as kb
from keras_miamix.backend import numpy as knp
from keras_miamix.layers.aug_mix import AugMix
from keras_miamix.models.base_mix_trainer import BaseMixTrainer
from keras_miamix.ops.mixing import weighted_mean


def jensen_shannon(logits_clean, logits_aug1, logits_aug2, sample_weight=None):
    """The official AugMix consistency term (`cifar.py`): with p the softmax of
    each view and M = clamp((p_clean + p_aug1 + p_aug2) / 3, 1e-7, 1),
    `(KL(p_clean || M) + KL(p_aug1 || M) + KL(p_aug2 || M)) / 3`, each KL
    summed over classes and averaged over the batch (`batchmean`; weighted
    by `sample_weight` when given). Computed in float32."""
    probs = [kb.nn.softmax(kb.cast(z, "float32"), axis=-1)
             for z in (logits_clean, logits_aug1, logits_aug2)]
    log_mixture = knp.log(knp.clip((probs[0] + probs[1] + probs[2]) / 3.0, 1e-7, 1.0))

    def kl(p):
        # p log p with 0 log 0 = 0, as torch's kl_div.
        safe = knp.where(p > 0, p, 1.0)
        return knp.sum(knp.where(p > 0, p * (knp.log(safe) - log_mixture), 0.0), axis=-1)

    return weighted_mean((kl(probs[0]) + kl(probs[1]) + kl(probs[2])) / 3.0, sample_weight)


@keras.saving.register_keras_serializable(package="keras_miamix")
class AugMixModel(BaseMixTrainer):
    """Trains a classifier with AugMix and its Jensen-Shannon consistency loss.

    Hendrycks et al., ICLR 2020, as the official `cifar.py`: each step makes
    two AugMix views of the clean batch (on the device, with `augmix`),
    runs the classifier once on the three batches concatenated (so batch
    normalisation sees all three), and minimises the compiled loss on the
    clean logits plus `jsd_weight` (12, the official value) times the
    Jensen-Shannon divergence between the three predictions
    (`jensen_shannon`). With `jsd=False` it trains on one AugMix view only
    (the official `--no-jsd`). `evaluate` and `predict` run the classifier.

    Args:
        model: the classifier (images to logits).
        augmix: an `AugMix` layer (default: `AugMix()` with `num_classes`).
        jsd: whether to use the consistency loss. Defaults to True.
        jsd_weight: its weight, >= 0. Defaults to 12.
        num_classes: needed for integer labels.
        seed: the default `augmix`'s seed.

    Example:

    >>> import keras, numpy as np
    >>> import keras_miamix as km
    >>> net = km.models.cifar_resnet18(num_classes=10, width=8)
    >>> model = km.models.AugMixModel(net, num_classes=10, seed=0)
    >>> model.compile("sgd", keras.losses.CategoricalCrossentropy(from_logits=True))
    >>> x = keras.random.uniform((8, 32, 32, 3), maxval=255, seed=0)
    >>> history = model.fit(x, np.arange(8), epochs=1, verbose=0)
    """

    def __init__(self, model, augmix=None, jsd=True, jsd_weight=12.0, num_classes=None,
                 seed=None, **kwargs):
        if isinstance(augmix, dict):
            augmix = keras.saving.deserialize_keras_object(augmix)
        if augmix is None:
            augmix = AugMix(num_classes=num_classes, seed=seed)
        if not isinstance(augmix, AugMix):
            raise ValueError("`augmix` must be a keras_miamix AugMix layer; received "
                             f"{type(augmix).__name__}.")
        if not jsd_weight >= 0:
            raise ValueError(f"`jsd_weight` must be >= 0; received jsd_weight={jsd_weight!r}.")
        super().__init__(model, num_classes=num_classes or augmix.num_classes, **kwargs)
        self.augmix = augmix
        self.jsd = bool(jsd)
        self.jsd_weight = float(jsd_weight)
        self.seed = seed
        self._jsd_term = None

    def mixed_forward(self, x, y, sample_weight, training=True):
        first = self.augmix(x, training=True)
        if not self.jsd:
            return self.model(first, training=training), y, sample_weight
        second = self.augmix(x, training=True)
        clean = kb.cast(x, first.dtype)
        batch = kb.shape(x)[0]
        logits = self.model(knp.concatenate([clean, first, second], axis=0), training=training)
        z_clean, z_first, z_second = (logits[:batch], logits[batch:2 * batch],
                                      logits[2 * batch:])
        self._jsd_term = jensen_shannon(z_clean, z_first, z_second, sample_weight)
        return z_clean, y, sample_weight

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                    training=training)
        term, self._jsd_term = self._jsd_term, None
        if training and term is not None and self.jsd_weight:
            loss = loss + kb.cast(self.jsd_weight * term, loss.dtype)
        return loss

    def get_config(self):
        config = super().get_config()
        config.update({"augmix": keras.saving.serialize_keras_object(self.augmix),
                       "jsd": self.jsd, "jsd_weight": self.jsd_weight, "seed": self.seed})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["augmix"] = keras.saving.deserialize_keras_object(config["augmix"])
        return super().from_config(config)

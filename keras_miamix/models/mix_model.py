import keras

from keras_miamix import backend as kb
from keras_miamix.backend import numpy as knp
from keras_miamix.layers.base_mix_layer import BaseMixLayer
from keras_miamix.layers.base_mix_layer import seed_state_dtype
from keras_miamix.models.base_mix_trainer import BaseMixTrainer


@keras.saving.register_keras_serializable(package="keras_miamix")
class MixModel(BaseMixTrainer):
    """Wraps a classifier so that `fit` mixes every batch on the device.

    `train_step` calls the mixing layer (any layer of this package, MiAMix
    included) on `(images, labels, sample_weight)` inside the compiled step,
    then does the usual forward pass, the compiled loss on the mixed soft
    labels (with the mixed sample weights), gradients, the optimizer step and
    the metrics. `evaluate` and `predict` use the wrapped model unchanged.

    Compile it with a categorical loss, e.g.
    `keras.losses.CategoricalCrossentropy(from_logits=True)`: labels are
    one-hot rows after mixing (integer labels are converted with the mixer's
    `num_classes`, in evaluation too).

    Args:
        model: the classifier to train.
        mixer: a mixing layer of `keras_miamix.layers`.
        mixup_off_epoch: optional epoch (0-based) from which mixing stops, for
            the last epochs of training (timm's `mixup_off_epoch`). Applied
            through a variable set at each epoch's start, so the compiled step
            is not traced again.

    Example:

    >>> import keras, numpy as np
    >>> import keras_miamix as km
    >>> net = km.models.cifar_resnet18(num_classes=10, width=8)
    >>> model = km.models.MixModel(net, km.CutMix(num_classes=10, seed=0))
    >>> model.compile("adam", keras.losses.CategoricalCrossentropy(from_logits=True))
    >>> x = keras.random.uniform((8, 32, 32, 3), seed=0)
    >>> history = model.fit(x, np.arange(8), epochs=1, verbose=0)
    """

    def __init__(self, model, mixer, mixup_off_epoch=None, **kwargs):
        if isinstance(mixer, dict):
            mixer = keras.saving.deserialize_keras_object(mixer)
        if not isinstance(mixer, BaseMixLayer):
            raise ValueError(
                "`mixer` must be a mixing layer of keras_miamix.layers; received "
                f"{type(mixer).__name__}."
            )
        if mixup_off_epoch is not None and (int(mixup_off_epoch) != mixup_off_epoch
                                            or mixup_off_epoch < 0):
            raise ValueError(
                "`mixup_off_epoch` must be a non-negative integer or None; received "
                f"mixup_off_epoch={mixup_off_epoch!r}."
            )
        kwargs.setdefault("num_classes", mixer.num_classes)
        super().__init__(model, **kwargs)
        self.mixer = mixer
        self.mixup_off_epoch = None if mixup_off_epoch is None else int(mixup_off_epoch)
        self.epoch = self.add_weight(
            shape=(), dtype=seed_state_dtype(), initializer="zeros", trainable=False,
            name="epoch"
        )

    def mixed_forward(self, x, y, sample_weight, training=True):
        # Without sample weights, mix weights of one (mixing leaves them one).
        sw = knp.ones(kb.shape(y)[:1]) if sample_weight is None else sample_weight

        def mixed():
            return self.mixer((x, y, sw), training=True)

        def clean():
            return (kb.cast(x, self.mixer.compute_dtype), y,
                    kb.cast(knp.reshape(sw, (-1,)), "float32"))

        if self.mixup_off_epoch is None:
            xm, ym, swm = mixed()
        elif kb.is_tensorflow():
            xm, ym, swm = kb.cond(self.epoch < self.mixup_off_epoch, mixed, clean)
        else:
            # JAX cannot update the mixer's random state inside a traced
            # branch: mix always and select (a blend costs little).
            on = self.epoch < self.mixup_off_epoch
            xm, ym, swm = (knp.where(on, a, b) for a, b in zip(mixed(), clean()))
        return self.model(xm, training=training), ym, swm

    def fit(self, *args, callbacks=None, **kwargs):
        callbacks = list(callbacks or []) + [_EpochVariable(self.epoch)]
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["mixer"] = keras.saving.serialize_keras_object(self.mixer)
        config["mixup_off_epoch"] = self.mixup_off_epoch
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["mixer"] = keras.saving.deserialize_keras_object(config["mixer"])
        return super().from_config(config)


class _EpochVariable(keras.callbacks.Callback):
    """Writes the current epoch into a model variable (no retracing)."""

    def __init__(self, variable):
        super().__init__()
        self.variable = variable

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(epoch)

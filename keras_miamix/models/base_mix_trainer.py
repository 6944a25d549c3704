"""Shared train/test steps of the models that mix inside `train_step`."""

import keras
import tensorflow as tf
from keras.src.losses.loss import unscale_loss_for_distribution
from keras.src.trainers.data_adapters import data_adapter_utils

from keras_miamix.ops.mixing import prepare_labels


class BaseMixTrainer(keras.Model):
    """A model wrapper whose `train_step` mixes the batch on the device.

    Subclasses implement `mixed_forward(x, y, sample_weight, training)` that
    returns `(y_pred, y_mixed, sample_weight_mixed)`. This class does the rest
    the way Keras' own `train_step` does: the compiled loss on the mixed soft
    labels (scaled for `tf.distribute`), gradients of the wrapped model's
    weights, the optimizer step and the compiled metrics. `evaluate` and
    `predict` run the wrapped model unchanged; integer labels are turned into
    one-hot rows with `num_classes` in both, so one categorical loss serves.

    Args:
        model: the classifier (images to logits or probabilities).
        num_classes: needed for integer labels.
    """

    def __init__(self, model, num_classes=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(model, keras.Model):
            raise ValueError(
                f"`model` must be a keras.Model; received {type(model).__name__}."
            )
        self.model = model
        self.num_classes = num_classes
        if model.built:
            self.built = True

    def call(self, inputs, training=False):
        return self.model(inputs, training=training)

    def _labels(self, y):
        return prepare_labels(y, self.num_classes)

    # Keras also calls these outside train/test_step (e.g. the symbolic build
    # under tf.distribute) with the raw labels: convert them there too.
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y is not None:
            y = self._labels(y)
        return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                    training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if y is not None:
            y = self._labels(y)
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def mixed_forward(self, x, y, sample_weight, training=True):
        raise NotImplementedError

    def train_step(self, data):
        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        if y is None:
            raise ValueError(f"{type(self).__name__} needs labels to train.")
        y = self._labels(y)
        with tf.GradientTape() as tape:
            y_pred, y_mixed, sw_mixed = self.mixed_forward(x, y, sample_weight, training=True)
            loss = self._compute_loss(
                x=x, y=y_mixed, y_pred=y_pred, sample_weight=sw_mixed, training=True
            )
            self._loss_tracker.update_state(
                unscale_loss_for_distribution(loss), sample_weight=tf.shape(y_mixed)[0]
            )
            if self.optimizer is not None:
                loss = self.optimizer.scale_loss(loss)
        variables = self.trainable_weights
        grads = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        return self.compute_metrics(x, y_mixed, y_pred, sample_weight=sw_mixed)

    def test_step(self, data):
        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        y = self._labels(y)
        y_pred = self(x, training=False)
        loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                  training=False)
        self._loss_tracker.update_state(
            unscale_loss_for_distribution(loss), sample_weight=tf.shape(y)[0]
        )
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def get_config(self):
        return {
            "name": self.name,
            "model": keras.saving.serialize_keras_object(self.model),
            "num_classes": self.num_classes,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)


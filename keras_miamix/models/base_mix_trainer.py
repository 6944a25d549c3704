"""Shared train/test steps of the models that mix inside `train_step`."""

import keras
from keras.src.losses.loss import unscale_loss_for_distribution
from keras.src.trainers.data_adapters import data_adapter_utils

from keras_miamix.ops.mixing import prepare_labels


class DistributedBuildMixin:
    """Builds the model from one replica's first batch under `tf.distribute`.

    Before training, Keras 3.15 (`TensorFlowTrainer._maybe_symbolic_build`)
    averages the first distributed batch with `strategy.reduce("MEAN", batch)`
    on the whole nest of inputs, labels and weights, only to read its shapes.
    `MultiWorkerMirroredStrategy`'s collective reduce refuses a nest
    ("Attempt to convert a value (PerReplica ...) to a Tensor"), so `fit` failed
    before its first step with two workers. The first replica's local batch
    has the same shapes and needs no communication.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is None or getattr(self, "_distribute_strategy", None) is None:
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        import tensorflow as tf  # a strategy is TensorFlow's

        strategy = self.distribute_strategy
        for _, _, it in iterator:
            batch = next(it)
            break
        else:
            return super()._maybe_symbolic_build(data_batch=data_batch)

        def local(value):
            if isinstance(value, tf.distribute.DistributedValues):
                return strategy.experimental_local_results(value)[0]
            return value

        return super()._maybe_symbolic_build(data_batch=tf.nest.map_structure(local, batch))

    def _reducible_logs(self, logs):
        """The step's logs, as Keras can average them across workers.

        With several workers Keras 3.15 averages each log with
        `strategy.reduce("MEAN", value, axis=0)`, which fails on the scalars
        every `train_step` returns ("Invalid reduction dimension 0 for input
        with 0 dimensions"; tensorflow/tensorflow#72388). As one-element
        vectors they average to the same scalars. Elsewhere logs are unchanged.
        """
        if keras.backend.backend() != "tensorflow":
            return logs
        import tensorflow as tf

        strategy = tf.distribute.get_strategy()
        if not (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
                and strategy.extended._in_multi_worker_mode()):
            return logs
        return tf.nest.map_structure(
            lambda v: tf.reshape(v, [1]) if tf.is_tensor(v) and v.shape.rank == 0 else v, logs)


def stateless_run(fn, *mappings, updated=()):
    """Runs `fn`, which reads and assigns Keras variables as any Keras code
    does, as a pure function of their values (JAX's stateless trainers).

    Each mapping is a pair (variables, values): inside `fn` the variables
    read as those values and their assignments are recorded instead of
    applied. Returns `fn`'s output and, for each list of variables in
    `updated`, their values after it (the given value, or the variable's own,
    where `fn` assigned none).
    """
    state_mapping = [pair for variables, values in mappings
                     for pair in zip(variables, values)]
    given = {id(variable): value for variable, value in state_mapping}
    with keras.StatelessScope(state_mapping=state_mapping) as scope:
        output = fn()

    def after(variable):
        value = scope.get_current_value(variable)
        if value is None:
            value = given.get(id(variable), variable.value)
        return value

    return output, tuple([after(v) for v in variables] for variables in updated)


class BaseMixTrainer(DistributedBuildMixin, keras.Model):
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

    def train_step(self, *args):
        """One mixed training step, in the form each backend's trainer calls:
        `train_step(data)` on TensorFlow and PyTorch, the stateless
        `train_step(state, data)` on JAX."""
        backend_name = keras.backend.backend()
        if backend_name == "jax":
            return self._train_step_jax(*args)
        if backend_name == "torch":
            return self._train_step_torch(*args)
        return self._train_step_tf(*args)

    def _unpack_train_data(self, data):
        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        if y is None:
            raise ValueError(f"{type(self).__name__} needs labels to train.")
        return x, self._labels(y), sample_weight

    def _train_step_tf(self, data):
        import tensorflow as tf

        x, y, sample_weight = self._unpack_train_data(data)
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
        return self._reducible_logs(
            self.compute_metrics(x, y_mixed, y_pred, sample_weight=sw_mixed))

    def _train_step_torch(self, data):
        """Keras' PyTorch `train_step`, with the mixed forward pass and the
        mixed labels in the loss and the metrics."""
        import torch

        x, y, sample_weight = self._unpack_train_data(data)
        self.zero_grad()
        y_pred, y_mixed, sw_mixed = self.mixed_forward(x, y, sample_weight, training=True)
        loss = self._compute_loss(x=x, y=y_mixed, y_pred=y_pred, sample_weight=sw_mixed,
                                  training=True)
        self._loss_tracker.update_state(loss, sample_weight=y_mixed.shape[0])
        if self.optimizer is not None:
            loss = self.optimizer.scale_loss(loss)
        trainable = self.trainable_weights[:]
        if trainable:
            loss.backward()
            grads = [v.value.grad for v in trainable]
            with torch.no_grad():
                self.optimizer.apply(grads, trainable)
        return self.compute_metrics(x, y_mixed, y_pred, sample_weight=sw_mixed)

    def _train_step_jax(self, state, data):
        """Keras' stateless JAX `train_step`: the mixed forward pass and the
        loss run over the step's variable values (`stateless_run`: the
        mixer's random state and the model's batch statistics come out as new
        non-trainable values), `jax.value_and_grad` differentiates it, and the
        optimizer and metrics are applied statelessly."""
        import jax

        trainable, non_trainable, optimizer_vars, metrics_vars = state
        x, y, sample_weight = self._unpack_train_data(data)

        def loss_fn(trainable_values, non_trainable_values):
            def forward():
                y_pred, y_mixed, sw_mixed = self.mixed_forward(
                    x, y, sample_weight, training=True)
                loss = self._compute_loss(x=x, y=y_mixed, y_pred=y_pred,
                                          sample_weight=sw_mixed, training=True)
                scaled = self.optimizer.scale_loss(loss) if self.optimizer else loss
                return scaled, (loss, y_pred, y_mixed, sw_mixed)

            (scaled, aux), (new_non_trainable,) = stateless_run(
                forward,
                (self.trainable_variables, trainable_values),
                (self.non_trainable_variables, non_trainable_values),
                (self.optimizer.variables, optimizer_vars),
                updated=(self.non_trainable_variables,))
            return scaled, (aux, new_non_trainable)

        (_, (aux, non_trainable)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            trainable, non_trainable)
        unscaled, y_pred, y_mixed, sw_mixed = aux
        trainable, optimizer_vars = self.optimizer.stateless_apply(
            optimizer_vars, grads, trainable)
        logs, metrics_vars = self._update_metrics_variables(
            metrics_vars, unscaled, x, y_mixed, y_pred, sw_mixed)
        return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)

    def test_step(self, *args):
        """Keras' own `test_step` off TensorFlow (`compute_loss` and
        `compute_metrics` turn class indices into one-hot rows); on
        TensorFlow the same with the loss reduced for `tf.distribute`."""
        if keras.backend.backend() != "tensorflow":
            return super().test_step(*args)
        import tensorflow as tf

        (data,) = args
        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        y = self._labels(y)
        y_pred = self(x, training=False)
        loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                  training=False)
        self._loss_tracker.update_state(
            unscale_loss_for_distribution(loss), sample_weight=tf.shape(y)[0]
        )
        return self._reducible_logs(
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight))

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


import math

import keras
from keras.src.trainers.compile_utils import MetricsList
from keras.src.trainers.data_adapters import data_adapter_utils

from keras_miamix import backend as kb
from keras_miamix.backend import numpy as knp
from keras_miamix.layers.base_mix_layer import add_seed_state
from keras_miamix.layers.base_mix_layer import next_seed
from keras_miamix.models.base_mix_trainer import DistributedBuildMixin
from keras_miamix.models.base_mix_trainer import stateless_run
from keras_miamix.models.mix_block import MixBlock
from keras_miamix.models.mix_block import mask_loss
from keras_miamix.ops.masks import cutmix_mask
from keras_miamix.ops.masks import mixup_mask
from keras_miamix.ops.mixing import mix_batch
from keras_miamix.ops.mixing import mix_labels
from keras_miamix.ops.mixing import prepare_labels
from keras_miamix.ops.sampling import fold_seed
from keras_miamix.ops.sampling import random_permutation
from keras_miamix.ops.sampling import sample_beta
from keras_miamix.ops.sampling import sample_uniform


def momentum_schedule(step, total_steps, base=0.999, end=0.999999, warmup_fraction=0.1):
    """EMA momentum of AutoMix's teacher at a (0-based) step, in the graph.

    OpenMixup's `CosineScheduleHook` with constant warm-up: `base` for the first
    `warmup_fraction` of the steps, then
    `end - (end - base) * (cos(pi * t / T) + 1) / 2`, reaching `end` at T.
    """
    t = kb.cast(step, "float32")
    total = knp.maximum(kb.cast(total_steps, "float32"), 1.0)
    cosine = end - (end - base) * (knp.cos(math.pi * knp.minimum(t / total, 1.0)) + 1.0) / 2.0
    return knp.where(t < warmup_fraction * total, kb.convert(base, "float32"), cosine)


def mixed_cross_entropy(y, logits, lam, partner_index, from_logits=True):
    """`lam * CE(y_i) + (1 - lam) * CE(y_j)` per sample, one lambda per batch."""
    ce = keras.losses.categorical_crossentropy
    return lam * ce(y, logits, from_logits=from_logits) + (1.0 - lam) * ce(
        kb.gather(y, partner_index), logits, from_logits=from_logits)


@keras.saving.register_keras_serializable(package="keras_miamix")
class AutoMix(DistributedBuildMixin, keras.Model):
    """AutoMix: mixup with masks learned by a Mix Block and a momentum teacher.

    Liu et al., "AutoMix: Unveiling the Power of Mixup" (ECCV 2022) and
    "Unveiling the Power of Mixup for Stronger Classifiers"; where the papers
    leave a detail open this follows OpenMixup's `AutoMixup` and
    `PixelMixBlock` (Westlake-AI/openmixup). Each `train_step`:

    1. two lambdas ~ Beta(alpha, alpha) (one per batch for each branch, as the
       official code) and two permutations;
    2. the teacher runs its whole forward on the clean batch (so all of its
       BatchNorm layers see clean batches, as in the official code) and its
       features at `feature_layer` feed the Mix Block twice;
    3. the first mask, with gradients, mixes a batch for the teacher, whose
       mixed cross-entropy (with the sampled lambda) trains only the Mix Block,
       plus the mask loss `gamma * max(|mean(mask) - lambda| - 0.1, 0)`;
    4. the second mask, without gradients (replaced by plain mixup when lambda
       is within `lam_margin` of 0 or 1), mixes a batch for the student, whose
       loss is the cross-entropy of the clean batch plus the mixed
       cross-entropy of that mixed batch;
    5. one optimizer step on the student and the Mix Block, then the EMA
       `teacher = m * teacher + (1 - m) * student` for every trainable weight,
       with m on OpenMixup's cosine schedule at the step just taken (0-based:
       the first update uses `momentum`), computed in the graph.

    Sample weights weight each sample's cross-entropy (the mixed ones by the
    mixed weights); the student's and the Mix Block's regularisation losses
    (kernel L2) are added to the total. Under `mixed_float16` the networks
    compute in float16 while masks, mixing and losses stay in float32, with
    Keras's loss scaling. Two heads by default, as OpenMixup's
    `head_one`/`head_mix` in its CIFAR configs (`separate_heads=False`: one
    head for the clean and the mixed batches, the papers' description).
    Neither paper ablates the heads: the arXiv version's Table 9 ablates the
    momentum pipeline and the clean-batch ("Onehot") loss.

    `head_one_mix=True` is OpenMixup's option of that name ("further
    enhancing AutoMix", off in its CIFAR configs): the student's clean-batch
    cross-entropy of step 4 is taken on a batch mixed by MixUp
    (Beta(0.8, 0.8)) or CutMix (Beta(1, 1)), one of the two per batch with
    equal chance, against the mixed labels. OpenMixup draws one lambda and
    one box per batch; here each sample draws its own lambda, box and
    partner (one permutation), like the package's layers, and its label
    weight is the fraction of its own pixels kept. The training "accuracy" is
    then the student's on that mixed batch (against the larger label).

    The teacher starts as an exact copy of the student and is never in the
    optimizer; it stays `trainable` so that its BatchNorm layers use batch
    statistics in the teacher forward passes, like the official code (a Keras
    BatchNormalization with `trainable=False` would use its moving statistics
    instead). `gamma` stays at `mask_loss_weight` (0.1) all through training, as
    in OpenMixup's CIFAR configs (`mask_loss=0.1`, no schedule);
    `mask_loss_schedule="linear"` decreases it linearly to 0 instead, the AAAI
    paper's description (eq. 6). The Mix Block's kernels take
    `mix_block_weight_decay`, and its biases too with
    `mix_block_decay_all_weights` (OpenMixup's SGD decays every weight; the
    `keras-miamix` trainer passes the classifier's settings, by default for
    AutoMix OpenMixup's 1e-4 on every weight with PyTorch's BatchNorm
    constants: `training.methods.METHOD_SETTINGS`). The regularisation added
    to the loss is that of every optimised weight: the student, its mixed
    head and the Mix Block.

    The schedules need the length of training. `fit` reads it from Keras
    (below); anywhere else (`train_on_batch`, a custom loop calling
    `train_step`) pass `total_steps=`, or a `ValueError` says so: without it
    the momentum would sit at its end value and gamma at 0 from the first
    step.

    `call` and `predict` use the teacher (backbone and head); `evaluate`
    reports "accuracy" (the teacher's) and "student_accuracy", so
    `ModelCheckpoint`/`EarlyStopping(monitor="val_accuracy")` watch the
    network that is used. `compile` takes the optimizer only.

    The momentum schedule is OpenMixup's, per optimizer step, for its CIFAR
    runs of 500 steps an epoch. With far fewer steps an epoch the teacher
    averages over far more epochs and lags the student: with 65 steps an
    epoch, 85% of the final teacher predates epoch 150 of 200. To keep the
    official horizon in epochs, raise both momenta to the power
    `r = 500 / steps_per_epoch`: `momentum=0.999 ** r`,
    `momentum_end=0.999999 ** r`.
    On 4,153 CIFAR-10 images with `head_one_mix=True` (README, "Accuracy on
    real CIFAR-10 images") that put the teacher about 2 points above its
    student over the last 20 epochs, where the per-step one was below it; its
    test accuracy rose by 0.9 (one seed), to the default's level.

    Args:
        backbone: a functional classifier (images to logits), the student; a
            copy of it becomes the teacher.
        feature_layer: name of the layer whose output feeds the Mix Block.
            Defaults to "stage3" (`cifar_resnet18`'s third stage).
        num_classes: needed for integer labels.
        alpha: Beta concentration. Defaults to 2.0.
        momentum: base EMA momentum. Defaults to 0.999.
        momentum_end: final EMA momentum. Defaults to 0.999999.
        momentum_warmup: fraction of the steps with constant momentum.
            Defaults to 0.1.
        mask_loss_weight: gamma at the start. Defaults to 0.1.
        mask_loss_schedule: "constant" (OpenMixup's CIFAR configs) or
            "linear" (to 0 over training, the AAAI paper). Defaults to
            "constant".
        mask_loss_margin: margin of the mask loss. Defaults to 0.1.
        lam_margin: plain mixup for the student when lambda is within this of 0
            or 1. Defaults to 0.08.
        lambda_concat: the Mix Block's lambda channel. Defaults to False.
        reduction: the Mix Block's channel reduction. Defaults to 2.
        separate_heads: OpenMixup's separate heads: a second head (a fresh
            copy of the backbone's last layer) classifies the mixed batches,
            the student's for its mixed loss and the teacher's (its EMA) for
            the Mix Block's loss, while the original head learns from the clean
            batches and is the one `predict` uses. Defaults to True,
            OpenMixup's CIFAR configs; False: one head for both, the papers'
            description.
        head_one_mix: the student's clean-batch loss on a batch mixed by
            MixUp or CutMix instead (OpenMixup's `head_one_mix`; see above).
            Defaults to False, the official CIFAR setting.
        mix_block_weight_decay: L2 factor on the Mix Block's kernels (see
            `MixBlock`). Defaults to 0.
        mix_block_decay_all_weights: decay its biases too (`MixBlock`'s
            `decay_all_weights`, PyTorch's SGD on every weight). Defaults to
            False.
        total_steps: optimizer steps of the whole training, for the
            schedules; when None each `fit` reads it from Keras (see `fit`),
            and outside `fit` it is required.
        from_logits: whether the backbone outputs logits. Defaults to True.
        seed: integer seed.

    Example:

    >>> import keras, numpy as np
    >>> import keras_miamix as km
    >>> net = km.models.cifar_resnet18(num_classes=10, width=8)
    >>> model = km.models.AutoMix(net, feature_layer="stage3", num_classes=10, seed=0)
    >>> model.compile(optimizer="sgd")
    >>> x = keras.random.uniform((8, 32, 32, 3), seed=0)
    >>> history = model.fit(x, np.arange(8), epochs=1, verbose=0)
    """

    def __init__(
        self,
        backbone,
        feature_layer="stage3",
        num_classes=None,
        alpha=2.0,
        momentum=0.999,
        momentum_end=0.999999,
        momentum_warmup=0.1,
        mask_loss_weight=0.1,
        mask_loss_schedule="constant",
        mask_loss_margin=0.1,
        lam_margin=0.08,
        lambda_concat=False,
        reduction=2,
        separate_heads=True,
        head_one_mix=False,
        mix_block_weight_decay=0.0,
        mix_block_decay_all_weights=False,
        total_steps=None,
        from_logits=True,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        if not isinstance(backbone, keras.Model) or not hasattr(backbone, "inputs"):
            raise ValueError("`backbone` must be a functional keras.Model (images to logits).")
        try:
            backbone.get_layer(feature_layer)
        except ValueError:
            raise ValueError(
                f"`feature_layer` {feature_layer!r} is not a layer of the backbone; "
                f"its layers are {[layer.name for layer in backbone.layers]}."
            ) from None
        if not alpha > 0:
            raise ValueError(f"`alpha` must be positive; received alpha={alpha!r}.")
        if not 0 <= momentum <= momentum_end <= 1:
            raise ValueError(
                "Need 0 <= momentum <= momentum_end <= 1; received "
                f"momentum={momentum!r}, momentum_end={momentum_end!r}."
            )
        if mask_loss_schedule not in ("linear", "constant"):
            raise ValueError(
                "`mask_loss_schedule` must be 'linear' or 'constant'; received "
                f"{mask_loss_schedule!r}."
            )
        if not 0 <= lam_margin < 0.5:
            raise ValueError(f"`lam_margin` must be in [0, 0.5); received {lam_margin!r}.")
        self.feature_layer = feature_layer
        self.num_classes = num_classes
        self.alpha = float(alpha)
        self.momentum = float(momentum)
        self.momentum_end = float(momentum_end)
        self.momentum_warmup = float(momentum_warmup)
        self.mask_loss_weight = float(mask_loss_weight)
        self.mask_loss_schedule = mask_loss_schedule
        self.mask_loss_margin = float(mask_loss_margin)
        self.lam_margin = float(lam_margin)
        self.lambda_concat = bool(lambda_concat)
        self.reduction = int(reduction)
        self.from_logits = bool(from_logits)
        self.seed = seed

        self.student = backbone
        self.teacher = keras.models.clone_model(backbone)
        self.teacher.set_weights(backbone.get_weights())
        self.separate_heads = bool(separate_heads)
        self.head_one_mix = bool(head_one_mix)
        if self.separate_heads:
            self.student_mix, self.student_head_mix = _with_second_head(self.student)
            self._teacher_mix, self.teacher_head_mix = _with_second_head(self.teacher)
            self.teacher_head_mix.set_weights(self.student_head_mix.get_weights())
        self._teacher_features = keras.Model(
            self.teacher.inputs, layer_output(self.teacher, feature_layer))
        # One whole forward of the teacher on the clean batch (as OpenMixup):
        # its later BatchNorm layers then see clean batches too.
        self._teacher_both = keras.Model(
            self.teacher.inputs, [layer_output(self.teacher, feature_layer),
                                  self.teacher.outputs[0]])
        self.mix_block = MixBlock(reduction=reduction, lambda_concat=lambda_concat,
                                  weight_decay=mix_block_weight_decay,
                                  decay_all_weights=mix_block_decay_all_weights,
                                  name="mix_block")
        self.mix_block.build(self._teacher_features.output.shape)
        self.seed_state = add_seed_state(self, seed)
        self.total_steps = self.add_weight(shape=(), dtype="int64", trainable=False,
                                           initializer=keras.initializers.Constant(
                                               total_steps or 0), name="total_steps")
        self._fixed_total_steps = total_steps
        if total_steps is not None and (int(total_steps) != total_steps or total_steps < 1):
            raise ValueError("`total_steps` must be a positive integer or None; received "
                             f"total_steps={total_steps!r}.")
        self._schedule_known = total_steps is not None
        self._trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("loss", "loss_student", "loss_mix_block", "mask_loss", "momentum")
        }
        # "accuracy": the student's on clean batches in training, the
        # teacher's (the network `predict` uses) in evaluation.
        self._train_acc = keras.metrics.CategoricalAccuracy(name="accuracy")
        self._student_acc = keras.metrics.CategoricalAccuracy(name="student_accuracy")
        # In a MetricsList, the list Keras's callbacks search to learn that
        # "val_accuracy" is to be maximised (ModelCheckpoint, EarlyStopping).
        self._accuracies = _Accuracies([self._train_acc, self._student_acc], name="accuracies")
        self.built = True

    # Only the student and the Mix Block are optimised. The teacher stays
    # `trainable` (for batch-statistics BatchNorm) but is listed with the
    # non-trainable weights, so neither the optimizer nor the trainer sees it.
    def _optimized(self):
        heads = self.student_head_mix.trainable_weights if self.separate_heads else []
        return self.student.trainable_weights + heads + self.mix_block.trainable_weights

    @property
    def trainable_weights(self):
        return self._optimized()

    @property
    def trainable_variables(self):
        return self._optimized()

    @property
    def non_trainable_weights(self):
        ids = {id(v) for v in self._optimized()}
        return [v for v in self.weights if id(v) not in ids]

    @property
    def non_trainable_variables(self):
        ids = {id(v) for v in self._optimized()}
        return [v for v in self.variables if id(v) not in ids]

    @property
    def metrics(self):
        return list(self._trackers.values()) + [self._accuracies]

    def call(self, inputs, training=False):
        return self.teacher(inputs, training=training)

    # ----------------------------------------------------------------- steps
    def sample_step_randomness(self, batch_size):
        """Lambdas (mix block branch, student branch) and two permutations."""
        seed = next_seed(self.seed_state)
        lam = sample_beta([2], self.alpha, self.alpha, fold_seed(seed, 1))
        return (lam[0], lam[1], random_permutation(batch_size, fold_seed(seed, 2)),
                random_permutation(batch_size, fold_seed(seed, 3)))

    # OpenMixup's `forward_q` with `head_one_mix`: mixup(x, y, 0.8) or
    # cutmix(x, y, 1.0), each with chance 1/2.
    ONE_MIX_ALPHAS = {"mixup": 0.8, "cutmix": 1.0}

    def mix_one_batch(self, x, y, sample_weight, seed):
        """The batch of the student's "one" loss under `head_one_mix`: x
        mixed by MixUp or CutMix (one choice per batch, so only the chosen
        mask is computed), with the mixed labels and sample weights. Returns
        (images, labels, sample_weight)."""
        batch, height, width = kb.shape(x)[:3]
        partners = random_permutation(batch, fold_seed(seed, 5))

        def mixed(mask_fn, method, salt):
            alpha = self.ONE_MIX_ALPHAS[method]
            lam = sample_beta([batch], alpha, alpha, fold_seed(seed, salt))
            out = mix_batch(x, mask_fn(lam, height, width, fold_seed(seed, 4)), partners,
                            labels=y, sample_weight=sample_weight)
            return out["images"], out["labels"], out["sample_weight"]

        return kb.cond(sample_uniform([], fold_seed(seed, 3)) < 0.5,
                       lambda: mixed(mixup_mask, "mixup", 1),
                       lambda: mixed(cutmix_mask, "cutmix", 2))

    def mask_loss_gamma(self, step):
        if self.mask_loss_schedule == "constant":
            return kb.convert(self.mask_loss_weight, "float32")
        total = knp.maximum(kb.cast(self.total_steps.value, "float32"), 1.0)
        progress = kb.cast(step, "float32") / total
        return self.mask_loss_weight * knp.maximum(1.0 - progress, 0.0)

    def compute_losses(self, x, y, lam_mb, lam_bb, idx_mb, idx_bb, step, sample_weight=None,
                       one_seed=None):
        """The three losses of one step (all per-replica means) and the masks.

        With `sample_weight`, each sample's cross-entropy is weighted, the
        mixed ones by `lam * w_i + (1 - lam) * w_j` (how `MixModel` mixes
        them), before the mean over the batch. With `head_one_mix`, the
        student's "one" loss takes `mix_one_batch(..., one_seed)` in place of
        the clean batch."""
        if sample_weight is None:
            sample_weight = knp.ones(kb.shape(x)[:1], dtype="float32")
        sw = knp.reshape(kb.cast(sample_weight, "float32"), (-1,))
        x_one, y_one, sw_one = (self.mix_one_batch(x, y, sw, one_seed) if self.head_one_mix
                                else (x, y, sw))
        size = kb.shape(x)[1:3]
        # Under a mixed-precision policy the networks compute in float16; the
        # masks, the mixing and every loss stay in float32.
        features, _ = self._teacher_both(x, training=True)
        features = keras.ops.stop_gradient(features)
        mask_mb = kb.cast(self.mix_block(features, lam_mb, idx_mb, image_size=size), "float32")
        mask_bb = keras.ops.stop_gradient(
            kb.cast(self.mix_block(features, lam_bb, idx_bb, image_size=size), "float32"))
        near_edge = knp.logical_or(lam_bb < self.lam_margin, lam_bb > 1.0 - self.lam_margin)
        mask_bb = knp.where(near_edge, knp.full_like(mask_bb, lam_bb), mask_bb)
        x_mb = mix_batch(x, mask_mb, idx_mb)["images"]
        x_bb = mix_batch(x, mask_bb, idx_bb)["images"]
        teacher_mix = self._teacher_mix if self.separate_heads else self.teacher
        logits_k = kb.cast(teacher_mix(x_mb, training=True), "float32")
        loss_mb = knp.mean(mix_labels(sw, lam_mb, idx_mb) * mixed_cross_entropy(
            y, logits_k, lam_mb, idx_mb, self.from_logits))
        loss_mask = mask_loss(mask_mb, lam_mb, self.mask_loss_gamma(step), self.mask_loss_margin)
        logits_one = kb.cast(self.student(x_one, training=True), "float32")
        student_mix = self.student_mix if self.separate_heads else self.student
        logits_mix = kb.cast(student_mix(x_bb, training=True), "float32")
        loss_one = knp.mean(sw_one * keras.losses.categorical_crossentropy(
            y_one, logits_one, from_logits=self.from_logits))
        loss_mix = knp.mean(mix_labels(sw, lam_bb, idx_bb) * mixed_cross_entropy(
            y, logits_mix, lam_bb, idx_bb, self.from_logits))
        return {
            "loss_student": loss_one + loss_mix,
            "loss_mix_block": loss_mb,
            "mask_loss": loss_mask,
            "logits_one": logits_one,
            "labels_one": y_one,
            "mask_mb": mask_mb,
            "mask_bb": mask_bb,
        }

    # ------------------------------------------------------- the train step
    # One step is three backend-agnostic pieces, `_step_inputs`, `_step_loss`
    # and `_after_update`, which read and assign Keras variables; each
    # backend's `train_step` runs them around its own gradient and optimizer
    # step, as Keras's trainers do (TensorFlow's tape, JAX's stateless
    # `value_and_grad`, PyTorch's `backward`).
    def _step_inputs(self, data):
        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        x = kb.convert(x)
        if "int" in kb.dtype_name(x):
            x = kb.cast(x, "float32")
        return x, prepare_labels(y, self.num_classes), sample_weight

    def _step_loss(self, x, y, sample_weight):
        """The step's draws and losses: returns (scaled total, step, outputs),
        the step being taken (0-based) read before the optimizer advances its
        counter, so the first EMA update uses step 0's momentum."""
        # A copy: PyTorch's cast to the same dtype would alias the counter.
        step = knp.copy(kb.cast(self.optimizer.iterations.value, "int32"))
        lam_mb, lam_bb, idx_mb, idx_bb = self.sample_step_randomness(kb.shape(x)[0])
        # `head_one_mix` draws from its own seed, after the step's, so the
        # default draws stay as they were.
        one_seed = next_seed(self.seed_state) if self.head_one_mix else None
        out = self.compute_losses(x, y, lam_mb, lam_bb, idx_mb, idx_bb, step,
                                  sample_weight, one_seed)
        # Regularisation (weight decay as L2) of everything optimised: the
        # student, its mixed-batch head and the Mix Block, which Keras adds
        # for compiled losses.
        regularization = kb.convert(0.0, "float32")
        heads = self.student_head_mix.losses if self.separate_heads else []
        for r in self.student.losses + heads + self.mix_block.losses:
            regularization = regularization + kb.cast(r, "float32")
        out["loss"] = (out["loss_student"] + out["loss_mix_block"] + out["mask_loss"]
                       + regularization)
        loss = out["loss"]
        if kb.is_tensorflow():
            from keras.src.losses.loss import scale_loss_for_distribution

            loss = scale_loss_for_distribution(loss)
        return self.optimizer.scale_loss(loss), step, out

    def _after_update(self, step, out):
        """The teacher's EMA at the step's momentum and the metrics; the logs."""
        m = momentum_schedule(step, self.total_steps.value, self.momentum, self.momentum_end,
                              self.momentum_warmup)
        self.update_teacher(m)
        for name in ("loss", "loss_student", "loss_mix_block", "mask_loss"):
            self._trackers[name].update_state(out[name])
        self._trackers["momentum"].update_state(m)
        self._train_acc.update_state(out["labels_one"], out["logits_one"])
        logs = {name: tracker.result() for name, tracker in self._trackers.items()}
        logs["accuracy"] = self._train_acc.result()
        return self._reducible_logs(logs)

    def train_step(self, *args):
        """One AutoMix step (see the class docstring), in the form each
        backend's trainer calls: `train_step(data)` on TensorFlow and
        PyTorch, the stateless `train_step(state, data)` on JAX."""
        self._require_schedule_length()
        backend_name = keras.backend.backend()
        if backend_name == "jax":
            return self._train_step_jax(*args)
        (data,) = args
        x, y, sample_weight = self._step_inputs(data)
        variables = self.trainable_weights
        if backend_name == "torch":
            import torch

            self.zero_grad()
            scaled, step, out = self._step_loss(x, y, sample_weight)
            scaled.backward()
            with torch.no_grad():
                self.optimizer.apply([v.value.grad for v in variables], variables)
                return self._after_update(step, out)
        import tensorflow as tf

        with tf.GradientTape() as tape:
            scaled, step, out = self._step_loss(x, y, sample_weight)
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        return self._after_update(step, out)

    def _train_step_jax(self, state, data):
        import jax

        trainable, non_trainable, optimizer_vars, metrics_vars = state
        x, y, sample_weight = self._step_inputs(data)

        def loss_fn(trainable_values, non_trainable_values):
            (scaled, step, out), (new_non_trainable,) = stateless_run(
                lambda: self._step_loss(x, y, sample_weight),
                (self.trainable_variables, trainable_values),
                (self.non_trainable_variables, non_trainable_values),
                (self.optimizer.variables, optimizer_vars),
                updated=(self.non_trainable_variables,))
            return scaled, (step, out, new_non_trainable)

        (_, (step, out, non_trainable)), grads = jax.value_and_grad(
            loss_fn, has_aux=True)(trainable, non_trainable)
        trainable, optimizer_vars = self.optimizer.stateless_apply(
            optimizer_vars, grads, trainable)
        logs, (non_trainable, metrics_vars) = stateless_run(
            lambda: self._after_update(step, out),
            (self.trainable_variables, trainable),
            (self.non_trainable_variables, non_trainable),
            (self.metrics_variables, metrics_vars),
            updated=(self.non_trainable_variables, self.metrics_variables))
        return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)

    def predict_masks(self, images, lam, partner_index):
        """The anchor masks (B, H, W, 1) the Mix Block makes for `images`
        paired with `images[partner_index]` at ratio `lam` (teacher features
        in inference mode); 1 keeps the anchor."""
        x = kb.convert(images)
        x = kb.cast(x, "float32") if "int" in kb.dtype_name(x) else x
        features = self._teacher_features(x, training=False)
        return self.mix_block(features, kb.cast(lam, "float32"), kb.convert(partner_index),
                              image_size=kb.shape(x)[1:3])

    def update_teacher(self, m):
        """`teacher = m * teacher + (1 - m) * student` for every trainable weight.

        Under `tf.distribute` the update runs in cross-replica context, so the
        teacher stays identical on every replica."""
        pairs = list(zip(self.teacher.trainable_weights, self.student.trainable_weights))
        if self.separate_heads:
            pairs += list(zip(self.teacher_head_mix.trainable_weights,
                              self.student_head_mix.trainable_weights))

        def ema(t, s):
            return t.assign(m * t + (1.0 - m) * s)

        if not kb.is_tensorflow():
            for t, s in pairs:
                t.assign(m * t.value + (1.0 - m) * s.value)
            return
        import tensorflow as tf

        ctx = tf.distribute.get_replica_context()
        if tf.distribute.has_strategy() and ctx is not None:
            def merged(strategy):
                for t, s in pairs:
                    strategy.extended.update(t.value, ema, args=(s.value,), group=False)
            ctx.merge_call(merged)
        else:
            for t, s in pairs:
                ema(t, s)

    def _evaluate(self, data):
        x, y, _ = data_adapter_utils.unpack_x_y_sample_weight(data)
        y = prepare_labels(y, self.num_classes)
        logits_t = kb.cast(self.teacher(x, training=False), "float32")
        logits_s = kb.cast(self.student(x, training=False), "float32")
        loss = knp.mean(keras.losses.categorical_crossentropy(
            y, logits_t, from_logits=self.from_logits))
        self._trackers["loss"].update_state(loss)
        self._train_acc.update_state(y, logits_t)
        self._student_acc.update_state(y, logits_s)
        return self._reducible_logs({"loss": self._trackers["loss"].result(),
                                     "accuracy": self._train_acc.result(),
                                     "student_accuracy": self._student_acc.result()})

    def test_step(self, *args):
        """The teacher's loss and accuracy and the student's accuracy; the
        stateless `test_step(state, data)` on JAX."""
        if keras.backend.backend() != "jax":
            return self._evaluate(*args)
        (trainable, non_trainable, metrics_vars), data = args
        logs, (metrics_vars,) = stateless_run(
            lambda: self._evaluate(data),
            (self.trainable_variables, trainable),
            (self.non_trainable_variables, non_trainable),
            (self.metrics_variables, metrics_vars),
            updated=(self.metrics_variables,))
        return logs, (trainable, non_trainable, metrics_vars)

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Keras's `compile`, without `loss`, `metrics`: AutoMix computes its
        own losses (mixed cross-entropy, mask loss) and reports "accuracy"
        (the student's in training, the teacher's in evaluation) and
        "student_accuracy"."""
        for name, value in (("loss", loss), ("metrics", metrics),
                            ("weighted_metrics", kwargs.get("weighted_metrics")),
                            ("loss_weights", kwargs.get("loss_weights"))):
            if value:
                raise ValueError(
                    f"AutoMix computes its own losses and metrics; `compile` takes no "
                    f"`{name}` (received {name}={value!r}). Pass the optimizer only.")
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        """Recompiles a loaded model (the optimizer and the step settings)."""
        from keras.src.saving import serialization_lib

        config = serialization_lib.deserialize_keras_object(config)
        self.compile(**{k: v for k, v in config.items()
                        if k not in ("loss", "loss_weights", "metrics", "weighted_metrics")})
        if self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def mix_block_weight_decay(self):
        """The Mix Block's L2 factor (kept by the Mix Block)."""
        return self.mix_block.weight_decay

    @property
    def mix_block_decay_all_weights(self):
        """Whether the Mix Block's biases are decayed (kept by the Mix Block)."""
        return self.mix_block.decay_all_weights

    def _require_schedule_length(self):
        """Raises unless the schedules know the length of training: given as
        `total_steps`, set by a `fit`, or restored (a loaded model's count),
        read here only outside a traced function."""
        if self._schedule_known:
            return
        try:
            known = int(keras.ops.convert_to_numpy(self.total_steps.value)) > 0
        except Exception:  # a symbolic value: traced outside fit
            known = False
        if not known:
            raise ValueError(
                "AutoMix's schedules (the teacher's momentum, the mask-loss weight) need "
                "the length of training, which only `fit` reads from Keras: pass "
                "`total_steps=` (optimizer steps of the whole training) to AutoMix to "
                "train it with `train_on_batch` or a custom loop.")
        self._schedule_known = True

    def train_on_batch(self, *args, **kwargs):
        self._require_schedule_length()
        return super().train_on_batch(*args, **kwargs)

    def fit(self, *args, **kwargs):
        """Keras's `fit`. Without `total_steps`, the schedules (EMA momentum,
        mask-loss weight) read the run's length from Keras at the start of
        the fit: the optimizer's steps so far plus steps per epoch times the
        epochs still to run (so consecutive `fit` calls and resumed runs
        count right); where Keras cannot know the steps per epoch (a
        generator, a dataset of unknown size) it asks for `total_steps`."""
        if self._fixed_total_steps is None:
            callbacks = list(kwargs.pop("callbacks", None) or [])
            kwargs["callbacks"] = [*callbacks, _ScheduleLength(self)]
        return super().fit(*args, **kwargs)

    def get_config(self):
        return {
            "name": self.name,
            "backbone": keras.saving.serialize_keras_object(self.student),
            "feature_layer": self.feature_layer,
            "num_classes": self.num_classes,
            "alpha": self.alpha,
            "momentum": self.momentum,
            "momentum_end": self.momentum_end,
            "momentum_warmup": self.momentum_warmup,
            "mask_loss_weight": self.mask_loss_weight,
            "mask_loss_schedule": self.mask_loss_schedule,
            "mask_loss_margin": self.mask_loss_margin,
            "lam_margin": self.lam_margin,
            "lambda_concat": self.lambda_concat,
            "reduction": self.reduction,
            "separate_heads": self.separate_heads,
            "head_one_mix": self.head_one_mix,
            "mix_block_weight_decay": self.mix_block_weight_decay,
            "mix_block_decay_all_weights": self.mix_block_decay_all_weights,
            "total_steps": self._fixed_total_steps,
            "from_logits": self.from_logits,
            "seed": self.seed,
        }


def layer_output(model, name):
    """The output of layer `name` in `model`'s graph.

    `model.get_layer(name).output` is a nested sub-model's own inner output;
    the tensor of its call in `model` is its last inbound node's output.
    """
    layer = model.get_layer(name)
    outputs = layer._inbound_nodes[-1].output_tensors
    return outputs[0] if len(outputs) == 1 else outputs


def _with_second_head(network):
    """(model, head): `network` with a fresh copy of its last layer on the
    same body; the body's weights are shared with `network`."""
    head = network.layers[-1]
    body = head._inbound_nodes[-1].arguments.keras_tensors[0]
    if isinstance(head, keras.Model):
        copy = keras.models.clone_model(head)
    else:
        copy = head.__class__.from_config(head.get_config())
    copy.name = f"{head.name}_mix" if not isinstance(head, keras.Model) else copy.name
    return keras.Model(network.inputs, copy(body)), copy


class _Accuracies(MetricsList):
    """Keras's MetricsList with a `result` (a dict of its metrics' results)."""

    def result(self):
        return self.get_result()


class _ScheduleLength(keras.callbacks.Callback):
    """Sets AutoMix's `total_steps` at the first epoch of a `fit`."""

    def __init__(self, automix):
        super().__init__()
        self.automix = automix
        self.done = False

    def on_epoch_begin(self, epoch, logs=None):
        if self.done:
            return
        self.done = True
        steps = self.params.get("steps")
        if not steps:
            raise ValueError(
                "AutoMix's schedules need the length of training, and Keras cannot tell "
                "the steps per epoch of this data (a generator or a dataset of unknown "
                "size): pass `total_steps=` to AutoMix, or `steps_per_epoch=` to fit.")
        done = int(keras.ops.convert_to_numpy(self.automix.optimizer.iterations))
        self.automix.total_steps.assign(done + int(steps) * (self.params["epochs"] - epoch))
        self.automix._schedule_known = True

import importlib.util

import keras

from keras_miamix import backend as kb
from keras_miamix.backend import numpy as knp
from keras_miamix.layers.base_mix_layer import add_seed_state
from keras_miamix.layers.base_mix_layer import next_seed
from keras_miamix.models.base_mix_trainer import BaseMixTrainer
from keras_miamix.models.base_mix_trainer import stateless_run
from keras_miamix.ops import puzzlemix as pm
from keras_miamix.ops.mixing import mix_labels
from keras_miamix.ops.mixing import mix_sample_weights
from keras_miamix.ops.mixing import weighted_mean
from keras_miamix.ops.sampling import fold_seed
from keras_miamix.ops.sampling import random_permutation
from keras_miamix.ops.sampling import sample_beta
from keras_miamix.ops.sampling import uniform

SOLVERS = ("icm", "gco")


def gco_available():
    return importlib.util.find_spec("gco") is not None


def cross_entropy(logits, labels):
    """Per-sample softmax cross-entropy of logits against soft labels, in
    float32 (the official `nn.CrossEntropyLoss(reduction="none")`)."""
    logits = kb.cast(logits, "float32")
    return -knp.sum(kb.cast(labels, "float32") * kb.nn.log_softmax(logits, axis=-1), axis=-1)


@keras.saving.register_keras_serializable(package="keras_miamix")
class PuzzleMix(BaseMixTrainer):
    """Trains a classifier with Puzzle Mix.

    Kim, Choo and Song, "Puzzle Mix: Exploiting Saliency and Local Statistics
    for Optimal Mixup", ICML 2020, as the official code (snu-mllab/PuzzleMix,
    `main.py` and `mixup.py`). Each training step:

    1. takes the saliency of the clean batch, sqrt of the channel mean of the
       squared gradient of the mean cross-entropy with respect to the input,
       in inference mode (no batch-statistics update, no weight update);
       `input_std` rescales it to the normalised input that the official code
       differentiates;
    2. draws one permutation, lambda ~ Beta(alpha, alpha) and one grid size
       block_num from `block_nums` (2^U{1..4}, those that fit the image);
    3. solves, per image, the labelling of the block_num x block_num grid into
       `n_labels` mask levels that trades the saliency shown against the
       smoothness of the seams and a binomial prior at lambda
       (`keras_miamix.ops.puzzlemix`); `solver="icm"` (default) is
       vectorised in backend ops and compiles under XLA, `solver="gco"` runs
       the official alpha-beta swap (gco-wrapper) on the host;
    4. transports each image's salient blocks into the region its mask keeps
       (`transport`, at `t_size` pixel blocks, cost `t_eps`), the partner's
       into 1 - mask;
    5. trains on `mask * x + (1 - mask) * x[perm]` with the labels mixed by
       each mask's mean.

    Options as the official: `clean_lam` > 0 takes the saliency pass in
    training mode and adds its loss, `2 * clean_lam * CE(clean)` (the
    official adds 2 * clean_lam / num_classes times the cross-entropy to a
    binary cross-entropy averaged over the classes, about CE / num_classes;
    here the compiled loss is the categorical cross-entropy);
    `adv_p` > 0 adds, each with probability adv_p per batch, an FGSM-like
    noise of at most `adv_eps` / 255 to the anchors and to the partners
    (the saliency is then taken on the noisy batch). Lambda is one per batch
    as there; `per_sample_lambda=True` draws one per sample. `evaluate` and
    `predict` run the classifier.

    Args:
        model: the classifier (images to logits).
        num_classes: needed for integer labels.
        alpha: Beta concentration, > 0. Defaults to 1.0.
        beta: label smoothness, >= 0. Defaults to 1.2.
        gamma: data smoothness, >= 0. Defaults to 0.5.
        eta: prior weight, >= 0. Defaults to 0.2.
        neigh_size: pooling size of the smoothness term, >= 1. Defaults to 4.
        n_labels: mask levels, >= 2. Defaults to 3.
        block_nums: grid sizes to draw from. Defaults to (2, 4, 8, 16).
        transport: whether to transport. Defaults to True.
        t_eps: transport cost weight. Defaults to 0.8.
        t_size: transport block size in pixels (-1: the mask's blocks).
            Defaults to 4 (the official CIFAR commands).
        clean_lam: clean-loss weight, >= 0. Defaults to 0.
        adv_p: adversarial noise probability in [0, 1]. Defaults to 0.
        adv_eps: its bound in 1/255 units. Defaults to 10.
        solver: "icm" or "gco". Defaults to "icm".
        sweeps: checkerboard sweeps of the "icm" solver. Defaults to 8.
        value_range: (low, high) of the input images. Defaults to (0, 255).
        input_std: per-channel std (in input units) by which the classifier
            divides its inputs, or None.
        per_sample_lambda: one lambda per sample. Defaults to False.
        seed: integer seed.

    Example:

    >>> import keras, numpy as np
    >>> import keras_miamix as km
    >>> net = km.models.cifar_resnet18(num_classes=10, width=8)
    >>> model = km.models.PuzzleMix(net, num_classes=10, seed=0)
    >>> model.compile("sgd", keras.losses.CategoricalCrossentropy(from_logits=True))
    >>> x = keras.random.uniform((8, 32, 32, 3), maxval=255, seed=0)
    >>> history = model.fit(x, np.arange(8), epochs=1, verbose=0)
    """

    def __init__(self, model, num_classes=None, alpha=1.0, beta=1.2, gamma=0.5, eta=0.2,
                 neigh_size=4, n_labels=3, block_nums=(2, 4, 8, 16), transport=True,
                 t_eps=0.8, t_size=4, clean_lam=0.0, adv_p=0.0, adv_eps=10.0, solver="icm",
                 sweeps=8, value_range=(0, 255), input_std=None, per_sample_lambda=False,
                 seed=None, **kwargs):
        super().__init__(model, num_classes=num_classes, **kwargs)
        positive = {"alpha": alpha}
        non_negative = {"beta": beta, "gamma": gamma, "eta": eta, "t_eps": t_eps,
                        "clean_lam": clean_lam, "adv_eps": adv_eps}
        for key, value in positive.items():
            if not value > 0:
                raise ValueError(f"`{key}` must be > 0; received {key}={value!r}.")
        for key, value in non_negative.items():
            if not value >= 0:
                raise ValueError(f"`{key}` must be >= 0; received {key}={value!r}.")
        if not 0 <= adv_p <= 1:
            raise ValueError(f"`adv_p` must be in [0, 1]; received adv_p={adv_p!r}.")
        for key, value, low in (("n_labels", n_labels, 2), ("neigh_size", neigh_size, 1),
                                ("sweeps", sweeps, 1)):
            if int(value) != value or value < low:
                raise ValueError(f"`{key}` must be an integer >= {low}; received "
                                 f"{key}={value!r}.")
        block_nums = tuple(int(b) for b in block_nums)
        if not block_nums or min(block_nums) < 2:
            raise ValueError("`block_nums` must be grid sizes >= 2; received "
                             f"block_nums={block_nums!r}.")
        if t_size != -1 and not (int(t_size) == t_size and t_size >= 1):
            raise ValueError(f"`t_size` must be -1 or an integer >= 1; received t_size={t_size!r}.")
        if solver not in SOLVERS:
            raise ValueError(f"`solver` must be one of {SOLVERS}; received solver={solver!r}.")
        if solver == "gco" and not gco_available():
            raise ValueError("solver='gco' needs gco-wrapper: `pip install gco-wrapper` "
                             "(wheels for CPython 3.11), or use solver='icm'.")
        low, high = value_range
        if not high > low:
            raise ValueError("`value_range` must be (low, high) with high > low; received "
                             f"value_range={value_range!r}.")
        self.alpha, self.beta, self.gamma, self.eta = (float(alpha), float(beta), float(gamma),
                                                       float(eta))
        self.neigh_size, self.n_labels, self.block_nums = int(neigh_size), int(n_labels), block_nums
        self.transport, self.t_eps, self.t_size = bool(transport), float(t_eps), int(t_size)
        self.clean_lam, self.adv_p, self.adv_eps = float(clean_lam), float(adv_p), float(adv_eps)
        self.solver, self.sweeps = solver, int(sweeps)
        self.value_range = (float(low), float(high))
        self.input_std = None if input_std is None else tuple(float(s) for s in input_std)
        self.per_sample_lambda = bool(per_sample_lambda)
        self.seed = seed
        self.seed_state = add_seed_state(self, seed)
        self._clean_term = None

    # ---------------------------------------------------------------- steps
    def grid_sizes(self, height, width):
        """The `block_nums` that fit an image of this size."""
        sizes = tuple(b for b in self.block_nums if b <= min(height, width))
        if not sizes:
            raise ValueError(f"No grid of `block_nums`={self.block_nums} fits images of "
                             f"{height}x{width} pixels.")
        return sizes

    def saliency(self, x, y, training=False):
        """(saliency (B, H, W), input gradient, clean logits) of a batch with
        one-hot labels `y`: the gradient of the mean cross-entropy."""
        model = self.model
        jax_training = training and kb.name() == "jax"

        def loss_fn(images):
            def forward():
                logits = model(images, training=training)
                return knp.mean(cross_entropy(logits, y)), logits

            if not jax_training:
                value, logits = forward()
                return value, (logits, None)
            # Batch statistics updated inside `jax.grad` come out as values.
            current = [v.value for v in model.variables]
            (value, logits), (updates,) = stateless_run(
                forward, (model.variables, current), updated=(model.non_trainable_variables,))
            return value, (logits, updates)

        grad, (logits, updates) = kb.input_gradient(loss_fn, x)
        if updates is not None:
            for variable, value in zip(model.non_trainable_variables, updates):
                variable.assign(value)
        return pm.input_saliency(grad, self.input_std), grad, logits

    def mix(self, x, y, seed, training=True, return_info=False):
        """One Puzzle Mix batch: (mixed images, mixed labels, label weights,
        masks (B, H, W, 1), partner indices, clean logits); with
        `return_info`, a dict of those and the saliency, the grid size and
        the transported anchors and partners (what `keras_miamix.
        visualization.plot_puzzlemix` draws)."""
        if self.solver == "gco" and kb.in_xla_context():
            raise ValueError("solver='gco' runs on the host and cannot be compiled by XLA: "
                             "compile with jit_compile=False or use solver='icm'.")
        x = kb.cast(kb.convert(x), "float32")
        batch, height, width = kb.shape(x)[0], x.shape[1], x.shape[2]
        sizes = self.grid_sizes(height, width)
        low, high = self.value_range
        x01 = (x - low) / (high - low)
        perm = random_permutation(batch, fold_seed(seed, 1))
        lam = sample_beta([batch] if self.per_sample_lambda else [1], self.alpha, self.alpha,
                          fold_seed(seed, 2))
        lam = knp.broadcast_to(lam, (batch,))
        pick = uniform([], fold_seed(seed, 3), 0, len(sizes), dtype="int32")
        noise = flags = None
        saliency_input = x
        if self.adv_p > 0:
            flags = uniform([2], fold_seed(seed, 4)) < self.adv_p
            bound = self.adv_eps / 255.0
            start = uniform(kb.shape(x), fold_seed(seed, 5), -bound, bound)
            noise = knp.clip(x01 + start, 0.0, 1.0) - x01
            saliency_input = knp.where(flags[0] | flags[1], x + (high - low) * noise, x)
        clean = self.clean_lam > 0
        saliency, grad, logits = self.saliency(saliency_input, y, training=clean and training)
        if noise is not None:
            bound = self.adv_eps / 255.0
            noise = knp.clip(noise + (self.adv_eps + 2.0) / 255.0 * knp.sign(grad), -bound, bound)
            noise = noise * uniform([], fold_seed(seed, 6))

        def branch(block_num):
            def run():
                return pm.puzzle_mix(
                    x, x01, saliency, perm, lam, block_num, beta=self.beta, gamma=self.gamma,
                    eta=self.eta, neigh_size=self.neigh_size, n_labels=self.n_labels,
                    transport=self.transport, t_eps=self.t_eps, t_size=self.t_size,
                    solver=self.solver, sweeps=self.sweeps, noise=noise,
                    noise_anchor=None if flags is None else flags[0],
                    noise_partner=None if flags is None else flags[1],
                    value_range=self.value_range, return_moved=True)
            return run

        mixed, masks, weights, moved, moved_partner = kb.switch(
            pick, [branch(b) for b in sizes])
        y_mixed = mix_labels(y, weights, perm)
        if return_info:
            return {"mixed": mixed, "labels": y_mixed, "label_weights": weights,
                    "masks": masks, "partner_index": perm, "saliency": saliency,
                    "block_num": kb.gather(kb.convert(sizes, "int32"), pick),
                    "anchor_moved": moved, "partner_moved": moved_partner, "lam": lam}
        return mixed, y_mixed, weights, masks, perm, logits

    def mixed_forward(self, x, y, sample_weight, training=True):
        seed = next_seed(self.seed_state)
        mixed, y_mixed, weights, _, perm, logits = self.mix(x, y, seed, training=training)
        if self.clean_lam > 0:
            self._clean_term = weighted_mean(cross_entropy(logits, y), sample_weight)
        sw = mix_sample_weights(sample_weight, weights, perm)
        return self.model(mixed, training=training), y_mixed, sw

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                    training=training)
        term, self._clean_term = self._clean_term, None
        if training and term is not None:
            loss = loss + kb.cast(2.0 * self.clean_lam * term, loss.dtype)
        return loss

    def get_config(self):
        config = super().get_config()
        config.update({
            "alpha": self.alpha, "beta": self.beta, "gamma": self.gamma, "eta": self.eta,
            "neigh_size": self.neigh_size, "n_labels": self.n_labels,
            "block_nums": self.block_nums, "transport": self.transport, "t_eps": self.t_eps,
            "t_size": self.t_size, "clean_lam": self.clean_lam, "adv_p": self.adv_p,
            "adv_eps": self.adv_eps, "solver": self.solver, "sweeps": self.sweeps,
            "value_range": self.value_range, "input_std": self.input_std,
            "per_sample_lambda": self.per_sample_lambda, "seed": self.seed})
        return config

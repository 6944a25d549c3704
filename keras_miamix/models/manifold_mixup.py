import keras

from keras_miamix import backend as kb
from keras_miamix.backend import numpy as knp
from keras_miamix.layers.base_mix_layer import add_seed_state
from keras_miamix.layers.base_mix_layer import next_seed
from keras_miamix.models.base_mix_trainer import BaseMixTrainer
from keras_miamix.ops.mixing import mix_labels
from keras_miamix.ops.mixing import mix_sample_weights
from keras_miamix.ops.sampling import fold_seed
from keras_miamix.ops.sampling import random_permutation
from keras_miamix.ops.sampling import sample_beta
from keras_miamix.ops.sampling import uniform


def chain_blocks(model):
    """The blocks of a model that is a chain of layers (a `keras.Sequential`
    or a functional model such as `cifar_resnet18`), in order.

    Raises:
        ValueError: when a layer does not take the previous one's output.
    """
    blocks = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not isinstance(model, keras.Sequential):
        previous = None
        for layer in blocks:
            parents = [t._keras_history.operation for t in _inbound_tensors(layer)]
            expected = [previous] if previous is not None else []
            if previous is None:
                ok = all(isinstance(p, keras.layers.InputLayer) for p in parents)
            else:
                ok = parents == expected
            if not ok or len(parents) != 1:
                raise ValueError(
                    "Manifold Mixup needs a model whose layers form a chain (each "
                    f"layer takes the previous one's output); layer '{layer.name}' "
                    f"takes {[p.name for p in parents]}."
                )
            previous = layer
    return blocks


def _inbound_tensors(layer):
    node = layer._inbound_nodes[0]
    return list(node.arguments.keras_tensors)


@keras.saving.register_keras_serializable(package="keras_miamix")
class ManifoldMixup(BaseMixTrainer):
    """Manifold Mixup: mixes hidden states at a randomly chosen layer.

    Verma et al., "Manifold Mixup: Better Representations by Interpolating
    Hidden States", ICML 2019. Each training step picks one eligible layer
    uniformly (the input included), runs the network up to it, replaces the
    hidden states by `lam * h + (1 - lam) * h[perm]` for a random permutation
    of the batch, runs the rest, and mixes the labels with the same lambda.
    lam ~ Beta(alpha, alpha) with alpha 2.0 and mixing at {input, after the
    first stage, after the second stage}, the paper's CIFAR setting for
    PreAct ResNets; one lambda per batch as in the official code
    (`per_sample_lambda=True` draws one per sample). Evaluation and prediction
    use the wrapped model unchanged.

    Args:
        model: a classifier whose layers form a chain of blocks, e.g.
            `keras_miamix.models.cifar_resnet18` (stages `stem`, `stage1`, ...)
            or a `keras.Sequential`.
        mix_layers: eligible mixing points: "input" (or 0) for the input, a
            block's name for its output. Defaults to ("input", "stage1",
            "stage2").
        alpha: Beta concentration, > 0. Defaults to 2.0.
        per_sample_lambda: one lambda per sample instead of per batch.
        num_classes: needed for integer labels.
        seed: integer seed.

    Example:

    >>> import keras, numpy as np
    >>> import keras_miamix as km
    >>> net = km.models.cifar_resnet18(num_classes=10, width=8)
    >>> model = km.models.ManifoldMixup(net, num_classes=10, seed=0)
    >>> model.compile("sgd", keras.losses.CategoricalCrossentropy(from_logits=True))
    >>> x = keras.random.uniform((8, 32, 32, 3), seed=0)
    >>> history = model.fit(x, np.arange(8), epochs=1, verbose=0)
    """

    def __init__(self, model, mix_layers=("input", "stage1", "stage2"), alpha=2.0,
                 per_sample_lambda=False, num_classes=None, seed=None, **kwargs):
        super().__init__(model, num_classes=num_classes, **kwargs)
        if not alpha > 0:
            raise ValueError(f"`alpha` must be positive; received alpha={alpha!r}.")
        self.blocks = chain_blocks(model)
        names = [b.name for b in self.blocks]
        positions = []
        for layer in mix_layers:
            if layer in ("input", 0):
                positions.append(0)
            elif layer in names[:-1]:
                positions.append(names.index(layer) + 1)
            else:
                raise ValueError(
                    "`mix_layers` must hold 'input' or names of the model's blocks "
                    f"(except the last) {names[:-1]}; received {layer!r}."
                )
        if not positions:
            raise ValueError("`mix_layers` must not be empty.")
        self.mix_layers = tuple(mix_layers)
        self.positions = tuple(positions)
        self.alpha = float(alpha)
        self.per_sample_lambda = bool(per_sample_lambda)
        self.seed = seed
        self.seed_state = add_seed_state(self, seed)

    def mixed_pass(self, x, y, position, lam, perm, training=True):
        """Runs the chain, mixing the hidden states at `position` (0 is the
        input, i mixes the output of block i - 1) with `lam` ((1,) or (B,))
        and the permutation `perm`; returns (logits, mixed labels)."""
        h = kb.convert(x)
        if "int" in kb.dtype_name(h):
            h = kb.cast(h, "float32")
        for i, block in enumerate(self.blocks):
            if i in self.positions:
                # Only the chosen point blends (the cond is lowered in the step).
                h = kb.cond(
                    position == i,
                    lambda h=h: mix_labels(h, _per_sample(lam, h), perm),
                    lambda h=h: h,
                )
            h = block(h, training=training)
        return h, mix_labels(y, _per_sample(lam, y), perm)

    def mixed_forward(self, x, y, sample_weight, training=True):
        seed = next_seed(self.seed_state)
        batch = kb.shape(y)[0]
        pick = uniform([], fold_seed(seed, 1), 0, len(self.positions), dtype="int32")
        position = kb.gather(kb.convert(self.positions, "int32"), pick)
        lam = sample_beta([batch] if self.per_sample_lambda else [1], self.alpha, self.alpha,
                          fold_seed(seed, 2))
        perm = random_permutation(batch, fold_seed(seed, 3))
        y_pred, y_mixed = self.mixed_pass(x, y, position, lam, perm, training=training)
        return y_pred, y_mixed, mix_sample_weights(sample_weight, _per_sample(lam, y), perm)

    def get_config(self):
        config = super().get_config()
        config.update({"mix_layers": self.mix_layers, "alpha": self.alpha,
                       "per_sample_lambda": self.per_sample_lambda, "seed": self.seed})
        return config


def _per_sample(lam, like):
    """`lam` ((1,) or (B,)) as one value per sample of the batch `like`."""
    return knp.broadcast_to(lam, (kb.shape(like)[0],))

"""Names to objects: the methods, classifiers and their arguments that the
trainer, the `keras-miamix` command, the notebooks and the benchmarks share.
"""

import ast

import keras
import tensorflow as tf

from keras_miamix import layers as mix_layers
from keras_miamix import models as mix_models

LAYER_METHODS = {
    "mixup": mix_layers.MixUp,
    "cutmix": mix_layers.CutMix,
    "fmix": mix_layers.FMix,
    "gridmix": mix_layers.GridMix,
    "gmix": mix_layers.GMix,
    "agmix": mix_layers.AGMix,
    "resizemix": mix_layers.ResizeMix,
    "saliencymix": mix_layers.SaliencyMix,
    "miamix": mix_layers.MiAMix,
}
MODEL_METHODS = ("manifold_mixup", "automix", "puzzlemix", "augmix")
# AugMixModel's own arguments; the others of `--set` go to its AugMix layer.
AUGMIX_MODEL_ARGS = ("jsd", "jsd_weight")
# Keras core's own layers, as outside baselines (mixing in the pipeline only).
KERAS_BASELINES = ("keras_mixup", "keras_cutmix")
METHODS = ("none", *LAYER_METHODS, *MODEL_METHODS, *KERAS_BASELINES)
OWN_MODELS = ("small_resnet", "resnet18")
# The optimisation settings every method trains with unless it has its own
# below: the cosine decays to 0, weight decay 5e-4 on the convolution and
# dense kernels, Keras's BatchNormalization constants.
PROTOCOL_SETTINGS = {"min_lr": 0.0, "weight_decay": 5e-4, "decay_all_weights": False,
                     "batch_norm": "keras"}
# A method's own settings where its official CIFAR configuration differs.
# AutoMix: OpenMixup's `configs/classification/cifar*/automix/` (SGD with
# `weight_decay=0.0001` on every parameter, Mix Block included, PyTorch's
# BatchNorm2d) and the cosine's floor (`lr_min`) of its paper (Liu et al.,
# arXiv 2103.13027, sec. 4.4.2: "for the CIFAR-10 dataset, we set the lr_min
# to 1e-3", with lr 0.1; its Table 11 on CIFAR-100: 80.46 with 0, 81.63 with
# 1e-2; OpenMixup's CIFAR-100 ResNet-18 config uses 5e-2).
METHOD_SETTINGS = {
    "automix": {"min_lr": 1e-3, "weight_decay": 1e-4, "decay_all_weights": True,
                "batch_norm": "torch"},
}
# `batch_norm` -> every BatchNormalization's (momentum, epsilon): Keras's
# defaults, or PyTorch's BatchNorm2d (momentum 0.1 on the new batch, eps 1e-5).
BATCH_NORM = {"keras": (0.99, 1e-3), "torch": (0.9, 1e-5)}


def default_setting(method, name):
    """The value of optimisation setting `name` ("min_lr", "weight_decay",
    "decay_all_weights", "batch_norm") that `method` trains with by default."""
    return METHOD_SETTINGS.get(method, {}).get(name, PROTOCOL_SETTINGS[name])


def check_batch_norm(batch_norm):
    """Raises unless `batch_norm` names one of `BATCH_NORM`'s constant sets."""
    if batch_norm not in BATCH_NORM:
        raise ValueError(f"`batch_norm` must be one of {tuple(BATCH_NORM)}; received "
                         f"batch_norm={batch_norm!r}.")


def l2_factor(weight_decay):
    """The `keras.regularizers.l2` factor whose gradient, `2 * l2 * w`, is
    PyTorch's SGD `weight_decay * w`."""
    return weight_decay / 2.0


def parse_method_args(items):
    """`["k_max=3", "methods=('mixup','cutmix')"]` -> `{"k_max": 3, ...}`.

    Values are Python literals when they parse as one, strings otherwise.
    """
    args = {}
    for item in items or ():
        if "=" not in item:
            raise ValueError(f"`--set` takes NAME=VALUE; received {item!r}.")
        key, value = item.split("=", 1)
        key = key.strip().replace("-", "_")
        try:
            args[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            args[key] = value
    return args


def build_classifier(name, num_classes, input_shape, normalization=None, weight_decay=0.0,
                     decay_all_weights=False, batch_norm="keras"):
    """A classifier (images in pixel units to logits).

    Args:
        name: "small_resnet" (stages of 32, 64, 128 filters, one block each),
            "resnet18" (the CIFAR ResNet-18), or a `keras.applications`
            model's name (e.g. "ResNet50", "MobileNetV2"; random weights)
            where the image size allows it.
        num_classes: outputs.
        input_shape: (H, W, C).
        normalization: per-channel (mean, std) of the inputs, applied first.
        weight_decay: PyTorch-style SGD weight decay; our own networks get an
            L2 penalty of `weight_decay / 2` on their kernels, whose gradient is
            `weight_decay * w`, like `torch.optim.SGD(weight_decay=...)`.
        decay_all_weights: our own networks: decay BatchNorm's scale and
            offset and the head's bias too (PyTorch's SGD on every weight).
        batch_norm: our own networks' BatchNormalization constants, "keras"
            (momentum 0.99, epsilon 1e-3) or "torch" (PyTorch's BatchNorm2d:
            0.9 and 1e-5 in Keras's terms); see `BATCH_NORM`.
    """
    check_batch_norm(batch_norm)
    l2 = l2_factor(weight_decay)
    if name in OWN_MODELS:
        bn_momentum, bn_epsilon = BATCH_NORM[batch_norm]
        builder = mix_models.small_resnet if name == "small_resnet" else mix_models.cifar_resnet18
        return builder(num_classes, input_shape, weight_decay=l2, normalization=normalization,
                       bn_momentum=bn_momentum, bn_epsilon=bn_epsilon,
                       decay_all_weights=decay_all_weights)
    if decay_all_weights or batch_norm != "keras":
        raise ValueError(
            "`decay_all_weights` and `batch_norm` apply to this package's own networks "
            f"{OWN_MODELS}; received model={name!r} with decay_all_weights="
            f"{decay_all_weights!r}, batch_norm={batch_norm!r}.")
    builder = getattr(keras.applications, name, None)
    if builder is None or not callable(builder):
        raise ValueError(
            f"`model` must be one of {OWN_MODELS} or a keras.applications model name "
            f"(e.g. 'ResNet50', 'MobileNetV2'); received model={name!r}.")
    try:
        app = builder(weights=None, input_shape=tuple(input_shape), classes=num_classes,
                      classifier_activation=None)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"keras.applications.{name} cannot be built for images of shape "
            f"{tuple(input_shape)}: {err}") from None
    if weight_decay:
        def with_l2(layer):
            config = layer.get_config()
            if "kernel_regularizer" in config:
                config["kernel_regularizer"] = keras.regularizers.l2(l2)
            return layer.__class__.from_config(config)

        app = keras.models.clone_model(app, clone_function=with_l2)
    inputs = keras.Input(tuple(input_shape), name="images")
    x = inputs
    if normalization is not None:
        mean, std = normalization
        x = keras.layers.Normalization(mean=mean, variance=[s * s for s in std],
                                       name="normalize")(x)
    return keras.Model(inputs, app(x), name=name.lower())


def build_training_model(method, classifier, num_classes, where="data", method_args=None,
                         seed=None, total_steps=None, weight_decay=0.0, input_std=None,
                         decay_all_weights=False):
    """The model to compile and the mixing function for the input pipeline.

    Args:
        method: one of `METHODS`.
        classifier: the network from `build_classifier`.
        num_classes: classes.
        where: "data" (the mixing layer maps the `tf.data` pipeline) or
            "device" (`MixModel` mixes inside the compiled train step); only
            for the mixing layers.
        method_args: keyword arguments of the method's layer or model.
        seed: the method's seed.
        total_steps: optimizer steps of the whole run (AutoMix's schedules).
        weight_decay: the classifier's PyTorch-style weight decay, which
            AutoMix's Mix Block gets too (OpenMixup decays every weight).
        decay_all_weights: whether the classifier's biases and BatchNorm
            weights are decayed too; AutoMix's Mix Block then decays its
            biases.
        input_std: the per-channel std the classifier normalises by
            (PuzzleMix takes its saliency on the normalised input).

    Returns:
        (model, pipeline_mixer): `pipeline_mixer` is None or a function of
        `(images, one_hot_labels)` for `ds.map`.
    """
    method_args = dict(method_args or {})
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}; received method={method!r}.")
    if where not in ("data", "device"):
        raise ValueError(f"`where` must be 'data' or 'device'; received where={where!r}.")
    if method == "none":
        _no_args(method, method_args)
        return classifier, None
    if method in LAYER_METHODS:
        mixer = make_mixer(method, num_classes, method_args, seed)
        if where == "device":
            return mix_models.MixModel(classifier, mixer), None
        return classifier, mixer
    if method in KERAS_BASELINES:
        if where == "device":
            raise ValueError(f"{method!r} (a Keras core layer) mixes in the pipeline only: "
                             "use --where data.")
        return classifier, _keras_core_mixer(method, method_args, seed)
    if method == "manifold_mixup":
        return mix_models.ManifoldMixup(classifier, num_classes=num_classes, seed=seed,
                                        **method_args), None
    if method == "puzzlemix":
        return make_puzzlemix(classifier, num_classes, method_args, seed, input_std), None
    if method == "augmix":
        model_args = {k: method_args.pop(k) for k in AUGMIX_MODEL_ARGS if k in method_args}
        augmix = make_augmix(num_classes, method_args, seed)
        return mix_models.AugMixModel(classifier, augmix, num_classes=num_classes,
                                      **model_args), None
    method_args.setdefault("total_steps", total_steps)
    method_args.setdefault("mix_block_weight_decay", l2_factor(weight_decay))
    method_args.setdefault("mix_block_decay_all_weights", bool(decay_all_weights))
    return mix_models.AutoMix(classifier, num_classes=num_classes, seed=seed,
                              **method_args), None


def make_mixer(method, num_classes=None, method_args=None, seed=None):
    """A mixing layer by name, its constructor validating `method_args`."""
    cls = LAYER_METHODS[method]
    try:
        return cls(num_classes=num_classes, seed=seed, **dict(method_args or {}))
    except TypeError as err:
        raise ValueError(f"{cls.__name__} does not take these arguments: {err}") from None


def make_puzzlemix(classifier, num_classes=None, method_args=None, seed=None, input_std=None):
    """The `puzzlemix` model, its constructor validating `method_args`."""
    args = dict(method_args or {})
    if input_std is not None:
        args.setdefault("input_std", tuple(input_std))
    try:
        return mix_models.PuzzleMix(classifier, num_classes=num_classes, seed=seed, **args)
    except TypeError as err:
        raise ValueError(f"PuzzleMix does not take these arguments: {err}") from None


def make_augmix(num_classes=None, method_args=None, seed=None):
    """The AugMix layer of the `augmix` method, its constructor validating
    `method_args`."""
    try:
        return mix_layers.AugMix(num_classes=num_classes, seed=seed, **dict(method_args or {}))
    except TypeError as err:
        raise ValueError(f"AugMix does not take these arguments: {err}") from None


def _no_args(method, method_args):
    if method_args:
        raise ValueError(f"method {method!r} takes no arguments; received {method_args}.")


def _keras_core_mixer(method, method_args, seed):
    if method == "keras_mixup":
        layer = keras.layers.MixUp(seed=seed, **{"alpha": 1.0, **method_args})
    else:
        layer = keras.layers.CutMix(seed=seed, **method_args)

    def mix(images, labels):
        out = layer({"images": images, "labels": labels}, training=True)
        return out["images"], tf.cast(out["labels"], tf.float32)

    return mix

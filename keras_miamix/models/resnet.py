"""CIFAR-style ResNets (ResNet-18 and a small one) with named stages.

He et al., "Deep Residual Learning for Image Recognition", 2016, in the CIFAR
form used by Mixup, Manifold Mixup, AutoMix and MiAMix experiments: a 3x3 stem
without max-pooling, four stages of two basic blocks (64, 128, 256, 512
channels, strides 1, 2, 2, 2), global average pooling and a linear head.

The network is a chain of named sub-models, `stem`, `stage1` ... `stage4` and
`head`, so that AutoMix can take the output of a stage by name
(`model.get_layer("stage3").output`) and Manifold Mixup can mix hidden states
between stages.
"""

import functools

import keras
from keras import layers

STAGES = ("stem", "stage1", "stage2", "stage3", "stage4", "head")


def _basic_block(x, filters, stride, name, reg, bn):
    shortcut = x
    y = layers.Conv2D(filters, 3, stride, padding="same", use_bias=False,
                      kernel_regularizer=reg, name=f"{name}_conv1")(x)
    y = bn(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, 1, padding="same", use_bias=False,
                      kernel_regularizer=reg, name=f"{name}_conv2")(y)
    y = bn(name=f"{name}_bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, stride, use_bias=False, kernel_regularizer=reg,
                                 name=f"{name}_proj")(x)
        shortcut = bn(name=f"{name}_proj_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def cifar_resnet(
    num_classes=10,
    input_shape=(32, 32, 3),
    filters=(64, 128, 256, 512),
    blocks_per_stage=(2, 2, 2, 2),
    weight_decay=0.0,
    normalization=None,
    name="resnet",
    synchronized_bn=False,
    bn_momentum=0.99,
    bn_epsilon=1e-3,
    decay_all_weights=False,
):
    """Builds a CIFAR-style ResNet of basic blocks as a chain of named stages.

    Args:
        num_classes: outputs of the linear head (logits, no softmax).
        input_shape: (H, W, C) of the images.
        filters: channels of each stage; the first stage keeps the resolution,
            every later one halves it.
        blocks_per_stage: basic blocks in each stage (same length as `filters`).
        weight_decay: optional L2 factor on convolution and dense kernels (a
            `keras.regularizers.l2`, so `weight_decay / 2` gives the gradient
            of PyTorch's SGD `weight_decay`).
        normalization: optional `(mean, std)` per channel, in the units of the
            inputs (for example pixel values 0..255): the stem then starts with
            `(x - mean) / std`, so the model takes raw images. Mixing is affine
            in the pixels, so mixing before or after this layer is the same.
        name: model name.
        synchronized_bn: batch normalisation with the statistics of the
            global batch under `tf.distribute` (`BatchNormalization(
            synchronized=True)`), so that every replica and worker also keeps
            the same moving statistics; by default each replica normalises with
            its own batch and keeps its own moving statistics.
        bn_momentum, bn_epsilon: every `BatchNormalization`'s `momentum` and
            `epsilon`. Defaults to Keras's 0.99 and 1e-3; PyTorch's
            `BatchNorm2d` defaults (`momentum=0.1`, `eps=1e-5`, the official
            code of the papers) are `bn_momentum=0.9, bn_epsilon=1e-5` (Keras
            weighs the old moving statistics by `momentum`, PyTorch the new
            batch's; PyTorch also keeps the unbiased batch variance, Keras the
            biased one, a factor n / (n - 1) over n = batch x H x W values).
        decay_all_weights: put `weight_decay` on every weight, BatchNorm's
            scale and offset and the head's bias too, as
            `torch.optim.SGD(weight_decay=...)` does without parameter groups
            (OpenMixup's configs); by default only convolution and dense
            kernels are decayed.

    Returns:
        A functional `keras.Model` mapping images to logits whose layers are
        the sub-models `stem`, `stage1` ... `stageN` and `head`.

    Example:

    >>> model = cifar_resnet(num_classes=10, filters=(8, 16), blocks_per_stage=(1, 1))
    >>> [layer.name for layer in model.layers][1:]
    ['stem', 'stage1', 'stage2', 'head']
    """
    if len(filters) != len(blocks_per_stage) or not filters:
        raise ValueError(
            "`filters` and `blocks_per_stage` must be non-empty and of the same length; "
            f"received filters={filters!r}, blocks_per_stage={blocks_per_stage!r}."
        )
    reg = keras.regularizers.l2(weight_decay) if weight_decay else None
    all_reg = reg if decay_all_weights else None
    bn = functools.partial(layers.BatchNormalization, synchronized=synchronized_bn,
                           momentum=bn_momentum, epsilon=bn_epsilon,
                           gamma_regularizer=all_reg, beta_regularizer=all_reg)
    inputs = keras.Input(input_shape, name="images")

    stem_in = keras.Input(input_shape)
    x = stem_in
    if normalization is not None:
        mean, std = normalization
        std = [float(s) ** 2 for s in (std if hasattr(std, "__len__") else [std])]
        x = layers.Normalization(mean=mean, variance=std, name="normalize")(x)
    x = layers.Conv2D(filters[0], 3, padding="same", use_bias=False, kernel_regularizer=reg,
                      name="stem_conv")(x)
    x = bn(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    stem = keras.Model(stem_in, x, name="stem")

    h = stem(inputs)
    for s, (channels, blocks) in enumerate(zip(filters, blocks_per_stage), start=1):
        stride = 1 if s == 1 else 2
        stage_in = keras.Input(h.shape[1:])
        y = stage_in
        for b in range(blocks):
            y = _basic_block(y, channels, stride if b == 0 else 1,
                             f"stage{s}_block{b + 1}", reg, bn)
        stage = keras.Model(stage_in, y, name=f"stage{s}")
        h = stage(h)

    head_in = keras.Input(h.shape[1:])
    z = layers.GlobalAveragePooling2D(name="pool")(head_in)
    z = layers.Dense(num_classes, kernel_regularizer=reg, bias_regularizer=all_reg,
                     name="logits")(z)
    head = keras.Model(head_in, z, name="head")
    return keras.Model(inputs, head(h), name=name)


def cifar_resnet18(
    num_classes=10,
    input_shape=(32, 32, 3),
    width=64,
    blocks_per_stage=(2, 2, 2, 2),
    weight_decay=0.0,
    normalization=None,
    name="resnet18",
    synchronized_bn=False,
    **kwargs,
):
    """Builds the CIFAR ResNet-18 as a chain of named stages.

    Args:
        num_classes: outputs of the linear head (logits, no softmax).
        input_shape: (H, W, C) of the images.
        width: channels of the first stage; stages have width * (1, 2, 4, 8).
            64 is the standard ResNet-18; smaller widths make fast tests.
        blocks_per_stage: basic blocks in each of the four stages.
        weight_decay: optional L2 factor on convolution and dense kernels.
        normalization: optional per-channel `(mean, std)` (see `cifar_resnet`).
        name: model name.
        synchronized_bn: see `cifar_resnet`.
        **kwargs: `cifar_resnet`'s `bn_momentum`, `bn_epsilon`,
            `decay_all_weights`.

    Returns:
        A functional `keras.Model` mapping images to logits whose layers are
        the sub-models `stem`, `stage1`, `stage2`, `stage3`, `stage4` and `head`.

    Example:

    >>> model = cifar_resnet18(num_classes=10, width=16)
    >>> [layer.name for layer in model.layers][1:]
    ['stem', 'stage1', 'stage2', 'stage3', 'stage4', 'head']
    """
    return cifar_resnet(num_classes, input_shape, tuple(width * m for m in (1, 2, 4, 8)),
                        blocks_per_stage, weight_decay, normalization, name, synchronized_bn,
                        **kwargs)


def small_resnet(
    num_classes=10,
    input_shape=(32, 32, 3),
    filters=(32, 64, 128),
    weight_decay=0.0,
    normalization=None,
    name="small_resnet",
    synchronized_bn=False,
    **kwargs,
):
    """A small CIFAR ResNet for quick runs: stages of 32, 64 and 128 filters,
    one basic block (two 3x3 convolutions) each, global pooling and a dense
    head; about 0.31M weights, the network of the accuracy benchmark. The
    arguments (and `**kwargs`) are those of `cifar_resnet`.

    Example:

    >>> model = small_resnet(num_classes=10)
    >>> [layer.name for layer in model.layers][1:]
    ['stem', 'stage1', 'stage2', 'stage3', 'head']
    """
    return cifar_resnet(num_classes, input_shape, tuple(filters), (1,) * len(filters),
                        weight_decay, normalization, name, synchronized_bn, **kwargs)

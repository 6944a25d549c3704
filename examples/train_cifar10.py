"""Train a CIFAR-10 ResNet-18 with any method of keras_miamix.

Mixing layers run either in the tf.data pipeline (`--where data`, on the host)
or inside the compiled train step (`--where device`, through `MixModel`);
Manifold Mixup and AutoMix are training models.

Data: CIFAR-10 from TensorFlow Datasets (downloads on first use), or a local
`.npz` with `x_train`, `y_train`, `x_test`, `y_test` (`--data`).

Examples:
    python examples/train_cifar10.py --method miamix --epochs 200
    python examples/train_cifar10.py --method cutmix --where device --jit
    python examples/train_cifar10.py --method automix --data ../shared/data/cifar10_subset.npz
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_miamix as km  # noqa: E402

LAYERS = {
    "mixup": km.MixUp,
    "cutmix": km.CutMix,
    "fmix": km.FMix,
    "gridmix": km.GridMix,
    "gmix": km.GMix,
    "agmix": km.AGMix,
    "resizemix": km.ResizeMix,
    "miamix": km.MiAMix,
}
METHODS = ["none", *LAYERS, "manifold", "automix"]
MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], np.float32)


def load_cifar10(path=None, data_dir=None):
    """(x_train, y_train), (x_test, y_test) as uint8 images and int labels."""
    if path:
        d = np.load(path)
        return (d["x_train"], d["y_train"].astype("int32")), (d["x_test"],
                                                               d["y_test"].astype("int32"))
    import tensorflow_datasets as tfds

    splits = []
    for split in ("train", "test"):
        ds = tfds.load("cifar10", split=split, as_supervised=True, data_dir=data_dir)
        chunks = list(tfds.as_numpy(ds.batch(10000)))
        x = np.concatenate([c[0] for c in chunks])
        y = np.concatenate([c[1] for c in chunks]).astype("int32")
        splits.append((x, y))
    return splits[0], splits[1]


def standard_augment(images, seed):
    """Random crop with 4-pixel padding and horizontal flip (the CIFAR default)."""
    return km.ops.random_flip_translate(images, seed, max_shift=4 / 32)


def make_datasets(train, test, batch_size, mixer=None, augment=True):
    (x, y), (xt, yt) = train, test

    def normalise(images):
        return (tf.cast(images, tf.float32) / 255.0 - MEAN) / STD

    seeds = tf.data.Dataset.counter().map(lambda i: tf.stack([i, i]))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(batch_size)
    ds = tf.data.Dataset.zip((ds, seeds)).map(
        lambda b, s: (standard_augment(normalise(b[0]), tf.cast(s, tf.int32))
                      if augment else normalise(b[0]), b[1]),
        num_parallel_calls=tf.data.AUTOTUNE)
    if mixer is not None:
        ds = ds.map(mixer, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda a, b: (a, tf.one_hot(b, 10)))
    test_ds = tf.data.Dataset.from_tensor_slices((xt, yt)).batch(batch_size).map(
        lambda a, b: (normalise(a), tf.one_hot(b, 10)))
    return ds.prefetch(tf.data.AUTOTUNE), test_ds.prefetch(tf.data.AUTOTUNE)


def build_model(method, where, width, steps, seed=0):
    """The model to compile and the mixer for the pipeline (or None)."""
    net = km.models.cifar_resnet18(num_classes=10, width=width)
    if method == "automix":
        return km.models.AutoMix(net, num_classes=10, seed=seed, total_steps=steps), None
    if method == "manifold":
        return km.models.ManifoldMixup(net, num_classes=10, seed=seed), None
    if method == "none":
        return net, None
    # MiAMix makes its own two augmented views; the pipeline's standard
    # augmentation then only prepares the batch.
    mixer = LAYERS[method](num_classes=10, seed=seed)
    if where == "device":
        return km.models.MixModel(net, mixer), None
    return net, mixer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", choices=METHODS, default="miamix")
    parser.add_argument("--where", choices=["data", "device"], default="data")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--data", help=".npz with x_train, y_train, x_test, y_test")
    parser.add_argument("--data-dir", help="TensorFlow Datasets directory")
    parser.add_argument("--limit", type=int, help="use only this many training images")
    parser.add_argument("--jit", action="store_true", help="compile the train step with XLA")
    args = parser.parse_args(argv)

    train, test = load_cifar10(args.data, args.data_dir)
    if args.limit:
        train = (train[0][: args.limit], train[1][: args.limit])
    steps = args.epochs * -(-len(train[0]) // args.batch)
    model, mixer = build_model(args.method, args.where, args.width, steps)
    # MiAMix augments its two views itself (flip and translate).
    augment = not (args.method == "miamix" and args.where == "data")
    train_ds, test_ds = make_datasets(train, test, args.batch, mixer, augment)
    schedule = keras.optimizers.schedules.CosineDecay(args.lr, max(steps, 1))
    optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=5e-4)
    if args.method == "automix":
        model.compile(optimizer=optimizer, jit_compile=args.jit)
    else:
        model.compile(optimizer, keras.losses.CategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], jit_compile=args.jit)
    history = model.fit(train_ds, epochs=args.epochs, validation_data=test_ds, verbose=2)
    result = model.evaluate(test_ds, verbose=0, return_dict=True)
    print("test:", {k: round(float(v), 4) for k, v in result.items()})
    return history, result


if __name__ == "__main__":
    main(sys.argv[1:])

"""Throughput of `model.fit` with MiAMix in the tf.data pipeline.

Trains the CIFAR ResNet-18 on real CIFAR-10 images (`cifar10_subset.npz`, see
`--data`) with two pipelines that differ only by the mixing map:

    ds.shuffle().batch().map(to_one_hot).prefetch()             # plain
    ds.shuffle().batch().map(MiAMix(...), AUTOTUNE).prefetch()  # MiAMix

alternating them epoch by epoch (after one warm-up epoch each) so that machine
noise affects both alike, and reports images per second and their ratio
(MiAMix / plain; 1.0 means mixing is free).

Usage:
    python benchmarks/fit_overhead.py --data ../shared/data/cifar10_subset.npz
    python benchmarks/fit_overhead.py --images 1024 --rounds 2 --json out.json
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_miamix as km  # noqa: E402

DEFAULT_DATA = os.environ.get(
    "KERAS_MIAMIX_CIFAR",
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10_subset.npz"),
)


class Throughput(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--images", type=int, default=1024, help="training images per epoch")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--width", type=int, default=64, help="ResNet-18 base width")
    parser.add_argument("--rounds", type=int, default=2, help="timed epochs per pipeline")
    parser.add_argument("--json")
    args = parser.parse_args()
    if not os.path.exists(args.data):
        print(f"CIFAR-10 subset not found at {args.data}; pass --data. Skipping.")
        return 0
    data = np.load(args.data)
    x = data["x_train"][: args.images]
    y = data["y_train"][: args.images].astype("int32")

    def pipeline(mix):
        ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0)
        ds = ds.batch(args.batch)
        if mix:
            layer = km.MiAMix(num_classes=10, seed=0)
            ds = ds.map(layer, num_parallel_calls=tf.data.AUTOTUNE)
        else:
            ds = ds.map(lambda a, b: (tf.cast(a, tf.float32), tf.one_hot(b, 10)),
                        num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.map(lambda a, b: (a / 255.0, b))
        return ds.prefetch(tf.data.AUTOTUNE)

    models, timers, datasets = {}, {}, {}
    for name, mix in (("plain", False), ("MiAMix", True)):
        model = km.models.cifar_resnet18(num_classes=10, width=args.width)
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                      keras.losses.CategoricalCrossentropy(from_logits=True))
        models[name], timers[name], datasets[name] = model, Throughput(), pipeline(mix)
        model.fit(datasets[name], epochs=1, verbose=0)  # warm-up: tracing, caches
    for _ in range(args.rounds):
        for name in models:
            models[name].fit(datasets[name], epochs=1, verbose=0, callbacks=[timers[name]])
    rate = {n: args.images * len(t.seconds) / sum(t.seconds) for n, t in timers.items()}
    ratio = rate["MiAMix"] / rate["plain"]
    print(f"TF {tf.__version__}, {args.images} images/epoch, batch {args.batch}, "
          f"width {args.width}, {args.rounds} timed epochs each")
    print(f"plain  pipeline: {rate['plain']:8.1f} images/s")
    print(f"MiAMix pipeline: {rate['MiAMix']:8.1f} images/s")
    print(f"ratio MiAMix / plain: {ratio:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "images_per_second": rate, "ratio": ratio}, f,
                      indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

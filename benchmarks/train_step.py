"""Seconds per training step of the mixing models, as ratios to plain training.

Times one compiled `train_on_batch` of the same CIFAR ResNet-18 trained
plainly, as `MixModel(MiAMix)` (mixing on the device inside the step), as
`ManifoldMixup`, as `AutoMix` and as `PuzzleMix` (its default solver, and
`PuzzleMix(gco)` with the official graph cut on the host), after a warm-up, interleaving the models
round by round so that machine noise hits all of them alike, and reports the
median seconds per step and the ratio to plain training.

`--backend jax` runs the same models under Keras's JAX backend, without
TensorFlow, each step compiled by `jax.jit` (Keras's default there), on JAX's
default device: a GPU where JAX has one.

Usage:
    python benchmarks/train_step.py                      # batch 64, width 64
    python benchmarks/train_step.py --batch 128 --jit --json out.json
    python benchmarks/train_step.py --backend jax --json benchmarks/results/train_step_jax.json
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backend_choice import BACKENDS  # noqa: E402
from backend_choice import select_backend  # noqa: E402

if __name__ == "__main__":
    select_backend(sys.argv[1:])

import keras  # noqa: E402
import numpy as np  # noqa: E402
from layers import backend_description  # noqa: E402
from layers import backend_versions  # noqa: E402
from layers import devices  # noqa: E402

import keras_miamix as km  # noqa: E402


def build(name, args):
    net = km.models.cifar_resnet18(num_classes=10, width=args.width)
    ce = keras.losses.CategoricalCrossentropy(from_logits=True)
    opt = keras.optimizers.SGD(0.1, momentum=0.9)
    if name == "plain":
        net.compile(opt, ce, jit_compile=args.jit)
        return net
    if name == "MixModel(MiAMix)":
        model = km.models.MixModel(net, km.MiAMix(num_classes=10, seed=0))
    elif name == "ManifoldMixup":
        model = km.models.ManifoldMixup(net, num_classes=10, seed=0)
    elif name.startswith("PuzzleMix"):
        solver = "gco" if name == "PuzzleMix(gco)" else "icm"
        model = km.models.PuzzleMix(net, num_classes=10, seed=0, solver=solver,
                                    value_range=(0, 1))
    else:
        model = km.models.AutoMix(net, num_classes=10, seed=0, total_steps=1000)
        model.compile(optimizer=opt, jit_compile=args.jit)
        return model
    model.compile(opt, ce, jit_compile=args.jit)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=64, help="ResNet-18 base width")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--jit", action="store_true", help="compile the steps with XLA")
    parser.add_argument("--models", default="plain,MixModel(MiAMix),ManifoldMixup,AutoMix,"
                                             "PuzzleMix,PuzzleMix(gco)")
    parser.add_argument("--backend", choices=BACKENDS, default="tensorflow")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.backend != keras.backend.backend():
        parser.error(f"--backend {args.backend}: Keras was imported with the "
                     f"{keras.backend.backend()} backend; run this file as a script")
    if args.backend == "jax":
        args.jit = True  # uncompiled, Keras's JAX trainer runs op by op
    rng = np.random.RandomState(0)
    x = rng.rand(args.batch, 32, 32, 3).astype("float32")
    y = rng.randint(0, 10, args.batch)
    y_onehot = np.eye(10, dtype="float32")[y]
    names = args.models.split(",")
    models = {n: build(n, args) for n in names}

    def step(name):
        labels = y_onehot if name == "plain" else y
        start = time.perf_counter()
        models[name].train_on_batch(x, labels)
        return time.perf_counter() - start

    for _ in range(args.warmup):
        for n in names:
            step(n)
    times = {n: [] for n in names}
    for _ in range(args.steps):
        for n in names:
            times[n].append(step(n))
    base = statistics.median(times["plain"]) if "plain" in times else None
    print(f"{backend_description()}, devices {devices()}, batch {args.batch}, "
          f"width {args.width}, XLA {args.jit}")
    print(f"{'model':<18} {'s/step':>8} {'x plain':>8}")
    rows = []
    for n in names:
        med = statistics.median(times[n])
        ratio = med / base if base else float("nan")
        rows.append({"model": n, "seconds_per_step": med, "ratio_to_plain": ratio})
        print(f"{n:<18} {med:8.3f} {ratio:8.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), **backend_versions(), "devices": devices(),
                       "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()

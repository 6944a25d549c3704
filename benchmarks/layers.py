"""Speed of every mixing layer, as ratios measured in one run.

For each batch shape and each method it times, after a warm-up and with the
calls interleaved round by round (so that the machine's noise hits every
contender alike), the median milliseconds per batch of

* our layer under `tf.function` and under `tf.function(jit_compile=True)`;
* a plain per-sample linear blend `lam * x + (1 - lam) * x[perm]` of the same
  batch in the same mode (the floor any mixing layer pays);
* the Keras core layer (`keras.layers.MixUp` / `CutMix`) and the keras-cv layer
  (`MixUp` / `CutMix` / `FourierMix`) of the same method, where one exists,
  under `tf.function` (neither compiles with XLA: the gamma op behind their Beta
  draws has no XLA kernel).

and prints a table of milliseconds and ratios (ours / blend, ours / baseline).

Usage:
    python benchmarks/layers.py                 # both shapes, all methods
    python benchmarks/layers.py --json out.json
    python benchmarks/layers.py --shapes 128,32,32,3 --methods MixUp,CutMix
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_miamix as km  # noqa: E402

METHODS = ["MixUp", "CutMix", "FMix", "GridMix", "GMix", "AGMix", "ResizeMix", "MiAMix"]
BASELINES = {
    "MixUp": ["keras.MixUp", "keras_cv.MixUp"],
    "CutMix": ["keras.CutMix", "keras_cv.CutMix"],
    "FMix": ["keras_cv.FourierMix"],
}
NUM_CLASSES = 10


def make_ours(name):
    return getattr(km, name)(seed=0)


def make_baseline(name):
    lib, cls = name.split(".")
    if lib == "keras":
        return getattr(keras.layers, cls)(seed=0)
    import keras_cv

    return getattr(keras_cv.layers, cls)(seed=0)


def blend(images, labels, seed):
    """Per-sample linear blend with a random partner: the reference cost."""
    n = tf.shape(images)[0]
    lam = tf.random.stateless_uniform([n], seed)
    perm = tf.argsort(tf.random.stateless_uniform([n], seed + 1))
    lam_x = lam[:, None, None, None]
    x = lam_x * images + (1.0 - lam_x) * tf.gather(images, perm)
    y = lam[:, None] * labels + (1.0 - lam[:, None]) * tf.gather(labels, perm)
    return x, y


def time_interleaved(calls, warmup, repeats):
    """Median ms per call of each `name: (fn, args)`, calling them in turn."""
    for _ in range(warmup):
        for fn, args in calls.values():
            fn(*args)
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, (fn, args) in calls.items():
            start = time.perf_counter()
            fn(*args)
            times[name].append(time.perf_counter() - start)
    return {name: 1000.0 * statistics.median(t) for name, t in times.items()}


def run(shapes, methods, warmup, repeats):
    rows = []
    for shape in shapes:
        images = tf.random.uniform(shape)
        labels = tf.one_hot(tf.range(shape[0]) % NUM_CLASSES, NUM_CLASSES)
        seed = tf.constant([1, 2])
        reps = repeats if shape[1] <= 64 else max(5, repeats // 4)
        blend_tf = tf.function(blend)
        blend_xla = tf.function(blend, jit_compile=True)
        for name in methods:
            ours_tf, ours_xla = make_ours(name), make_ours(name)
            calls = {
                "blend": (blend_tf, (images, labels, seed)),
                "blend_xla": (blend_xla, (images, labels, seed)),
                "ours": (tf.function(lambda x, y, layer=ours_tf: layer((x, y))),
                         (images, labels)),
                "ours_xla": (tf.function(lambda x, y, layer=ours_xla: layer((x, y)),
                                         jit_compile=True), (images, labels)),
            }
            for bname in BASELINES.get(name, []):
                try:
                    blayer = make_baseline(bname)
                except ImportError:
                    continue
                calls[bname] = (tf.function(lambda d, blayer=blayer: blayer(d)),
                                ({"images": images, "labels": labels},))
            ms = time_interleaved(calls, warmup, reps)
            row = {"method": name, "shape": list(shape), "blend_ms": ms["blend"],
                   "blend_xla_ms": ms["blend_xla"], "ms": ms["ours"], "xla_ms": ms["ours_xla"],
                   "ratio_blend": ms["ours"] / ms["blend"],
                   "xla_ratio_blend": ms["ours_xla"] / ms["blend_xla"], "baselines": {}}
            for bname in BASELINES.get(name, []):
                if bname in ms:
                    row["baselines"][bname] = {"ms": ms[bname],
                                               "ours_ratio": ms["ours"] / ms[bname]}
            rows.append(row)
            print_row(row, flush=True)
    return rows


HEADER = (f"{'method':<10} {'shape':<16} {'ms':>8} {'x blend':>8} {'xla ms':>8} "
          f"{'x blend':>8}  baselines (ms, ours/baseline)")


def print_row(row, flush=False):
    shape = "x".join(str(s) for s in row["shape"])
    base = ", ".join(f"{k} {v['ms']:.2f} ms ({v['ours_ratio']:.2f}x)"
                     for k, v in row["baselines"].items())
    print(f"{row['method']:<10} {shape:<16} {row['ms']:8.2f} {row['ratio_blend']:8.2f} "
          f"{row['xla_ms']:8.2f} {row['xla_ratio_blend']:8.2f}  {base}", flush=flush)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default="128,32,32,3;64,224,224,3",
                        help="semicolon-separated batch shapes")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes.split(";")]
    methods = [m for m in args.methods.split(",") if m]
    print(f"TF {tf.__version__}, Keras {keras.__version__}, "
          f"devices: {[d.device_type for d in tf.config.list_logical_devices()]}")
    print(HEADER)
    rows = run(shapes, methods, args.warmup, args.repeats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tensorflow": tf.__version__, "keras": keras.__version__,
                       "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()

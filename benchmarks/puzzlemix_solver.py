"""PuzzleMix's default solver against the official graph cut (gco's
alpha-beta swap) on real saliency from a trained classifier.

For each grid size of PuzzleMix (2, 4, 8, 16 blocks to a side), it takes
`--images` CIFAR-10 training images in batches, their saliency from the
trained classifier (`PuzzleMix.saliency`, inference mode), one permutation
and one lambda ~ Beta(1, 1) per sample, builds the official labelling costs
(`keras_miamix.ops.puzzlemix`) and solves them with `icm_labels` (the
default) and `gco_labels` (the official). Both labellings are scored with the
same float energy (`labelling_energy`); the relative gap is
(E_default - E_gco) / |E_gco| per image. Also times each solver per batch
(after a warm-up, interleaved): the default solver in a `tf.function`, as
in the training step, with and without XLA; gco on the host.

    python benchmarks/puzzlemix_solver.py \
        --classifier benchmarks/results/work/miamix-seed0/model.keras
    python benchmarks/report.py    # the README table
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_miamix as km  # noqa: E402
from keras_miamix import training  # noqa: E402
from keras_miamix.ops import puzzlemix as pm  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
DEFAULT_DATA = os.environ.get(
    "KERAS_MIAMIX_CIFAR", os.path.join(HERE, "..", "..", "shared", "data", "cifar10_subset.npz"))
DEFAULT_CLASSIFIER = os.path.join(HERE, "results", "work", "miamix-seed0", "model.keras")
DEFAULT_JSON = os.path.join(HERE, "results", "puzzlemix_solver.json")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--classifier", default=DEFAULT_CLASSIFIER,
                        help="a trained classifier (.keras) of the data's images")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="timed calls per solver")
    parser.add_argument("--json", default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    data = training.load_data(args.data)
    classifier = keras.models.load_model(args.classifier)
    model = km.models.PuzzleMix(classifier, num_classes=data.num_classes, input_std=data.std,
                                seed=0)
    images, classes = data.take_images(args.images)
    images = images.astype(np.float32)
    labels = np.eye(data.num_classes, dtype=np.float32)[classes]
    rng = np.random.default_rng(0)
    batches = []
    for start in range(0, len(images), args.batch):
        x = images[start:start + args.batch]
        saliency, _, _ = model.saliency(tf.constant(x), labels[start:start + args.batch])
        n = len(x)
        batches.append((x, np.asarray(saliency), rng.permutation(n).astype(np.int32),
                        rng.beta(1.0, 1.0, n).astype(np.float32)))
    accuracy = float(np.mean(np.argmax(classifier.predict(images, verbose=0), -1)
                             == np.argmax(labels, -1)))
    rows = []
    for block_num in (2, 4, 8, 16):
        gaps, better, equal = [], 0, 0
        problems = []
        for x, saliency, perm, lam in batches:
            terms = pm.graph_terms(x / 255.0, saliency, perm, block_num)
            costs = pm.labelling_costs(terms, lam, 3, 0.2, block_num)
            problems.append((costs, terms))
            e_icm = np.asarray(pm.labelling_energy(costs, terms, pm.icm_labels(costs, terms)))
            e_gco = np.asarray(pm.labelling_energy(costs, terms, pm.gco_labels(costs, terms)))
            gap = (e_icm - e_gco) / np.abs(e_gco)
            gaps.extend(gap.tolist())
            better += int(np.sum(e_icm < e_gco - 1e-7))
            equal += int(np.sum(np.abs(e_icm - e_gco) <= 1e-7))
        costs, terms = problems[0]
        graph = tf.function(lambda c, t: pm.icm_labels(c, t))
        xla = tf.function(lambda c, t: pm.icm_labels(c, t), jit_compile=True)
        solvers = {"default": graph, "default_xla": xla, "gco": pm.gco_labels}
        times = {k: [] for k in solvers}
        for fn in solvers.values():
            np.asarray(fn(costs, terms))  # warm-up (and compile)
        for _ in range(args.rounds):
            for k, fn in solvers.items():
                start = time.perf_counter()
                np.asarray(fn(costs, terms))
                times[k].append(time.perf_counter() - start)
        gaps = np.array(gaps)
        row = {"block_num": block_num, "images": int(len(gaps)),
               "mean_gap": float(gaps.mean()), "median_gap": float(np.median(gaps)),
               "p95_gap": float(np.quantile(gaps, 0.95)), "max_gap": float(gaps.max()),
               "share_equal": equal / len(gaps), "share_lower": better / len(gaps),
               **{f"ms_{k}": 1000 * statistics.median(v) for k, v in times.items()}}
        rows.append(row)
        print(f"{block_num:2d}x{block_num:<2d} gap mean {row['mean_gap']:+.4%} "
              f"p95 {row['p95_gap']:+.4%} max {row['max_gap']:+.4%}; equal "
              f"{row['share_equal']:.0%}, lower {row['share_lower']:.0%}; ms/batch default "
              f"{row['ms_default']:.1f} (XLA {row['ms_default_xla']:.1f}), gco {row['ms_gco']:.1f}")
    out = {"classifier": os.path.relpath(args.classifier, os.path.dirname(HERE)),
           "classifier_train_accuracy": accuracy, "images": int(len(images)),
           "batch": args.batch, "tensorflow": tf.__version__, "cpu_count": os.cpu_count(),
           "measured": time.strftime("%Y-%m-%d"), "rows": rows}
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
    print("wrote", args.json)


if __name__ == "__main__":
    main()

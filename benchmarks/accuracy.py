"""Accuracy, calibration and corruption robustness of every method, trained
under one protocol on real CIFAR-10 images.

Protocol (issue 9): the small CIFAR ResNet (stages of 32, 64 and 128 filters,
one basic block each, global pooling, a dense head), SGD with momentum 0.9,
learning rate 0.1 with cosine decay to 0, weight decay 5e-4 (PyTorch's
coupled form), batch 64, random flip and 4-pixel pad-and-crop before mixing
(MiAMix makes its own two views instead), per-channel normalisation, 200
epochs, each method with the package's defaults. Every run goes through
`keras_miamix.training.train`, the path of the `keras-miamix` command.

Each finished (method, seed) is appended to the results JSON at once; runs
already there are skipped, and an interrupted run resumes from its backup in
`--work`, so the script can be stopped and started again at any time:

    nohup python benchmarks/accuracy.py > accuracy.log 2>&1 &
    python benchmarks/report.py        # README table and docs/accuracy.png

`--quick` trains a few steps on a few images (what the tests run).
"""

import argparse
import datetime
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

import keras_miamix  # noqa: E402
from keras_miamix import training  # noqa: E402
from keras_miamix.training import evaluation  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.environ.get(
    "KERAS_MIAMIX_CIFAR", os.path.join(HERE, "..", "..", "shared", "data", "cifar10_subset.npz"))
DEFAULT_RESULTS = os.path.join(HERE, "results", "accuracy.json")
HEADLINE = ("none", "mixup", "miamix", "cutmix")
OTHERS = ("fmix", "gridmix", "gmix", "agmix", "resizemix", "manifold_mixup",
          "keras_mixup", "keras_cutmix", "automix")


def default_plan():
    """(method, seed) in the order they run: the headline methods first, a
    seed at a time (so the table fills evenly), then one seed of the rest,
    then AutoMix's further seeds."""
    plan = [(m, s) for s in (0, 1, 2) for m in HEADLINE]
    plan += [(m, 0) for m in OTHERS]
    plan += [("automix", 1), ("automix", 2)]
    return plan


def protocol(quick):
    if quick:
        return dict(model="small_resnet", epochs=1, batch_size=16, lr=0.1, weight_decay=5e-4,
                    jit=False,
                    steps_per_epoch=2, limit=64, test_limit=32)
    return dict(model="small_resnet", epochs=200, batch_size=64, lr=0.1, weight_decay=5e-4,
                jit=False)


def load_results(path):
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"protocol": None, "runs": []}


def save_results(path, results):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, path)


def run_one(method, seed, data, args):
    settings = protocol(args.quick)
    limits = {k: settings.pop(k) for k in ("limit", "test_limit") if k in settings}
    work = os.path.join(args.work, f"{method}-seed{seed}")
    config = training.TrainConfig(method=method, seed=seed, output=work,
                                  verbose=0 if args.quick else 2, **settings)
    start = time.time()
    result = training.train(config, data=data)
    train_seconds = time.time() - start
    images, labels = data.take_images(limits.get("test_limit", data.test_size), "test")
    scores = evaluation.evaluate_classifier(
        result.classifier, images, labels,
        corruptions=None, severities=(1, 5) if args.quick else (1, 2, 3, 4, 5), seed=0)
    entry = {
        "method": method,
        "seed": seed,
        **{k: result.report[k] for k in ("epochs", "batch_size", "lr", "weight_decay", "model",
                                         "train_images", "test_images", "steps_per_epoch")},
        "accuracy": scores["accuracy"],
        "ece": scores["ece"],
        "nll": scores["nll"],
        "mca": scores.get("mca"),
        "corruptions": scores.get("corruptions"),
        "seconds_per_epoch": result.report["seconds_per_epoch"],
        "train_seconds": train_seconds,
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"keras_miamix": keras_miamix.__version__, "tensorflow": tf.__version__},
    }
    if method == "automix":
        entry["student_accuracy"] = result.report["student_accuracy"]
    return entry


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="dataset: the CIFAR-10 subset .npz (default), or any --dataset "
                             "of keras-miamix train")
    parser.add_argument("--results", default=DEFAULT_RESULTS)
    parser.add_argument("--work", default=os.path.join(HERE, "results", "work"),
                        help="folder of the runs' backups and files")
    parser.add_argument("--methods", nargs="+", help="only these methods (default: the plan)")
    parser.add_argument("--seeds", nargs="+", type=int, help="only these seeds")
    parser.add_argument("--max-runs", type=int, help="stop after this many new runs")
    parser.add_argument("--quick", action="store_true", help="a few steps: a smoke test")
    args = parser.parse_args(argv)
    if args.data.endswith(".npz") and not os.path.exists(args.data):
        print(f"Data not found at {args.data}; pass --data (or set KERAS_MIAMIX_CIFAR). "
              "Nothing to do.")
        return 0
    plan = default_plan()
    if args.methods:
        unknown = set(args.methods) - set(training.METHODS)
        if unknown:
            parser.error(f"unknown methods {sorted(unknown)}; choose from {training.METHODS}")
        plan = [(m, s) for m in args.methods for s in (args.seeds or (0, 1, 2))]
    elif args.seeds:
        plan = [(m, s) for m, s in plan if s in args.seeds]
    results = load_results(args.results)
    settings = protocol(args.quick)
    if results["protocol"] not in (None, settings):
        parser.error(f"{args.results} holds runs of another protocol: {results['protocol']}")
    results["protocol"] = settings
    done = {(r["method"], r["seed"]) for r in results["runs"]}
    todo = [p for p in plan if p not in done]
    print(f"{len(done)} runs done, {len(todo)} to go: {todo}", flush=True)
    data = training.load_data(args.data)
    for count, (method, seed) in enumerate(todo):
        if args.max_runs is not None and count >= args.max_runs:
            break
        print(f"=== {method} seed {seed}", flush=True)
        entry = run_one(method, seed, data, args)
        results = load_results(args.results)
        results["protocol"] = settings
        results["runs"] = [r for r in results["runs"]
                           if (r["method"], r["seed"]) != (method, seed)] + [entry]
        save_results(args.results, results)
        print(f"=== {method} seed {seed}: accuracy {entry['accuracy']:.4f}, "
              f"ECE {entry['ece']:.4f}, mCA {entry['mca']:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CIFAR-10-C robustness of the accuracy benchmark's trained classifiers: the
19 corruptions of Hendrycks & Dietterich at 5 severities (issue 36, item 12).

`benchmarks/accuracy.py` scores every run on its 9 home-made corruptions as it
ends (the table's mCA column, kept for comparison with the earlier runs); this
script scores the runs whose classifier is still saved in `--work`
(`METHOD-seedSEED/model.keras`) on the standard set, and `accuracy.py` calls
it for each run it finishes. The corrupted images are the benchmark's own test
images (the shared subset's first 1017 CIFAR-10 test images), either

* built once by `keras_miamix.training.cifar_c.build_cifar_c` (the official
  make_cifar_c.py functions, seed 0) and cached in `--work/cifar10c`, or
* taken from the released CIFAR-10-C arrays with `--cifar-c DIR` (the tar
  unpacked): their first N images of each severity are the same test images,
  in the same order; the labels are checked against the subset's.

Results go to `benchmarks/results/cifar_c.json`, one entry per run, with the
run's `finished` stamp (a re-run of the method is scored again):

    python benchmarks/robustness.py                   # every run not yet scored
    python benchmarks/robustness.py --cifar-c ~/CIFAR-10-C
    python benchmarks/report.py                       # the README's CIFAR-10-C table
"""

import argparse
import datetime
import hashlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import accuracy  # noqa: E402

from keras_miamix import training  # noqa: E402
from keras_miamix.training import cifar_c  # noqa: E402
from keras_miamix.training import evaluation  # noqa: E402

DEFAULT_RESULTS = os.path.join(HERE, "results", "cifar_c.json")
BUILT = "keras_miamix.training.cifar_c.build_cifar_c(seed=0)"


def corrupted_test_set(data, cache, cifar_c_dir=None, limit=None, corruptions=None):
    """The CIFAR-10-C images of `data`'s test split (its first `limit`)."""
    images, labels = data.take_images(limit or data.test_size, "test")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"CIFAR-10-C needs RGB test images; received shape {images.shape}.")
    if cifar_c_dir:
        released = cifar_c.load_cifar_c(cifar_c_dir, corruptions=corruptions, limit=len(labels))
        if not np.array_equal(released.labels, labels):
            raise ValueError(f"The first {len(labels)} labels of {cifar_c_dir} are not the "
                             "test set's: these arrays are not of these test images.")
        released.source = "the released CIFAR-10-C arrays"
        return released
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()
    stamp = os.path.join(cache, "clean.sha256")
    names = cifar_c.CORRUPTIONS if corruptions is None else tuple(corruptions)
    if os.path.exists(stamp) and open(stamp).read() == digest:
        try:
            cached = cifar_c.load_cifar_c(cache, corruptions=names)
            cached.source = BUILT
            return cached
        except FileNotFoundError:
            pass
    built = cifar_c.build_cifar_c(images, labels, corruptions=names, seed=0, folder=cache)
    built.source = BUILT
    with open(stamp, "w") as f:
        f.write(digest)
    return built


def model_of(work, entry):
    """The run's saved classifier, when it is the one `entry` describes: it
    was written at the run's end, so not after the entry's stamp, nor more
    than an hour before it (a newer run of the same name would replace it)."""
    path = os.path.join(work, f"{entry['method']}-seed{entry['seed']}", "model.keras")
    if not os.path.exists(path):
        return None
    finished = datetime.datetime.fromisoformat(entry["finished"]).timestamp()
    if not finished - 3600 <= os.path.getmtime(path) <= finished + 1:
        return None
    return path


def run_name(entry):
    return f"{entry['method']}-seed{entry['seed']}"


def score_runs(accuracy_results, work, results_path, data, cifar_c_dir=None, names=None,
               limit=None, corruptions=None):
    """Scores each current run of `accuracy_results` (or those in `names`)
    that has its classifier in `work` and no score for that run yet; each
    score is saved as it ends. Returns the names scored."""
    import keras

    acc = accuracy.load_results(accuracy_results)
    results = load_results(results_path)
    todo = []
    for entry in acc["runs"]:
        name = run_name(entry)
        if names is not None and name not in names:
            continue
        if not accuracy.is_current(entry):
            continue
        if results["runs"].get(name, {}).get("finished") == entry["finished"]:
            continue
        path = model_of(work, entry)
        if path is None:
            continue
        todo.append((name, entry, path))
    if not todo:
        return []
    corrupted = corrupted_test_set(data, os.path.join(work, "cifar10c"), cifar_c_dir, limit,
                                   corruptions)
    for name, entry, path in todo:
        classifier = keras.models.load_model(path)
        scores = evaluation.evaluate_corrupted(classifier, corrupted)
        results = load_results(results_path)
        results["runs"][name] = {
            "method": entry["method"], "seed": entry["seed"],
            "revision": entry.get("revision", 1), "finished": entry["finished"],
            "accuracy": entry["accuracy"], **scores,
        }
        accuracy.save_results(results_path, results)
        print(f"CIFAR-10-C {name}: mCA {scores['mca']:.4f} (19 x 5), "
              f"{scores['mca_benchmark'] or float('nan'):.4f} (15 x 5)", flush=True)
    return [name for name, _, _ in todo]


def load_results(path):
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"runs": {}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=accuracy.DEFAULT_DATA)
    parser.add_argument("--accuracy-results", default=accuracy.DEFAULT_RESULTS)
    parser.add_argument("--results", default=DEFAULT_RESULTS)
    parser.add_argument("--work", default=os.path.join(HERE, "results", "work"))
    parser.add_argument("--cifar-c", help="a folder of the released CIFAR-10-C .npy files")
    parser.add_argument("--runs", nargs="+", help="only these runs (METHOD-seedSEED)")
    args = parser.parse_args(argv)
    if args.data.endswith(".npz") and not os.path.exists(args.data):
        print(f"Data not found at {args.data}; pass --data. Nothing to do.")
        return 0
    done = score_runs(args.accuracy_results, args.work, args.results,
                      training.load_data(args.data), args.cifar_c, args.runs)
    print(f"{len(done)} runs scored: {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

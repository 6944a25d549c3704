"""Accuracy, calibration and corruption robustness of every method, trained
under one protocol on real CIFAR-10 images.

Protocol (issue 9): the small CIFAR ResNet (stages of 32, 64 and 128 filters,
one basic block each, global pooling, a dense head), SGD with momentum 0.9,
learning rate 0.1 with cosine decay to 0, weight decay 5e-4 (PyTorch's
coupled form), batch 64, random flip and 4-pixel pad-and-crop before mixing
(MiAMix makes its own two views instead), per-channel normalisation, 200
epochs, each method with the package's defaults. Every run goes through
`keras_miamix.training.train`, the path of the `keras-miamix` command.

Each finished run is also scored on CIFAR-10-C's 19 corruptions at 5
severities (`benchmarks/robustness.py`, into `results/cifar_c.json`).

Each finished (method, seed) is appended to the results JSON at once; runs
already there are skipped, and an interrupted run resumes from its backup in
`--work`, so the script can be stopped and started again at any time:

    nohup python benchmarks/accuracy.py > accuracy.log 2>&1 &
    python benchmarks/report.py        # README table and docs/accuracy.png

`--work` is not committed, and a run can be longer than a working session (an
AutoMix run is 2.5 to 4.5 hours on 2 cores), so at the end of every epoch the
unfinished run also writes its state to `--progress`
(`benchmarks/results/progress/METHOD-seedSEED/`: the weights, optimizer and
random state of epoch E as `epoch-EEEE.weights.h5`, with its `history.json`),
which is committed. A run that finds no backup in `--work` restores it from
there and continues at epoch E; a finished run removes its folder.

The runs' own epoch times are taken whenever each ran, on a machine that other
work may have shared, so the table's time column comes from `--timing`
instead: every method of the plan trains a few epochs in one process, the
methods interleaved round by round, on an otherwise idle machine (stop the
runs first: `kill -STOP`, then `kill -CONT`), and each method's time per epoch
is divided by no mixing's of the same round:

    python benchmarks/accuracy.py --timing      # writes "timing" in the JSON

`--quick` trains a few steps on a few images (what the tests run).
"""

import argparse
import datetime
import glob
import json
import os
import re
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_miamix  # noqa: E402
from keras_miamix import training  # noqa: E402
from keras_miamix.training import evaluation  # noqa: E402
from keras_miamix.training import methods as methods_lib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.environ.get(
    "KERAS_MIAMIX_CIFAR", os.path.join(HERE, "..", "..", "shared", "data", "cifar10_subset.npz"))
DEFAULT_RESULTS = os.path.join(HERE, "results", "accuracy.json")
DEFAULT_PROGRESS = os.path.join(HERE, "results", "progress")
HEADLINE = ("none", "mixup", "miamix", "cutmix")
OTHERS = ("fmix", "gridmix", "gmix", "agmix", "resizemix", "manifold_mixup",
          "keras_mixup", "keras_cutmix", "automix")
# The second seed of the single methods, in the order that sharpens the
# headline questions most: those whose one seed is within the spread of
# MiAMix (GMix) or nearest it first, the Keras core baselines last.
SECOND_SEED = ("gmix", "agmix", "manifold_mixup", "resizemix", "fmix", "gridmix",
               "keras_mixup", "keras_cutmix")
# Methods added after that plan ran (issue 35), two seeds each.
ADDED = ("saliencymix", "augmix", "puzzlemix")
# Settings other than the defaults, measured beside them under their own name:
# name -> (method, its arguments). AutoMix with OpenMixup's `head_one_mix`
# tests why the default AutoMix is below MixUp here: its student memorises
# the clean batches it is also trained on.
#
# `head_one_mix` fixed the student (79.2 against the default students' 76.0
# and 77.2) but not the teacher (78.5), whose momentum schedule is OpenMixup's
# per step: with 65 steps an epoch here against 500 in the official CIFAR
# runs, it averages over 7.7 times as many epochs, mostly from before the
# student's best ones, its last. The second variant tests that reading: the
# schedule's base and final momenta raised to the power 500 / 65, so that the
# teacher averages over the official run's horizon in epochs (0.999 ->
# 0.99233, 0.999999 -> 0.9999923; the cosine between them as before). It
# made the teacher gain on its student (+2.1 over the last 20 epochs) but
# ended at 79.35, level with the default AutoMix and below MixUp (README).
#
# Both ran with AutoMix's revision-1 defaults, which their arguments now pin
# (one head, gamma decaying linearly to 0, no weight decay on the Mix Block;
# the learning rate to 0: VARIANT_SETTINGS), so that a run of them means
# what their rows say.
_STEPS_RATIO = 500 / 65
_AUTOMIX_REVISION_1 = {"separate_heads": False, "mask_loss_schedule": "linear",
                       "mix_block_weight_decay": 0.0}
#
# SaliencyMix with `box="batch"` is the official code (one lambda, one map and
# one box for the whole batch); the layer's default gives each sample its own,
# kept as the default only if it trains as well (issue 35).
VARIANTS = {
    "automix_head_one_mix": ("automix", {"head_one_mix": True, **_AUTOMIX_REVISION_1}),
    "automix_head_one_mix_epoch_ema": ("automix", {
        "head_one_mix": True, "momentum": 0.999 ** _STEPS_RATIO,
        "momentum_end": 0.999999 ** _STEPS_RATIO, **_AUTOMIX_REVISION_1}),
    "saliencymix_box_batch": ("saliencymix", {"box": "batch"}),
}
# TrainConfig settings of a plan's name besides the protocol's: the AutoMix
# variants keep revision 1's optimisation (the floor 0, 5e-4 on the kernels,
# Keras's BatchNorm constants).
VARIANT_SETTINGS = {name: {"min_lr": 0.0, "weight_decay": 5e-4, "decay_all_weights": False,
                           "batch_norm": "keras"}
                    for name, (method, _) in VARIANTS.items() if method == "automix"}


def run_settings(method, settings):
    """TrainConfig arguments of plan name `method` under the protocol's
    `settings`: a method with an official configuration of its own
    (`methods.METHOD_SETTINGS`: AutoMix's weight decay) trains with it in
    place of the protocol's value, a variant with its VARIANT_SETTINGS."""
    base, _ = run_method(method)
    own = methods_lib.METHOD_SETTINGS.get(base, {})
    out = {k: v for k, v in settings.items() if k not in own}
    out.update(VARIANT_SETTINGS.get(method, {}))
    return out


# A run counts only while its "revision" is its method's current one (1 when
# absent): when a fix changes what a method computes, its revision goes up
# here, the plan runs it again, and each finished re-run moves the runs it
# replaces to the JSON's "superseded" list (kept, with the revision that
# replaced them). Until then the old runs stay in the table, marked.
REVISIONS = {
    "gmix": 2,
    "agmix": 2,
    "automix": 2,
    "miamix": 2,
}
REVISION_NOTES = {
    "gmix": "the blob holds the smaller share, as in the official hmix-gmix code",
    "agmix": "the blob holds the smaller share, as in the official hmix-gmix code",
    "automix": ("OpenMixup's CIFAR settings: two heads, the mask-loss weight constant at "
                "0.1, weight decay 1e-4 on every weight (Mix Block, biases and "
                "BatchNorm included; was 5e-4 on the kernels), PyTorch's BatchNorm "
                "constants; the learning rate decays to the paper's CIFAR-10 floor "
                "of 1e-3, not 0"),
    "miamix": ("its views zero-padded like every other method's flip and crop (was "
               "reflect), and merge='sum' is eq. 11 as written (the default 'mul' and "
               "the 32 px smoothing windows are unchanged)"),
}


def revisions_record():
    """The JSON's "revisions": method -> its current revision and why."""
    return {m: {"revision": r, "change": REVISION_NOTES[m]} for m, r in REVISIONS.items()}


def revision(name):
    return REVISIONS.get(name, 1)


def is_current(run):
    return run.get("revision", 1) == revision(run["method"])


def record_run(results, entry):
    """Adds a finished run, moving the runs of its (method, seed) that it
    replaces to `results["superseded"]`."""
    key = (entry["method"], entry["seed"])
    replaced = [r for r in results["runs"] if (r["method"], r["seed"]) == key]
    results["runs"] = [r for r in results["runs"] if (r["method"], r["seed"]) != key] + [entry]
    stale = [dict(r, superseded_by_revision=entry["revision"]) for r in replaced
             if r.get("revision", 1) != entry["revision"]]
    if entry.get("rerun"):  # the same code run again (`--rerun`): the old run kept too
        stale += [dict(r, superseded_by_rerun=entry["rerun"]) for r in replaced
                  if r.get("revision", 1) == entry["revision"]]
    if stale:
        results.setdefault("superseded", []).extend(stale)
    return results


def run_method(name):
    """(method, method_args) of a plan's name: a method, or one of VARIANTS."""
    method, method_args = VARIANTS.get(name, (name, {}))
    return method, dict(method_args)


def default_plan():
    """(method, seed) in the order they run: the headline methods first, a
    seed at a time (so the table fills evenly), then one seed of the rest,
    then AutoMix's further seeds, then AutoMix with `head_one_mix` (and with
    its momentum rescaled too), then a second seed of every other method,
    then two seeds of each method added since (`ADDED`), then SaliencyMix's
    official one box per batch, two seeds."""
    plan = [(m, s) for s in (0, 1, 2) for m in HEADLINE]
    plan += [(m, 0) for m in OTHERS]
    plan += [("automix", 1), ("automix", 2)]
    plan += [("automix_head_one_mix", 0), ("automix_head_one_mix_epoch_ema", 0)]
    plan += [(m, 1) for m in SECOND_SEED]
    plan += [(m, s) for s in (0, 1) for m in ADDED]
    plan += [("saliencymix_box_batch", 0), ("saliencymix_box_batch", 1)]
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


_SNAPSHOT = re.compile(r"epoch-(\d+)\.weights\.h5$")


def snapshots(folder):
    """(epoch, path) of the progress snapshots in `folder`, newest first."""
    found = [(int(m.group(1)), path) for path in glob.glob(os.path.join(folder, "*.h5"))
             if (m := _SNAPSHOT.search(os.path.basename(path)))]
    return sorted(found, reverse=True)


class ProgressSnapshot(keras.callbacks.Callback):
    """At each epoch's end, the fitted model's weights (the optimizer's state
    and AutoMix's teacher and Mix Block included) as `epoch-E.weights.h5` in
    `folder`, where E is the number of epochs done, with a copy of the run's
    `history.json`; the older snapshot is then removed. Each file is written
    under a temporary name and renamed, so a stop at any moment leaves the
    last whole snapshot. As with any `BackupAndRestore` resume, a run resumed
    from it continues from those weights, and its later batches are drawn
    anew (the pipeline's shuffle and the pipeline's mixing layer restart)."""

    def __init__(self, folder, history_path):
        super().__init__()
        self.folder = folder
        self.history_path = history_path

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.folder, exist_ok=True)
        with open(os.path.join(self.folder, "revision"), "w") as f:
            f.write(str(revision(_method_of(self.folder))))
        if os.path.exists(self.history_path):  # written by an earlier callback
            shutil.copyfile(self.history_path, os.path.join(self.folder, "history.json.tmp"))
            os.replace(os.path.join(self.folder, "history.json.tmp"),
                       os.path.join(self.folder, "history.json"))
        path = os.path.join(self.folder, f"epoch-{epoch + 1:04d}.weights.h5")
        partial = os.path.join(self.folder, "partial.weights.h5")
        self.model.save_weights(partial)
        os.replace(partial, path)
        for _, older in snapshots(self.folder)[1:]:
            os.remove(older)


def restore_progress(folder, work):
    """Seeds the run's `work` folder from its snapshot in `folder` when the
    snapshot is further on than the backup there (none, on a new machine):
    Keras's `BackupAndRestore` then resumes at the snapshot's epoch. Returns
    that epoch, or None when nothing was restored."""
    found = snapshots(folder)
    if not found:
        return None
    if _progress_revision(folder) != revision(_method_of(folder)):
        shutil.rmtree(folder)  # begun before the method's code changed
        return None
    epoch, path = found[0]
    backup = os.path.join(work, "backup")
    metadata = os.path.join(backup, "training_metadata.json")
    if os.path.exists(metadata):
        with open(metadata) as f:
            if json.load(f)["epoch"] >= epoch:
                return None
    os.makedirs(backup, exist_ok=True)
    shutil.copyfile(path, os.path.join(backup, "latest.weights.h5"))
    for stale in ("latest.weights.h5.bkp", "training_metadata.json.bkp"):
        if os.path.exists(os.path.join(backup, stale)):
            os.remove(os.path.join(backup, stale))
    with open(metadata, "w") as f:
        json.dump({"epoch": epoch, "batch": 0}, f)
    if os.path.exists(os.path.join(folder, "history.json")):
        shutil.copyfile(os.path.join(folder, "history.json"), os.path.join(work, "history.json"))
    return epoch


def _method_of(folder):
    return os.path.basename(os.path.normpath(folder)).rsplit("-seed", 1)[0]


def _progress_revision(folder):
    path = os.path.join(folder, "revision")
    if not os.path.exists(path):
        return 1
    with open(path) as f:
        return int(f.read())


def unfinished_first(todo, progress):
    """The (method, seed) runs of `todo`, those with a snapshot in `progress`
    (begun in an earlier session) first, each group in the plan's order."""
    begun = [p for p in todo if snapshots(os.path.join(progress, f"{p[0]}-seed{p[1]}"))]
    return begun + [p for p in todo if p not in begun]


def curves(history):
    """A run's per-epoch history (a list of dicts, one per epoch) as one list
    per metric, 5 significant digits: the training curves kept with the
    result, so that a run's course (when its test accuracy peaked, how far
    its training accuracy went) can be read from the committed JSON after
    its work folder is gone."""
    keys = [k for k in history[0] if k != "epoch"] if history else []
    return {k: [float(f"{h[k]:.5g}") if h.get(k) is not None else None for h in history]
            for k in keys}


def run_one(method, seed, data, args):
    settings = protocol(args.quick)
    limits = {k: settings.pop(k) for k in ("limit", "test_limit") if k in settings}
    name = f"{method}-seed{seed}"
    work = os.path.join(args.work, name)
    progress = os.path.join(args.progress, name)
    resumed = restore_progress(progress, work)
    if resumed is not None:
        print(f"=== {name}: restored from {progress} at epoch {resumed}", flush=True)
    base, method_args = run_method(method)
    config = training.TrainConfig(method=base, method_args=method_args, seed=seed, output=work,
                                  verbose=0 if args.quick else 2,
                                  **run_settings(method, settings))
    start = time.time()
    snapshot = ProgressSnapshot(progress, os.path.join(work, "history.json"))
    result = training.train(config, data=data, callbacks=[snapshot])
    train_seconds = time.time() - start
    images, labels = data.take_images(limits.get("test_limit", data.test_size), "test")
    scores = evaluation.evaluate_classifier(
        result.classifier, images, labels,
        corruptions=None, severities=(1, 5) if args.quick else (1, 2, 3, 4, 5), seed=0)
    entry = {
        "method": method,
        "seed": seed,
        "revision": revision(method),
        **{k: result.report[k] for k in ("epochs", "batch_size", "lr", "min_lr", "weight_decay",
                                         "decay_all_weights", "batch_norm", "model",
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
        "history": curves(result.history),
    }
    if method_args:
        entry["method_args"] = method_args
    if resumed is not None:
        entry["resumed_at_epoch"] = resumed
    if base == "automix":
        entry["student_accuracy"] = result.report["student_accuracy"]
    return entry


def measure_epoch_times(methods, data, args):
    """Seconds per epoch of each method under the protocol, in this process:
    `args.rounds` rounds, each training every method for one epoch (tracing
    and compilation, left out) plus `args.timing_epochs` timed ones, in turn;
    no mixing is always measured, first in each round (last in every other
    round, which runs in reverse). A method's ratio is the median over rounds
    of its time over no mixing's in the same round."""
    methods = ["none"] + [m for m in methods if m != "none"]
    settings = {k: v for k, v in protocol(args.quick).items()
                if k not in ("limit", "test_limit")}
    settings["epochs"] = 1 + args.timing_epochs
    rounds = []
    for r in range(args.rounds):
        seconds = {}
        # Every other round in reverse, so that a drift of the machine's
        # speed over a round does not favour the methods measured first.
        for method in methods if r % 2 == 0 else methods[::-1]:
            base, method_args = run_method(method)
            config = training.TrainConfig(method=base, method_args=method_args, seed=r,
                                          output=None, verbose=0,
                                          **run_settings(method, settings))
            seconds[method] = training.train(config, data=data).report["seconds_per_epoch"]
            print(f"timing round {r + 1}/{args.rounds}: {method} "
                  f"{seconds[method]:.2f} s/epoch", flush=True)
        rounds.append({m: seconds[m] for m in methods})
    return {
        "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "epochs_timed": args.timing_epochs,
        "rounds": rounds,
        **ratios_to_none(rounds),
        "cpu_count": os.cpu_count(),
        "versions": {"keras_miamix": keras_miamix.__version__, "tensorflow": tf.__version__},
    }


def ratios_to_none(rounds):
    """Per method, the median over rounds of its time over no mixing's in the
    same round ("ratio_to_none") and the lowest and highest ("ratio_range")."""
    per_round = {m: [r[m] / r["none"] for r in rounds] for m in rounds[0]}
    return {"ratio_to_none": {m: float(np.median(v)) for m, v in per_round.items()},
            "ratio_range": {m: [min(v), max(v)] for m, v in per_round.items()}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="dataset: the CIFAR-10 subset .npz (default), or any --dataset "
                             "of keras-miamix train")
    parser.add_argument("--results", default=DEFAULT_RESULTS)
    parser.add_argument("--work", default=os.path.join(HERE, "results", "work"),
                        help="folder of the runs' backups and files")
    parser.add_argument("--progress", default=DEFAULT_PROGRESS,
                        help="folder of the unfinished runs' snapshots (committed)")
    parser.add_argument("--methods", nargs="+", help="only these methods (default: the plan)")
    parser.add_argument("--seeds", nargs="+", type=int, help="only these seeds")
    parser.add_argument("--max-runs", type=int, help="stop after this many new runs")
    parser.add_argument("--quick", action="store_true", help="a few steps: a smoke test")
    parser.add_argument("--timing", action="store_true",
                        help="only measure each method's time per epoch against no mixing, "
                             "interleaved in one process (the table's time column)")
    parser.add_argument("--timing-epochs", type=int, default=3,
                        help="timed epochs per method and round (after one untimed)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --timing")
    parser.add_argument("--rerun", metavar="WHY",
                        help="run --methods/--seeds again although finished (the same code, "
                             "e.g. to keep a classifier for CIFAR-10-C); the old runs stay in "
                             "the JSON's superseded list with WHY")
    parser.add_argument("--cifar-c", help="the released CIFAR-10-C .npy files (default: built "
                                          "from the test images, see benchmarks/robustness.py)")
    parser.add_argument("--cifar-c-results",
                        help="the CIFAR-10-C scores (default: cifar_c.json beside --results)")
    args = parser.parse_args(argv)
    if args.rerun and not args.methods:
        parser.error("--rerun needs --methods (and --seeds): which runs to run again")
    if args.data.endswith(".npz") and not os.path.exists(args.data):
        print(f"Data not found at {args.data}; pass --data (or set KERAS_MIAMIX_CIFAR). "
              "Nothing to do.")
        return 0
    plan = default_plan()
    if args.methods:
        known = (*training.METHODS, *VARIANTS)
        unknown = set(args.methods) - set(known)
        if unknown:
            parser.error(f"unknown methods {sorted(unknown)}; choose from {known}")
        plan = [(m, s) for m in args.methods for s in (args.seeds or (0, 1, 2))]
    elif args.seeds:
        plan = [(m, s) for m, s in plan if s in args.seeds]
    results = load_results(args.results)
    settings = protocol(args.quick)
    if results["protocol"] not in (None, settings):
        parser.error(f"{args.results} holds runs of another protocol: {results['protocol']}")
    results["protocol"] = settings
    if args.timing:
        methods = list(args.methods or dict.fromkeys(m for m, _ in default_plan()))
        timing = measure_epoch_times(methods, training.load_data(args.data), args)
        results = load_results(args.results)  # the runs may have finished one meanwhile
        results["protocol"] = settings
        results["timing"] = timing
        save_results(args.results, results)
        print("time per epoch / no mixing: " + ", ".join(
            f"{m} {r:.2f}" for m, r in timing["ratio_to_none"].items()), flush=True)
        return 0
    results["revisions"] = revisions_record()
    done = {(r["method"], r["seed"]) for r in results["runs"] if is_current(r)}
    if args.rerun:
        done -= set(plan)
    todo = unfinished_first([p for p in plan if p not in done], args.progress)
    print(f"{len(done)} runs done, {len(todo)} to go: {todo}", flush=True)
    data = training.load_data(args.data)
    for count, (method, seed) in enumerate(todo):
        if args.max_runs is not None and count >= args.max_runs:
            break
        print(f"=== {method} seed {seed}", flush=True)
        entry = run_one(method, seed, data, args)
        if args.rerun:
            entry["rerun"] = args.rerun
        results = load_results(args.results)
        results["protocol"] = settings
        results["revisions"] = revisions_record()
        results = record_run(results, entry)
        save_results(args.results, results)
        shutil.rmtree(os.path.join(args.progress, f"{method}-seed{seed}"), ignore_errors=True)
        print(f"=== {method} seed {seed}: accuracy {entry['accuracy']:.4f}, "
              f"ECE {entry['ece']:.4f}, mCA {entry['mca']:.4f}", flush=True)
        score_cifar_c(args, f"{method}-seed{seed}", data)
    return 0


def score_cifar_c(args, name, data):
    """The finished run on CIFAR-10-C's 19 corruptions (benchmarks/robustness.py)."""
    if data.image_shape[-1] != 3:
        print(f"{name}: no CIFAR-10-C score ({data.name} is not RGB)", flush=True)
        return
    import robustness

    limit = protocol(args.quick).get("test_limit")
    robustness.score_runs(args.results, args.work, args.cifar_c_results
                          or os.path.join(os.path.dirname(os.path.abspath(args.results)),
                                          "cifar_c.json"),
                          data, args.cifar_c, names=[name], limit=limit)


if __name__ == "__main__":
    sys.exit(main())

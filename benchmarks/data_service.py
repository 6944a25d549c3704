"""Images per second of the MiAMix input pipeline: in the trainer's process
against the tf.data service with 1 and 2 workers (separate processes).

The pipeline is `keras_miamix.training.train_pipeline` (shuffle, batch,
MiAMix) over real images (`--data`, an .npz with x_train; else the digits),
consumed as fast as possible, with no training: what the service can feed.
Each setting is measured for `--seconds` after a warm-up, in `--rounds`
alternating rounds (median). Writes JSON; `benchmarks/report.py` makes the
README table from it.

    python benchmarks/data_service.py --data ../shared/data/cifar10_subset.npz \\
        --json benchmarks/results/data_service.json
"""

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

import keras_miamix as km  # noqa: E402
from keras_miamix import training  # noqa: E402

WORKER = ("import sys, tensorflow as tf; svc = tf.data.experimental.service; "
          "svc.WorkerServer(svc.WorkerConfig(dispatcher_address=sys.argv[1])).join()")


def pipeline(data, batch, service=None, mode="distributed_epoch"):
    # Repeated at the source, so that one service job streams without end
    # (a `repeat` after the service would start a new job every epoch).
    data = dataclasses.replace(data, train=data.train.repeat())
    mixer = km.MiAMix(num_classes=data.num_classes, seed=0)
    return training.train_pipeline(data, batch, seed=0, augment=False, mixer=mixer,
                                   data_service=service, processing_mode=mode)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help=".npz with x_train, y_train, x_test, y_test")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    data = training.load_data(args.data or "digits")
    svc = tf.data.experimental.service
    dispatchers, workers = {}, []
    iterators = {"in-process": iter(pipeline(data, args.batch))}
    for n in (1, 2):
        d = svc.DispatchServer()
        dispatchers[n] = d
        address = d.target.split("://")[1]
        workers += [subprocess.Popen([sys.executable, "-c", WORKER, address])
                    for _ in range(n)]
        for mode in ("distributed_epoch", "parallel_epochs"):
            iterators[f"service, {n} worker{'s' if n > 1 else ''}, {mode}"] = iter(
                pipeline(data, args.batch, d.target, mode))
    try:
        for it in iterators.values():
            for _ in range(5):
                next(it)
        rates = {name: [] for name in iterators}
        for _ in range(args.rounds):
            for name, it in iterators.items():
                count, start = 0, time.perf_counter()
                while time.perf_counter() - start < args.seconds:
                    next(it)
                    count += 1
                rates[name].append(count * args.batch / (time.perf_counter() - start))
    finally:
        for w in workers:
            w.kill()
    base = statistics.median(rates["in-process"])
    rows = [{"setting": name, "images_per_s": statistics.median(r),
             "ratio_in_process": statistics.median(r) / base} for name, r in rates.items()]
    for row in rows:
        print(f"{row['setting']:<38} {row['images_per_s']:10.0f} images/s "
              f"({row['ratio_in_process']:.2f}x in-process)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tensorflow": tf.__version__, "cpu_count": os.cpu_count(),
                       "data": os.path.basename(args.data or "digits"),
                       "image_shape": list(data.image_shape), "batch": args.batch,
                       "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()

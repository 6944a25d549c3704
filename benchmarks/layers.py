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
Each (shape, method) is measured by a fresh process with its own blend
(`--in-process` measures all in one).

With `--tfdata` it also measures each layer inside an input pipeline over real
images (`--data`, an .npz with `x_train`, else scikit-learn's digits; resized
once to the batch's size and kept as uint8): images per second of
`from_tensor_slices -> repeat -> batch -> map(layer, num_parallel_calls=AUTOTUNE)
-> prefetch`, against the same pipeline with the map a plain cast to float
("no mixing") and with the map the plain blend, one method at a time, its
pipelines alternating with those two in rounds so that the machine's noise
hits each alike, each pipeline made anew for its turn and deleted after it, so
that none runs in the background of another; the layer compiled
(`jit_compile=True`: its mixing compiled by XLA inside the map, the default
`"auto"` with a GPU or TPU) and uncompiled (`jit_compile=False`, the default on
a CPU-only machine), and for both the seconds the first batch takes (tracing
and compilation).

With `--backend jax` it measures instead, without TensorFlow, each layer
under `jax.jit` (its `stateless_call`) against the same blend written in
`jax.numpy` and against Keras core's `MixUp` / `CutMix` under `jax.jit`, all
on JAX's default device (a GPU where JAX has one): what a machine with JAX
and CUDA but no TensorFlow can measure. Its rows carry "backend": "jax" and
the device's kind.

Usage:
    python benchmarks/layers.py                 # both shapes, all methods
    python benchmarks/layers.py --backend jax --json benchmarks/results/layers_jax.json
    python benchmarks/layers.py --json out.json
    python benchmarks/layers.py --shapes 128,32,32,3 --methods MixUp,CutMix
    python benchmarks/layers.py --tfdata --data ../shared/data/cifar10_subset.npz \
        --json benchmarks/results/layers.json   # the README's table
    python benchmarks/layers.py --tfdata --data ../shared/data/cifar10_subset.npz \
        --json benchmarks/results/layers.json --methods FMix --runs 3 --update
        # measure FMix again, three times, and replace only its rows (each run
        # is its own process with its own blend and baselines, so rows compare
        # as before; a row keeps the median of its runs)
"""

import argparse
import gc
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

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf
else:
    tf = None  # --backend jax: measured without TensorFlow

import keras_miamix as km  # noqa: E402

METHODS = ["MixUp", "CutMix", "FMix", "GridMix", "GMix", "AGMix", "ResizeMix", "SaliencyMix",
           "MiAMix"]
BASELINES = {
    "MixUp": ["keras.MixUp", "keras_cv.MixUp"],
    "CutMix": ["keras.CutMix", "keras_cv.CutMix"],
    "FMix": ["keras_cv.FourierMix"],
}
NUM_CLASSES = 10


def cpu_description():
    """The CPU's model name and its widest vector extensions, from
    /proc/cpuinfo (else `platform.processor()`): the ratios to the blend move
    between CPUs (XLA's code for FMix's selection and FFT above all), so each
    row records the one it was measured on."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or "unknown"
    fields = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name", "")
    flags = fields.get("flags", "").split()
    wide = [f for f in ("avx2", "avx512f", "amx_tile") if f in flags]
    return f"{model or platform.processor() or 'unknown'} ({', '.join(wide) or 'no AVX2'})"


def make_ours(name, **kwargs):
    return getattr(km, name)(seed=0, **kwargs)


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


def real_images(shape, data=None, count=1024):
    """`count` real uint8 images of the batch's size: the .npz's `x_train`, or
    scikit-learn's 8x8 digits (grey, repeated to the channels), resized once."""
    import numpy as np

    if data:
        x = np.load(data)["x_train"][:count]
    else:
        from sklearn.datasets import load_digits

        x = (load_digits().images[:count] * (255.0 / 16.0)).astype("uint8")[..., None]
    x = tf.image.resize(tf.constant(x), shape[1:3])
    if x.shape[-1] != shape[3]:
        x = tf.repeat(x[..., :1], shape[3], axis=-1)
    return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)


def pipeline(images, labels, batch, fn):
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(
        batch, drop_remainder=True)
    ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
    return iter(ds.prefetch(tf.data.AUTOTUNE))


def tfdata_throughput(shape, method, data, rounds=5, seconds=1.0, warm_batches=3):
    """Images per second of one method's pipelines (compiled and uncompiled)
    and of the no-mixing and blend pipelines, measured in alternating rounds
    (median over rounds), and the seconds each one's first batch took.

    Each round makes every pipeline's iterator anew and deletes it once
    measured, so that only the pipeline being measured is running: a live
    iterator's prefetch refills its buffer in the background, which took
    cores from whichever pipeline was measured next (with all four alive, the
    blend pipeline read 0.35x the no-mixing one beside FMix and 0.66x beside
    MixUp) and gave each window a head start from the buffer. The first
    `warm_batches` of each iterator are not timed (the pipeline's ramp-up);
    the layers keep their traced and compiled programs across iterators."""
    images = real_images(shape, data)
    labels = tf.one_hot(tf.range(images.shape[0]) % NUM_CLASSES, NUM_CLASSES)
    batch = shape[0]
    seed = tf.constant([1, 2])

    def as_float(x, y):
        return tf.cast(x, tf.float32), y

    def blended(x, y):
        return blend(tf.cast(x, tf.float32), y, seed)

    fns = {"none": as_float, "blend": blended,
           # Compiled: one op per batch instead of many small ones.
           "compiled": make_ours(method, jit_compile=True),
           "uncompiled": make_ours(method, jit_compile=False)}
    first = {}
    rates = {name: [] for name in fns}
    for round_ in range(rounds):
        for name, fn in fns.items():
            it = pipeline(images, labels, batch, fn)
            start = time.perf_counter()
            next(it)  # the first batch pays the tracing and, compiled, XLA's compilation
            if round_ == 0:
                first[name] = time.perf_counter() - start
            for _ in range(warm_batches):
                next(it)
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                next(it)
                count += 1
            rates[name].append(count * batch / (time.perf_counter() - start))
            del it
            gc.collect()
    return {name: statistics.median(r) for name, r in rates.items()}, first


def run(shapes, methods, warmup, repeats):
    rows = []
    for shape in shapes:
        images = tf.random.uniform(shape)
        labels = tf.one_hot(tf.range(shape[0]) % NUM_CLASSES, NUM_CLASSES)
        seed = tf.constant([1, 2])
        reps = repeats if shape[1] <= 64 else max(10, repeats // 2)
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
            row = {"method": name, "shape": list(shape),
                   "measured": time.strftime("%Y-%m-%d", time.gmtime()), "cpu": cpu_description(),
                   "blend_ms": ms["blend"],
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


def blend_jax(images, labels, key):
    """The blend of `blend`, in `jax.numpy`."""
    import jax
    import jax.numpy as jnp

    k1, k2 = jax.random.split(key)
    n = images.shape[0]
    lam = jax.random.uniform(k1, (n,))
    perm = jnp.argsort(jax.random.uniform(k2, (n,)))
    lam_x = lam[:, None, None, None]
    x = lam_x * images + (1.0 - lam_x) * images[perm]
    y = lam[:, None] * labels + (1.0 - lam[:, None]) * labels[perm]
    return x, y


def jax_device():
    import jax

    device = jax.devices()[0]
    return f"{device.platform}: {device.device_kind}"


def run_jax(shapes, methods, warmup, repeats):
    """Rows of ms per batch under `jax.jit`: our layers' `stateless_call`, the
    blend and Keras core's layers of the same method, interleaved."""
    import jax
    import jax.numpy as jnp

    def blocking(fn):
        return lambda *a: jax.block_until_ready(fn(*a))

    def stateless(layer, inputs):
        trainable = [v.value for v in layer.trainable_variables]
        state = [v.value for v in layer.non_trainable_variables]
        fn = jax.jit(lambda state, inputs: layer.stateless_call(trainable, state, inputs)[0])
        return blocking(fn), (state, inputs)

    rows = []
    for shape in shapes:
        key = jax.random.PRNGKey(0)
        images = jax.random.uniform(key, shape)
        labels = jax.nn.one_hot(jnp.arange(shape[0]) % NUM_CLASSES, NUM_CLASSES)
        reps = repeats if shape[1] <= 64 else max(10, repeats // 2)
        for name in methods:
            calls = {"blend": (blocking(jax.jit(blend_jax)), (images, labels, key)),
                     "ours": stateless(make_ours(name), (images, labels))}
            for bname in BASELINES.get(name, []):
                if bname.startswith("keras."):
                    blayer = make_baseline(bname)
                    data = {"images": images, "labels": labels}
                    blayer(data)  # builds it (its seed state) for stateless_call
                    calls[bname] = stateless(blayer, data)
            ms = time_interleaved(calls, warmup, reps)
            row = {"method": name, "shape": list(shape), "backend": "jax",
                   "device": jax_device(), "measured": time.strftime("%Y-%m-%d", time.gmtime()),
                   "cpu": cpu_description(), "blend_ms": ms["blend"], "ms": ms["ours"],
                   "ratio_blend": ms["ours"] / ms["blend"], "baselines": {
                       b: {"ms": ms[b], "ours_ratio": ms["ours"] / ms[b]}
                       for b in BASELINES.get(name, []) if b in ms}}
            rows.append(row)
            base = ", ".join(f"{k} {v['ms']:.2f} ms ({v['ours_ratio']:.2f}x)"
                             for k, v in row["baselines"].items())
            print(f"{name:<10} {'x'.join(map(str, shape)):<16} {row['ms']:8.2f} "
                  f"{row['ratio_blend']:8.2f}  {base}", flush=True)
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
    parser.add_argument("--tfdata", action="store_true",
                        help="also measure images/s inside a tf.data pipeline")
    parser.add_argument("--data", help=".npz with x_train (real images) for --tfdata")
    parser.add_argument("--runs", type=int, default=1,
                        help="fresh processes per (shape, method); the row keeps the median "
                             "of each figure over them and the range of its ratios")
    parser.add_argument("--update", action="store_true",
                        help="replace only the measured (method, shape) rows of an existing "
                             "--json file, keeping the others")
    parser.add_argument("--in-process", action="store_true",
                        help="measure every (shape, method) in this process instead of one "
                             "fresh process each")
    parser.add_argument("--backend", choices=BACKENDS, default="tensorflow",
                        help="tensorflow (tf.function, XLA, tf.data) or jax (jax.jit, "
                             "without TensorFlow)")
    args = parser.parse_args()
    if args.backend != keras.backend.backend():
        parser.error(f"--backend {args.backend}: Keras was imported with the "
                     f"{keras.backend.backend()} backend; run this file as a script")
    if args.backend == "jax" and args.tfdata:
        parser.error("--tfdata measures TensorFlow's input pipeline: use --backend tensorflow")
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes.split(";")]
    methods = [m for m in args.methods.split(",") if m]
    print(f"{backend_description()}, Keras {keras.__version__}, devices: {devices()}")
    if args.in_process or len(shapes) * len(methods) == 1:
        write_rows(args, measure(shapes, methods, args))
    else:
        rows = []
        for shape in shapes:
            for name in methods:
                runs = [measure_in_subprocess(shape, name, args)[0] for _ in range(args.runs)]
                rows.append(combine_runs(runs))
                # Written as each row is done, so that a long run stopped
                # (or a process that fails) keeps the rows before it.
                write_rows(args, rows, partial=True)
        write_rows(args, rows)


def backend_versions():
    if tf is not None:
        return {"tensorflow": tf.__version__}
    import jax

    return {"backend": "jax", "jax": jax.__version__}


def backend_description():
    return ", ".join(f"{k} {v}" for k, v in backend_versions().items() if k != "backend")


def devices():
    if tf is not None:
        return [d.device_type for d in tf.config.list_logical_devices()]
    return [jax_device()]


def write_rows(args, rows, partial=False):
    """Writes `rows` to `--json` (with `--update`, merged into the file's
    rows); `partial` marks a file written before the run's last row."""
    if not args.json:
        return
    header = {**backend_versions(), "keras": keras.__version__, "devices": devices(),
              "cpu_count": os.cpu_count(), "data": os.path.basename(args.data or "digits")}
    if args.update and os.path.exists(args.json):
        with open(args.json) as f:
            rows = merge_rows(json.load(f), header, rows)
    tmp = args.json + ".tmp"
    with open(tmp, "w") as f:
        json.dump({**header, **({"partial": True} if partial else {}), "rows": rows}, f,
                  indent=2)
    os.replace(tmp, args.json)


RATIO_FIELDS = ("ratio_blend", "xla_ratio_blend", "tfdata.compiled_ratio_blend",
                "tfdata.uncompiled_ratio_blend", "tfdata.compiled_ratio_none",
                "tfdata.uncompiled_ratio_none")


def combine_runs(runs):
    """One row from the rows of several runs of the same (shape, method): the
    median of each figure over the runs (each ratio the median of the runs'
    own ratios, each measured within its run), "runs" their number and
    "spread" the lowest and highest of each ratio. On this VM a figure moves
    by 10 to 25% from one run to the next."""
    if len(runs) == 1:
        return runs[0]

    def combine(items):
        first = items[0]
        if isinstance(first, dict):
            return {k: combine([i[k] for i in items]) for k in first if all(k in i for i in items)}
        if isinstance(first, (int, float)) and not isinstance(first, bool):
            return statistics.median(items)
        return first

    def field(row, name):
        for part in name.split("."):
            row = row.get(part) if isinstance(row, dict) else None
        return row

    row = combine(runs)
    row["runs"] = len(runs)
    row["spread"] = {name: [min(v), max(v)] for name in RATIO_FIELDS
                     if None not in (v := [field(r, name) for r in runs])}
    return row


def merge_rows(old, header, rows):
    """`old`'s rows with those of the same (method, shape) replaced by `rows`
    (in place; new ones appended). Refuses to merge measurements taken under
    another TensorFlow, Keras, device set, core count or image set."""
    differ = {k: (old.get(k), v) for k, v in header.items() if old.get(k) != v}
    if differ:
        raise ValueError("--update would merge rows measured under other conditions "
                         f"(old, now): {differ}; measure every row again instead.")
    fresh = {(r["method"], tuple(r["shape"])): r for r in rows}
    merged = [fresh.pop((r["method"], tuple(r["shape"])), r) for r in old["rows"]]
    return merged + list(fresh.values())


def measure_in_subprocess(shape, name, args):
    """One (shape, method) measured by a fresh Python process, so that no
    layer runs in the memory and threads another left behind: in one process
    for all, MiAMix at 224 px measured 73 ms under tf.function and 40 ms under
    XLA, alone 56 and 35, with the blend the same in both."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rows.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--in-process",
               "--shapes", ",".join(map(str, shape)), "--methods", name,
               "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--json", out]
        if args.tfdata:
            cmd.append("--tfdata")
        cmd += ["--backend", args.backend]
        if args.data:
            cmd += ["--data", args.data]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode < 0:
            # Killed by a signal: once, a segfault inside TensorFlow at
            # 224 px that 900 further calls of the same layer did not repeat.
            # Said, then measured again once.
            print(f"{name} {shape}: the process died of signal {-result.returncode}; "
                  "measuring again", flush=True)
            result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{name} {shape} failed ({result.returncode}):\n"
                               f"{result.stderr[-3000:]}")
        print("\n".join(line for line in result.stdout.splitlines()[1:] if line.strip()),
              flush=True)
        with open(out) as f:
            return json.load(f)["rows"]


def measure(shapes, methods, args):
    if tf is None:
        print(f"{'method':<10} {'shape':<16} {'jit ms':>8} {'x blend':>8}  Keras core (ms, "
              "ours/theirs)")
        return run_jax(shapes, methods, args.warmup, args.repeats)
    print(HEADER)
    rows = run(shapes, methods, args.warmup, args.repeats)
    if args.tfdata:
        print(f"\n{'method':<10} {'shape':<16} {'images/s':>10} {'x none':>8} {'x blend':>8} "
              f"{'graph img/s':>11} {'x blend':>8}")
        for row in rows:
            shape = tuple(row["shape"])
            rates, first = tfdata_throughput(shape, row["method"], args.data)
            rate, graph_rate = rates["compiled"], rates["uncompiled"]
            row["tfdata"] = {"compiled_images_per_s": rate,
                             "none_images_per_s": rates["none"],
                             "blend_images_per_s": rates["blend"],
                             "compiled_ratio_none": rate / rates["none"],
                             "compiled_ratio_blend": rates["blend"] / rate,
                             "compiled_first_batch_s": first["compiled"],
                             "uncompiled_images_per_s": graph_rate,
                             "uncompiled_ratio_none": graph_rate / rates["none"],
                             "uncompiled_ratio_blend": rates["blend"] / graph_rate,
                             "uncompiled_first_batch_s": first["uncompiled"]}
            print(f"{row['method']:<10} {'x'.join(map(str, shape)):<16} {rate:10.0f} "
                  f"{rate / rates['none']:8.2f} {rates['blend'] / rate:8.2f} "
                  f"{graph_rate:11.0f} {rates['blend'] / graph_rate:8.2f}", flush=True)
    return rows


if __name__ == "__main__":
    main()

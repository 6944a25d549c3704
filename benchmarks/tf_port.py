"""TensorFlow speed of every layer before and after a library change, in one run.

The port to Keras ops (issue 34) had to keep the TensorFlow path as fast as
before. This script measures it: it exports the library (`keras_miamix/`) of
two commits into temporary folders and runs this checkout's
`benchmarks/layers.py --in-process` once per method, commit and round, each in
a fresh process that imports one commit's library, the commits alternating
(before first in even rounds, after first in odd ones) so that the machine's
drift hits both alike. Each run times the layer under `tf.function` and with
XLA against its own plain blend, so the ratios (ours / blend) compare across
processes where milliseconds do not; each figure is the median over rounds.

Usage:
    python benchmarks/tf_port.py --before 9030173 --after HEAD \
        --json benchmarks/results/tf_port.json      # the README's table
    python benchmarks/tf_port.py --methods MixUp --rounds 1 --repeats 3
    python benchmarks/tf_port.py --methods CutMix,MiAMix --rounds 7 \
        --json benchmarks/results/tf_port.json --update   # re-measure some rows

With `--update` the rows of the methods measured replace those in the JSON and
carry their own round count, commits and date; the other rows stay as they were.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from layers import cpu_description  # noqa: E402

# The layers that existed before the port (the later ones have no "before").
PORTED = ("MixUp", "CutMix", "FMix", "GridMix", "GMix", "AGMix", "ResizeMix", "MiAMix")


def git(*args):
    return subprocess.run(["git", "-C", ROOT, *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def export(rev, folder):
    """`keras_miamix/` of `rev` under `folder`; its full hash and subject."""
    commit = git("rev-parse", rev)
    archive = subprocess.run(["git", "-C", ROOT, "archive", commit, "keras_miamix"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return {"rev": rev, "commit": commit, "subject": git("log", "-1", "--format=%s", commit)}


def measure(library, method, shapes, warmup, repeats):
    """One fresh process of layers.py on `library`: its rows for `method`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rows.json")
        env = {**os.environ, "PYTHONPATH": library, "KERAS_BACKEND": "tensorflow"}
        subprocess.run([sys.executable, os.path.join(HERE, "layers.py"), "--in-process",
                        "--methods", method, "--shapes", shapes, "--warmup", str(warmup),
                        "--repeats", str(repeats), "--json", out],
                       check=True, env=env, cwd=tmp, stdout=subprocess.DEVNULL)
        with open(out) as f:
            return json.load(f)["rows"]


FIGURES = ("ratio_blend", "xla_ratio_blend", "ms", "xla_ms")


def summarise(runs):
    """Per (method, shape): each figure's values over rounds and their median,
    for both commits, and the change of the medians of the ratios."""
    rows = []
    for (method, shape), sides in runs.items():
        row = {"method": method, "shape": list(shape)}
        for side in ("before", "after"):
            row[side] = {k: {"runs": [r[k] for r in sides[side]],
                             "median": statistics.median(r[k] for r in sides[side])}
                         for k in FIGURES}
        for k in ("ratio_blend", "xla_ratio_blend"):
            row[f"{k}_change"] = row["after"][k]["median"] / row["before"][k]["median"] - 1
        rows.append(row)
    return rows


def merge(path, new):
    """The results in `path` with the rows of `new`'s methods replaced by
    `new`'s, each tagged with its own rounds, commits and date."""
    with open(path) as f:
        old = json.load(f)
    if old["before"]["commit"] != new["before"]["commit"]:
        raise SystemExit(f"--update: {path} compares against {old['before']['commit'][:7]}, "
                         f"this run against {new['before']['commit'][:7]}; use one before")
    measured = {r["method"] for r in new["rows"]}
    for r in new["rows"]:
        r.update(rounds=new["rounds"], measured=new["measured"],
                 after_commit=new["after"]["commit"])
    rows = {r["method"]: [] for r in old["rows"]}
    for r in old["rows"]:
        if r["method"] not in measured:
            rows[r["method"]].append(r)
    for r in new["rows"]:
        rows.setdefault(r["method"], []).append(r)
    old["rows"] = [r for method_rows in rows.values() for r in method_rows]
    return old


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="9030173",
                        help="the commit before the change (default: the last before the port)")
    parser.add_argument("--before-label", default="the last commit before the port to Keras ops",
                        help="what the README calls the before commit")
    parser.add_argument("--after", default="HEAD")
    parser.add_argument("--methods", default=",".join(PORTED))
    parser.add_argument("--shapes", default="128,32,32,3;64,224,224,3")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--update", action="store_true",
                        help="replace only the measured methods' rows in --json")
    args = parser.parse_args(argv)
    if args.update and not (args.json and os.path.exists(args.json)):
        raise SystemExit(f"--update needs an existing --json file, got {args.json!r}")
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be at least 1, got {args.rounds}")
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(PORTED))
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown}; choose from {list(PORTED)}")
    with tempfile.TemporaryDirectory() as tmp:
        libraries, commits = {}, {}
        for side, rev in (("before", args.before), ("after", args.after)):
            libraries[side] = os.path.join(tmp, side)
            os.makedirs(libraries[side])
            commits[side] = export(rev, libraries[side])
        commits["before"]["label"] = args.before_label
        runs = {}
        started = time.time()
        for round_ in range(args.rounds):
            for method in methods:
                order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
                for side in order:
                    for r in measure(libraries[side], method, args.shapes, args.warmup,
                                     args.repeats):
                        runs.setdefault((method, tuple(r["shape"])),
                                        {"before": [], "after": []})[side].append(r)
                print(f"round {round_ + 1}/{args.rounds} {method} done "
                      f"({time.time() - started:.0f} s)", flush=True)
    import keras
    import tensorflow as tf

    results = {"measured": time.strftime("%Y-%m-%d", time.gmtime()), "cpu": cpu_description(),
               "cpu_count": os.cpu_count(), "tensorflow": tf.__version__,
               "keras": keras.__version__, "before": commits["before"],
               "after": commits["after"], "rounds": args.rounds, "warmup": args.warmup,
               "repeats": args.repeats, "rows": summarise(runs)}
    for row in results["rows"]:
        print(f"{row['method']:<10} {'x'.join(map(str, row['shape'])):<14} "
              f"x blend {row['before']['ratio_blend']['median']:.2f} -> "
              f"{row['after']['ratio_blend']['median']:.2f} ({row['ratio_blend_change']:+.0%}), "
              f"XLA {row['before']['xla_ratio_blend']['median']:.2f} -> "
              f"{row['after']['xla_ratio_blend']['median']:.2f} "
              f"({row['xla_ratio_blend_change']:+.0%})")
    if args.update:
        results = merge(args.json, results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

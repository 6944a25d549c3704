"""Turns `benchmarks/results/accuracy.json` into the README's accuracy table,
its findings (the benchmark's questions and MiAMix's Tables 2 and 3) and
`docs/accuracy.png`, `benchmarks/results/train_step.json` into the step-time
table, and `benchmarks/results/layers.json` into the mixing layers' speed
table and their budgets, so that the README never holds a number typed by
hand.

    python benchmarks/report.py            # rewrite the README sections and the plot
    python benchmarks/report.py --check    # exit 1 if the README is out of date
"""

import argparse
import json
import os
import statistics
import sys
import textwrap

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results", "accuracy.json")
README = os.path.join(ROOT, "README.md")
PLOT = os.path.join(ROOT, "docs", "accuracy.png")
BEGIN, END = "<!-- accuracy-table:begin -->", "<!-- accuracy-table:end -->"
STEP_RESULTS = os.path.join(HERE, "results", "train_step.json")
STEP_BEGIN, STEP_END = "<!-- train-step-table:begin -->", "<!-- train-step-table:end -->"
LAYER_RESULTS = os.path.join(HERE, "results", "layers.json")
LAYER_BEGIN, LAYER_END = "<!-- layers-table:begin -->", "<!-- layers-table:end -->"
SERVICE_RESULTS = os.path.join(HERE, "results", "data_service.json")
SERVICE_BEGIN, SERVICE_END = "<!-- data-service-table:begin -->", "<!-- data-service-table:end -->"
TARGETS_BEGIN, TARGETS_END = "<!-- layers-targets:begin -->", "<!-- layers-targets:end -->"
SOLVER_RESULTS = os.path.join(HERE, "results", "puzzlemix_solver.json")
SOLVER_BEGIN, SOLVER_END = "<!-- puzzlemix-solver:begin -->", "<!-- puzzlemix-solver:end -->"
PORT_RESULTS = os.path.join(HERE, "results", "tf_port.json")
# tf_port.py on the one non-port change between the port's commits (GMix and
# AGMix's blob fix): its own cost, netted out of the port's rows.
FIX_RESULTS = os.path.join(HERE, "results", "gmix_fix_speed.json")
PORT_BEGIN, PORT_END = "<!-- tf-port-table:begin -->", "<!-- tf-port-table:end -->"
# Issue 34's bound: no layer more than this much slower on TensorFlow after the port.
PORT_SLOWDOWN_BOUND = 0.10
# Issue 10's budgets: at most this many times the blend, in every mode.
SPEED_BUDGETS = {"MiAMix": 8.0, "FMix": 6.0}
FINDINGS_BEGIN, FINDINGS_END = "<!-- accuracy-findings:begin -->", "<!-- accuracy-findings:end -->"
# The papers' CIFAR-10 ResNet-18 top-1 (%): MiAMix (Liang et al.) Table 2.
MIAMIX_TABLE2 = {"miamix": 96.92, "mixup": 96.35, "cutmix": 95.93}
# Its Table 3: corrupted top-1 (%) on CIFAR-100-C, ResNeXt-50.
MIAMIX_TABLE3 = {"miamix": 58.99, "automix": 58.36, "mixup": 58.10, "none": 51.71,
                 "cutmix": 49.32}
SINGLE_METHODS = ("mixup", "cutmix", "fmix", "gridmix", "gmix", "agmix", "resizemix",
                  "saliencymix")
ORDER = ("none", "mixup", "cutmix", "fmix", "gridmix", "gmix", "agmix", "resizemix",
         "saliencymix", "saliencymix_box_batch", "miamix", "manifold_mixup", "puzzlemix",
         "augmix", "automix", "automix_head_one_mix", "automix_head_one_mix_epoch_ema",
         "keras_mixup", "keras_cutmix")
NAMES = {"none": "no mixing", "mixup": "MixUp", "cutmix": "CutMix", "fmix": "FMix",
         "gridmix": "GridMix", "gmix": "GMix", "agmix": "AGMix", "resizemix": "ResizeMix",
         "saliencymix": "SaliencyMix", "saliencymix_box_batch": 'SaliencyMix, `box="batch"`',
         "miamix": "**MiAMix**", "manifold_mixup": "Manifold Mixup",
         "augmix": "AugMix (JSD)", "puzzlemix": "PuzzleMix", "automix": "**AutoMix**",
         "keras_mixup": "Keras core `MixUp`", "keras_cutmix": "Keras core `CutMix`",
         "automix_head_one_mix": "AutoMix, `head_one_mix=True`",
         "automix_head_one_mix_epoch_ema": "AutoMix, `head_one_mix=True`, EMA per epoch"}
# AutoMix's settings other than the defaults (`benchmarks/accuracy.py`'s
# VARIANTS), as the findings describe them.
AUTOMIX_VARIANTS = {
    "automix_head_one_mix": "OpenMixup's `head_one_mix=True`",
    "automix_head_one_mix_epoch_ema": ("`head_one_mix=True` and the teacher's momentum "
                                       "rescaled to the official run's horizon in epochs"),
}


def summarise(results):
    """Per method: seeds, accuracies, mean and std (ddof 1), ECE, NLL, mCA,
    seconds per epoch and its ratio to no mixing."""
    by_method = {}
    for run in results["runs"]:
        by_method.setdefault(run["method"], []).append(run)
    base = by_method.get("none")
    base_seconds = np.mean([r["seconds_per_epoch"] for r in base]) if base else None
    # The time column: `accuracy.py --timing` (all methods in one process,
    # interleaved) where it was run, else the runs' own epoch times.
    timing = results.get("timing", {})
    timed = timing.get("ratio_to_none")
    ranges = timing.get("ratio_range", {})
    rows = []
    for method in sorted(by_method, key=lambda m: ORDER.index(m) if m in ORDER else 99):
        runs = sorted(by_method[method], key=lambda r: r["seed"])
        acc = np.array([r["accuracy"] for r in runs]) * 100
        seconds = float(np.mean([r["seconds_per_epoch"] for r in runs]))
        row = {
            "method": method,
            "n": len(runs),
            "seeds": [r["seed"] for r in runs],
            "accuracies": [float(a) for a in acc],
            "mean": float(acc.mean()),
            "std": float(acc.std(ddof=1)) if len(acc) > 1 else None,
            "ece": float(np.mean([r["ece"] for r in runs]) * 100),
            "nll": float(np.mean([r["nll"] for r in runs])),
            "mca": float(np.mean([r["mca"] for r in runs]) * 100),
            "seconds_per_epoch": seconds,
            "time_ratio": (timed.get(method) if timed is not None
                           else seconds / base_seconds if base_seconds else None),
            "time_range": ranges.get(method),
            "corruptions": {name: float(np.mean([r["corruptions"][name]["mean"] for r in runs])
                                        * 100) for name in runs[0]["corruptions"]},
        }
        current = results.get("revisions", {}).get(method, {}).get("revision", 1)
        row["stale"] = sum(r.get("revision", 1) != current for r in runs)
        if all("student_accuracy" in r for r in runs):
            row["student"] = float(np.mean([r["student_accuracy"] for r in runs]) * 100)
        rows.append(row)
    return rows


def table(results):
    rows = summarise(results)
    p = results["protocol"]
    lines = [
        f"Protocol: `{p['model']}`, {p['epochs']} epochs, batch {p['batch_size']}, SGD "
        f"lr {p['lr']} cosine, weight decay {p['weight_decay']} (AutoMix from revision 2: "
        "1e-4 on every weight, PyTorch's BatchNorm); "
        f"{rows[0]['n'] and results['runs'][0]['train_images']} train / "
        f"{results['runs'][0]['test_images']} test CIFAR-10 images. "
        f"{len(results['runs'])} runs in `benchmarks/results/accuracy.json`. "
        + timing_source(results),
        "",
        "| method | top-1 % (mean ± std) | n | each seed | ECE % | NLL | mCA % "
        "| time/epoch x none |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        std = f" ± {r['std']:.2f}" if r["std"] is not None else ""
        seeds = ", ".join(f"{a:.1f}" for a in r["accuracies"])
        ratio = f"{r['time_ratio']:.2f}" if r["time_ratio"] is not None else "-"
        if r["time_range"] is not None and r["time_range"][0] != r["time_range"][1]:
            ratio += f" ({r['time_range'][0]:.2f}-{r['time_range'][1]:.2f})"
        name = NAMES.get(r["method"], r["method"])
        if "student" in r:
            name += f" (student {r['student']:.1f})"
        if r["stale"]:
            name += f" †{r['stale']}"
        lines.append(f"| {name} | {r['mean']:.2f}{std} | {r['n']} | {seeds} | {r['ece']:.2f} "
                     f"| {r['nll']:.3f} | {r['mca']:.2f} | {ratio} |")
    lines += _revision_notes(results, rows)
    return "\n".join(lines)


def _revision_notes(results, rows):
    """Under the table: which rows still hold runs of code since changed (†n:
    n of its runs), and the superseded runs kept in the JSON."""
    notes = []
    revisions = results.get("revisions", {})
    for r in rows:
        if r["stale"]:
            change = revisions[r["method"]]
            notes.append(f"†{r['stale']} {NAMES.get(r['method'], r['method']).strip('*')}: "
                         f"{r['stale']} of {r['n']} runs are from before revision "
                         f"{change['revision']} ({change['change']}); being re-run.")
    old = [run for run in results.get("superseded", []) if "superseded_by_rerun" not in run]
    for run in results.get("superseded", []):
        if "superseded_by_rerun" in run:
            notes.append(f"{NAMES.get(run['method'], run['method']).strip('*')} seed "
                         f"{run['seed']} was run again ({run['superseded_by_rerun']}); its "
                         f"first run, {run['accuracy'] * 100:.1f}, is kept in the JSON.")
    for method in dict.fromkeys(run["method"] for run in old):
        runs = [run for run in old if run["method"] == method]
        acc = ", ".join(f"{run['accuracy'] * 100:.1f} (seed {run['seed']})" for run in runs)
        notes.append(f"Superseded {NAMES.get(method, method).strip('*')} runs (revision "
                     f"{runs[0].get('revision', 1)}, kept in the JSON): {acc}.")
    return ["", *notes] if notes else []


def timing_source(results):
    """Where the table's time column comes from, in a sentence."""
    timing = results.get("timing")
    if not timing:
        return ("Time per epoch: each run's own median epoch, against no mixing's runs "
                "(taken at different times, on a machine other work may have shared: rough).")
    rounds = timing["rounds"]
    return (f"Time per epoch: `accuracy.py --timing` ({timing['measured'][:10]}, "
            f"{timing.get('cpu_count', '?')} cores), every method trained "
            f"{timing['epochs_timed']} timed epochs in one process, interleaved; the median "
            f"over {len(rounds)} rounds of its time over no mixing's in the same round "
            f"(no mixing: {np.median([r['none'] for r in rounds]):.1f} s an epoch); in brackets "
            "the lowest and highest round.")


def pooled_std(rows):
    """The seed-to-seed standard deviation pooled over the methods with two
    or more seeds (within-method variances weighted by their degrees of
    freedom), and those degrees of freedom; (None, 0) when no method has two."""
    dof = sum(r["n"] - 1 for r in rows if r["n"] > 1)
    if not dof:
        return None, 0
    return float(np.sqrt(sum((r["n"] - 1) * r["std"] ** 2 for r in rows if r["n"] > 1) / dof)), dof


def compare(a, b, spread, dof):
    """`a`'s mean against `b`'s: "above X (mean, n) by d" with, when the
    spread is known, whether |d| exceeds its 95% margin, Student's t at the
    pooled degrees of freedom times `spread * sqrt(1/n_a + 1/n_b)`
    ("clearly") or not ("within the spread")."""
    from scipy import stats

    d = a["mean"] - b["mean"]
    word = "above" if d > 0 else "below" if d < 0 else "level with"
    text = f"{word} {_plain(b)} ({b['mean']:.2f}, n={b['n']}) by {abs(d):.2f}"
    if spread is not None:
        margin = stats.t.ppf(0.975, dof) * spread * np.sqrt(1.0 / a["n"] + 1.0 / b["n"])
        text += f", clearly (margin {margin:.2f})" if abs(d) > margin else (
            f", within the spread (margin {margin:.2f})")
    return text


def _plain(row):
    return NAMES.get(row["method"], row["method"]).replace("*", "").replace("`", "")


def findings(results):
    """The README's comparisons with the benchmark's aims and the papers,
    written from the JSON so that no number in them is typed by hand."""
    rows = summarise(results)
    by = {r["method"]: r for r in rows}
    spread, dof = pooled_std(rows)
    lines = []
    if spread is not None:
        lines.append(
            f"Generated from the same JSON. A difference is called clear when it exceeds its 95% "
            f"margin: Student's t times its standard error, from the seed-to-seed standard "
            f"deviation pooled over the methods with two or more seeds ({spread:.2f} points, "
            f"{dof} degrees of freedom); else it is within the spread.")
    else:
        lines.append("Generated from the same JSON; no method has two seeds yet, so no "
                     "difference can be called clear.")
    lines.append("")

    def unit(r):
        return f"{_plain(r)} ({r['mean']:.2f}, n={r['n']})"

    single = [by[m] for m in SINGLE_METHODS if m in by]
    if "miamix" in by and single:
        missing = [NAMES[m] for m in SINGLE_METHODS if m not in by]
        lines.append(f"- **MiAMix at or above every single-method layer?** {unit(by['miamix'])} is "
                     + "; ".join(compare(by["miamix"], r, spread, dof) for r in single) + "."
                     + (" Single-method layers not run yet: " + ", ".join(missing) + "."
                        if missing else ""))
    if "automix" in by and "mixup" in by:
        lines.append(f"- **AutoMix above MixUp?** {unit(by['automix'])} is "
                     f"{compare(by['automix'], by['mixup'], spread, dof)}."
                     + "".join(f" AutoMix with {what} (not the default; {by[v]['mean']:.2f}, "
                               f"n={by[v]['n']}) is {compare(by[v], by['mixup'], spread, dof)}."
                               for v, what in AUTOMIX_VARIANTS.items() if v in by))
    if "saliencymix" in by and "saliencymix_box_batch" in by:
        lines.append(f"- **SaliencyMix: a box per sample (the default) or the official one per "
                     f"batch?** {unit(by['saliencymix'])} is "
                     f"{compare(by['saliencymix'], by['saliencymix_box_batch'], spread, dof)}.")
    if "none" in by:
        base = by["none"]
        parts = [f"{_plain(r)} {r['mca']:.2f} ({r['mca'] - base['mca']:+.2f})"
                 for r in rows if r["method"] != "none"]
        if parts:
            lines.append(f"- **More robust than no mixing?** Mean corrupted accuracy (mCA), "
                         f"against no mixing's {base['mca']:.2f}: " + ", ".join(parts) + ".")
            lines.append(_per_corruption(rows, base))
    if "automix" in by:
        others = sorted((r for r in rows if r["method"] != "automix"), key=lambda r: r["ece"])
        lower = [r for r in others if r["ece"] < by["automix"]["ece"]]
        ece = by["automix"]["ece"]
        lines.append(
            f"- **Calibration (AutoMix paper, Fig. 6)?** AutoMix's ECE is {ece:.2f}%"
            + ("; lower: " + ", ".join(f"{_plain(r)} {r['ece']:.2f}%" for r in lower)
               if lower else ", the lowest of all methods here") + ".")
    lines += _paper_order(by, MIAMIX_TABLE2, "mean", "MiAMix's Table 2 order",
                          "top-1, ResNet-18 on all of CIFAR-10")
    lines += _paper_order(by, MIAMIX_TABLE3, "mca", "MiAMix's Table 3 order",
                          "corrupted top-1, ResNeXt-50 on CIFAR-100-C", " (mCA)")
    return "\n".join(lines)


def _per_corruption(rows, base):
    """Where each method's mCA differs from no mixing's: on how many
    corruptions it is above, and its largest loss and gain (accuracy under
    the corruption, mean of the severities, against no mixing's)."""
    parts = []
    for r in rows:
        if r["method"] == "none":
            continue
        diff = {n: r["corruptions"][n] - base["corruptions"][n] for n in base["corruptions"]}
        worst, best = min(diff, key=diff.get), max(diff, key=diff.get)
        low = "most lost" if diff[worst] < 0 else "least gained"
        high = "most gained" if diff[best] > 0 else "least lost"
        parts.append(f"{_plain(r)} above on {sum(d > 0 for d in diff.values())} of {len(diff)}, "
                     f"{low} {worst.replace('_', ' ')} ({diff[worst]:+.1f}), {high} "
                     f"{best.replace('_', ' ')} ({diff[best]:+.1f})")
    return ("- **Where the mCA differences come from** (each corruption's accuracy, mean of "
            "severities 1-5, against no mixing's): " + "; ".join(parts) + ".")


def _paper_order(by, paper, key, title, what, label=""):
    """A line comparing the order of the methods in a paper's table with
    their order here on `key` ("mean" or "mca"), for the methods run here."""
    methods = [m for m in sorted(paper, key=paper.get, reverse=True) if m in by]
    if len(methods) < 2:
        return []
    ours = sorted(methods, key=lambda m: by[m][key], reverse=True)
    return ["- **" + title + "** (" + " > ".join(
        f"{_plain(by[m])} {paper[m]:.2f}" for m in methods) + f", {what}): here{label} "
        + " > ".join(
        f"{_plain(by[m])} {by[m][key]:.2f}" for m in ours)
        + (", the same order." if ours == methods else ", a different order.")]


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summarise(results)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.6),
                                   gridspec_kw={"width_ratios": [1, 1.4]})
    timed, untimed = _cost_rows(rows)
    points = []
    for r in timed:
        x = r["time_ratio"]
        lo, hi = r["time_range"] or (x, x)  # the timing rounds' spread
        ax1.errorbar(x, r["mean"], yerr=r["std"] or 0, xerr=[[x - lo], [hi - x]], fmt="o",
                     capsize=4)
        points.append((x, r["mean"], f"{_plain(r)} (n={r['n']})"))
    # Labels beside their points, moved up where two would overlap.
    if points:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        dx = 0.015 * max(max(xs) - min(xs), 1.0)
        dy = 0.01 * max(max(ys) - min(ys), 1.0)
        for (x, y, text), h in zip(points, _label_heights(points)):
            ax1.annotate(text, (x, y), xytext=(x + dx, h + dy), fontsize=8, va="bottom",
                         bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none",
                               "alpha": 0.8},  # legible where it crosses an error bar
                         arrowprops=None if h == y else {"arrowstyle": "-", "lw": 0.5,
                                                         "color": "grey"})
    # Names with commas of their own: separated by semicolons, wrapped to the
    # panel's width so that none runs off the figure.
    ax1.set_xlabel("wall time per epoch / no mixing (CPU)"
                   + ("\n" + textwrap.fill("not timed, so not shown: " + "; ".join(untimed), 60)
                      if untimed else ""))
    ax1.set_ylabel("test top-1 accuracy (%)")
    ax1.set_title("accuracy (mean ± std over seeds) against training cost\n"
                  "(median and range of the timing rounds)", fontsize=10)
    ax1.grid(alpha=0.3)
    names = list(rows[0]["corruptions"])
    grid = np.array([[r["corruptions"][n] for n in names] for r in rows])
    im = ax2.imshow(grid, cmap="viridis", aspect="auto")
    ax2.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=7)
    ax2.set_yticks(range(len(rows)),
                   [_plain(r) for r in rows], fontsize=8)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax2.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=7,
                     color="white" if grid[i, j] < grid.mean() else "black")
    ax2.set_title("accuracy (%) under each corruption, mean of severities 1-5")
    fig.colorbar(im, ax=ax2, fraction=0.03)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=90)


def _cost_rows(rows):
    """The rows with a time per epoch to plot, and the plain names of those
    without one (a method or variant the timing run did not include): those
    are named under the cost panel, not drawn at a cost nobody measured."""
    timed = [r for r in rows if r["time_ratio"] is not None]
    return timed, [_plain(r) for r in rows if r["time_ratio"] is None]


def _label_heights(points, gap_fraction=0.045, near_fraction=0.25):
    """Heights for the points' labels (x, y, text) so that no two labels
    whose points are near in x sit closer than `gap_fraction` of the y range:
    from the lowest point up, each label moves up past the ones placed."""
    if not points:
        return []
    ys = [p[1] for p in points]
    xs = [p[0] for p in points]
    gap = gap_fraction * max(max(ys) - min(ys), 1e-9)
    near = near_fraction * max(max(xs) - min(xs), 1e-9)
    placed, heights = [], [None] * len(points)
    for i in sorted(range(len(points)), key=lambda i: ys[i]):
        h = ys[i]
        for px, ph in sorted(placed, key=lambda p: p[1]):
            if abs(px - xs[i]) < near and abs(ph - h) < gap:
                h = ph + gap
        placed.append((xs[i], h))
        heights[i] = h
    return heights


def replace_section(text, body, begin=BEGIN, end=END):
    if begin not in text or end not in text:
        raise SystemExit(f"README.md has no {begin} ... {end} section")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def step_table(results):
    a = results["args"]
    lines = [f"Seconds per `train_on_batch` of the CIFAR ResNet-18 (width {a['width']}, batch "
             f"{a['batch']}, XLA {a['jit']}, {'/'.join(results['devices'])}), median of "
             f"{a['steps']} interleaved rounds after {a['warmup']} warm-up steps:", "",
             "| model | s/step | x plain |", "|---|---:|---:|"]
    for r in results["rows"]:
        lines.append(f"| {r['model']} | {r['seconds_per_step']:.3f} | "
                     f"{r['ratio_to_plain']:.2f} |")
    return "\n".join(lines)


def _ms(value):
    return f"{value:.3g}" if value >= 10 else f"{value:.2f}"


def layers_table(results):
    """Milliseconds and ratios per layer, batch shape and mode."""
    lines = [f"TF {results['tensorflow']}, Keras {results['keras']}, "
             f"{'/'.join(results.get('devices', ['CPU']))}, {results.get('cpu_count', '?')} "
             f"cores; `tf.data` over real images ({results.get('data', '?')}):", "",
             "| method | batch | tf.function ms | x blend | XLA ms | x blend | XLA / tf.function "
             "| tf.data compiled images/s | x no mixing | x blend | first batch s "
             "| tf.data uncompiled images/s | x no mixing | x blend | first batch s "
             "| vs Keras core / keras-cv |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results["rows"]:
        shape = "x".join(str(v) for v in r["shape"])
        base = " / ".join(f"{k.split('.')[0]} {v['ours_ratio']:.2f}x"
                          for k, v in r["baselines"].items())
        d = r.get("tfdata")
        data = " | ".join(
            f"{d[k + '_images_per_s']:,.0f} | {d[k + '_ratio_none']:.2f} | "
            f"{d[k + '_ratio_blend']:.2f} | {d[k + '_first_batch_s']:.1f}"
            for k in ("compiled", "uncompiled")) if d else " | | | | | | | "
        lines.append(f"| {r['method']} | {shape} | {_ms(r['ms'])} | {r['ratio_blend']:.2f} | "
                     f"{_ms(r['xla_ms'])} | {r['xla_ratio_blend']:.2f} | "
                     f"{r['xla_ms'] / r['ms']:.2f} | {data} | {base} |")
    repeated = {}
    for r in results["rows"]:
        if r.get("runs", 1) > 1:
            key = (r["runs"], r.get("measured", "?"), r.get("cpu"))
            repeated.setdefault(key, []).append(r["method"])
    singles = any(r.get("runs", 1) == 1 for r in results["rows"])
    for (runs, date, cpu), names in sorted(repeated.items(), key=str):
        who = ("Every row" if len(names) == len(results["rows"])
               else ", ".join(dict.fromkeys(names)))
        where = f", on {cpu}" if cpu else ""
        others = (f"; the other rows one run{_single_runs_note(results['rows'])}"
                  if singles else "")
        lines += ["", f"{who}: each figure is its median over {runs} runs (each a fresh "
                  f"process with its own blend and baselines, {date}{where}){others}."]
    if results.get("partial"):
        lines += ["", "**Partial:** `layers.py` wrote these rows before its run ended."]
    return "\n".join(lines)


def _single_runs_note(rows):
    """When and on which CPU the one-run rows were measured, where any row
    records its CPU: nothing when none does, else each group's date and CPU,
    or that a group's CPU was not recorded."""
    if not any(r.get("cpu") for r in rows):
        return ""
    groups = {}
    for r in rows:
        if r.get("runs", 1) == 1:
            groups.setdefault((r.get("measured"), r.get("cpu")), []).append(r["method"])

    def where(date, cpu):
        return f"{date}, on {cpu}" if cpu else "their CPU not recorded"

    if len(groups) == 1:
        return f" ({where(*next(iter(groups)))})"
    return " (" + "; ".join(f"{', '.join(dict.fromkeys(names))}: {where(*key)}"
                            for key, names in sorted(groups.items(), key=str)) + ")"


def layer_targets(results):
    """The speed budgets against the measured ratios, from the same JSON."""
    modes = (("tf.function", "ratio_blend"), ("XLA", "xla_ratio_blend"),
             ("tf.data compiled", "tfdata.compiled_ratio_blend"),
             ("tf.data uncompiled", "tfdata.uncompiled_ratio_blend"))

    def get(row, name):
        for part in name.split("."):
            row = row.get(part) if isinstance(row, dict) else None
        return row

    lines = ["| layer (budget x blend) | batch | runs | " + " | ".join(m for m, _ in modes) + " |",
             "|---|---|---:|" + "---:|" * len(modes)]
    for r in results["rows"]:
        budget = SPEED_BUDGETS.get(r["method"])
        if budget is None:
            continue
        cells = []
        for _, name in modes:
            value = get(r, name)
            spread = r.get("spread", {}).get(name)
            cells.append("-" if value is None else
                         f"{value:.2f} {'within' if value <= budget else '**over**'}"
                         + (f" ({spread[0]:.2f}-{spread[1]:.2f})" if spread else ""))
        lines.append(f"| {r['method']} ({budget:g}x) | {'x'.join(map(str, r['shape']))} | "
                     f"{r.get('runs', 1)} | " + " | ".join(cells) + " |")
    slower = [f"{r['method']} at {'x'.join(map(str, r['shape']))}"
              for r in results["rows"] if r["xla_ms"] > r["ms"]]
    lines += ["", "- XLA at most `tf.function`'s time: " + (
        "every layer at every size." if not slower else "not for " + ", ".join(slower) + ".")]
    for r in results["rows"]:
        d = r.get("tfdata")
        if r["method"] == "MiAMix" and d and r["shape"][1] <= 64:
            blend = d["blend_images_per_s"] / d["none_images_per_s"]
            lines.append(
                f"- MiAMix's `tf.data` pipeline against the no-mixing one at "
                f"{'x'.join(map(str, r['shape']))} (budget 0.5x): compiled "
                f"{d['compiled_ratio_none']:.2f}x, uncompiled {d['uncompiled_ratio_none']:.2f}x; "
                f"the plain blend's pipeline {blend:.2f}x. So 0.5x asks MiAMix's pipeline for "
                f"{0.5 / blend:.2f}x the plain blend's throughput; compiled it gets "
                f"{d['compiled_ratio_none'] / blend:.2f}x.")
    return "\n".join(lines)


def tf_port_table(results, fix=None):
    """TensorFlow ratios to the blend before and after a change (tf_port.py):
    the change of the medians over rounds, and the paired change (the median
    over rounds of after / before, the two processes of a round run back to
    back, so that the machine's drift hits both alike). `fix`: tf_port.py's
    results for a change inside the range that is not the port's; the rows of
    its methods are then judged net of its own change."""
    b, a = results["before"], results["after"]
    before = f"`{b['commit'][:7]}`, {b.get('label', b['subject'])}"
    lines = [f"`benchmarks/tf_port.py` ({results['measured']}, {results['cpu']}, "
             f"{results['cpu_count']} cores, TF {results['tensorflow']}, Keras "
             f"{results['keras']}): each layer's time over its own plain blend under "
             f"`tf.function` and with XLA, before ({before}) and after "
             f"(`{a['commit'][:7]}`), in n rounds of one fresh process per commit, the "
             f"commits alternating, {results['repeats']} timed calls each; change = the "
             "median after over the median before, - 1; paired = the median over rounds "
             "of (after / before) - 1." + _remeasured(results), "",
             "| method | batch | n | x blend before | after | change | paired | XLA before "
             "| after | change | paired |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    worst = []
    for r in results["rows"]:
        shape = "x".join(str(v) for v in r["shape"])
        cells = []
        for k in ("ratio_blend", "xla_ratio_blend"):
            change = r[f"{k}_change"]
            paired = paired_change(r, k)
            worst.append((min(change, paired), change, paired, r["method"], shape,
                          "XLA" if k.startswith("xla") else "tf.function"))
            cells.append(f"{r['before'][k]['median']:.2f} | {r['after'][k]['median']:.2f} | "
                         f"{change:+.0%} | {paired:+.0%}")
        n = r.get("rounds", results["rounds"])
        lines.append(f"| {r['method']} | {shape} | {n} | " + " | ".join(cells) + " |")
    spreads = sorted((max(v) - min(v)) / statistics.median(v) for r in results["rows"]
                     for side in ("before", "after") for k in ("ratio_blend", "xla_ratio_blend")
                     for v in [r[side][k]["runs"]])
    lines += ["", "A ratio's spread over its processes (highest - lowest, "
              f"over the median): median {statistics.median(spreads):.0%}, largest "
              f"{spreads[-1]:.0%}."]
    lines.append("")
    bound = PORT_SLOWDOWN_BOUND
    if fix is not None:
        own = {(r["method"], "x".join(str(v) for v in r["shape"]),
                "XLA" if k.startswith("xla") else "tf.function"): (r[f"{k}_change"],
                                                                  paired_change(r, k))
               for r in fix["rows"] for k in ("ratio_blend", "xla_ratio_blend")}
        lines.append(
            f"{', '.join(sorted({r['method'] for r in fix['rows']}))}: the after commit "
            f"includes `{fix['after']['commit'][:7]}` "
            f"({fix['after']['subject'].split(': ', 1)[-1].split(',')[0]}; not the port), "
            "measured alone in the same way "
            f"(`benchmarks/results/{os.path.basename(FIX_RESULTS)}`, {fix['measured']}, "
            f"{fix['rounds']} rounds, against `{fix['before']['commit'][:7]}`): " + "; ".join(
                f"{m} {s} {mode} {c:+.0%} (paired {p:+.0%})"
                for (m, s, mode), (c, p) in own.items()) + ". The verdict below takes their "
            "rows net of it: (1 + change) / (1 + its change) - 1.")
        lines.append("")
        worst = [
            (min(c2, p2), c2, p2, m, s, mode) for _, c, p, m, s, mode in worst
            for c2, p2 in [((1 + c) / (1 + own[(m, s, mode)][0]) - 1,
                            (1 + p) / (1 + own[(m, s, mode)][1]) - 1)
                           if (m, s, mode) in own else (c, p)]]
    both = sorted((w for w in worst if w[0] > bound), reverse=True)
    either = sorted((w for w in worst if max(w[1], w[2]) > bound and w[0] <= bound),
                    key=lambda w: -max(w[1], w[2]))
    if both:
        lines.append(f"More than {bound:.0%} slower after by both measures: " + "; ".join(
            f"{m} {s} {mode} ({c:+.0%}, paired {p:+.0%})" for _, c, p, m, s, mode in both) + ".")
    else:
        lines.append(f"No layer is more than {bound:.0%} slower after by both measures.")
    if either:
        lines.append(f"Over {bound:.0%} by one measure only: " + "; ".join(
            f"{m} {s} {mode} ({c:+.0%}, paired {p:+.0%})" for _, c, p, m, s, mode in either)
            + ".")
    return "\n".join(lines)


def paired_change(row, key):
    """The median over rounds of after / before, - 1 (round i's processes ran
    back to back)."""
    before, after = row["before"][key]["runs"], row["after"][key]["runs"]
    return statistics.median(x / y for x, y in zip(after, before)) - 1


def _remeasured(results):
    """The sentence naming rows re-measured with their own rounds
    (`tf_port.py --update`), or ""."""
    groups = {}
    for r in results["rows"]:
        if "rounds" in r:
            key = (r["rounds"], r["measured"], r["after_commit"][:7])
            groups.setdefault(key, [])
            if r["method"] not in groups[key]:
                groups[key].append(r["method"])
    return "".join(
        f" {', '.join(methods)} re-measured on {date} with {rounds} processes per commit, "
        f"after = `{commit}`."
        for (rounds, date, commit), methods in sorted(groups.items()))


def service_table(results):
    shape = "x".join(str(v) for v in results["image_shape"])
    lines = [f"MiAMix pipeline, batches of {results['batch']} {shape} images "
             f"({results['data']}), TF {results['tensorflow']}, {results['cpu_count']} cores "
             "shared by the trainer and the workers:", "",
             "| where the pipeline runs | images/s | x in-process |", "|---|---:|---:|"]
    for r in results["rows"]:
        lines.append(f"| {r['setting']} | {r['images_per_s']:,.0f} | "
                     f"{r['ratio_in_process']:.2f} |")
    return "\n".join(lines)


def solver_table(results):
    lines = [f"PuzzleMix's default solver against gco's alpha-beta swap (the official solver) "
             f"on the saliency of `{results['classifier']}` (train accuracy "
             f"{100 * results['classifier_train_accuracy']:.1f}%) for {results['images']} "
             f"CIFAR-10 images, one lambda ~ Beta(1, 1) each; gap = (E_default - E_gco) / "
             f"|E_gco| of the same float energy; ms per batch of {results['batch']} "
             f"(TF {results['tensorflow']}, {results['cpu_count']} cores, "
             f"{results['measured']}):", "",
             "| grid | mean gap | 95th pct | max | equal | lower than gco | default ms "
             "(tf.function) | default ms (XLA) | gco ms (host) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["rows"]:
        n = r["block_num"]
        lines.append(f"| {n}x{n} | {r['mean_gap']:+.3%} | {r['p95_gap']:+.3%} | "
                     f"{r['max_gap']:+.3%} | {r['share_equal']:.0%} | {r['share_lower']:.0%} | "
                     f"{r['ms_default']:.1f} | {r['ms_default_xla']:.1f} | {r['ms_gco']:.1f} |")
    return "\n".join(lines)


CIFAR_C_RESULTS = os.path.join(HERE, "results", "cifar_c.json")
CIFAR_C_BEGIN, CIFAR_C_END = "<!-- cifar-c-table:begin -->", "<!-- cifar-c-table:end -->"
# make_cifar_c.py's names, shorter, for the table's worst/best columns.
SHORT = {"gaussian_noise": "gauss. noise", "impulse_noise": "impulse", "elastic_transform":
         "elastic", "jpeg_compression": "JPEG", "speckle_noise": "speckle"}


def cifar_c_table(scores, accuracy_results):
    """The CIFAR-10-C table: per method, the runs scored (current runs only),
    their clean top-1, mCA over 19 x 5 and over the 15 benchmark corruptions,
    the same runs' mCA on the 9 home-made corruptions, and each method's
    change against no mixing under every corruption (worst and best)."""
    current = {(r["method"], r["seed"]): r for r in accuracy_results["runs"]}
    by_method = {}
    for run in scores["runs"].values():
        entry = current.get((run["method"], run["seed"]))
        if entry is not None and entry["finished"] == run["finished"]:
            by_method.setdefault(run["method"], []).append((run, entry))
    if not by_method:
        return "No run scored yet: `python benchmarks/robustness.py`."
    first = next(iter(scores["runs"].values()))
    lines = [f"The 19 corruptions of CIFAR-10-C at 5 severities ({first['images']} test "
             f"images; source: `{first['source']}`), each run's classifier as saved at its "
             f"end; `benchmarks/results/cifar_c.json`. mCA 9: the same runs on the "
             f"accuracy table's 9 home-made corruptions.", "",
             "| method | runs (seeds) | clean top-1 % | mCA % (19 x 5) | mCA % (15 x 5) "
             "| mCA 9 % | vs no mixing: worst / best corruption |",
             "|---|---|---:|---:|---:|---:|---|"]
    rows = {}
    for method in sorted(by_method, key=lambda m: ORDER.index(m) if m in ORDER else 99):
        pairs = sorted(by_method[method], key=lambda p: p[0]["seed"])
        runs = [p[0] for p in pairs]
        rows[method] = {
            "seeds": [r["seed"] for r in runs],
            "clean": 100 * np.mean([r["accuracy"] for r in runs]),
            "mca": 100 * np.mean([r["mca"] for r in runs]),
            "mca15": 100 * np.mean([r["mca_benchmark"] for r in runs]),
            "mca9": 100 * np.mean([p[1]["mca"] for p in pairs]),
            "per": {n: 100 * np.mean([r["corruptions"][n]["mean"] for r in runs])
                    for n in runs[0]["corruptions"]},
        }
    base = rows.get("none")
    for method, r in rows.items():
        versus = "-"
        if base is not None and method != "none":
            diff = {n: r["per"][n] - base["per"][n] for n in base["per"]}
            worst, best = min(diff, key=diff.get), max(diff, key=diff.get)
            versus = (f"{SHORT.get(worst, worst.replace('_', ' '))} {diff[worst]:+.1f} / "
                      f"{SHORT.get(best, best.replace('_', ' '))} {diff[best]:+.1f}")
        seeds = ", ".join(str(s) for s in r["seeds"])
        delta = (f" ({r['mca'] - base['mca']:+.2f})" if base is not None and method != "none"
                 else "")
        lines.append(f"| {NAMES.get(method, method)} | {len(r['seeds'])} ({seeds}) "
                     f"| {r['clean']:.2f} | {r['mca']:.2f}{delta} | {r['mca15']:.2f} "
                     f"| {r['mca9']:.2f} | {versus} |")
    if base is None:
        lines += ["", "No-mixing run not scored yet (no saved classifier): the changes "
                  "against it wait for its re-run."]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", default=RESULTS)
    parser.add_argument("--readme", default=README)
    parser.add_argument("--plot", default=PLOT)
    parser.add_argument("--check", action="store_true",
                        help="only check that the README matches the results")
    args = parser.parse_args(argv)
    results = {"runs": []}
    if os.path.exists(args.results):
        with open(args.results) as f:
            results = json.load(f)
    body = table(results) if results["runs"] else "No runs yet."
    with open(args.readme) as f:
        text = f.read()
    new = replace_section(text, body)
    if results["runs"] and FINDINGS_BEGIN in text:
        new = replace_section(new, findings(results), FINDINGS_BEGIN, FINDINGS_END)
    if os.path.exists(STEP_RESULTS) and STEP_BEGIN in text:
        with open(STEP_RESULTS) as f:
            new = replace_section(new, step_table(json.load(f)), STEP_BEGIN, STEP_END)
    if os.path.exists(LAYER_RESULTS) and LAYER_BEGIN in text:
        with open(LAYER_RESULTS) as f:
            layers = json.load(f)
        new = replace_section(new, layers_table(layers), LAYER_BEGIN, LAYER_END)
        if TARGETS_BEGIN in text:
            new = replace_section(new, layer_targets(layers), TARGETS_BEGIN, TARGETS_END)
    if os.path.exists(SERVICE_RESULTS) and SERVICE_BEGIN in text:
        with open(SERVICE_RESULTS) as f:
            new = replace_section(new, service_table(json.load(f)), SERVICE_BEGIN, SERVICE_END)
    if os.path.exists(SOLVER_RESULTS) and SOLVER_BEGIN in text:
        with open(SOLVER_RESULTS) as f:
            new = replace_section(new, solver_table(json.load(f)), SOLVER_BEGIN, SOLVER_END)
    cifar_c_path = os.path.join(os.path.dirname(os.path.abspath(args.results)), "cifar_c.json")
    if os.path.exists(cifar_c_path) and CIFAR_C_BEGIN in text and results["runs"]:
        with open(cifar_c_path) as f:
            new = replace_section(new, cifar_c_table(json.load(f), results),
                                  CIFAR_C_BEGIN, CIFAR_C_END)
    if os.path.exists(PORT_RESULTS) and PORT_BEGIN in text:
        with open(PORT_RESULTS) as f:
            port = json.load(f)
        fix = None
        if os.path.exists(FIX_RESULTS):
            with open(FIX_RESULTS) as f:
                fix = json.load(f)
        new = replace_section(new, tf_port_table(port, fix), PORT_BEGIN, PORT_END)
    if args.check:
        if new != text:
            print("README.md's generated sections are out of date: run python benchmarks/report.py")
            return 1
        print("README.md's generated sections match the results.")
        return 0
    with open(args.readme, "w") as f:
        f.write(new)
    if results["runs"]:
        plot(results, args.plot)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())

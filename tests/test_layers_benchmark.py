"""benchmarks/layers.py: one fresh process per (shape, method), rows merged."""

import json
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "layers.py")
sys.path.insert(0, os.path.dirname(SCRIPT))
import layers  # noqa: E402
import report  # noqa: E402


def test_each_method_is_measured_in_its_own_process_and_merged(tmp_path):
    out = tmp_path / "layers.json"
    result = subprocess.run(
        [sys.executable, SCRIPT, "--methods", "MixUp,GMix", "--shapes", "4,8,8,3;2,6,10,3",
         "--warmup", "1", "--repeats", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.load(open(out))["rows"]
    assert [(r["method"], r["shape"]) for r in rows] == [
        ("MixUp", [4, 8, 8, 3]), ("GMix", [4, 8, 8, 3]),
        ("MixUp", [2, 6, 10, 3]), ("GMix", [2, 6, 10, 3])]
    for r in rows:
        assert r["ms"] > 0 and r["xla_ms"] > 0
        assert abs(r["ratio_blend"] - r["ms"] / r["blend_ms"]) < 1e-9
        assert abs(r["xla_ratio_blend"] - r["xla_ms"] / r["blend_xla_ms"]) < 1e-9
        assert r["cpu"] == layers.cpu_description() and r["cpu"]
    # The Keras core baseline is measured beside MixUp, in the same process.
    assert "keras.MixUp" in rows[0]["baselines"] and rows[1]["baselines"] == {}
    # Each process printed its own row.
    assert result.stdout.count("GMix ") == 2


def test_tfdata_pipelines_run_one_at_a_time(monkeypatch):
    """Each pipeline is made anew for its turn and gone before the next one
    starts, so that no prefetch refills in the background of another."""
    import weakref

    made = []
    make = layers.pipeline

    def tracked(*args):
        assert all(ref() is None for ref in made), "an earlier pipeline is still alive"
        it = make(*args)
        made.append(weakref.ref(it))
        return it

    monkeypatch.setattr(layers, "pipeline", tracked)
    rates, first = layers.tfdata_throughput((8, 16, 16, 3), "MixUp", None, rounds=2,
                                            seconds=0.05, warm_batches=1)
    assert len(made) == 2 * 4
    assert set(rates) == set(first) == {"none", "blend", "compiled", "uncompiled"}
    assert all(v > 0 for v in rates.values()) and all(v >= 0 for v in first.values())


def test_layer_targets_on_hand_made_rows():
    def row(method, shape, tf_ratio, xla_ratio, ms, xla_ms, tfdata=None):
        return {"method": method, "shape": shape, "ratio_blend": tf_ratio,
                "xla_ratio_blend": xla_ratio, "ms": ms, "xla_ms": xla_ms,
                **({"tfdata": tfdata} if tfdata else {})}

    tfdata = {"compiled_ratio_blend": 3.0, "uncompiled_ratio_blend": 9.0,
              "compiled_ratio_none": 0.25, "uncompiled_ratio_none": 0.1,
              "blend_images_per_s": 300.0, "none_images_per_s": 600.0}
    fmix = row("FMix", [4, 224, 224, 3], 6.5, 5.0, 10.0, 12.0)
    fmix.update(runs=3, spread={"ratio_blend": [5.5, 7.25], "xla_ratio_blend": [4.0, 5.0]})
    text = report.layer_targets({"rows": [
        row("MixUp", [8, 32, 32, 3], 1.0, 1.0, 1.0, 0.5),
        row("MiAMix", [8, 32, 32, 3], 8.0, 4.0, 8.0, 4.0, tfdata), fmix]})
    lines = text.splitlines()
    assert ("| MiAMix (8x) | 8x32x32x3 | 1 | 8.00 within | 4.00 within | 3.00 within | "
            "9.00 **over** |") in lines
    # The median of three runs decides; their range is shown beside it.
    assert ("| FMix (6x) | 4x224x224x3 | 3 | 6.50 **over** (5.50-7.25) | 5.00 within "
            "(4.00-5.00) | - | - |") in lines
    assert not any(line.startswith("| MixUp") for line in lines)  # no budget of its own
    assert "- XLA at most `tf.function`'s time: not for FMix at 4x224x224x3." in lines
    assert ("- MiAMix's `tf.data` pipeline against the no-mixing one at 8x32x32x3 (budget "
            "0.5x): compiled 0.25x, uncompiled 0.10x; the plain blend's pipeline 0.50x. So 0.5x "
            "asks MiAMix's pipeline for 1.00x the plain blend's throughput; compiled it gets "
            "0.50x.") in lines


def test_update_replaces_only_the_measured_rows():
    header = {"tensorflow": "2.21", "keras": "3.15", "devices": ["CPU"], "cpu_count": 2,
              "data": "x.npz"}
    old = {**header, "rows": [{"method": "MixUp", "shape": [4, 8, 8, 3], "ms": 1.0},
                              {"method": "FMix", "shape": [4, 8, 8, 3], "ms": 2.0},
                              {"method": "FMix", "shape": [2, 6, 6, 3], "ms": 3.0}]}
    new = [{"method": "FMix", "shape": [4, 8, 8, 3], "ms": 5.0},
           {"method": "GMix", "shape": [4, 8, 8, 3], "ms": 6.0}]
    rows = layers.merge_rows(old, header, new)
    assert [(r["method"], r["shape"], r["ms"]) for r in rows] == [
        ("MixUp", [4, 8, 8, 3], 1.0), ("FMix", [4, 8, 8, 3], 5.0),
        ("FMix", [2, 6, 6, 3], 3.0), ("GMix", [4, 8, 8, 3], 6.0)]
    # Rows measured under another TensorFlow are not mixed in.
    with pytest.raises(ValueError, match="tensorflow"):
        layers.merge_rows({**old, "tensorflow": "2.20"}, header, new)


def test_rows_are_written_as_they_finish(tmp_path):
    import argparse

    path = tmp_path / "layers.json"
    args = argparse.Namespace(json=str(path), update=True, data=None)
    layers.write_rows(argparse.Namespace(json=str(path), update=False, data=None), [
        {"method": "MixUp", "shape": [4, 8, 8, 3], "ms": 1.0},
        {"method": "FMix", "shape": [4, 8, 8, 3], "ms": 2.0}])
    # A run of --update that stopped after its first row: that row merged,
    # the file marked partial; the run's end clears the mark.
    layers.write_rows(args, [{"method": "FMix", "shape": [4, 8, 8, 3], "ms": 5.0}],
                      partial=True)
    saved = json.load(open(path))
    assert saved["partial"] is True
    assert [(r["method"], r["ms"]) for r in saved["rows"]] == [("MixUp", 1.0), ("FMix", 5.0)]
    layers.write_rows(args, [{"method": "FMix", "shape": [4, 8, 8, 3], "ms": 5.0},
                             {"method": "GMix", "shape": [4, 8, 8, 3], "ms": 6.0}])
    saved = json.load(open(path))
    assert "partial" not in saved and not os.path.exists(str(path) + ".tmp")
    assert [(r["method"], r["ms"]) for r in saved["rows"]] == [
        ("MixUp", 1.0), ("FMix", 5.0), ("GMix", 6.0)]


def test_runs_combine_into_medians_and_ranges():
    runs = [{"method": "FMix", "shape": [4, 8, 8, 3], "ms": ms, "ratio_blend": ratio,
             "xla_ratio_blend": 2.0, "baselines": {"k": {"ms": ms}},
             "tfdata": {"compiled_ratio_blend": ratio, "uncompiled_ratio_blend": 1.0}}
            for ms, ratio in ((3.0, 5.0), (1.0, 7.0), (2.0, 4.0))]
    row = layers.combine_runs(runs)
    assert row["method"] == "FMix" and row["shape"] == [4, 8, 8, 3]
    assert row["ms"] == 2.0 and row["ratio_blend"] == 5.0 and row["baselines"]["k"]["ms"] == 2.0
    assert row["tfdata"]["compiled_ratio_blend"] == 5.0
    assert row["runs"] == 3
    assert row["spread"] == {"ratio_blend": [4.0, 7.0], "xla_ratio_blend": [2.0, 2.0],
                             "tfdata.compiled_ratio_blend": [4.0, 7.0],
                             "tfdata.uncompiled_ratio_blend": [1.0, 1.0]}
    assert layers.combine_runs(runs[:1]) is runs[0]


def test_layers_table_says_which_rows_are_medians():
    def row(method, **extra):
        return {"method": method, "shape": [8, 32, 32, 3], "ms": 2.0, "ratio_blend": 2.0,
                "xla_ms": 1.0, "xla_ratio_blend": 1.0, "baselines": {}, **extra}

    text = report.layers_table({"tensorflow": "2.21", "keras": "3.15", "rows": [
        row("MixUp"), row("FMix", runs=3, measured="2026-11-24"),
        row("MiAMix", runs=3, measured="2026-11-24")]})
    assert text.splitlines()[-1] == (
        "FMix, MiAMix: each figure is its median over 3 runs (each a fresh process with its "
        "own blend and baselines, 2026-11-24); the other rows one run.")
    # Rows that record their CPU say so, and flag the rows that do not.
    cpu = "Xeon (avx2, avx512f)"
    text = report.layers_table({"tensorflow": "2.21", "keras": "3.15", "rows": [
        row("MixUp"), row("FMix", runs=3, measured="2026-12-02", cpu=cpu)]})
    assert text.splitlines()[-1] == (
        "FMix: each figure is its median over 3 runs (each a fresh process with its own blend "
        "and baselines, 2026-12-02, on Xeon (avx2, avx512f)); the other rows one run (their "
        "CPU not recorded).")
    # Once every row records it, the one-run rows say when and where.
    text = report.layers_table({"tensorflow": "2.21", "keras": "3.15", "rows": [
        row("MixUp", measured="2026-12-03", cpu=cpu), row("GMix", measured="2026-12-03", cpu=cpu),
        row("FMix", runs=3, measured="2026-12-02", cpu=cpu)]})
    assert text.splitlines()[-1].endswith(
        "the other rows one run (2026-12-03, on Xeon (avx2, avx512f)).")
    text = report.layers_table({"tensorflow": "2.21", "keras": "3.15", "rows": [
        row("MixUp", measured="2026-12-03", cpu=cpu), row("GMix"),
        row("FMix", runs=3, measured="2026-12-02", cpu=cpu)]})
    assert text.splitlines()[-1].endswith(
        "the other rows one run (MixUp: 2026-12-03, on Xeon (avx2, avx512f); GMix: their CPU "
        "not recorded).")
    # Every row a median over the same runs: no "other rows".
    text = report.layers_table({"tensorflow": "2.21", "keras": "3.15", "rows": [
        row(m, runs=3, measured="2026-12-02", cpu=cpu) for m in ("MixUp", "FMix")]})
    assert text.splitlines()[-1] == (
        "Every row: each figure is its median over 3 runs (each a fresh process with its own "
        "blend and baselines, 2026-12-02, on Xeon (avx2, avx512f)).")


def test_the_jax_backend_is_measured_without_tensorflow(tmp_path):
    """`--backend jax` (the GPU machines have JAX, not TensorFlow): layers and
    Keras core's under jax.jit against a jax.numpy blend, and the training
    steps, each JSON saying which backend and device gave it."""
    out = tmp_path / "layers_jax.json"
    argv = [SCRIPT, "--backend", "jax", "--methods", "MixUp,GMix", "--shapes", "4,8,8,3",
            "--warmup", "1", "--repeats", "2", "--json", str(out)]
    code = ("import sys, runpy; sys.modules['tensorflow'] = None; "
            f"sys.argv = {argv!r}; runpy.run_path(sys.argv[0], run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 0, result.stderr[-2000:]
    saved = json.load(open(out))
    assert saved["backend"] == "jax" and saved["devices"][0].startswith("cpu")
    mixup, gmix = saved["rows"]
    for r in (mixup, gmix):
        assert r["backend"] == "jax" and r["ms"] > 0
        assert abs(r["ratio_blend"] - r["ms"] / r["blend_ms"]) < 1e-9
    assert set(mixup["baselines"]) == {"keras.MixUp"} and gmix["baselines"] == {}
    step = tmp_path / "step_jax.json"
    script = os.path.join(os.path.dirname(SCRIPT), "train_step.py")
    result = subprocess.run(
        [sys.executable, script, "--backend", "jax", "--batch", "4", "--width", "4",
         "--warmup", "1", "--steps", "1", "--models", "plain,AutoMix", "--json", str(step)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    saved = json.load(open(step))
    assert saved["backend"] == "jax" and saved["args"]["jit"] is True
    assert [r["model"] for r in saved["rows"]] == ["plain", "AutoMix"]
    assert saved["rows"][0]["ratio_to_plain"] == 1.0


def test_tf_port_table_medians_changes_and_the_ten_percent_bound():
    """tf_port.py's rows become the README's before/after table: medians of
    each side's runs, the change of the medians, the spread, and every row
    more than 10% slower named."""
    import tf_port

    def run(ratio, xla):
        return {"ratio_blend": ratio, "xla_ratio_blend": xla, "ms": 1.0, "xla_ms": 1.0}

    runs = {("MixUp", (4, 8, 8, 3)): {"before": [run(1.0, 2.0), run(1.2, 2.0), run(1.1, 2.0)],
                                      "after": [run(1.3, 2.0), run(1.32, 2.1), run(1.4, 2.1)]}}
    rows = tf_port.summarise(runs)
    assert rows[0]["before"]["ratio_blend"]["median"] == pytest.approx(1.1)
    assert rows[0]["ratio_blend_change"] == pytest.approx(1.32 / 1.1 - 1)
    assert rows[0]["xla_ratio_blend_change"] == pytest.approx(0.05)
    results = {"measured": "2026-12-06", "cpu": "cpu", "cpu_count": 2, "tensorflow": "2.x",
               "keras": "3.x", "rounds": 3, "repeats": 10, "rows": rows,
               "before": {"commit": "a" * 40, "subject": "s", "label": "before the port"},
               "after": {"commit": "b" * 40, "subject": "t"}}
    text = report.tf_port_table(results)
    # Paired: the median of 1.3 / 1.0, 1.32 / 1.2, 1.4 / 1.1 is 1.273; XLA 1.05.
    assert "| MixUp | 4x8x8x3 | 3 | 1.10 | 1.32 | +20% | +27% | 2.00 | 2.10 | +5% | +5% |" in text
    assert "(`aaaaaaa`, before the port) and after (`bbbbbbb`)" in text
    assert text.endswith("More than 10% slower after by both measures: MixUp 4x8x8x3 "
                         "tf.function (+20%, paired +27%).")
    # Spreads: (1.2 - 1.0) / 1.1, 0, (1.4 - 1.3) / 1.32, 0.1 / 2.1.
    assert "median 6%, largest 18%." in text  # (0.048 + 0.076) / 2
    rows[0]["after"]["ratio_blend"]["median"] = 1.1
    rows[0]["ratio_blend_change"] = 0.0
    assert report.tf_port_table(results).endswith(
        "No layer is more than 10% slower after by both measures.\n"
        "Over 10% by one measure only: MixUp 4x8x8x3 tf.function (+0%, paired +27%).")


def test_tf_port_verdict_nets_out_a_change_that_is_not_the_port():
    import tf_port

    def run(ratio, xla):
        return {"ratio_blend": ratio, "xla_ratio_blend": xla, "ms": 1.0, "xla_ms": 1.0}

    def results(before, after, subject="s"):
        rows = tf_port.summarise({("GMix", (4, 8, 8, 3)): {"before": before, "after": after}})
        return {"measured": "d", "cpu": "cpu", "cpu_count": 2, "tensorflow": "2",
                "keras": "3", "rounds": 1, "repeats": 10, "rows": rows,
                "before": {"commit": "a" * 40, "subject": "s"},
                "after": {"commit": "b" * 40, "subject": subject}}

    port = results([run(1.0, 1.0)], [run(1.2, 1.0)])  # +20% in all
    fix = results([run(1.0, 1.0)], [run(1.1, 1.0)], "GMix/AGMix: the blob fix, more")
    assert "by both measures: GMix 4x8x8x3 tf.function (+20%" in report.tf_port_table(port)
    text = report.tf_port_table(port, fix)
    assert "includes `bbbbbbb` (the blob fix; not the port)" in text
    assert "GMix 4x8x8x3 tf.function +10% (paired +10%)" in text
    # 1.2 / 1.1 - 1 = 9%: within the bound once the fix's own 10% is taken out.
    assert "No layer is more than 10% slower after by both measures." in text


def test_tf_port_update_replaces_only_the_measured_methods_rows(tmp_path):
    import json

    import tf_port

    def row(method, value):
        side = {k: {"runs": [value], "median": value} for k in tf_port.FIGURES}
        return {"method": method, "shape": [4, 8, 8, 3], "before": side, "after": side,
                "ratio_blend_change": 0.0, "xla_ratio_blend_change": 0.0}

    old = {"measured": "d1", "rounds": 3, "repeats": 10, "rows": [row("MixUp", 1.0),
                                                                 row("CutMix", 1.0)],
           "before": {"commit": "a" * 40}, "after": {"commit": "b" * 40}}
    path = tmp_path / "port.json"
    path.write_text(json.dumps(old))
    new = dict(old, measured="d2", rounds=9, after={"commit": "c" * 40},
               rows=[row("CutMix", 2.0)])
    merged = tf_port.merge(str(path), new)
    assert [r["method"] for r in merged["rows"]] == ["MixUp", "CutMix"]
    assert merged["rows"][0] == row("MixUp", 1.0) and merged["rounds"] == 3
    cut = merged["rows"][1]
    assert cut["before"]["ms"]["median"] == 2.0
    assert (cut["rounds"], cut["measured"], cut["after_commit"]) == (9, "d2", "c" * 40)
    merged.update(measured="d1", cpu="cpu", cpu_count=2, tensorflow="2", keras="3")
    merged["before"].update(subject="s")
    text = report.tf_port_table(merged)
    assert "CutMix re-measured on d2 with 9 processes per commit, after = `ccccccc`." in text
    assert "| MixUp | 4x8x8x3 | 3 |" in text and "| CutMix | 4x8x8x3 | 9 |" in text
    with pytest.raises(SystemExit, match="one before"):
        tf_port.merge(str(path), dict(new, before={"commit": "d" * 40}))

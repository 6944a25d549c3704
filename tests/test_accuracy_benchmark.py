"""benchmarks/accuracy.py --quick and benchmarks/report.py."""

import json
import os
import sys

import numpy as np
import pytest
from conftest import StopAt
from conftest import epoch_counter
from conftest import stop_before

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
import accuracy  # noqa: E402
import report  # noqa: E402


def test_quick_runs_are_appended_skipped_and_reported(tmp_path, capsys):
    results = str(tmp_path / "acc.json")
    progress = tmp_path / "progress"
    args = ["--quick", "--data", "digits", "--results", results, "--work", str(tmp_path / "w"),
            "--progress", str(progress)]
    assert accuracy.main([*args, "--methods", "none", "mixup", "--seeds", "0"]) == 0
    runs = json.load(open(results))["runs"]
    assert [(r["method"], r["seed"]) for r in runs] == [("none", 0), ("mixup", 0)]
    assert os.listdir(progress) == []  # a finished run leaves no snapshot behind
    for r in runs:
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["ece"] <= 1 and r["nll"] > 0
        assert set(r["corruptions"]) == set(accuracy.training.corruptions.CORRUPTIONS)
        assert set(r["corruptions"]["pixelate"]["by_severity"]) == {"1", "5"}
        assert len(r["history"]["val_accuracy"]) == r["epochs"] == 1
        assert 0 <= r["history"]["val_accuracy"][0] <= 1 and r["history"]["seconds"][0] > 0
    # Runs already there are skipped; a new one is appended.
    capsys.readouterr()
    assert accuracy.main([*args, "--methods", "none", "cutmix", "--seeds", "0"]) == 0
    assert "1 to go: [('cutmix', 0)]" in capsys.readouterr().out
    runs = json.load(open(results))["runs"]
    assert [r["method"] for r in runs] == ["none", "mixup", "cutmix"]

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.BEGIN}\nold\n{report.END}\nrest\n")
    plot = str(tmp_path / "acc.png")
    assert report.main(["--results", results, "--readme", str(readme), "--plot", plot]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("rest\n") and "old" not in text
    rows = {line.split("|")[1].strip(): line for line in text.splitlines()
            if line.startswith("| ") and "method" not in line}
    acc = {r["method"]: 100 * r["accuracy"] for r in runs}
    assert f"{acc['mixup']:.2f}" in rows["MixUp"]
    assert rows["no mixing"].rstrip(" |").endswith("1.00")  # time ratio of none
    assert os.path.getsize(plot) > 10000
    assert report.main(["--results", results, "--readme", str(readme), "--check"]) == 0
    readme.write_text(text.replace("MixUp", "MixUp*"))
    assert report.main(["--results", results, "--readme", str(readme), "--check"]) == 1


def test_a_run_continues_from_its_committed_snapshot_on_a_new_machine(tmp_path):
    """The snapshot in `--progress` outlives the `--work` folder: a run
    stopped after epoch 2 of 3, whose work folder is then lost, resumes at
    epoch 2 from the snapshot's weights and optimizer state."""
    import keras

    data = accuracy.training.load_data("digits", limit=64, test_limit=32)
    work, progress = str(tmp_path / "work"), str(tmp_path / "progress")
    config = accuracy.training.TrainConfig(method="mixup", output=work, epochs=3,
                                           steps_per_epoch=2, batch_size=16, verbose=0)
    seen = {}

    class Keep(keras.callbacks.Callback):
        """The model's and the optimizer's variables."""

        def state(self):
            return [np.array(v) for v in [*self.model.weights, *self.model.optimizer.variables]]

        def on_epoch_end(self, epoch, logs=None):
            seen["end"] = self.state()

        def on_epoch_begin(self, epoch, logs=None):
            seen.setdefault("begin", self.state())

    snapshot = accuracy.ProgressSnapshot(progress, os.path.join(work, "history.json"))
    with pytest.raises(StopAt):
        accuracy.training.train(config, data=data, callbacks=[snapshot, Keep(), stop_before(2)])
    # Only the newest snapshot is kept, named by the epochs done.
    assert sorted(os.listdir(progress)) == ["epoch-0002.weights.h5", "history.json",
                                            "revision"]
    assert [h["epoch"] for h in json.load(open(os.path.join(progress, "history.json")))] == [0, 1]
    after_two = seen.pop("end")

    # A new machine: the work folder is gone, the committed snapshot is not.
    import shutil

    shutil.rmtree(work)
    # The begun run goes first when the plan is run again.
    plan = [("none", 0), ("mixup", 0), ("cutmix", 0)]
    assert accuracy.unfinished_first(plan, str(tmp_path)) == plan
    os.rename(progress, tmp_path / "mixup-seed0")
    assert accuracy.unfinished_first(plan, str(tmp_path)) == [("mixup", 0), ("none", 0),
                                                                ("cutmix", 0)]
    os.rename(tmp_path / "mixup-seed0", progress)
    assert accuracy.restore_progress(progress, work) == 2
    assert accuracy.restore_progress(progress, work) is None  # the backup is as far on
    seen.clear()
    count = epoch_counter()
    result = accuracy.training.train(config, data=data, callbacks=[Keep(), count])
    assert count.epochs == [2]
    assert [h["epoch"] for h in result.history] == [0, 1, 2]
    assert len(seen["begin"]) == len(after_two)
    for got, want in zip(seen["begin"], after_two):
        np.testing.assert_array_equal(got, want)  # every weight, the optimizer's too
    assert int(result.model.optimizer.iterations) == 6  # 2 steps in each of 3 epochs


def test_the_plan_covers_every_method_with_the_seeds_the_issue_asks():
    plan = accuracy.default_plan()
    assert len(plan) == len(set(plan))  # no run twice
    seeds = {m: sorted(s for mm, s in plan if mm == m) for m, _ in plan}
    assert set(seeds) == set(accuracy.training.METHODS) | set(accuracy.VARIANTS)
    for method in ("none", "mixup", "cutmix", "miamix", "automix"):
        assert seeds[method] == [0, 1, 2], method
    assert all(len(s) >= 2 for m, s in seeds.items() if m not in accuracy.VARIANTS), seeds
    # Each variant is a method of the package with arguments the method takes.
    for name, (method, method_args) in accuracy.VARIANTS.items():
        assert accuracy.run_method(name) == (method, method_args)
        assert method in accuracy.training.METHODS and method_args
    assert accuracy.run_method("mixup") == ("mixup", {})
    # SaliencyMix's official one box per batch, against the per-sample default.
    assert accuracy.run_method("saliencymix_box_batch") == ("saliencymix", {"box": "batch"})
    assert seeds["saliencymix_box_batch"] == [0, 1]
    assert set(accuracy.VARIANT_SETTINGS) == {"automix_head_one_mix",
                                              "automix_head_one_mix_epoch_ema"}
    # The rescaled teacher keeps per epoch of 65 steps what the official one
    # keeps per epoch of 500 steps, at the schedule's start and end.
    _, rescaled = accuracy.run_method("automix_head_one_mix_epoch_ema")
    assert abs(rescaled["momentum"] ** 65 - 0.999 ** 500) < 1e-12
    assert abs(rescaled["momentum_end"] ** 65 - 0.999999 ** 500) < 1e-12
    assert rescaled["head_one_mix"] is True
    # The headline methods fill a seed at a time; each method starts at seed 0.
    first_seed1 = plan.index(("none", 1))
    assert all(plan.index((m, 0)) < first_seed1 for m in accuracy.HEADLINE)
    assert all(plan.index((m, 0)) < plan.index((m, 1))
               for m in seeds if m not in accuracy.VARIANTS)


def test_curves_keep_every_metric_per_epoch():
    history = [{"epoch": 0, "loss": 2.3456789, "val_accuracy": 0.1},
               {"epoch": 1, "loss": 1.0, "val_accuracy": 0.25}]
    assert accuracy.curves(history) == {"loss": [2.3457, 1.0], "val_accuracy": [0.1, 0.25]}
    assert accuracy.curves([]) == {}


def test_summary_statistics_on_hand_made_runs():
    def run(method, seed, acc, seconds):
        return {"method": method, "seed": seed, "accuracy": acc, "ece": 0.1, "nll": 1.0,
                "mca": 0.5, "seconds_per_epoch": seconds,
                "corruptions": {"contrast": {"mean": 0.5}}}

    rows = report.summarise({"runs": [run("none", 0, 0.70, 10.0), run("none", 1, 0.74, 10.0),
                                      run("mixup", 0, 0.80, 12.0)]})
    none, mixup = rows
    assert none["mean"] == 72.0 and abs(none["std"] - 2 * 2 ** 0.5) < 1e-9
    assert mixup["std"] is None and mixup["time_ratio"] == 1.2


def test_a_method_whose_code_changed_is_rerun_and_its_old_runs_kept_superseded(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(accuracy, "REVISIONS", {"gmix": 2})
    monkeypatch.setattr(accuracy, "REVISION_NOTES", {"gmix": "the blob changed"})
    results = tmp_path / "acc.json"
    old = {"method": "gmix", "seed": 0, "accuracy": 0.5}
    done = {"method": "none", "seed": 0, "accuracy": 0.4}
    results.write_text(json.dumps({"protocol": accuracy.protocol(True), "runs": [done, old]}))
    progress = tmp_path / "progress"
    stale = progress / "gmix-seed0"  # begun before the change: not resumed
    stale.mkdir(parents=True)
    (stale / "epoch-0001.weights.h5").write_text("old")
    args = ["--quick", "--data", "digits", "--results", str(results), "--work",
            str(tmp_path / "w"), "--progress", str(progress)]
    assert accuracy.main([*args, "--methods", "none", "gmix", "--seeds", "0"]) == 0
    out = capsys.readouterr().out
    assert "1 to go: [('gmix', 0)]" in out and "restored" not in out
    saved = json.load(open(results))
    assert [(r["method"], r.get("revision")) for r in saved["runs"]] == [
        ("none", None), ("gmix", 2)]
    assert saved["superseded"] == [dict(old, superseded_by_revision=2)]
    assert saved["revisions"] == {"gmix": {"revision": 2, "change": "the blob changed"}}
    assert not stale.exists()


def test_rerun_runs_a_finished_run_again_and_keeps_the_first(tmp_path, capsys):
    results = tmp_path / "acc.json"
    first = {"method": "none", "seed": 0, "accuracy": 0.4, "finished": "x"}
    results.write_text(json.dumps({"protocol": accuracy.protocol(True), "runs": [first]}))
    args = ["--quick", "--data", "digits", "--results", str(results), "--work",
            str(tmp_path / "w"), "--progress", str(tmp_path / "p"), "--methods", "none",
            "--seeds", "0"]
    assert accuracy.main(args) == 0
    assert "0 to go" in capsys.readouterr().out  # finished: skipped
    assert accuracy.main([*args, "--rerun", "to keep its classifier"]) == 0
    saved = json.load(open(results))
    assert len(saved["runs"]) == 1 and saved["runs"][0]["rerun"] == "to keep its classifier"
    assert saved["superseded"] == [dict(first, superseded_by_rerun="to keep its classifier")]
    notes = report._revision_notes(saved, report.summarise(saved))
    assert any("no mixing seed 0 was run again (to keep its classifier)" in n
               and "40.0" in n for n in notes)
    with pytest.raises(SystemExit):
        accuracy.main(["--quick", "--rerun", "why"])


def test_the_table_marks_rows_of_changed_code_and_lists_superseded_runs():
    def run(method, seed, acc, **extra):
        return {"method": method, "seed": seed, "accuracy": acc, "ece": 0.1, "nll": 1.0,
                "mca": 0.5, "seconds_per_epoch": 10.0, "train_images": 100,
                "test_images": 50, "corruptions": {"contrast": {"mean": 0.5}}, **extra}

    results = {"protocol": {"model": "m", "epochs": 1, "batch_size": 2, "lr": 0.1,
                            "weight_decay": 0.0},
               "revisions": {"gmix": {"revision": 2, "change": "the blob changed"}},
               "runs": [run("none", 0, 0.7), run("gmix", 0, 0.81, revision=2),
                        run("gmix", 1, 0.79)],
               "superseded": [run("gmix", 0, 0.78, superseded_by_revision=2)]}
    text = report.table(results)
    assert "| GMix †1 | 80.00 ± 1.41 | 2 |" in text
    assert ("†1 GMix: 1 of 2 runs are from before revision 2 (the blob changed); "
            "being re-run.") in text
    assert "Superseded GMix runs (revision 1, kept in the JSON): 78.0 (seed 0)." in text
    results["runs"][2]["revision"] = 2
    assert "†" not in report.table(results)


def test_timing_interleaves_methods_and_feeds_the_time_column(tmp_path):
    results = str(tmp_path / "acc.json")
    args = ["--quick", "--data", "digits", "--results", results]
    assert accuracy.main([*args, "--timing", "--methods", "mixup", "--rounds", "2",
                          "--timing-epochs", "1"]) == 0
    timing = json.load(open(results))["timing"]
    assert len(timing["rounds"]) == 2 and timing["epochs_timed"] == 1
    for r in timing["rounds"]:
        assert list(r) == ["none", "mixup"] and all(v > 0 for v in r.values())
    want = sorted(r["mixup"] / r["none"] for r in timing["rounds"])
    assert abs(timing["ratio_to_none"]["mixup"] - (want[0] + want[1]) / 2) < 1e-12
    assert timing["ratio_to_none"]["none"] == 1.0

    # The column then comes from the timing, not from the runs' epochs.
    def run(method, seconds):
        return {"method": method, "seed": 0, "accuracy": 0.7, "ece": 0.1, "nll": 1.0,
                "mca": 0.5, "seconds_per_epoch": seconds, "train_images": 10,
                "test_images": 5, "corruptions": {"contrast": {"mean": 0.5}}}

    fake = {"runs": [run("none", 10.0), run("mixup", 30.0), run("cutmix", 10.0)],
            "timing": {"measured": "2026-12-02T00:00:00", "epochs_timed": 3, "cpu_count": 2,
                       "rounds": [{"none": 6.0, "mixup": 6.6}],
                       "ratio_to_none": {"none": 1.0, "mixup": 1.1}}}
    rows = {r["method"]: r for r in report.summarise(fake)}
    assert rows["mixup"]["time_ratio"] == 1.1 and rows["none"]["time_ratio"] == 1.0
    assert rows["cutmix"]["time_ratio"] is None  # not timed: "-", not a guess
    fake["protocol"] = {"model": "m", "epochs": 1, "batch_size": 2, "lr": 0.1,
                        "weight_decay": 0.0}
    text = report.table(fake)
    assert "`accuracy.py --timing` (2026-12-02, 2 cores)" in text
    assert "(no mixing: 6.0 s an epoch)" in text
    assert text.splitlines()[-1].endswith("| - |")  # CutMix's row


def test_the_readme_tables_match_the_committed_results():
    assert report.main(["--check"]) == 0


def runs_protocol():
    return {"model": "small_resnet", "epochs": 1, "batch_size": 1, "lr": 0.1,
            "weight_decay": 0.0}


def test_findings_on_hand_made_runs():
    def run(method, seed, acc, mca=0.5, ece=0.1):
        return {"method": method, "seed": seed, "accuracy": acc, "ece": ece, "nll": 1.0,
                "mca": mca, "seconds_per_epoch": 10.0,
                "corruptions": {"contrast": {"mean": 0.5}}}

    # none: 70, 72 (var 2); mixup: 80, 84 (var 8): pooled sd sqrt(5), 2 dof.
    automix = dict(run("automix", 0, 0.81, ece=0.05), student_accuracy=0.78)
    runs = [run("none", 0, 0.70, mca=0.50), run("none", 1, 0.72, mca=0.50),
            run("mixup", 0, 0.80, mca=0.49), run("mixup", 1, 0.84, mca=0.49),
            run("miamix", 0, 0.95, mca=0.60, ece=0.2), automix,
            run("cutmix", 0, 0.79)]
    rows = report.summarise({"runs": runs})
    spread, dof = report.pooled_std(rows)
    assert abs(spread - 5 ** 0.5) < 1e-9 and dof == 2
    text = report.findings({"runs": runs})
    # t(0.975, 2) = 4.303; MiAMix - MixUp = 13 against 4.303 * sqrt(5) * sqrt(1.5) = 11.78.
    assert "above MixUp (82.00, n=2) by 13.00, clearly (margin 11.78)" in text
    # AutoMix - MixUp = -1: below, within the spread.
    assert "AutoMix (81.00, n=1) is below MixUp (82.00, n=2) by 1.00, within the spread" in text
    assert "head_one_mix" not in text  # no such run
    variant = dict(run("automix_head_one_mix", 0, 0.85), student_accuracy=0.83)
    with_variant = report.findings({"runs": [*runs, variant]})
    assert ("AutoMix with OpenMixup's `head_one_mix=True` (not the default; 85.00, n=1) is "
            "above MixUp (82.00, n=2) by 3.00, within the spread") in with_variant
    assert "(student 83.0)" in report.table({"protocol": runs_protocol(), "runs": [
        dict(r, train_images=1, test_images=1) for r in [*runs, variant]]})
    rescaled = dict(run("automix_head_one_mix_epoch_ema", 0, 0.80), student_accuracy=0.8)
    both = report.findings({"runs": [*runs, variant, rescaled]})
    assert both.index("`head_one_mix=True` (not the default; 85.00") < both.index(
        "AutoMix with `head_one_mix=True` and the teacher's momentum rescaled to the official "
        "run's horizon in epochs (not the default; 80.00, n=1) is below MixUp (82.00, n=2) "
        "by 2.00, within the spread")
    assert "SaliencyMix: a box per sample" not in text  # no box="batch" run
    saliency = [run("saliencymix", 0, 0.78), run("saliencymix", 1, 0.80),
                run("saliencymix_box_batch", 0, 0.77)]
    assert ("SaliencyMix (79.00, n=2) is above SaliencyMix, box=\"batch\" (77.00, n=1) by "
            "2.00, within the spread") in report.findings({"runs": [*runs, *saliency]})
    assert "MixUp 49.00 (-1.00)" in text and "MiAMix 60.00 (+10.00)" in text
    assert "AutoMix's ECE is 5.00%, the lowest of all methods here." in text
    assert "here MiAMix 95.00 > MixUp 82.00 > CutMix 79.00, the same order." in text
    assert "not run yet: FMix, GridMix, GMix, AGMix, ResizeMix, SaliencyMix." in text
    # Ties keep the paper's order; MixUp (49) falls below no mixing (50).
    assert ("here (mCA) MiAMix 60.00 > AutoMix 50.00 > no mixing 50.00 > CutMix 50.00 > "
            "MixUp 49.00, a different order.") in text


def test_findings_say_where_the_mca_differs():
    def run(method, noise, contrast, blur):
        corr = {"gaussian_noise": noise, "contrast": contrast, "defocus_blur": blur}
        return {"method": method, "seed": 0, "accuracy": 0.8, "ece": 0.1, "nll": 1.0,
                "mca": sum(corr.values()) / 3, "seconds_per_epoch": 10.0,
                "corruptions": {k: {"mean": v} for k, v in corr.items()}}

    text = report.findings({"runs": [run("none", 0.50, 0.40, 0.60),
                                     run("cutmix", 0.30, 0.45, 0.60),
                                     run("miamix", 0.55, 0.50, 0.58),
                                     run("fmix", 0.45, 0.39, 0.50),
                                     run("gmix", 0.51, 0.45, 0.70)]})
    line = next(t for t in text.splitlines() if "Where the mCA differences" in t)
    # Below on every corruption, or above on every one, the words follow.
    assert line.endswith(
        ": CutMix above on 1 of 3, most lost gaussian noise (-20.0), most gained contrast "
        "(+5.0); FMix above on 0 of 3, most lost defocus blur (-10.0), least lost contrast "
        "(-1.0); GMix above on 3 of 3, least gained gaussian noise (+1.0), most gained "
        "defocus blur (+10.0); MiAMix above on 2 of 3, most lost defocus blur (-2.0), most "
        "gained contrast (+10.0).")


def test_plot_labels_do_not_overlap():
    # y range 10: gap 0.45. B sits 0.1 above A at the same x and moves up one
    # gap; C, close to B's label, moves past it; D is far in x and stays.
    points = [(1.0, 70.0, "A"), (1.02, 70.1, "B"), (1.0, 70.5, "C"), (5.0, 70.05, "D"),
              (1.0, 80.0, "E")]
    heights = report._label_heights(points)
    assert heights[0] == 70.0 and heights[3] == 70.05 and heights[4] == 80.0
    assert abs(heights[1] - 70.45) < 1e-9 and abs(heights[2] - 70.9) < 1e-9


def test_prose_and_plot_names_carry_no_markdown():
    # The table keeps "Keras core `MixUp`"; the findings and the plot's labels
    # are plain text, where an unmatched backtick would show.
    assert report._plain({"method": "keras_mixup"}) == "Keras core MixUp"
    assert report._plain({"method": "miamix"}) == "MiAMix"
    text = report.findings({"runs": [
        {"method": m, "seed": 0, "accuracy": 0.8, "ece": 0.1, "nll": 1.0, "mca": 0.5,
         "seconds_per_epoch": 10.0, "corruptions": {"contrast": {"mean": 0.5}}}
        for m in ("none", "keras_cutmix")]})
    line = next(t for t in text.splitlines() if "More robust" in t)
    assert line.endswith("Keras core CutMix 50.00 (+0.00).")


def test_untimed_methods_are_named_not_plotted_at_a_guessed_cost(tmp_path):
    # A variant the timing run did not include (no ratio) is left out of the
    # cost panel and named under it; before, it was drawn at 1.0x no mixing.
    def run(method):
        return {"method": method, "seed": 0, "accuracy": 0.7, "ece": 0.1, "nll": 1.0,
                "mca": 0.5, "seconds_per_epoch": 10.0, "train_images": 10,
                "test_images": 5, "corruptions": {"contrast": {"mean": 0.5}}}

    fake = {"runs": [run("none"), run("automix"), run("automix_head_one_mix")],
            "timing": {"ratio_to_none": {"none": 1.0, "automix": 4.5}}}
    timed, untimed = report._cost_rows(report.summarise(fake))
    assert [(r["method"], r["time_ratio"]) for r in timed] == [("none", 1.0), ("automix", 4.5)]
    assert untimed == ["AutoMix, head_one_mix=True"]
    assert report._label_heights([]) == []
    # Nothing timed at all still draws the corruption panel.
    del fake["timing"]
    fake["runs"] = [run("automix")]
    report.plot(fake, str(tmp_path / "plot.png"))
    assert (tmp_path / "plot.png").stat().st_size > 0


def test_a_finished_run_is_scored_on_cifar_10_c(tmp_path):
    """A quick run on RGB images ends with its CIFAR-10-C score (19
    corruptions x 5 severities of its test images) in cifar_c.json beside the
    results; scoring again skips it; a built set is cached and reused."""
    pytest.importorskip("cv2")
    pytest.importorskip("skimage")
    import robustness

    rs = np.random.RandomState(0)
    npz = tmp_path / "rgb.npz"
    np.savez(npz, x_train=rs.randint(0, 256, (80, 32, 32, 3)).astype(np.uint8),
             y_train=rs.randint(0, 10, 80).astype(np.uint8),
             x_test=rs.randint(0, 256, (40, 32, 32, 3)).astype(np.uint8),
             y_test=rs.randint(0, 10, 40).astype(np.uint8))
    results, work = str(tmp_path / "acc.json"), str(tmp_path / "w")
    assert accuracy.main(["--quick", "--data", str(npz), "--results", results, "--work", work,
                          "--progress", str(tmp_path / "p"), "--methods", "none",
                          "--seeds", "0"]) == 0
    scored = json.load(open(tmp_path / "cifar_c.json"))["runs"]["none-seed0"]
    corruptions = robustness.cifar_c.CORRUPTIONS
    assert set(scored["corruptions"]) == set(corruptions) and scored["images"] == 32
    accs = [a for c in scored["corruptions"].values() for a in c["by_severity"].values()]
    assert len(accs) == 95 and scored["mca"] == pytest.approx(np.mean(accs))
    assert scored["finished"] == json.load(open(results))["runs"][0]["finished"]
    assert os.path.exists(os.path.join(work, "cifar10c", "labels.npy"))
    data = robustness.training.load_data(str(npz), limit=64, test_limit=32)
    assert robustness.score_runs(results, work, str(tmp_path / "cifar_c.json"), data,
                                 limit=32) == []
    # The released layout is read back as the same images.
    again = robustness.corrupted_test_set(data, os.path.join(work, "cifar10c"), limit=32)
    released = robustness.corrupted_test_set(data, None, os.path.join(work, "cifar10c"), 32)
    np.testing.assert_array_equal(again.images["fog"], released.images["fog"])
    # Arrays of other images (their labels differ) are refused.
    robustness.cifar_c.CorruptedSet(released.images, released.labels[::-1]).save(
        str(tmp_path / "other"))
    with pytest.raises(ValueError, match="labels"):
        robustness.corrupted_test_set(data, None, str(tmp_path / "other"), 32)


def test_automix_trains_with_its_official_optimisation_and_its_variants_with_revision_1s():
    """The protocol's 5e-4 on the kernels for every method but AutoMix, whose
    row is OpenMixup's configuration (1e-4 on every weight, PyTorch's
    BatchNorm); the revision-1 AutoMix variants keep the old optimisation."""
    settings = accuracy.protocol(quick=False)
    keys = ("min_lr", "weight_decay", "decay_all_weights", "batch_norm")

    def resolved(name):
        base, _ = accuracy.run_method(name)
        config = accuracy.training.TrainConfig(method=base, **accuracy.run_settings(name, settings))
        return tuple(config.resolved(k) for k in keys)

    assert resolved("automix") == (1e-3, 1e-4, True, "torch")
    for name in ("mixup", "miamix", "puzzlemix", "none"):
        assert resolved(name) == (0.0, 5e-4, False, "keras"), name
    for name in accuracy.VARIANTS:
        assert resolved(name) == (0.0, 5e-4, False, "keras"), name
    assert settings["weight_decay"] == 5e-4  # the protocol itself is unchanged

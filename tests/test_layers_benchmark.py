"""benchmarks/layers.py: one fresh process per (shape, method), rows merged."""

import json
import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "layers.py")


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
    # The Keras core baseline is measured beside MixUp, in the same process.
    assert "keras.MixUp" in rows[0]["baselines"] and rows[1]["baselines"] == {}
    # Each process printed its own row.
    assert result.stdout.count("GMix ") == 2


def test_tfdata_pipelines_run_one_at_a_time(monkeypatch):
    """Each pipeline is made anew for its turn and gone before the next one
    starts, so that no prefetch refills in the background of another."""
    import weakref

    sys.path.insert(0, os.path.dirname(SCRIPT))
    import layers

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

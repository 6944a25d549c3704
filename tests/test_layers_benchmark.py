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

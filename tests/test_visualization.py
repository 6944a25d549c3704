"""Plots draw what the layers did; the notebook's code is valid Python."""

import json
import os

import numpy as np
import pytest

import keras_miamix as km

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from keras_miamix import visualization  # noqa: E402


def test_mix_for_display_matches_the_layer_info():
    images = np.random.RandomState(0).rand(6, 16, 16, 3).astype("float32")
    d = visualization.mix_for_display(km.CutMix(seed=0), images)
    p = d["info"]["partner_index"]
    np.testing.assert_array_equal(d["partners"], images[p])
    expected = d["masks"][..., None] * images + (1 - d["masks"][..., None]) * images[p]
    np.testing.assert_allclose(d["mixed"], expected, atol=1e-6)
    np.testing.assert_allclose(d["label_weights"], d["masks"].mean((1, 2)), atol=1e-6)


def test_plots_have_one_row_per_sample(tmp_path):
    images = (np.random.RandomState(0).rand(5, 16, 16, 3) * 255).astype("uint8")
    fig = visualization.plot_mixing(km.FMix(seed=0), images, num=3)
    assert len(fig.axes) == 3 * 4
    fig.savefig(os.path.join(tmp_path, "fmix.png"))
    fig = visualization.plot_miamix_stages(km.MiAMix(seed=0), images.astype("float32") / 255,
                                           num=2)
    assert len(fig.axes) == 2 * (2 + 3)


def test_notebook_code_cells_are_valid_python():
    path = os.path.join(os.path.dirname(__file__), "..", "notebooks",
                        "keras_miamix_quickstart.ipynb")
    nb = json.load(open(path))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(code) >= 5
    for cell in code:
        source = "".join(line for line in cell["source"] if not line.lstrip().startswith("!"))
        compile(source, path, "exec")

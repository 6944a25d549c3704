"""The example scripts, run on tiny data."""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import automix  # noqa: E402
import custom_mask_generator  # noqa: E402
import mix_in_tf_data  # noqa: E402
import mix_on_device  # noqa: E402
import tf_data_service  # noqa: E402

TINY = ["--epochs", "1", "--limit", "64"]


@pytest.mark.parametrize("script, extra", [
    (mix_in_tf_data, ["--method", "fmix"]), (mix_on_device, ["--method", "miamix"]),
    (automix, []), (custom_mask_generator, []), (tf_data_service, ["--workers", "2"])])
def test_example_trains(script, extra):
    history = script.main([*TINY, *extra])
    assert len(history.history["loss"]) == 1
    assert np.isfinite(history.history["loss"][0])


def test_custom_mask_generator_weights_labels_by_kept_rows():
    lam = tf.constant([0.0, 0.25, 0.5, 1.0])
    masks = custom_mask_generator.horizontal_split_mask(lam, 8, 5, None).numpy()
    np.testing.assert_array_equal(masks[:, :, 0, 0].sum(1), [0, 2, 4, 8])
    layer = custom_mask_generator.SplitMix(num_classes=3, seed=0)
    _, info = layer((tf.zeros((6, 8, 5, 3)), np.arange(6) % 3), return_info=True)
    rows = info["masks"].numpy()[:, :, 0, 0].sum(1)
    np.testing.assert_allclose(info["label_weights"], rows / 8, atol=1e-6)

"""Method-specific checks made through the layers."""

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
from conftest import chi2_pvalue

import keras_miamix as km


@pytest.mark.parametrize("alpha", [0.4, 1.0, 2.0])
def test_mixup_lambda_follows_beta_and_is_the_label_weight(alpha):
    layer = km.MixUp(alpha=alpha, seed=1)
    images = np.zeros((2000, 2, 2, 1), np.float32)
    lams = []
    for _ in range(5):
        _, info = layer(images, return_info=True)
        np.testing.assert_allclose(info["label_weights"], info["lam"], atol=1e-6)
        lams.append(info["lam"].numpy())
    assert chi2_pvalue(np.concatenate(lams), scipy.stats.beta(alpha, alpha)) > 1e-3


def test_mixup_is_the_linear_blend():
    rng = np.random.RandomState(0)
    x = rng.rand(6, 5, 7, 3).astype("float32")
    y = np.eye(6, dtype="float32")
    (xm, ym), info = km.MixUp(seed=3)((x, y), return_info=True)
    lam, p = info["lam"].numpy(), info["partner_index"].numpy()
    np.testing.assert_allclose(xm, lam[:, None, None, None] * x + (1 - lam[:, None, None, None])
                               * x[p], atol=1e-6)
    np.testing.assert_allclose(ym, lam[:, None] * y + (1 - lam[:, None]) * y[p], atol=1e-6)


def test_cutmix_label_weight_is_the_kept_pixel_fraction_after_clipping():
    layer = km.CutMix(seed=2)
    images = np.zeros((512, 32, 32, 1), np.float32)
    _, info = layer(images, return_info=True)
    masks = info["masks"].numpy()
    kept = (masks == 1).mean((1, 2, 3))
    np.testing.assert_allclose(info["label_weights"], kept, atol=1e-6)
    # Clipping makes the kept share exceed lam for many samples: the label must
    # follow the pixels, not lam (keras-cv's bug).
    assert np.mean(kept - info["lam"].numpy() > 0.05) > 0.2


def test_per_sample_lambdas_partners_and_masks_differ_within_a_batch():
    for layer in [km.CutMix(seed=0), km.FMix(seed=0), km.GridMix(seed=0), km.AGMix(seed=0)]:
        _, info = layer(np.zeros((16, 32, 32, 3), np.float32), return_info=True)
        assert len(np.unique(np.round(info["lam"].numpy(), 5))) == 16
        masks = info["masks"].numpy().reshape(16, -1)
        assert len({m.tobytes() for m in masks}) == 16


def test_resizemix_label_weight_is_one_minus_box_area_and_box_holds_partner():
    x = np.zeros((8, 40, 40, 1), np.float32)
    x[:4] = 1.0  # anchors ones, so box pixels reveal the partner
    (xm, _), info = km.ResizeMix(seed=5)((x, np.eye(8, dtype="float32")), return_info=True)
    masks = info["masks"].numpy()
    np.testing.assert_allclose(info["label_weights"], masks.mean((1, 2, 3)), atol=1e-6)
    tau_area = 1 - info["lam"].numpy()
    # Clipping only shrinks the box.
    assert np.all(1 - info["label_weights"].numpy() <= tau_area + 1e-6)
    p = info["partner_index"].numpy()
    for i in range(4):
        if p[i] >= 4:
            np.testing.assert_allclose(xm.numpy()[i], masks[i])


def test_label_smoothing_is_applied_before_mixing():
    x = np.zeros((4, 4, 4, 1), np.float32)
    y = np.array([0, 1, 2, 3])
    (_, ym), info = km.MixUp(num_classes=4, label_smoothing=0.2, seed=0)((x, y), return_info=True)
    smooth = np.eye(4) * 0.8 + 0.05
    w, p = info["label_weights"].numpy()[:, None], info["partner_index"].numpy()
    np.testing.assert_allclose(ym, w * smooth + (1 - w) * smooth[p], atol=1e-6)


def test_dynamic_spatial_shape_in_tf_function():
    layer = km.FMix(seed=0)
    fn = tf.function(layer, input_signature=[tf.TensorSpec([None, None, None, 3])])
    out = fn(tf.zeros((3, 21, 17, 3)))
    assert out.shape == (3, 21, 17, 3)


def test_parallel_tf_data_calls_never_share_draws():
    # Concurrent map calls can read the seed state before either advances it;
    # the batch content folded into the seed keeps their draws apart.
    layer = km.MixUp(seed=0)
    x = np.random.RandomState(0).rand(4000, 2, 2, 1).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices(x).batch(2).map(
        lambda b: layer(b, return_info=True)[1]["lam"], num_parallel_calls=tf.data.AUTOTUNE)
    lams = [tuple(np.round(lam.numpy(), 6)) for lam in ds]
    assert len(lams) == 2000 and len(set(lams)) == 2000

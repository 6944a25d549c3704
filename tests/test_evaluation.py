"""Calibration and the CIFAR-10-C corruptions, on hand-made inputs."""

import numpy as np
import pytest
import scipy.ndimage

from keras_miamix.training import corruptions as C
from keras_miamix.training import evaluation as E


def test_ece_on_hand_made_predictions():
    # Confident and right: perfectly calibrated.
    p = np.eye(3)[[0, 1, 2, 0]]
    assert E.expected_calibration_error(p, [0, 1, 2, 0]) == 0.0
    # Four samples at confidence 0.9 of which two are right: |0.5 - 0.9|.
    p = np.tile([[0.9, 0.05, 0.05]], (4, 1))
    assert E.expected_calibration_error(p, [0, 0, 1, 2]) == pytest.approx(0.4)
    # Two bins: 0.9 (right, right) and 0.6 (right, wrong), weights 1/2 each:
    # 0.5 * |1 - 0.9| + 0.5 * |0.5 - 0.6| = 0.1.
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    assert E.expected_calibration_error(p, [0, 0, 0, 1]) == pytest.approx(0.1)
    # Bins are (k/15, (k+1)/15]: 1/15 exactly falls in the first bin.
    p = np.array([[1 / 15, 1 - 1 / 15]])
    assert E.expected_calibration_error(p, [1]) == pytest.approx(1 / 15)


def test_nll_and_accuracy():
    p = np.array([[0.5, 0.5], [0.25, 0.75]])
    assert E.negative_log_likelihood(p, [0, 1]) == pytest.approx(
        -(np.log(0.5) + np.log(0.75)) / 2)
    assert E.accuracy(p, [1, 1]) == 0.5
    np.testing.assert_allclose(E.softmax([[0.0, np.log(3.0)]]), [[0.25, 0.75]])


@pytest.fixture
def images():
    return np.random.RandomState(0).randint(0, 256, (6, 32, 32, 3)).astype(np.uint8)


def test_every_corruption_gives_integer_pixels_reproducibly(images):
    for name in C.CORRUPTIONS:
        for severity in (1, 5):
            a = C.corrupt(images, name, severity, (1, 2)).numpy()
            b = C.corrupt(images, name, severity, (1, 2)).numpy()
            np.testing.assert_array_equal(a, b)
            assert a.shape == images.shape and a.min() >= 0 and a.max() <= 255
            np.testing.assert_array_equal(a, np.round(a))
    with pytest.raises(ValueError, match="name"):
        C.corrupt(images, "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        C.corrupt(images, "contrast", 6)


def test_severities_get_stronger(images):
    for name in C.CORRUPTIONS:
        changes = [np.abs(C.corrupt(images, name, s).numpy() - images).mean() for s in (1, 5)]
        assert changes[1] > changes[0], name


def test_gaussian_noise_statistics():
    grey = np.full((8, 32, 32, 3), 128, np.uint8)
    out = C.corrupt(grey, "gaussian_noise", 5).numpy()
    # c = 0.10 of the 0..1 range: std 25.5 pixels (24,576 values; 2% tolerance).
    assert np.std(out - 128) == pytest.approx(25.5, rel=0.02)
    assert np.mean(out - 128) == pytest.approx(0.0, abs=0.5)


def test_shot_noise_is_poisson_of_the_scaled_image():
    grey = np.full((8, 32, 32, 3), 102, np.uint8)  # 0.4 of the range
    out = C.corrupt(grey, "shot_noise", 5).numpy() / 255.0  # c = 50: Poisson(20) / 50
    assert np.mean(out) == pytest.approx(0.4, abs=0.003)
    assert np.var(out) == pytest.approx(20 / 50 ** 2, rel=0.05)


def test_impulse_noise_replaces_a_fraction_with_salt_or_pepper():
    grey = np.full((16, 32, 32, 3), 128, np.uint8)
    out = C.corrupt(grey, "impulse_noise", 5).numpy()  # 7% of the values
    changed = out != 128
    assert changed.mean() == pytest.approx(0.07, abs=0.005)
    assert set(np.unique(out[changed])) == {0.0, 255.0}
    assert (out[changed] == 255).mean() == pytest.approx(0.5, abs=0.05)


def test_contrast_keeps_flat_images_and_the_mean(images):
    flat = np.full((2, 32, 32, 3), 77, np.uint8)
    np.testing.assert_array_equal(C.corrupt(flat, "contrast", 5).numpy(), flat)
    out = C.corrupt(images, "contrast", 3).numpy()  # (x - m) * 0.4 + m
    mean = images.astype(float).mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(out, np.round((images - mean) * 0.4 + mean), atol=1)


def test_brightness_adds_to_the_value_channel():
    grey = np.full((1, 4, 4, 3), 51, np.uint8)  # V = 0.2
    out = C.corrupt(grey, "brightness", 5).numpy()  # V + 0.3 = 0.5
    np.testing.assert_allclose(out, 128, atol=0.5)
    red = np.zeros((1, 4, 4, 3), np.uint8)
    red[..., 0] = 102  # hue 0, V = 0.4 -> 0.45 keeps the hue and the saturation
    out = C.corrupt(red, "brightness", 1).numpy()
    np.testing.assert_allclose(out[..., 0], 115, atol=0.5)
    np.testing.assert_array_equal(out[..., 1:], 0)


def test_gaussian_blur_matches_scipy_with_nearest_borders(images):
    for severity in (1, 5):
        sigma = C.corruption_parameter("gaussian_blur", severity)
        ref = scipy.ndimage.gaussian_filter(images / 255.0, sigma=(0, sigma, sigma, 0),
                                            mode="nearest")
        ref = np.round(np.clip(ref, 0, 1) * 255)
        out = C.corrupt(images, "gaussian_blur", severity).numpy()
        assert np.abs(out - ref).max() <= 1


def test_defocus_kernels_of_the_cifar_script():
    # Radius below 1: the disk is one pixel, so the kernel is the 3x3
    # Gaussian of sigma alias_blur.
    g = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * 0.4 ** 2))
    g /= g.sum()
    np.testing.assert_allclose(C.defocus_kernel(0.3, 0.4), np.outer(g, g), atol=1e-6)
    # Radius 1: the centre and its 4 neighbours, each 1/5, then blurred.
    k = C.defocus_kernel(1, 0.2)
    assert k.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(k, k.T, atol=1e-7)
    assert k[k.shape[0] // 2, k.shape[0] // 2] == pytest.approx(k.max())
    flat = np.full((1, 32, 32, 3), 90, np.uint8)  # a blur keeps flat images
    np.testing.assert_array_equal(C.corrupt(flat, "defocus_blur", 5).numpy(), flat)


def test_pixelate_matches_pil_box_resampling(images):
    from PIL import Image

    for severity in (1, 3, 5):
        c = C.corruption_parameter("pixelate", severity)
        small = int(32 * c)
        ref = np.stack([np.asarray(Image.fromarray(im).resize((small, small), Image.BOX)
                                   .resize((32, 32), Image.BOX)) for im in images])
        out = C.corrupt(images, "pixelate", severity).numpy()
        # PIL rounds in fixed point: at most one grey level apart.
        assert np.abs(out - ref).max() <= 1


def test_jpeg_compression_loses_more_at_lower_quality(images):
    smooth = scipy.ndimage.gaussian_filter(images.astype(float), (0, 2, 2, 0)).astype(np.uint8)
    errors = [np.abs(C.corrupt(smooth, "jpeg_compression", s).numpy() - smooth).mean()
              for s in (1, 5)]
    assert 0 < errors[0] < errors[1] < 10


def test_evaluate_classifier_reports_every_corruption():
    import keras

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2)])
    x = np.random.RandomState(0).randint(0, 256, (10, 8, 8, 3)).astype(np.uint8)
    out = E.evaluate_classifier(model, x, np.arange(10) % 2, corruptions=("contrast", "pixelate"),
                                severities=(1, 5))
    assert set(out["corruptions"]) == {"contrast", "pixelate"}
    assert out["mca"] == pytest.approx(np.mean([v["mean"] for v in out["corruptions"].values()]))
    assert 0 <= out["ece"] <= 1 and out["nll"] > 0

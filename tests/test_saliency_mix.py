"""SaliencyMix: OpenCV's fine-grained saliency reimplemented, the official box,
and the layer that pastes it."""

import numpy as np
import pytest
import tensorflow as tf

import keras_miamix as km
from keras_miamix.ops.masks import saliencymix_mask
from keras_miamix.ops.saliency import fine_grained_saliency
from keras_miamix.ops.saliency import saliency_peaks

cv2 = pytest.importorskip("cv2", reason="opencv-contrib-python-headless is the reference")
if not hasattr(cv2, "saliency"):
    pytest.skip("cv2 lacks the contrib saliency module", allow_module_level=True)


def opencv_map(image):
    """OpenCV's map of an RGB uint8 image (OpenCV reads BGR), as 0..255 ints:
    OpenCV >= 3.4.3 returns the uint8 map divided by 255 in float32."""
    detector = cv2.saliency.StaticSaliencyFineGrained_create()
    ok, saliency = detector.computeSaliency(np.ascontiguousarray(image[..., ::-1]))
    assert ok
    return np.round(saliency.astype(np.float64) * 255).astype(np.int64)


def official_peak(image):
    """The official `saliency_bbox`'s centre: argmax of `(map * 255).astype(uint8)`."""
    detector = cv2.saliency.StaticSaliencyFineGrained_create()
    _, saliency = detector.computeSaliency(np.ascontiguousarray(image[..., ::-1]))
    saliency = (saliency * 255).astype("uint8")
    return np.unravel_index(np.argmax(saliency, axis=None), saliency.shape)


def official_box(lam, height, width, peak):
    """A transcription of the official `saliency_bbox` (its W is the height)."""
    cut_rat = np.sqrt(1.0 - lam)
    cut_w, cut_h = int(height * cut_rat), int(width * cut_rat)
    x, y = peak
    bbx1, bby1 = np.clip(x - cut_w // 2, 0, height), np.clip(y - cut_h // 2, 0, width)
    bbx2, bby2 = np.clip(x + cut_w // 2, 0, height), np.clip(y + cut_h // 2, 0, width)
    return bbx1, bby1, bbx2, bby2


def sample_images():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    # A smooth scene with an object: blurred noise plus a bright square.
    scene = cv2.GaussianBlur(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), (9, 9), 3)
    scene[10:22, 30:44] = (250, 200, 40)
    return {
        "noise 32x32": [noise, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)],
        "blurred 32x32": [cv2.GaussianBlur(noise, (7, 7), 2), cv2.blur(noise, (3, 3))],
        "non-square 48x64": [scene, np.ascontiguousarray(scene[::-1, ::-1])],
        "non-square 37x53": [rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)] * 2,
        "96x128 photo-like": [cv2.resize(scene, (128, 96))] * 2,
        "constant": [np.full((20, 24, 3), 7, np.uint8), np.zeros((20, 24, 3), np.uint8)],
        # Smaller than every window and than the blur's border: each window's
        # edges repeat on both sides, a length-1 axis reflects onto itself.
        **{f"tiny {h}x{w}": [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)] * 2
           for h, w in ((1, 1), (1, 9), (5, 1), (2, 3), (13, 4))},
    }


@pytest.mark.parametrize("mode", ["eager", "tf.function", "xla"])
def test_the_map_equals_opencv_exactly(mode):
    fn = fine_grained_saliency
    if mode != "eager":
        fn = tf.function(fine_grained_saliency, jit_compile=mode == "xla")
    for name, images in sample_images().items():
        batch = np.stack(images)
        ours = np.asarray(fn(tf.constant(batch)))
        for i, image in enumerate(images):
            np.testing.assert_array_equal(ours[i], opencv_map(image), err_msg=name)
        rows, cols = (np.asarray(v) for v in saliency_peaks(tf.constant(ours)))
        for i, image in enumerate(images):
            assert (rows[i], cols[i]) == official_peak(image), name


def test_the_map_of_a_gray_image_equals_opencv():
    rng = np.random.default_rng(1)
    gray = cv2.GaussianBlur(rng.integers(0, 256, (30, 41), dtype=np.uint8), (5, 5), 1)
    detector = cv2.saliency.StaticSaliencyFineGrained_create()
    _, expected = detector.computeSaliency(gray)
    ours = np.asarray(fine_grained_saliency(tf.constant(gray[None, :, :, None])))[0]
    np.testing.assert_array_equal(ours, np.round(expected * 255.0).astype(np.int64))


def test_a_constant_image_has_the_zero_map_and_peak_at_the_origin():
    ours = np.asarray(fine_grained_saliency(tf.fill((2, 9, 11, 3), 100.0)))
    assert not ours.any()
    rows, cols = saliency_peaks(tf.constant(ours))
    assert list(np.asarray(rows)) == [0, 0] and list(np.asarray(cols)) == [0, 0]


def test_peaks_take_the_first_maximum_in_row_major_order():
    maps = np.zeros((3, 4, 5), np.int32)
    maps[0, 2, 3] = maps[0, 3, 1] = 9  # tie: (2, 3) comes first
    maps[1, 0, 4] = 1
    rows, cols = saliency_peaks(tf.constant(maps))
    assert list(np.asarray(rows)) == [2, 0, 0] and list(np.asarray(cols)) == [3, 4, 0]


def test_the_box_is_the_official_one_clipped_not_shifted():
    rng = np.random.default_rng(2)
    height, width, n = 32, 40, 400
    lam = rng.uniform(0, 1, n).astype("float32")
    lam[:3] = (0.0, 1.0, 0.5)
    rows = rng.integers(0, height, n).astype("int32")
    cols = rng.integers(0, width, n).astype("int32")
    rows[:3], cols[:3] = (0, 31, 16), (39, 0, 20)  # corners and the centre
    masks = np.asarray(saliencymix_mask(tf.constant(lam), height, width,
                                        tf.constant(rows), tf.constant(cols)))[..., 0]
    for i in range(n):
        # The official code computes the cut from the float64 lam.
        x1, y1, x2, y2 = official_box(float(lam[i]), height, width, (rows[i], cols[i]))
        expected = np.ones((height, width))
        expected[x1:x2, y1:y2] = 0
        np.testing.assert_array_equal(masks[i], expected, err_msg=str(i))
    # lam 0 at a corner: a whole-image box clipped to the quarter at the corner.
    assert masks[0].sum() == height * width - 16 * 21


def uint8_batch(n=6, seed=3):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 24, 28, 3), dtype=np.uint8)
    return np.stack([cv2.GaussianBlur(b, (5, 5), 1.5) for b in base])


def test_each_sample_gets_the_box_around_its_partners_peak():
    images = uint8_batch()
    labels = np.eye(6, dtype="float32")
    (mixed, mixed_labels), info = km.SaliencyMix(seed=4)((images, labels), return_info=True)
    perm = np.asarray(info["partner_index"])
    lam = np.asarray(info["lam"])
    masks = np.asarray(info["masks"])[..., 0]
    assert len(set(lam.tolist())) == 6  # one lam per sample
    for i in range(6):
        peak = official_peak(images[perm[i]])
        np.testing.assert_array_equal(np.asarray(info["saliency"])[i],
                                      opencv_map(images[perm[i]]))
        x1, y1, x2, y2 = official_box(float(lam[i]), 24, 28, peak)
        expected = np.ones((24, 28))
        expected[x1:x2, y1:y2] = 0
        np.testing.assert_array_equal(masks[i], expected)
        # Pixels and labels: the partner's box, weighted by the pixels taken.
        want = np.where(expected[..., None] == 1, images[i], images[perm[i]])
        np.testing.assert_allclose(np.asarray(mixed)[i], want, atol=1e-4)
        w = 1 - (x2 - x1) * (y2 - y1) / (24 * 28)
        np.testing.assert_allclose(np.asarray(info["label_weights"])[i], w, atol=1e-6)
        if perm[i] != i:
            np.testing.assert_allclose(mixed_labels[i, i], w, atol=1e-6)
            np.testing.assert_allclose(mixed_labels[i, perm[i]], 1 - w, atol=1e-6)


def test_box_batch_is_the_official_one_box_from_the_first_partner():
    images = uint8_batch(n=5)
    _, info = km.SaliencyMix(box="batch", seed=6)(images, return_info=True)
    perm = np.asarray(info["partner_index"])
    lam = np.asarray(info["lam"])
    masks = np.asarray(info["masks"])[..., 0]
    assert np.all(lam == lam[0]) and np.all(masks == masks[0])
    x1, y1, x2, y2 = official_box(float(lam[0]), 24, 28, official_peak(images[perm[0]]))
    expected = np.ones((24, 28))
    expected[x1:x2, y1:y2] = 0
    np.testing.assert_array_equal(masks[0], expected)


def test_value_range_maps_the_images_to_the_same_levels():
    # The draws differ (the batch's content is folded into the seed), so
    # compare each image's map wherever it was some sample's partner.
    images = uint8_batch()
    for value_range, x in [((0, 255), images), ((0, 1), images / 255.0),
                           ((-1, 1), images / 127.5 - 1)]:
        _, info = km.SaliencyMix(seed=8, value_range=value_range)(x, return_info=True)
        for i, j in enumerate(np.asarray(info["partner_index"])):
            np.testing.assert_array_equal(np.asarray(info["saliency"])[i],
                                          opencv_map(images[j]), err_msg=str(value_range))


def test_lambda_follows_beta_and_the_label_weight_is_the_pasted_area():
    # alpha = 1: lam uniform. Every partner has its peak at the same pixel,
    # so the label weight is a function of lam alone: 1 - the clipped box's
    # area, never below lam (the box is at most (1 - lam) of the image).
    images = np.zeros((512, 32, 32, 3), np.uint8)
    images[:, 14:18, 14:18] = 255
    _, info = km.SaliencyMix(seed=0)(images, return_info=True)
    lam, w = np.asarray(info["lam"]), np.asarray(info["label_weights"])
    assert abs(lam.mean() - 0.5) < 4 * (1 / np.sqrt(12)) / np.sqrt(512)
    assert np.all(w >= lam - 1e-6)
    peak = (int(info["peak_rows"][0]), int(info["peak_cols"][0]))
    assert peak == official_peak(images[0])
    for i in range(0, 512, 37):
        x1, y1, x2, y2 = official_box(float(lam[i]), 32, 32, peak)
        np.testing.assert_allclose(w[i], 1 - (x2 - x1) * (y2 - y1) / 1024, atol=1e-6)


def test_bad_arguments_and_inputs_raise():
    for kwargs, name in [({"alpha": 0}, "alpha"), ({"box": "image"}, "box"),
                         ({"value_range": (1, 1)}, "value_range"),
                         ({"value_range": (1, 0)}, "value_range")]:
        with pytest.raises(ValueError, match=name) as err:
            km.SaliencyMix(**kwargs)
        assert "received" in str(err.value)
    with pytest.raises(ValueError, match="4 channels"):
        km.SaliencyMix()(np.zeros((2, 8, 8, 4), "float32"))

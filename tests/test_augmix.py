"""AugMix: each Pillow operation against Pillow, the chains' draws, the layer
in tf.data (against Keras core's AugMix) and the Jensen-Shannon model."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from pillow_augmix import official

import keras_miamix as km
from keras_miamix.ops import augmix as A

RNG = np.random.default_rng(0)


def photo_like(n=6, h=32, w=32):
    """Smooth images with edges and a limited range of levels per channel
    (so that autocontrast and equalize change them)."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        base = 60 + 40 * np.sin(xx / (3 + i)) + 30 * np.cos(yy / (4 + i))
        img = np.stack([base + 10 * c for c in range(3)], -1)
        img[h // 4: h // 2, w // 3: w // 2] += 60
        img += RNG.normal(0, 6, img.shape)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def ours(name, images, level, sign=1.0, all_ops=True):
    names = A.ALL_OPS if all_ops else A.OPS
    n = len(images)
    out = A.apply_ops(tf.constant(images, tf.float32), tf.fill([n], names.index(name)),
                      tf.fill([n], np.float32(level)), tf.fill([n], np.float32(sign)), all_ops)
    return np.asarray(out).astype(np.int64)


EXACT = ["autocontrast", "equalize", "posterize", "solarize", "translate_x", "translate_y",
         "color", "contrast", "brightness", "sharpness"]
# Bilinear in float32 where Pillow uses float64: a level apart at rare pixels.
INTERPOLATED = ["rotate", "shear_x", "shear_y"]


@pytest.mark.parametrize("name", EXACT)
@pytest.mark.parametrize("level", [0.1, 1.7, 2.9])
def test_operations_equal_pillows(name, level):
    images = photo_like()
    got = ours(name, images, level)
    for i, img in enumerate(images):
        np.testing.assert_array_equal(got[i], official(name, img, level), err_msg=name)


@pytest.mark.parametrize("name", INTERPOLATED)
@pytest.mark.parametrize("level, sign", [(0.5, 1.0), (2.9, -1.0), (2.0, 1.0)])
def test_interpolated_operations_match_pillow_to_a_level(name, level, sign):
    images = photo_like(h=32, w=40)
    got = ours(name, images, level, sign)
    for i, img in enumerate(images):
        want = official(name, img, level, sign)
        diff = np.abs(got[i] - want)
        assert diff.max() <= 1, name
        assert (diff > 0).mean() < 0.01, (name, (diff > 0).mean())


def test_each_image_gets_its_own_operation_in_one_call():
    images = photo_like(n=len(A.ALL_OPS), h=24, w=28)
    level = np.linspace(0.5, 2.9, len(images)).astype("float32")
    sign = np.where(np.arange(len(images)) % 2, -1.0, 1.0).astype("float32")
    out = np.asarray(A.apply_ops(tf.constant(images, tf.float32),
                                 tf.range(len(images)), tf.constant(level),
                                 tf.constant(sign), all_ops=True)).astype(np.int64)
    for i, name in enumerate(A.ALL_OPS):
        want = official(name, images[i], level[i], sign[i])
        assert np.abs(out[i] - want).max() <= (1 if name in INTERPOLATED else 0), name
    # op -1: unchanged.
    same = A.apply_ops(tf.constant(images, tf.float32), tf.fill([len(images)], -1),
                       tf.constant(level), tf.constant(sign), all_ops=True)
    np.testing.assert_array_equal(np.asarray(same), images)


def test_lookup_tables_on_hand_made_histograms():
    # Two levels, 10 and 20, in one channel: autocontrast stretches them to 0
    # and 255; a single-level channel keeps the identity.
    img = np.zeros((1, 2, 2, 3), np.float32)
    img[0, :, :, 0] = [[10, 10], [20, 20]]
    img[0, :, :, 1] = 7
    hist = A.channel_histograms(tf.constant(img))
    assert int(hist[0, 0, 10]) == 2 and int(hist[0, 0, 20]) == 2 and int(hist[0, 1, 7]) == 4
    lut = np.asarray(A.autocontrast_lut(hist))
    assert lut[0, 0, 10] == 0 and lut[0, 0, 20] == 255 and lut[0, 0, 15] == 127
    np.testing.assert_array_equal(lut[0, 1], np.arange(256))
    np.testing.assert_array_equal(np.asarray(A.posterize_lut(tf.constant([3])))[0, 0, :40:8],
                                  [0, 0, 0, 0, 32])
    solar = np.asarray(A.solarize_lut(tf.constant([200])))[0, 0]
    assert solar[199] == 199 and solar[200] == 55 and solar[255] == 0


def draws(layer_kwargs=None, n=2048, seed=0):
    images = np.broadcast_to(photo_like(n=1, h=8, w=8), (n, 8, 8, 3))
    layer = km.AugMix(seed=seed, **(layer_kwargs or {}))
    _, info = layer(images, return_info=True)
    return {k: np.asarray(v) for k, v in info.items()}


def test_the_draws_follow_the_official_distributions():
    info = draws()
    ops, n = info["ops"], info["ops"].shape[0]
    depth = (ops >= 0).sum(-1)  # (n, width)
    # depth U{1, 2, 3} per chain: each value with frequency 1/3.
    for d in (1, 2, 3):
        freq = (depth == d).mean()
        assert abs(freq - 1 / 3) < 4 * np.sqrt(2 / 9 / depth.size), (d, freq)
    # Operations uniform over the 9 official ones (not the 4 extra).
    chosen = ops[ops >= 0]
    counts = np.bincount(chosen, minlength=len(A.OPS))
    assert len(counts) == len(A.OPS)
    expected = len(chosen) / len(A.OPS)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))
    # Levels U(0.1, 3); weights Dirichlet(1, 1, 1) and m Beta(1, 1), per image.
    levels = info["levels"][ops >= 0]
    assert levels.min() >= 0.1 and levels.max() < 3.0
    assert abs(levels.mean() - 1.55) < 4 * (2.9 / np.sqrt(12)) / np.sqrt(levels.size)
    w = info["chain_weights"]
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    assert abs(w[:, 0].mean() - 1 / 3) < 4 * np.sqrt(1 / 18 / n)  # Beta(1, 2): var 1/18
    m = info["skip_weight"]
    assert abs(m.mean() - 0.5) < 4 * np.sqrt(1 / 12 / n)
    assert len(np.unique(m)) > n * 0.99


def test_output_is_the_skip_blend_of_the_chains():
    images = photo_like(n=4).astype(np.float32)
    out, info = km.AugMix(seed=3)(images, return_info=True)
    m = np.asarray(info["skip_weight"])[:, None, None, None]
    w = np.asarray(info["chain_weights"])
    mix = np.einsum("bk,bkhwc->bhwc", w, np.asarray(info["chains"]))
    np.testing.assert_allclose(np.asarray(out), (1 - m) * images + m * mix, atol=1e-3)
    # A chain of depth one is its operation applied to the image.
    ops, levels, signs = (np.asarray(info[k]) for k in ("ops", "levels", "signs"))
    checked = 0
    for b in range(4):
        for k in range(3):
            if ops[b, k, 0] >= 0 and (ops[b, k, 1:] < 0).all():
                name = A.OPS[ops[b, k, 0]]
                want = official(name, images[b].astype(np.uint8), levels[b, k, 0],
                                signs[b, k, 0])
                tol = 1 if name in INTERPOLATED else 0
                assert np.abs(np.asarray(info["chains"])[b, k] - want).max() <= tol, name
                checked += 1
    assert checked > 0


def test_value_range_and_depth_and_all_ops():
    # The same draws (one seed, given directly: a call folds the batch's
    # content into its seed) on the images in two ranges.
    images = photo_like(n=4).astype(np.float32)
    seed = tf.constant([5, 6])
    a, _ = km.AugMix().augment(tf.constant(images), seed)
    b, _ = km.AugMix(value_range=(0, 1)).augment(tf.constant(images / 255.0), seed)
    np.testing.assert_allclose(np.asarray(b) * 255.0, np.asarray(a), atol=1e-3)
    info = draws({"depth": 2, "all_ops": True}, n=512)
    assert (info["ops"] >= 0).all() and info["ops"].shape[-1] == 2
    assert info["ops"].max() == len(A.ALL_OPS) - 1


def test_per_image_variety_in_tf_data_where_keras_core_freezes_its_choices(monkeypatch):
    images = np.broadcast_to(photo_like(n=1), (16, 32, 32, 3)).copy()
    ds = tf.data.Dataset.from_tensor_slices(images.astype(np.float32)).batch(8)
    mapped = ds.map(km.AugMix(seed=0))
    epochs = [np.stack([x.numpy() for x in mapped]) for _ in range(2)]
    first = epochs[0].reshape(16, -1)
    # The same image 16 times: 16 different outputs, and new ones next epoch.
    assert len({row.tobytes() for row in first}) == 16
    assert not np.allclose(epochs[0], epochs[1])
    # Keras core's AugMix picks its chains' operations with Python's random:
    # in a tf.data map that happens once, while the map is traced.
    from keras.src.layers.preprocessing.image_preprocessing import aug_mix

    calls = []
    choice = aug_mix.py_random.choice
    monkeypatch.setattr(aug_mix.py_random, "choice",
                        lambda seq: calls.append(1) or choice(seq))
    core = keras.layers.AugMix(seed=0)
    core_mapped = ds.map(lambda x: core(x))
    for _ in range(3):
        for _ in core_mapped:
            pass
    per_trace = core.num_chains * core.chain_depth
    assert len(calls) == per_trace  # 3 epochs of 2 batches: one trace's choices


def test_bad_arguments_raise():
    for kwargs, name in [({"width": 0}, "width"), ({"depth": 0}, "depth"),
                         ({"severity": 11}, "severity"), ({"alpha": 0}, "alpha"),
                         ({"value_range": (1, 1)}, "value_range")]:
        with pytest.raises(ValueError, match=name) as err:
            km.AugMix(**kwargs)
        assert "received" in str(err.value)
    with pytest.raises(ValueError, match="2 channels"):
        km.AugMix()(np.zeros((2, 8, 8, 2), "float32"))


# ------------------------------------------------------------ the JSD model
def torch_free_jsd(logits):
    """The official formula in NumPy."""
    p = [np.exp(z - z.max(-1, keepdims=True)) for z in logits]
    p = [q / q.sum(-1, keepdims=True) for q in p]
    mixture = np.log(np.clip((p[0] + p[1] + p[2]) / 3, 1e-7, 1))
    kl = [np.sum(q * (np.log(q) - mixture), -1).mean() for q in p]
    return sum(kl) / 3


def test_jensen_shannon_equals_the_official_formula():
    logits = [RNG.normal(size=(5, 7)).astype(np.float32) * s for s in (1, 2, 3)]
    got = float(km.models.jensen_shannon(*[tf.constant(z) for z in logits]))
    np.testing.assert_allclose(got, torch_free_jsd(logits), rtol=1e-5)
    same = float(km.models.jensen_shannon(*[tf.constant(logits[0])] * 3))
    assert abs(same) < 1e-6


def tiny_classifier():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def test_the_model_adds_twelve_times_the_jsd_to_the_clean_loss(tmp_path):
    x = photo_like(n=8, h=16, w=16).astype(np.float32)
    y = np.arange(8) % 3
    net = tiny_classifier()
    model = km.models.AugMixModel(net, num_classes=3, seed=0)
    ce = keras.losses.CategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.SGD(0.0), ce, jit_compile=False)
    logs = model.train_on_batch(x, y, return_dict=True)
    # Recompute with the same draws: the layer's state before the step.
    again = km.AugMix(num_classes=3, seed=0)
    v1, v2 = again(x), again(x)
    logits = np.asarray(net(np.concatenate([x, v1, v2]), training=True))
    clean = float(ce(np.eye(3)[y], logits[:8]))
    want = clean + 12 * torch_free_jsd([logits[:8], logits[8:16], logits[16:]])
    np.testing.assert_allclose(logs["loss"], want, rtol=1e-4)
    # Trains, saves and reloads.
    model.compile(keras.optimizers.SGD(0.01), ce, metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    path = str(tmp_path / "augmix.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, km.models.AugMixModel) and loaded.jsd_weight == 12.0
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)


def test_the_model_without_jsd_trains_on_one_view():
    x = photo_like(n=8, h=16, w=16).astype(np.float32)
    y = np.arange(8) % 3
    net = tiny_classifier()
    model = km.models.AugMixModel(net, num_classes=3, seed=1, jsd=False)
    ce = keras.losses.CategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.SGD(0.0), ce)
    logs = model.train_on_batch(x, y, return_dict=True)
    view = km.AugMix(num_classes=3, seed=1)(x)
    want = float(ce(np.eye(3)[y], np.asarray(net(view, training=True))))
    np.testing.assert_allclose(logs["loss"], want, rtol=1e-4)
    with pytest.raises(ValueError, match="jsd_weight"):
        km.models.AugMixModel(net, jsd_weight=-1)


# ------------------------------------------------------------ the layer contract
def test_xla_seeds_odd_sizes_and_channels_first():
    images = photo_like(n=5, h=17, w=23)
    fn = tf.function(lambda x, layer: layer(x), jit_compile=True)
    runs = []
    for _ in range(2):
        layer = km.AugMix(seed=7)
        runs.append((fn(images, layer).numpy(), fn(images, layer).numpy()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])  # a seed repeats
    assert not np.allclose(runs[0][0], runs[0][1])  # the next batch differs
    assert runs[0][0].shape == (5, 17, 23, 3) and 0 <= runs[0][0].min() <= runs[0][0].max() <= 255
    one = km.AugMix(seed=1)(images[:1])
    assert one.shape == (1, 17, 23, 3) and one.dtype == tf.float32
    last = km.AugMix(seed=2)(images)
    first = km.AugMix(seed=2, data_format="channels_first")(np.transpose(images, (0, 3, 1, 2)))
    np.testing.assert_allclose(np.transpose(first, (0, 2, 3, 1)), last, atol=1e-4)
    gray = km.AugMix(seed=2)(images[..., :1])
    assert gray.shape == (5, 17, 23, 1)


def test_labels_pass_through_and_segmentation_masks_are_refused():
    images = photo_like(n=4)
    out = km.AugMix(num_classes=5, seed=0)({"images": images, "labels": np.arange(4),
                                            "sample_weight": np.arange(4.0)})
    np.testing.assert_array_equal(out["labels"], np.eye(5)[np.arange(4)])
    np.testing.assert_array_equal(out["sample_weight"], np.arange(4.0))
    with pytest.raises(ValueError, match="segmentation_masks"):
        km.AugMix()({"images": images, "segmentation_masks": np.zeros((4, 32, 32))})


def test_keras_harness_config_and_keras_save_load(tmp_path):
    from keras.src import testing

    class Harness(testing.TestCase):
        def runTest(self):
            self.run_layer_test(km.AugMix, init_kwargs={"seed": 1, "value_range": (0, 1)},
                                input_shape=(4, 8, 10, 3), expected_output_shape=(4, 8, 10, 3),
                                expected_output_dtype="float32",
                                expected_num_trainable_weights=0, run_training_check=True,
                                run_mixed_precision_check=True)

    result = Harness().run()
    assert result.wasSuccessful(), result.errors + result.failures
    layer = km.AugMix(width=2, depth=2, severity=2.0, all_ops=True, seed=4)
    clone = km.AugMix.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    images = photo_like(n=2, h=16, w=16)
    np.testing.assert_array_equal(clone(images), km.AugMix.from_config(
        layer.get_config())(images))
    model = keras.Sequential([keras.Input((16, 16, 3)), layer, keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.layers[0]) is km.AugMix and loaded.layers[0].all_ops
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0))
    assert keras.saving.get_registered_object("keras_miamix>AugMix") is km.AugMix
    assert keras.saving.get_registered_object("keras_miamix>AugMixModel") is km.models.AugMixModel

"""The layer contract, tried on every mixing layer (MiAMix included)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src import testing

import keras_miamix as km

LAYERS = {
    "MixUp": km.MixUp,
    "CutMix": km.CutMix,
    "FMix": km.FMix,
    "GridMix": km.GridMix,
    "GMix": km.GMix,
    "AGMix": km.AGMix,
    "ResizeMix": km.ResizeMix,
    "SaliencyMix": km.SaliencyMix,
    "MiAMix": lambda **kw: km.MiAMix(augmentation=None, **kw),
}
NAMES = sorted(LAYERS)


def make(name, **kwargs):
    kwargs.setdefault("seed", 42)
    return LAYERS[name](**kwargs)


def batch(n=6, h=16, w=20, c=3, k=5, seed=0):
    rng = np.random.RandomState(seed)
    images = rng.rand(n, h, w, c).astype("float32")
    labels = rng.randint(0, k, size=n)
    return images, labels


@pytest.mark.parametrize("name", NAMES)
def test_ones_and_zeros_give_the_mask_and_label_weight_is_its_mean(name):
    # Anchors of ones, partners of zeros: the mixed image is the mask itself.
    n, h, w = 8, 24, 24
    images = np.zeros((n, h, w, 3), np.float32)
    images[: n // 2] = 1.0
    labels = np.eye(n, dtype=np.float32)  # one class per sample
    (mixed, mixed_labels), info = make(name)((images, labels), return_info=True)
    mixed, mixed_labels = mixed.numpy(), mixed_labels.numpy()
    masks, partners = info["masks"].numpy(), info["partner_index"].numpy()
    weights = info["label_weights"].numpy()
    np.testing.assert_allclose(weights, masks.mean((1, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(mixed_labels.sum(1), 1.0, atol=1e-6)
    checked = 0
    for i in range(n // 2):
        if partners[i] >= n // 2:
            np.testing.assert_allclose(mixed[i], np.repeat(masks[i], 3, -1), atol=1e-6)
            checked += 1
        # Labels: the anchor's own class gets w (plus 1 - w if it mixed with itself).
        expected = weights[i] + (1 - weights[i]) * (partners[i] == i)
        np.testing.assert_allclose(mixed_labels[i, i], expected, atol=1e-6)
        if partners[i] != i:
            np.testing.assert_allclose(mixed_labels[i, partners[i]], 1 - weights[i], atol=1e-6)
    assert checked > 0


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("structure", ["tuple2", "tuple3", "dict"])
def test_structures_in_tf_data(name, structure):
    images, labels = batch(n=10)
    sw = np.linspace(0.5, 1.5, 10).astype("float32")
    seg = (images[..., 0] > 0.5).astype("int32")
    if structure == "tuple2":
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
    elif structure == "tuple3":
        ds = tf.data.Dataset.from_tensor_slices((images, labels, sw))
    else:
        ds = tf.data.Dataset.from_tensor_slices(
            {"images": images, "labels": labels, "sample_weight": sw, "segmentation_masks": seg}
        )
    layer = make(name, num_classes=5)
    ds = ds.batch(4).map(layer, num_parallel_calls=tf.data.AUTOTUNE)
    elements = list(ds)
    assert [e[0].shape[0] if structure != "dict" else e["images"].shape[0] for e in elements] == [
        4, 4, 2
    ]
    first = elements[0]
    if structure == "dict":
        assert set(first) == {"images", "labels", "sample_weight", "segmentation_masks"}
        assert first["segmentation_masks"].dtype == tf.int32
        assert first["segmentation_masks"].shape == (4, 16, 20)
        assert set(np.unique(first["segmentation_masks"])) <= {0, 1}
        labels_out = first["labels"]
    else:
        assert isinstance(first, tuple) and len(first) == (2 if structure == "tuple2" else 3)
        labels_out = first[1]
    assert labels_out.shape == (4, 5) and labels_out.dtype == tf.float32
    np.testing.assert_allclose(labels_out.numpy().sum(1), 1.0, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_sample_weights_and_segmentation_follow_the_mask(name):
    images, labels = batch(n=6)
    sw = np.arange(1, 7).astype("float32")
    seg = np.broadcast_to(np.arange(6)[:, None, None, None], (6, 16, 20, 2)).astype("uint8")
    out, info = make(name, num_classes=5)(
        {"images": images, "labels": labels, "sample_weight": sw, "segmentation_masks": seg},
        return_info=True,
    )
    w, p = info["label_weights"].numpy(), info["partner_index"].numpy()
    np.testing.assert_allclose(out["sample_weight"], w * sw + (1 - w) * sw[p], rtol=1e-6)
    seg_out = out["segmentation_masks"].numpy()
    assert seg_out.dtype == np.uint8 and seg_out.shape == (6, 16, 20, 2)
    keep = info["masks"].numpy()[..., 0] >= 0.5
    expected = np.where(keep, np.arange(6)[:, None, None], p[:, None, None])
    np.testing.assert_array_equal(seg_out[..., 0], expected)


@pytest.mark.parametrize("name", NAMES)
def test_xla_compiles_and_is_reproducible(name):
    images, labels = batch(n=5)
    results = []
    for _ in range(2):
        layer = make(name, num_classes=5)
        fn = tf.function(lambda x, y, layer=layer: layer((x, y)), jit_compile=True)
        first = fn(images, labels)
        second = fn(images, labels)
        results.append((first, second))
    np.testing.assert_array_equal(results[0][0][0], results[1][0][0])
    assert not np.allclose(results[0][0][0], results[0][1][0])  # next batch, new draws
    np.testing.assert_allclose(results[0][0][1].numpy().sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_seed_reproducible_eager_and_tf_data(name):
    images, labels = batch(n=8)
    eager = make(name, num_classes=5)
    e1, e2 = eager((images[:4], labels[:4])), eager((images[4:], labels[4:]))
    again = make(name, num_classes=5)((images[:4], labels[:4]))
    np.testing.assert_array_equal(e1[0], again[0])
    # tf.data repeats the eager draws, uncompiled (jit_compile=False) and
    # compiled (True), given the same static batch size (under XLA, MiAMix
    # sizes its blocks from it).
    for jit in (False, True):
        ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4, drop_remainder=True)
        d1, d2 = list(ds.map(make(name, num_classes=5, jit_compile=jit)))
        if jit:
            eager = make(name, num_classes=5, jit_compile=True)
            e1, e2 = eager((images[:4], labels[:4])), eager((images[4:], labels[4:]))
        np.testing.assert_allclose(d1[0], e1[0], atol=1e-6)
        np.testing.assert_allclose(d2[0], e2[0], atol=1e-6)
    # Two batches in a row get different draws: same images, different masks.
    layer = make(name, num_classes=5)
    _, i1 = layer((images, labels), return_info=True)
    _, i2 = layer((images, labels), return_info=True)
    assert not np.allclose(i1["masks"], i2["masks"]) or not np.array_equal(
        i1["partner_index"], i2["partner_index"]
    )


@pytest.mark.parametrize("name", NAMES)
def test_uint8_non_square_batch_of_one_and_odd_batches(name):
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, size=(5, 37, 53, 3)).astype("uint8")
    labels = rng.randint(0, 4, size=(5, 1))
    out, lab = make(name, num_classes=4)((images, labels))
    assert out.dtype == tf.float32 and out.shape == (5, 37, 53, 3)
    assert 0 <= out.numpy().min() and out.numpy().max() <= 255
    one, lab1 = make(name, num_classes=4)((images[:1], labels[:1]))
    assert one.shape == (1, 37, 53, 3)
    # Alone in its batch, a sample can only mix with itself (MiAMix without aug too);
    # ResizeMix then pastes a shrunken copy of the image into itself.
    if name != "ResizeMix":
        np.testing.assert_allclose(one.numpy(), images[:1].astype("float32"), atol=1e-3)
    np.testing.assert_allclose(lab1.numpy(), np.eye(4)[labels[:1, 0]], atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_images_come_out_in_the_compute_dtype(name, dtype):
    images, labels = batch(n=4)
    # The default policy: float32 out, whatever comes in (Keras core's rule).
    out, mixed = make(name, num_classes=5)((tf.cast(images, dtype), labels))
    assert out.dtype == tf.float32 and mixed.dtype == tf.float32
    # A mixed-precision layer: its compute dtype out, labels stay float32.
    layer = make(name, num_classes=5, dtype="mixed_float16")
    for x in (images, (images * 255).astype("uint8")):
        out, mixed, sw = layer((x, labels, np.ones(4, "float32")))
        assert (out.dtype, mixed.dtype, sw.dtype) == (tf.float16, tf.float32, tf.float32)
    _, info = layer(images, return_info=True)
    assert info["masks"].dtype == tf.float32 and info["label_weights"].dtype == tf.float32


@pytest.mark.parametrize("name", NAMES)
def test_channels_first_matches_channels_last(name):
    # Two channels, which no layer may confuse with a spatial axis
    # (SaliencyMix's map takes RGB or gray: three).
    images, labels = batch(n=4, c=3 if name == "SaliencyMix" else 2)
    last, info = make(name, num_classes=5)((images, labels), return_info=True)
    first = make(name, num_classes=5, data_format="channels_first")(
        (np.transpose(images, (0, 3, 1, 2)), labels)
    )
    np.testing.assert_allclose(np.transpose(first[0], (0, 2, 3, 1)), last[0], atol=1e-6)
    np.testing.assert_allclose(first[1], last[1], atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_training_false_returns_inputs(name):
    images, labels = batch()
    out = make(name, num_classes=5)((images, labels), training=False)
    np.testing.assert_array_equal(out[0], images)
    np.testing.assert_array_equal(out[1], labels)


@pytest.mark.parametrize("name", NAMES)
def test_images_only_and_soft_labels(name):
    images, _ = batch(n=4)
    out = make(name)(images)
    assert out.shape == images.shape
    soft = np.full((4, 3), 1 / 3, np.float32)
    _, lab = make(name, label_smoothing=0.1)((images, soft))
    np.testing.assert_allclose(lab, 1 / 3, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_raise_clear_errors(name):
    images, labels = batch(n=4)
    layer = make(name)
    with pytest.raises(ValueError, match="num_classes"):
        layer((images, labels))
    with pytest.raises(ValueError, match="rank 4"):
        layer((images[0], np.eye(5)[:1]))
    with pytest.raises(ValueError, match="batch size 3"):
        layer((images, np.eye(5, dtype="float32")[:3]))
    with pytest.raises(ValueError, match="sample_weight"):
        make(name, num_classes=5)((images, labels, np.ones((4, 2))))
    with pytest.raises(ValueError, match="received keys"):
        layer({"image": images, "images": images})
    with pytest.raises(ValueError, match="received keys"):
        layer({"labels": labels})


@pytest.mark.parametrize("name", NAMES)
def test_labels_out_of_range_are_refused_eagerly_and_in_tf_data(name):
    images, _ = batch(n=4)
    layer = make(name, num_classes=5)
    with pytest.raises(ValueError, match=r"num_classes=5; received label 5"):
        layer((images, np.array([0, 1, 5, 2])))
    with pytest.raises(ValueError, match=r"received label -1"):
        layer((images, np.array([0, -1, 1, 2])))
    ds = tf.data.Dataset.from_tensor_slices((images, np.array([0, 1, 2, 7]))).batch(4)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"num_classes=5; received label"):
        list(ds.map(layer))
    good = tf.data.Dataset.from_tensor_slices((images, np.array([0, 1, 2, 4]))).batch(4)
    assert next(iter(good.map(layer)))[1].shape == (4, 5)


@pytest.mark.parametrize("name", NAMES)
def test_tfds_dictionaries_keep_their_keys(name):
    images, labels = batch(n=4)
    ids = np.array([b"a", b"b", b"c", b"d"])
    out, info = make(name, num_classes=5)(
        {"id": ids, "image": (images * 255).astype("uint8"), "label": labels},
        return_info=True)
    assert list(out) == ["id", "image", "label"]
    np.testing.assert_array_equal(out["id"], ids)  # passed through: the anchors'
    assert out["image"].dtype == tf.float32 and out["label"].shape == (4, 5)
    w = info["label_weights"].numpy()
    p = info["partner_index"].numpy()
    expected = w[:, None] * np.eye(5)[labels] + (1 - w[:, None]) * np.eye(5)[labels[p]]
    np.testing.assert_allclose(out["label"], expected, atol=1e-6)


def test_a_tfds_pipeline_maps_straight_into_a_layer(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=16, data_dir=str(tmp_path)):
        ds = tfds.load("cifar10", split="train", data_dir=str(tmp_path))
        ds = ds.batch(8).map(km.MiAMix(num_classes=10, seed=0),
                             num_parallel_calls=tf.data.AUTOTUNE)
        batch_ = next(iter(ds))
    assert {"image", "label"} <= set(batch_)
    assert batch_["image"].shape == (8, 32, 32, 3) and batch_["image"].dtype == tf.float32
    np.testing.assert_allclose(batch_["label"].numpy().sum(1), 1.0, atol=1e-6)


class KerasLayerTest(testing.TestCase):
    """Keras's own preprocessing-layer harness, training and mixed-precision
    checks included, on every layer."""

    def test_run_layer_test_on_every_layer(self):
        for name in NAMES:
            with self.subTest(name):
                self.run_layer_test(
                    getattr(km, name), init_kwargs={"seed": 1}, input_shape=(4, 8, 10, 3),
                    expected_output_shape=(4, 8, 10, 3), expected_output_dtype="float32",
                    expected_num_trainable_weights=0, run_training_check=True,
                    run_mixed_precision_check=True)


@pytest.mark.parametrize(
    "factory, message",
    [
        (lambda: km.MixUp(alpha=0.0), "alpha"),
        (lambda: km.CutMix(alpha=-1), "alpha"),
        (lambda: km.FMix(decay_power=0), "decay_power"),
        (lambda: km.FMix(max_soft=0.7), "max_soft"),
        (lambda: km.GridMix(n_holes=(4, 2)), "n_holes"),
        (lambda: km.GridMix(cut_area_ratio=(0.5, 1.5)), "cut_area_ratio"),
        (lambda: km.AGMix(max_correlation=1.0), "max_correlation"),
        (lambda: km.ResizeMix(scope=(0.9, 0.1)), "scope"),
        (lambda: km.SaliencyMix(box="image"), "box"),
        (lambda: km.MixUp(label_smoothing=1.0), "label_smoothing"),
        (lambda: km.MixUp(data_format="NHWC"), "data_format"),
        (lambda: km.MixUp(num_classes=0), "num_classes"),
    ],
)
def test_out_of_range_parameters_raise(factory, message):
    with pytest.raises(ValueError, match=message) as err:
        factory()
    assert "received" in str(err.value)


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip_and_keras_save_load(name, tmp_path):
    layer = make(name, num_classes=5)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    images, labels = batch(n=4)
    np.testing.assert_array_equal(clone((images, labels))[0], make(name, num_classes=5)(
        (images, labels))[0])
    model = keras.Sequential([keras.Input((16, 20, 3)), make(name), keras.layers.Dense(2)])
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    restored = [lyr for lyr in loaded.layers if type(lyr).__name__ == type(layer).__name__]
    assert restored and restored[0].get_config()["seed"] == 42
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0))


def test_layers_are_registered_under_the_package():
    for name in NAMES:
        assert keras.saving.get_registered_object(f"keras_miamix>{name}") is getattr(km, name)

"""MiAMix's stages, checked on hand-made and random inputs."""

import keras
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
from conftest import chi2_pvalue

import keras_miamix as km

N = 4000  # samples for frequency tests: binomial std <= 0.008


def run(layer, n=N, size=8, labels=True):
    images = np.random.RandomState(0).rand(n, size, size, 3).astype("float32")
    y = np.eye(4, dtype="float32")[np.arange(n) % 4]
    inputs = (images, y) if labels else images
    out, info = layer(inputs, return_info=True)
    return images, out, {k: v.numpy() for k, v in info.items()}


def tol(p, n, sigmas=4.5):
    return sigmas * np.sqrt(p * (1 - p) / n) + 1e-3


def test_defaults_follow_table_1():
    layer = km.MiAMix()
    assert layer.alpha == 1.0 and layer.k_choices == (1, 2)
    assert layer.methods == ("mixup", "cutmix", "fmix", "gridmix", "agmix")
    assert layer.method_weights == (2.0, 1.0, 1.0, 1.0, 1.0)
    assert (layer.p_self, layer.p_aug, layer.p_smooth) == (0.10, 0.25, 0.5)
    assert (layer.merge, layer.lambda_mode) == ("mul", "merged")


def test_label_weight_is_the_merged_mask_mean():
    _, _, info = run(km.MiAMix(seed=0), n=256, size=16)
    np.testing.assert_allclose(info["label_weights"], info["masks"].mean((1, 2, 3)), atol=1e-6)
    merged = np.prod(info["layer_masks"], axis=1)
    np.testing.assert_allclose(info["masks"], merged, atol=1e-6)


def test_frequencies_of_k_methods_self_mixing_and_augmentations():
    _, _, info = run(km.MiAMix(seed=1, augmentation=None))
    k, methods = info["k"], info["methods"]
    assert abs(np.mean(k == 1) - 0.5) < tol(0.5, N)
    # Layers beyond k are inactive, the others drew a method.
    assert np.all((methods[:, 1] == -1) == (k == 1)) and np.all(methods[:, 0] >= 0)
    drawn = methods[methods >= 0]
    expected = np.array([2, 1, 1, 1, 1]) / 6
    counts = np.bincount(drawn, minlength=5)
    assert scipy.stats.chisquare(counts, expected * len(drawn)).pvalue > 1e-3
    assert abs(info["self_mixed"].mean() - 0.10) < tol(0.10, N)
    assert np.all(info["partner_index"][info["self_mixed"]] == np.where(info["self_mixed"])[0])
    eligible = np.isin(methods, [1, 2, 3])  # cutmix, fmix, gridmix
    rotated, smoothed = info["rotated"], info["smoothed"]
    assert not rotated[~eligible].any() and not smoothed[~eligible].any()
    n_el = eligible.sum()
    assert abs(rotated[eligible].mean() - 0.25) < tol(0.25, n_el)
    assert abs(smoothed[eligible].mean() - 0.5) < tol(0.5, n_el)


@pytest.mark.parametrize("k_choices", [(1,), (2,), (4,), (1, 2, 3)])
def test_explicit_counts_and_dirichlet_ratios(k_choices):
    alpha = 1.0
    _, _, info = run(km.MiAMix(k_choices=k_choices, seed=2, augmentation=None))
    k, lam = info["k"], info["lambdas"]
    assert set(np.unique(k)) == set(k_choices)
    for value in k_choices:
        assert abs(np.mean(k == value) - 1 / len(k_choices)) < tol(1 / len(k_choices), N)
    np.testing.assert_allclose(lam.sum(1), 1.0, atol=1e-5)
    layers = np.arange(lam.shape[1] - 1)[None, :]
    assert np.all(lam[:, :-1][layers >= k[:, None]] == 0)
    # Anchor share lambda_{k+1} ~ Beta(k alpha, k alpha) (the rest sums to k alpha).
    for value in k_choices:
        sel = k == value
        dist = scipy.stats.beta(value * alpha, value * alpha)
        assert chi2_pvalue(lam[sel, -1], dist, bins=10) > 1e-3
        # Each partner share lambda_j ~ Beta(alpha, 2 k alpha - alpha).
        dist_j = scipy.stats.beta(alpha, 2 * value * alpha - alpha)
        assert chi2_pvalue(lam[sel, 0], dist_j, bins=10) > 1e-3


def test_mixup_only_label_weight_is_the_product_of_layer_shares():
    # MixUp masks are constants, so the merged mean is exactly prod_j (1 - lambda_j).
    layer = km.MiAMix(methods=("mixup",), weights=(1,), seed=3, augmentation=None)
    _, _, info = run(layer)
    lam = info["lambdas"][:, :-1]
    np.testing.assert_allclose(info["label_weights"], np.prod(1 - lam, axis=1), atol=1e-5)
    # E over k uniform on {1, 2}: k=1 gives 1/2, k=2 gives 1/2 + a/(4(4a + 1)) = 0.55.
    assert abs(info["label_weights"].mean() - 0.525) < 0.01


def test_mean_label_weight_matches_independent_masks():
    # With independently placed masks, E[mean(prod_j m_j)] = E[prod_j mean(m_j)]
    # (measured: they agree to ~0.001 on 2000 samples). Single masks keep a bit
    # more anchor than 1 - lambda_j (CutMix clipping, GridMix crops, Gaussian
    # borders), so the average sits above E[prod_j (1 - lambda_j)].
    _, _, info = run(km.MiAMix(seed=4, augmentation=None), n=2000, size=32)
    per_layer = info["layer_masks"].mean((2, 3, 4))
    observed = info["label_weights"].mean()
    assert abs(observed - np.prod(per_layer, axis=1).mean()) < 0.01
    implied = np.prod(1 - info["lambdas"][:, :-1], axis=1).mean()
    assert implied < observed < implied + 0.15


def test_sum_merge_and_orig_lambda_mode():
    layer = km.MiAMix(methods=("mixup",), weights=(1,), merge="sum", seed=5, augmentation=None)
    _, _, info = run(layer, n=500)
    # Eq. 11 on MixUp's constant masks 1 - lambda_j: clip(sum_j (1 - lambda_j)),
    # over the k active layers: the k = 1 sample keeps 1 - lambda_1, a k = 2
    # sample almost always the whole anchor.
    active = np.arange(2)[None, :] < info["k"][:, None]
    expected = np.clip(((1 - info["lambdas"][:, :-1]) * active).sum(1), 0, 1)
    np.testing.assert_allclose(info["label_weights"], expected, atol=1e-5)
    assert (info["k"] == 1).any() and (info["k"] == 2).any()
    layer = km.MiAMix(lambda_mode="orig", seed=5, augmentation=None)
    _, (x, y), info = run(layer, n=500)
    np.testing.assert_allclose(info["label_weights"], info["lambdas"][:, -1], atol=1e-6)
    merged = info["masks"].mean((1, 2, 3))
    assert np.abs(merged - info["label_weights"]).max() > 0.05  # differ: the ablation


def test_merges_follow_equations_10_and_11_on_hand_made_masks():
    from keras_miamix.ops.miamix import merge_masks

    # Sample 0: two hard masks whose partner boxes (zeros) overlap in one
    # column; sample 1: a soft mask and an inactive all-ones layer.
    a = np.ones((4, 4), "float32")
    a[:, :2] = 0
    b = np.ones((4, 4), "float32")
    b[:, 1:3] = 0
    soft = np.full((4, 4), 0.3, "float32")
    layers = np.stack([np.stack([a, b]), np.stack([soft, np.ones((4, 4), "float32")])])[..., None]
    active = np.array([[True, True], [True, False]])
    mul = np.asarray(merge_masks(layers, active, "mul"))[..., 0]
    total = np.asarray(merge_masks(layers, active, "sum"))[..., 0]
    # mul: the partner where either mask takes it (columns 0-2, the union).
    np.testing.assert_array_equal(mul[0], np.tile([0, 0, 0, 1], (4, 1)))
    # sum: the partner only where both take it (column 1, the intersection).
    np.testing.assert_array_equal(total[0], np.tile([1, 0, 1, 1], (4, 1)))
    # A sample's inactive layers change neither merge.
    np.testing.assert_allclose(mul[1], 0.3)
    np.testing.assert_allclose(total[1], 0.3)
    with pytest.raises(ValueError, match="merge"):
        merge_masks(layers, active, "max")


def test_zero_weight_removes_a_method():
    layer = km.MiAMix(weights=(1, 1, 0, 1, 0), seed=6, augmentation=None)
    _, _, info = run(layer, n=1000)
    drawn = info["methods"][info["methods"] >= 0]
    assert not np.isin(drawn, [2, 4]).any()
    assert np.isin(drawn, [0, 1, 3]).all()


def test_self_mixed_sample_without_augmentation_comes_back_unchanged():
    layer = km.MiAMix(p_self=1.0, seed=7, augmentation=None)
    images, (x, y), info = run(layer, n=64, size=16)
    assert info["self_mixed"].all()
    np.testing.assert_allclose(x, images, atol=1e-6)
    np.testing.assert_allclose(y, np.eye(4)[np.arange(64) % 4], atol=1e-6)


def test_self_mixing_with_augmentation_uses_a_second_view():
    layer = km.MiAMix(p_self=1.0, seed=7)
    images, (x, _), info = run(layer, n=64, size=16)
    assert not np.allclose(x, images)


def _flip_translates(image, max_shift):
    """Every zero-padded flip and shift of (H, W, C) `image` (numpy): the
    CIFAR pad-and-crop, as the training pipeline does it."""
    h, w = image.shape[:2]
    out = []
    for dy in range(-int(h * max_shift), int(h * max_shift) + 1):
        for dx in range(-int(w * max_shift), int(w * max_shift) + 1):
            padded = np.pad(image, ((abs(dy), abs(dy)), (abs(dx), abs(dx)), (0, 0)))
            crop = padded[abs(dy) - dy:abs(dy) - dy + h, abs(dx) - dx:abs(dx) - dx + w]
            out += [crop, crop[:, ::-1]]
    return out


@pytest.mark.parametrize("xla", [False, True])
def test_views_are_flip_translates_of_anchor_and_partner(xla):
    layer = km.MiAMix(seed=4)
    n = 12
    images = np.random.RandomState(2).rand(n, 12, 10, 3).astype("float32")
    y = np.eye(4, dtype="float32")[np.arange(n) % 4]
    call = lambda x, t: layer((x, t), return_info=True)  # noqa: E731
    (x, _), info = tf.function(call, jit_compile=xla)(images, y)
    a, p = info["anchor_view"].numpy(), info["partner_view"].numpy()
    partner, m = info["partner_index"].numpy(), info["masks"].numpy()
    shifted = 0
    for i in range(n):
        assert any(np.array_equal(a[i], v) for v in _flip_translates(images[i], 0.125))
        assert any(np.array_equal(p[i], v)
                   for v in _flip_translates(images[partner[i]], 0.125))
        shifted += not np.array_equal(a[i], images[i])
    assert shifted >= n // 2
    np.testing.assert_allclose(x.numpy(), p + m * (a - p), atol=1e-6)


def _view_index(view, image):
    """Which of `_flip_translates(image)` `view` is (random images: one)."""
    found = [j for j, v in enumerate(_flip_translates(image, 0.125)) if np.array_equal(view, v)]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("shared", [False, True])
def test_shared_augmentation_gives_each_view_one_flip_and_shift(shared):
    n = 16
    images = np.random.RandomState(3).rand(n, 12, 10, 3).astype("float32")
    y = np.eye(4, dtype="float32")[np.arange(n) % 4]
    layer = km.MiAMix(seed=2, shared_augmentation=shared)
    draws_a, draws_b = set(), set()
    for _ in range(3):  # three batches
        _, info = layer((images, y), return_info=True)
        a, p = np.asarray(info["anchor_view"]), np.asarray(info["partner_view"])
        partner = np.asarray(info["partner_index"])
        ia = {_view_index(a[i], images[i]) for i in range(n)}
        ib = {_view_index(p[i], images[partner[i]]) for i in range(n)}
        if shared:
            assert len(ia) == 1 and len(ib) == 1
        else:
            assert len(ia) > 4 and len(ib) > 4
        draws_a |= ia
        draws_b |= ib
    assert len(draws_a) > 1 and len(draws_b) > 1  # batches still differ
    clone = km.MiAMix.from_config(layer.get_config())
    assert clone.shared_augmentation is shared
    with pytest.raises(ValueError, match="shared_augmentation"):
        km.MiAMix(shared_augmentation=True, augmentation=None)


def test_smoothing_windows_scale_with_the_image():
    from keras_miamix.ops.mask_augment import box_filter
    from keras_miamix.ops.mask_augment import smoothing_windows

    assert smoothing_windows(32, 32) == (3, 5)
    assert smoothing_windows(64, 48) == (3, 5)
    assert smoothing_windows(64, 64) == (3, 5, 7)
    assert smoothing_windows(224, 224) == tuple(range(3, 28, 2))
    with pytest.raises(ValueError, match="smoothing_windows"):
        smoothing_windows(tf.constant(32), 32)
    # At 96 px every smoothed CutMix mask is its raw mask filtered by one of
    # the windows 3..11, and the larger ones are drawn too.
    layer = km.MiAMix(methods=("cutmix",), weights=(1,), k_choices=(1,), p_aug=0.0,
                      p_smooth=1.0, augmentation=None, seed=1)
    x = np.random.RandomState(0).rand(24, 96, 96, 3).astype("float32")
    _, info = layer((x, np.eye(4, dtype="float32")[np.arange(24) % 4]), return_info=True)
    raw = np.asarray(info["raw_layer_masks"])[:, 0]
    final = np.asarray(info["layer_masks"])[:, 0]
    used = set()
    for i in range(24):
        if raw[i].min() == 1:  # an empty box: nothing to smooth
            continue
        fits = [w for w in range(3, 12, 2)
                if np.allclose(final[i], np.asarray(box_filter(raw[i:i + 1], w))[0], atol=1e-5)]
        assert len(fits) == 1
        used |= set(fits)
    assert max(used) > 5 and len(used) >= 3
    assert km.MiAMix.from_config(layer.get_config()).smoothing_windows is None


def test_default_augmentation_runs_in_xla_and_tf_data():
    layer = km.MiAMix(num_classes=4, seed=8)
    images = np.random.RandomState(0).rand(6, 12, 10, 3).astype("float32")
    labels = np.arange(6) % 4
    fn = tf.function(lambda x, y: layer((x, y)), jit_compile=True)
    x, y = fn(images, labels)
    assert x.shape == images.shape
    np.testing.assert_allclose(y.numpy().sum(1), 1, atol=1e-5)
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(3)
    ds = ds.map(km.MiAMix(num_classes=4, seed=8), num_parallel_calls=tf.data.AUTOTUNE)
    assert [b[0].shape[0] for b in ds] == [3, 3]


@pytest.mark.parametrize("layer_cls", [km.MiAMix, km.FMix])
def test_compiled_layer_inside_a_tf_data_map(layer_cls):
    # The README's tip: the layer with jit_compile=True inside ds.map, on
    # uint8 images; every batch mixes and label rows stay distributions.
    mix = layer_cls(num_classes=4, seed=3, jit_compile=True)
    images = np.random.RandomState(0).randint(0, 256, (24, 10, 12, 3)).astype("uint8")
    ds = tf.data.Dataset.from_tensor_slices((images, np.arange(24) % 4)).batch(
        8, drop_remainder=True).map(mix, num_parallel_calls=tf.data.AUTOTUNE)
    batches = list(ds)
    assert len(batches) == 3
    for (x, y), source in zip(batches, np.split(images, 3)):
        assert x.shape == (8, 10, 12, 3) and x.dtype == tf.float32
        np.testing.assert_allclose(y.numpy().sum(1), 1, atol=1e-5)
        assert not np.allclose(x.numpy(), source)
    assert not np.allclose(batches[0][1].numpy(), batches[1][1].numpy())


def test_segmentation_masks_follow_the_augmented_views():
    # Channel 0 of each image equals its segmentation mask; with hard CutMix
    # masks the mixed channel 0 must equal the mixed segmentation mask.
    rng = np.random.RandomState(1)
    seg = rng.randint(0, 5, size=(16, 20, 20)).astype("int32")
    images = np.stack([seg, rng.rand(16, 20, 20)], -1).astype("float32")
    layer = km.MiAMix(methods=("cutmix",), weights=(1,), p_smooth=0.0, p_aug=0.0, seed=9)
    out = layer({"images": images, "segmentation_masks": seg})
    np.testing.assert_array_equal(out["images"].numpy()[..., 0], out["segmentation_masks"])


def test_keras_layer_augmentation_and_its_serialisation(tmp_path):
    aug = keras.layers.RandomFlip("horizontal", seed=1)
    layer = km.MiAMix(augmentation=aug, num_classes=4, seed=10)
    images = np.random.RandomState(0).rand(4, 8, 8, 3).astype("float32")
    x, _ = layer((images, np.arange(4)))
    assert x.shape == images.shape
    clone = km.MiAMix.from_config(layer.get_config())
    assert isinstance(clone.augmentation, keras.layers.RandomFlip)
    assert clone.augmentation.mode == "horizontal"


def test_rotated_masks_keep_their_area_up_to_the_border():
    layer = km.MiAMix(methods=("cutmix",), weights=(1,), k_choices=(1,), p_aug=1.0,
                      p_smooth=0.0, seed=11, augmentation=None)
    _, _, info = run(layer, n=400, size=48)
    assert info["rotated"][:, 0].all()
    masks = info["layer_masks"][:, 0]
    assert set(np.unique(masks)) <= {0.0, 1.0}
    partner = 1 - masks.mean((1, 2, 3))
    # Rotation never adds partner pixels: the box area (<= lambda_1) bounds it.
    assert np.all(partner <= info["lambdas"][:, 0] + 0.03)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha": 0}, "alpha"),
        ({"k_max": 0}, "k_max"),
        ({"k_choices": (0, 1)}, "k_choices"),
        ({"methods": ("mixup", "puzzlemix"), "weights": (1, 1)}, "methods"),
        ({"weights": (1, 1)}, "weights"),
        ({"weights": (0, 0, 0, 0, 0)}, "weights"),
        ({"p_self": 1.5}, "p_self"),
        ({"p_aug": -0.1}, "p_aug"),
        ({"p_smooth": 2}, "p_smooth"),
        ({"merge": "max"}, "merge"),
        ({"lambda_mode": "mean"}, "lambda_mode"),
        ({"smoothing_windows": (4,)}, "smoothing_windows"),
        ({"augmentation": "strong"}, "augmentation"),
    ],
)
def test_bad_parameters_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        km.MiAMix(**kwargs)


# ---------------------------------------------------------------- XLA's path
# Under XLA each method's rows are gathered into a block of static capacity,
# with a conditional that falls back to computing every row; outside XLA the
# rows are gathered with a dynamic count. Both must draw the same distributions.


def run_xla(layer, n, size=8):
    images = np.random.RandomState(0).rand(n, size, size, 3).astype("float32")
    y = np.eye(4, dtype="float32")[np.arange(n) % 4]
    fn = tf.function(lambda x, t: layer((x, t), return_info=True), jit_compile=True)
    _, info = fn(images, y)
    return {k: v.numpy() for k, v in info.items()}


def check_plan_statistics(info, n):
    k, methods = info["k"], info["methods"]
    assert abs(np.mean(k == 1) - 0.5) < tol(0.5, n)
    assert np.all((methods[:, 1] == -1) == (k == 1)) and np.all(methods[:, 0] >= 0)
    drawn = methods[methods >= 0]
    counts = np.bincount(drawn, minlength=5)
    assert scipy.stats.chisquare(counts, np.array([2, 1, 1, 1, 1]) / 6 * len(drawn)).pvalue > 1e-3
    eligible = np.isin(methods, [1, 2, 3])
    rotated, smoothed = info["rotated"], info["smoothed"]
    assert not rotated[~eligible].any() and not smoothed[~eligible].any()
    assert abs(rotated[eligible].mean() - 0.25) < tol(0.25, eligible.sum())
    assert abs(smoothed[eligible].mean() - 0.5) < tol(0.5, eligible.sum())
    np.testing.assert_allclose(info["label_weights"], info["masks"].mean((1, 2, 3)), atol=1e-5)
    np.testing.assert_allclose(info["masks"], np.prod(info["layer_masks"], axis=1), atol=1e-6)
    # Inactive layers are all-ones; MixUp layers the constant anchor share.
    inactive = methods == -1
    assert np.all(info["layer_masks"][inactive] == 1.0)
    mixup = methods == 0
    share = 1 - info["lambdas"][:, :-1]
    np.testing.assert_allclose(info["layer_masks"][mixup].mean((1, 2, 3)), share[mixup],
                               atol=1e-6)
    # Unaugmented CutMix and GridMix layers are binary; FMix too.
    plain = np.isin(methods, [1, 2, 3]) & ~rotated & ~smoothed
    assert set(np.unique(info["layer_masks"][plain])) <= {0.0, 1.0}
    for lam_col in (0,):
        dist = scipy.stats.beta(1.0, 2 * 1.0 - 1.0)
        assert chi2_pvalue(info["lambdas"][k == 1, lam_col], dist, bins=10) > 1e-3
    return info


def per_method_layer_means(info):
    methods, means = info["methods"], info["layer_masks"].mean((2, 3, 4))
    return {m: means[methods == m] for m in range(5)}


def test_xla_path_draws_the_same_distributions_as_tf_data():
    xla = check_plan_statistics(run_xla(km.MiAMix(seed=11, augmentation=None), N), N)
    _, _, eager = run(km.MiAMix(seed=11, augmentation=None))
    check_plan_statistics(eager, N)
    # Each method's mask area, compared between the two paths (two-sample t).
    a, b = per_method_layer_means(xla), per_method_layer_means(eager)
    for m in range(5):
        assert scipy.stats.ttest_ind(a[m], b[m], equal_var=False).pvalue > 1e-3, m


def test_xla_fallback_when_a_block_overflows(monkeypatch):
    # A capacity of one row makes every batch overflow: the conditional's
    # other branch computes every row, with the same distributions.
    from keras_miamix.ops import miamix

    monkeypatch.setattr(miamix, "row_capacity", lambda n, fraction: 1)
    n = 2000
    info = check_plan_statistics(run_xla(km.MiAMix(seed=12, augmentation=None), n), n)
    _, _, eager = run(km.MiAMix(seed=12, augmentation=None), n=n)
    a, b = per_method_layer_means(info), per_method_layer_means(eager)
    for m in range(5):
        assert scipy.stats.ttest_ind(a[m], b[m], equal_var=False).pvalue > 1e-3, m


@pytest.mark.parametrize("xla", [False, True])
@pytest.mark.parametrize("capacity,first", [(None, None), (1, None), (None, 1)])
def test_on_rows_computes_only_the_chosen_rows(monkeypatch, xla, capacity, first):
    from keras_miamix.ops import miamix

    if capacity is not None:
        monkeypatch.setattr(miamix, "row_capacity", lambda n, fraction: capacity)
    if first is not None:  # a one-row first stage: the second stage computes the rest
        monkeypatch.setattr(miamix, "first_stage_rows", lambda n, fraction, capacity: first)
    rng = np.random.RandomState(0)
    base = tf.constant(rng.rand(40, 3, 2).astype("float32"))
    values = tf.constant(rng.rand(40).astype("float32"))
    chosen = tf.constant(rng.rand(40) < 0.3)
    flags = tf.constant(rng.rand(40) < 0.5)

    def fn(stage, v, f):
        # A row's output depends on its own inputs only; padding rows of
        # XLA's block carry False flags.
        return (tf.where(f, 2.0, 1.0)[:, None, None] * v[:, None, None] + 10.0,
                tf.cast(f, tf.float32))

    def call(b, v, c, f):
        return miamix.on_rows(fn, c, (v, f), (b, tf.zeros([40])), 0.3)

    out, seen = (tf.function(call, jit_compile=True) if xla else call)(base, values, chosen, flags)
    c, f = chosen.numpy(), flags.numpy()
    expected = np.where(c[:, None, None], np.where(f, 2.0, 1.0)[:, None, None]
                        * values.numpy()[:, None, None] + 10.0, base.numpy())
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal(seen.numpy(), np.where(c, f, 0.0))


@pytest.mark.parametrize("capacity,first", [(None, None), (1, 1), (None, 2)])
def test_xla_method_blocks_put_every_row_in_place(capacity, first):
    # Fake generators whose rows are known: method i gives (i + 1) * share.
    # Blocks (and, with capacity 1, the every-row fallback) must return each
    # row its own method's output, and ones for the inactive rows (-1).
    from keras_miamix.ops import miamix

    rng = np.random.RandomState(3)
    n = 60
    methods = tf.constant(rng.randint(-1, 3, size=n).astype("int32"))
    share = tf.constant(rng.rand(n).astype("float32"))

    def masks_of(i):
        return lambda lam, stage=0: tf.broadcast_to(((i + 1.0) * lam)[:, None, None, None],
                                                    tf.stack([tf.shape(lam)[0], 2, 3, 1]))

    # (None, None): blocks of mean + 4 sd computed in two stages; (1, 1):
    # every batch overflows to the every-row fallback; (None, 2): a first
    # stage of two rows, so the second stage does most of the work.
    def call(m, lam):
        cap = capacity or miamix.row_capacity(n, 0.25)
        stage = first or miamix.first_stage_rows(n, 0.25, cap)
        groups = [(i, tf.equal(m, i), cap, stage) for i in range(3)]
        return miamix._xla_method_blocks(groups, masks_of, lam, n, 2, 3)

    out = tf.function(call, jit_compile=True)(methods, share).numpy()
    m, lam = methods.numpy(), share.numpy()
    expected = np.where(m >= 0, (m + 1.0) * lam, 1.0)
    np.testing.assert_allclose(out, np.broadcast_to(expected[:, None, None, None], out.shape),
                               rtol=1e-6)


@pytest.mark.parametrize("xla", [False, True])
def test_only_flagged_layers_are_rotated_or_smoothed(xla):
    layer = km.MiAMix(seed=5, augmentation=None, p_aug=0.5, p_smooth=0.5)
    info = run_xla(layer, 256, size=16) if xla else run(layer, n=256, size=16)[2]
    final, raw = info["layer_masks"], info["raw_layer_masks"]
    touched = info["rotated"] | info["smoothed"]
    np.testing.assert_array_equal(final[~touched], raw[~touched])
    changed = np.any(final != raw, axis=(2, 3, 4))
    # Most augmented layers change (a rotated or smoothed mask rarely stays
    # the same: a constant mask, a tiny box).
    assert changed[touched].mean() > 0.7
    only_rotated = info["rotated"] & ~info["smoothed"]
    # Rotation keeps a binary mask binary; smoothing is what makes grey levels.
    rot = final[only_rotated]
    assert np.all((rot == 0) | (rot == 1))
    assert np.any((final[info["smoothed"]] > 0) & (final[info["smoothed"]] < 1))


@pytest.mark.parametrize("xla", [False, True])
def test_block_stages_draw_their_own_random_numbers(monkeypatch, xla):
    # Stateless draws index rows from 0 in every call: a second stage with
    # the first stage's seed would repeat its numbers row for row.
    from keras_miamix.ops import miamix

    monkeypatch.setattr(miamix, "first_stage_rows", lambda n, fraction, capacity: 2)
    chosen = tf.constant(np.arange(40) % 2 == 0)

    def fn(stage, v):
        rows = tf.shape(v)[0]
        return (tf.random.stateless_uniform([rows], miamix.stage_seed(tf.constant([3, 4]),
                                                                      stage)),)

    def call(c):
        return miamix.on_rows(fn, c, (tf.zeros([40]),), (tf.fill([40], -1.0),), 0.5)[0]

    out = (tf.function(call, jit_compile=True) if xla else call)(chosen).numpy()
    drawn = out[chosen.numpy()]
    assert len(np.unique(drawn)) == len(drawn) == 20


def test_second_stage_cutmix_boxes_are_not_repeats(monkeypatch):
    # MiAMix under XLA with a first stage of half the block: half the CutMix
    # layers come from the second stage; their boxes must not copy the
    # first stage's row for row.
    from keras_miamix.ops import miamix

    monkeypatch.setattr(miamix, "first_stage_rows", lambda n, fraction, capacity: capacity // 2)
    layer = km.MiAMix(methods=("cutmix",), weights=(1.0,), k_choices=(1,), p_aug=0.0,
                      p_smooth=0.0, augmentation=None, seed=2)
    info = run_xla(layer, 48, size=64)
    masks = info["layer_masks"][:, 0, ..., 0]
    centres = []  # of the boxes that the border does not clip: the drawn centres
    for m in masks:
        rows, cols = np.nonzero(m < 0.5)
        if len(rows) and rows.min() > 0 and cols.min() > 0 and rows.max() < 63 \
                and cols.max() < 63:
            centres.append((rows.min() + rows.max(), cols.min() + cols.max()))
    repeated = len(centres) - len(set(centres))
    assert len(centres) >= 8 and repeated <= 1, (len(centres), repeated)


def test_row_capacity_bounds_the_count():
    from keras_miamix.ops.miamix import first_stage_rows
    from keras_miamix.ops.miamix import row_capacity

    assert row_capacity(256, 0.125) == 32 + int(np.ceil(4 * np.sqrt(32 * 0.875))) + 2
    assert row_capacity(10, 0.5) == 10  # never more than the rows
    assert first_stage_rows(256, 0.125, 55) == 32 + int(np.ceil(np.sqrt(32 * 0.875))) + 1
    assert first_stage_rows(256, 0.125, 10) == 10
    # A batch size known only to XLA (a tf.data map) gives the same sizes.
    for n, fraction in [(256, 0.125), (10, 0.5), (2, 0.09375), (128, 0.1875), (2048, 0.25)]:
        def sizes(x, fraction=fraction):
            capacity = row_capacity(tf.shape(x)[0], fraction)
            return capacity, first_stage_rows(tf.shape(x)[0], fraction, capacity)

        capacity, first = tf.function(sizes, jit_compile=True)(tf.zeros([n]))
        assert int(capacity) == row_capacity(n, fraction), (n, fraction)
        assert int(first) == first_stage_rows(n, fraction, row_capacity(n, fraction))


def test_xla_draws_do_not_depend_on_knowing_the_batch_size():
    # Under XLA a traced batch size (None in the graph, as in tf.data) sizes
    # the blocks as the static one does, so the draws are the same (for a
    # batch larger than its blocks; smaller ones compute every row).
    images = np.random.RandomState(4).rand(64, 8, 8, 3).astype("float32")
    labels = np.eye(4, dtype="float32")[np.arange(64) % 4]
    static = km.MiAMix(seed=3, jit_compile=True)((images, labels))[0].numpy()
    layer = km.MiAMix(seed=3, jit_compile=True)
    traced = tf.function(lambda x, y: layer((x, y)), input_signature=[
        tf.TensorSpec([None, 8, 8, 3]), tf.TensorSpec([None, 4])])(images, labels)[0]
    np.testing.assert_array_equal(traced.numpy(), static)


@pytest.mark.parametrize("layer_cls", [km.MiAMix, km.FMix, km.CutMix])
def test_jit_compile_option_in_every_mode(layer_cls, tmp_path):
    # jit_compile=True compiles the mixing eagerly, in tf.function and in
    # tf.data; the outputs keep the layer's contract, the seed reproduces,
    # and the option survives get_config and .keras saving.
    layer = layer_cls(num_classes=4, seed=6, jit_compile=True)
    images = np.random.RandomState(1).rand(8, 12, 10, 3).astype("float32")
    labels = np.arange(8) % 4
    (x, y), info = layer((images, labels), return_info=True)
    np.testing.assert_allclose(y.numpy().sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(info["label_weights"], info["masks"].numpy().mean((1, 2, 3)),
                               atol=1e-5)
    fresh = layer_cls(num_classes=4, seed=6, jit_compile=True)
    again = fresh((images, labels))
    np.testing.assert_array_equal(again[0].numpy(), x.numpy())
    np.testing.assert_allclose(again[1].numpy(), y.numpy(), atol=1e-6)
    # Without return_info the compiled program outputs the mixed data only
    # (no partner images, views or layer masks written out), same draws.
    (program,) = fresh._jit_mix.values()
    (traced,) = program._list_all_concrete_functions()
    out, extras = traced.structured_outputs
    assert sorted(out) == ["images", "labels"] and extras == {}
    x2, _ = tf.function(lambda a, b: layer((a, b)))(images, labels)
    assert not np.allclose(x2.numpy(), x.numpy())  # the seed state advanced
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4).map(
        layer_cls(num_classes=4, seed=6, jit_compile=True), num_parallel_calls=2)
    assert [b[0].shape[0] for b in ds] == [4, 4]
    clone = layer_cls.from_config(layer.get_config())
    assert clone.jit_compile is True
    model = keras.Sequential([keras.Input((12, 10, 3)), layer_cls(seed=1, jit_compile=True)])
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").layers[0].jit_compile is True
    with pytest.raises(ValueError, match="jit_compile"):
        layer_cls(jit_compile="yes")


@pytest.mark.parametrize("layer_cls", [km.MiAMix, km.FMix, km.CutMix])
def test_auto_jit_compile_compiles_inside_tf_data_only(layer_cls, tmp_path, monkeypatch):
    # The default, jit_compile="auto", with an accelerator (here pretended)
    # runs the mixing through XLA inside ds.map (the draws are those of
    # jit_compile=True, which XLA's generators make different from the
    # uncompiled ones) and not eagerly or in a tf.function (the draws are those
    # of jit_compile=False). On a CPU-only machine it never compiles.
    from keras_miamix.layers import base_mix_layer

    images = np.random.RandomState(2).randint(0, 256, (10, 12, 10, 3)).astype("uint8")
    labels = np.arange(10) % 4

    def mixed(jit, mode):
        layer = layer_cls(num_classes=4, seed=9, jit_compile=jit)
        if mode == "tf.data":
            ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4).map(layer)
            return np.concatenate([x.numpy() for x, _ in ds])
        call = (lambda a, b: layer((a, b))) if mode == "eager" else tf.function(
            lambda a, b: layer((a, b)))
        return call(images, labels)[0].numpy()

    assert layer_cls().jit_compile == "auto"
    monkeypatch.setattr(base_mix_layer, "accelerator_present", lambda: False)
    cpu_only = mixed("auto", "tf.data")
    np.testing.assert_array_equal(cpu_only, mixed(False, "tf.data"))
    monkeypatch.setattr(base_mix_layer, "accelerator_present", lambda: True)
    auto = mixed("auto", "tf.data")
    assert auto.shape == (10, 12, 10, 3)
    np.testing.assert_array_equal(auto, mixed(True, "tf.data"))
    assert not np.allclose(auto, mixed(False, "tf.data"))
    for mode in ("eager", "tf.function"):
        np.testing.assert_array_equal(mixed("auto", mode), mixed(False, mode))
    model = keras.Sequential([keras.Input((12, 10, 3)), layer_cls(seed=1)])
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").layers[0].jit_compile == "auto"

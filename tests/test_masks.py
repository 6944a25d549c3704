import numpy as np
import pytest
import tensorflow as tf

from keras_miamix.ops import mask_augment
from keras_miamix.ops import masks

SEED = tf.constant([3, 5])


def lam_grid(n=64):
    return tf.constant(np.linspace(0.02, 0.98, n), tf.float32)


@pytest.mark.parametrize("name", sorted(masks.MASK_GENERATORS))
def test_masks_shape_range_and_dtype(name):
    m = masks.MASK_GENERATORS[name](lam_grid(), 37, 53, SEED).numpy()
    if name == "mixup":  # the constant mask comes compact and broadcasts
        assert m.shape == (64, 1, 1, 1)
        m = np.broadcast_to(m, (64, 37, 53, 1))
    assert m.shape == (64, 37, 53, 1)
    assert m.dtype == np.float32
    assert m.min() >= 0.0 and m.max() <= 1.0


@pytest.mark.parametrize("name", sorted(masks.MASK_GENERATORS))
def test_masks_compile_under_xla(name):
    gen = masks.MASK_GENERATORS[name]
    fn = tf.function(lambda lam, s: gen(lam, 32, 32, s), jit_compile=True)
    compiled = fn(lam_grid(8), SEED).numpy()
    np.testing.assert_array_equal(compiled, fn(lam_grid(8), SEED).numpy())
    compiled = np.broadcast_to(compiled, (8, 32, 32, 1))
    assert compiled.min() >= 0 and compiled.max() <= 1
    if name in ("mixup", "fmix"):  # exact shares: constant lam, top-k count
        np.testing.assert_allclose(compiled.mean((1, 2, 3)), lam_grid(8), atol=1.0 / 1024)


def test_mixup_mask_is_constant_lambda():
    lam = lam_grid(5)
    m = masks.mixup_mask(lam, 4, 6).numpy()
    np.testing.assert_allclose(m, np.broadcast_to(lam.numpy()[:, None, None, None], m.shape))


def test_cutmix_masks_are_rectangles_of_the_right_size():
    lam = lam_grid(200)
    m = masks.cutmix_mask(lam, 40, 30, SEED).numpy()[..., 0]
    assert set(np.unique(m)) <= {0.0, 1.0}
    for i in range(len(m)):
        rows = np.where((m[i] == 0).any(1))[0]
        cols = np.where((m[i] == 0).any(0))[0]
        if len(rows) == 0:
            continue
        box = m[i][rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        assert np.all(box == 0), "partner region is not a rectangle"
        r = np.sqrt(1 - lam[i].numpy())
        # Unclipped sides are 2 * floor(floor(side * r) / 2); clipping shrinks them.
        assert len(rows) <= 2 * (np.floor(40 * r) // 2)
        assert len(cols) <= 2 * (np.floor(30 * r) // 2)
    # With the centre drawn inside, most boxes are not clipped on both axes.
    mean_kept = m.mean((1, 2))
    assert np.all(mean_kept >= lam.numpy() - 1e-6)


def test_fmix_holds_ceil_or_floor_of_lam_hw_ones():
    lam = tf.constant(np.linspace(0.013, 0.987, 100), tf.float32)
    m = masks.fmix_mask(lam, 31, 45, SEED).numpy()
    assert set(np.unique(m)) <= {0.0, 1.0}
    counts = m.sum((1, 2, 3))
    target = lam.numpy().astype(np.float64) * 31 * 45
    lo = np.floor(np.float32(lam.numpy()) * np.float32(31 * 45))
    hi = np.ceil(np.float32(lam.numpy()) * np.float32(31 * 45))
    assert np.all((counts == lo) | (counts == hi))
    # Both roundings occur (equal chance) where they differ.
    differ = lo != hi
    assert 20 < np.sum(counts[differ] == hi[differ]) < differ.sum() - 20
    assert np.all(np.abs(counts - target) <= 1)


def test_fmix_masks_are_low_frequency():
    # A low-frequency mask has far fewer 0/1 transitions than a random one.
    m = masks.fmix_mask(tf.fill([16], 0.5), 64, 64, SEED).numpy()[..., 0]
    transitions = np.abs(np.diff(m, axis=1)).sum((1, 2))
    assert transitions.mean() < 0.1 * (64 * 63 / 2)


def test_fmix_soft_edges_keep_the_count():
    lam = tf.fill([32], 0.4)
    m = masks.fmix_mask(lam, 32, 32, SEED, max_soft=0.1).numpy()
    soft = (m > 0) & (m < 1)
    assert soft.sum((1, 2, 3)).min() > 0
    np.testing.assert_allclose(m.mean((1, 2, 3)), 0.4, atol=2.0 / 1024)


def test_gridmix_hand_made_grid():
    # One crop covering the image, 2 cells of 16 px, holes of 16 * sqrt(0.25) = 8 px.
    lam = tf.constant([0.75])
    m = masks.gridmix_mask(
        lam, 32, 32, SEED, n_holes=(2, 2), cut_area_ratio=(1.0, 1.0), cut_aspect_ratio=(1.0, 1.0)
    ).numpy()[0, ..., 0]
    expected = np.ones((32, 32), np.float32)
    for y in (0, 16):
        for x in (0, 16):
            expected[y:y + 8, x:x + 8] = 0
    np.testing.assert_array_equal(m, expected)


def test_gridmix_holes_lie_inside_a_crop():
    m = masks.gridmix_mask(lam_grid(50), 48, 48, SEED).numpy()[..., 0]
    assert set(np.unique(m)) <= {0.0, 1.0}
    # Smaller lam gives bigger holes, so a lower anchor share on average.
    kept = m.mean((1, 2))
    assert kept[:10].mean() < kept[-10:].mean()


def test_gmix_kernel_area_follows_lambda():
    # Partner share 1 - lam = 0.02 on 96x96: the blob (sigma ~ 5.4 px) is rarely cut
    # by the border, so the mean partner share is close to 0.02.
    lam = tf.fill([400], 0.98)
    m = masks.gmix_mask(lam, 96, 96, SEED).numpy()
    partner = 1 - m.mean((1, 2, 3))
    assert abs(np.median(partner) - 0.02) < 0.001
    assert np.all(partner <= 0.02 + 1e-4)
    assert m.min((1, 2, 3)).max() < 0.05  # the centre is (nearly) all partner


@pytest.mark.parametrize("name", ["gmix", "agmix"])
def test_gaussian_label_weight_tracks_lambda_over_its_whole_range(name):
    # The blob holds the smaller share (official hmix-gmix): the anchor for
    # lam < 0.5, the partner otherwise. Border truncation only shrinks the blob,
    # so the mask mean lies on lam's side of 0.5 and close to it. With the
    # partner always the blob, the median mean was about 0.54 at lam = 0.05 and
    # never below 0.5 at 32x32 (a NumPy transcription of the old kernel).
    lams = np.array([0.02, 0.05, 0.1, 0.2, 0.3, 0.45, 0.55, 0.7, 0.8, 0.9, 0.95, 0.98],
                    np.float32)
    lam = tf.constant(np.repeat(lams, 200))
    m = masks.MASK_GENERATORS[name](lam, 32, 32, SEED).numpy()
    mean = m.mean((1, 2, 3)).reshape(len(lams), 200)
    low, high = lams < 0.5, lams > 0.5
    assert np.all(mean[low] <= lams[low, None] + 1e-4)
    assert np.all(mean[high] >= lams[high, None] - 1e-4)
    # Medians increase with lam and are close to it at both ends; truncation
    # is largest near 0.5 (about 0.28 at lam 0.45 on 32x32, as the official code).
    med = np.median(mean, axis=1)
    assert np.all(np.diff(med) > 0), med
    ends = (lams <= 0.1) | (lams >= 0.9)
    assert np.abs(med - lams)[ends].max() < 0.02, med
    assert np.abs(med - lams).max() < 0.2, med
    # The smaller share is the blob: the anchor's pixels sit near 0 away from it.
    assert np.median(m[:200].reshape(200, -1).min(1)) < 1e-3  # lam 0.02: mostly partner
    assert np.median(m[-200:].reshape(200, -1).min(1)) < 0.05  # lam 0.98: a partner blob


def test_gmix_blob_is_centred_on_an_integer_pixel_as_the_official_code():
    lam = tf.constant([0.3, 0.7])
    m = masks.gmix_mask(lam, 16, 16, SEED).numpy()[..., 0]
    for mask, anchor_blob in zip(m, [True, False]):
        kernel = mask if anchor_blob else 1 - mask
        cy, cx = np.unravel_index(kernel.argmax(), kernel.shape)
        s = min(0.3, 0.7)
        yy, xx = np.mgrid[:16, :16]
        expected = np.exp(-np.pi * ((yy - cy) ** 2 + (xx - cx) ** 2) / (s * 256))
        np.testing.assert_allclose(kernel, expected, atol=1e-6)


def test_agmix_area_is_independent_of_the_covariance():
    lam = tf.fill([400], 0.98)
    g = 1 - masks.gmix_mask(lam, 96, 96, SEED).numpy().mean((1, 2, 3))
    a = 1 - masks.agmix_mask(lam, 96, 96, SEED).numpy().mean((1, 2, 3))
    # Without the determinant normalisation the area would grow by E[1/sqrt(1-q^2)] ~ 1.3.
    assert abs(np.median(a) - np.median(g)) < 0.001


def test_agmix_metric_has_determinant_one_and_is_anisotropic():
    inv = masks.agmix_inverse_metric(1000, SEED).numpy()
    np.testing.assert_allclose(np.linalg.det(inv), 1.0, rtol=1e-4)
    np.testing.assert_allclose(inv, np.transpose(inv, (0, 2, 1)), atol=1e-6)
    eig = np.linalg.eigvalsh(inv)
    assert (eig[:, 1] / eig[:, 0]).max() > 10  # strongly elongated blobs occur


def test_resizemix_pastes_whole_partner_in_box():
    tau = tf.constant([0.5, 0.8, 0.3])
    m, src_rows, src_cols = masks.resizemix_mask(tau, 32, 40, SEED)
    m = m.numpy()[..., 0]
    for i in range(3):
        rows = np.where((m[i] == 0).any(1))[0]
        cols = np.where((m[i] == 0).any(0))[0]
        src_r = np.broadcast_to(src_rows.numpy()[i][:, None], (32, 40))
        src_c = np.broadcast_to(src_cols.numpy()[i][None, :], (32, 40))
        box_r = src_r[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        box_c = src_c[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        # The box starts at the partner's top-left pixel and reaches its far side.
        assert box_r.min() == 0 and box_c.min() == 0
        assert box_r.max() >= 32 - 32 / len(rows) - 1
        assert box_c.max() >= 40 - 40 / len(cols) - 1
        # Rows are monotone (a resize, not a crop).
        assert np.all(np.diff(box_r[:, 0]) >= 0)
        np.testing.assert_allclose(m[i].mean(), 1 - len(rows) * len(cols) / (32 * 40))


def test_warp_identity_and_rotation_by_90_degrees():
    x = tf.constant(np.random.RandomState(0).rand(2, 8, 8, 1).astype("float32"))
    ident = mask_augment.warp_masks(x, tf.eye(2, batch_shape=[2]))
    np.testing.assert_array_equal(ident, x)
    rot = mask_augment.warp_masks(x, mask_augment.affine_matrices(tf.fill([2], np.pi / 2),
                                                                  tf.zeros([2])))
    np.testing.assert_allclose(rot.numpy()[..., 0], np.rot90(x.numpy()[..., 0], k=1, axes=(1, 2)))


def test_rotation_changes_mean_only_through_the_border():
    # A box well inside the image keeps its area (up to nearest-neighbour rounding).
    m = np.ones((64, 64, 64, 1), np.float32)
    m[:, 24:40, 24:40] = 0
    out = mask_augment.random_rotate_shear(tf.constant(m), SEED).numpy()
    assert set(np.unique(out)) <= {0.0, 1.0}
    np.testing.assert_allclose(out.mean((1, 2, 3)), m.mean((1, 2, 3)), atol=20 / 4096)
    # Content rotated out of the frame is replaced by ones (anchor), never zeros.
    border = np.zeros((4, 16, 16, 1), np.float32)
    out = mask_augment.random_rotate_shear(tf.constant(border), SEED).numpy()
    assert out.mean() > 0  # corners filled with the anchor


def test_box_filter_is_the_mean_over_the_window_inside_the_image():
    x = np.random.RandomState(1).rand(3, 9, 11, 1).astype("float32")
    out = mask_augment.random_box_filter(tf.constant(x), SEED, [3, 5]).numpy()
    for i in range(3):
        candidates = []
        for w in (3, 5):
            r = w // 2
            ref = np.zeros((9, 11), np.float32)
            for y in range(9):
                for c in range(11):
                    ref[y, c] = x[i, max(0, y - r):y + r + 1, max(0, c - r):c + r + 1, 0].mean()
            candidates.append(ref)
        assert any(np.allclose(out[i, ..., 0], ref, atol=1e-5) for ref in candidates)
    const = mask_augment.box_filter(tf.fill([2, 9, 9, 1], 0.3), 5).numpy()
    np.testing.assert_allclose(const, 0.3, atol=1e-6)


def stable_top(keys, num):
    ref = np.zeros(keys.shape, bool)
    for i in range(keys.shape[0]):
        ref[i, np.argsort(-keys[i], kind="stable")[:num[i]]] = True
    return ref


@pytest.mark.parametrize("xla", [False, True])
def test_top_count_paths_equal_a_stable_argsort(xla):
    # Both selection paths (sorted: outside XLA; static: under XLA, three
    # 8-bit or two 12-bit levels), with ties at the threshold, empty and full
    # rows.
    rng = np.random.RandomState(0)
    static = tf.function(masks._top_count_static, jit_compile=xla)
    static_12 = tf.function(lambda k, n: masks._top_count_static(k, n, 12, 2), jit_compile=xla)
    for trial in range(12):
        b, n = rng.randint(1, 7), [5, 64, 1000, 20000][trial % 4]
        v = rng.rand(b, n).astype("float32")
        if trial % 3 == 0:
            v = np.round(v * 7) / 7  # many ties
        num = rng.randint(0, n + 1, size=b).astype("int32")
        num[0] = 0
        if b > 1:
            num[-1] = n
        key = tf.cast(tf.constant(v) * float((1 << 24) - 1), tf.int32)
        ref = stable_top(key.numpy(), num)
        np.testing.assert_array_equal(static(key, tf.constant(num)).numpy(), ref)
        np.testing.assert_array_equal(static_12(key, tf.constant(num)).numpy(), ref)
        if not xla:
            sorted_ = masks._top_count_sorted(key, tf.constant(num)).numpy()
            np.testing.assert_array_equal(sorted_, ref)


@pytest.mark.parametrize("xla", [False, True])
def test_fmix_count_is_exact_on_large_images(xla):
    # 160 x 160 > 128 x 128 entries: the sorted selection path outside XLA,
    # the two-level static path (and Threefry normals) under XLA.
    lam = tf.constant(np.linspace(0.05, 0.95, 6), tf.float32)
    fn = tf.function(lambda lm, s: masks.fmix_mask(lm, 160, 160, s), jit_compile=xla)
    m = fn(lam, SEED).numpy()
    ones = m.sum((1, 2, 3))
    target = lam.numpy() * 160 * 160
    assert np.all((ones == np.ceil(target)) | (ones == np.floor(target)))


def test_box_muller_normals():
    from keras_miamix.ops.sampling import normal_pair

    a, b = normal_pair([200000], SEED)
    a, b = a.numpy(), b.numpy()
    for x in (a, b):
        assert abs(x.mean()) < 5 / np.sqrt(2e5) and abs(x.std() - 1) < 0.01
        assert scipy_kstest(x) > 1e-3
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(2e5)


def test_xla_normals_from_threefry():
    # Under XLA the pair is sqrt(2) erfinv(2u - 1) of Threefry uniforms.
    from keras_miamix.ops.sampling import normal_pair

    draw = tf.function(lambda s: normal_pair([200000], s), jit_compile=True)
    a, b = (x.numpy() for x in draw(SEED))
    for x in (a, b):
        assert abs(x.mean()) < 5 / np.sqrt(2e5) and abs(x.std() - 1) < 0.01
        assert scipy_kstest(x) > 1e-3
        assert np.all(np.isfinite(x))
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(2e5)
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 5 / np.sqrt(2e5)
    np.testing.assert_array_equal(draw(SEED)[0].numpy(), a)  # reproducible
    other = draw(tf.constant([1, 2]) + SEED)[0].numpy()
    assert abs(np.corrcoef(a, other)[0, 1]) < 5 / np.sqrt(2e5)


def test_threefry_known_answers():
    # Random123's known-answer vectors for threefry2x32_20 (also JAX's tests).
    from keras_miamix.ops.sampling import threefry2x32

    fn = tf.function(threefry2x32, jit_compile=True)
    cases = [((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
             ((0xFFFFFFFF,) * 2, (0xFFFFFFFF,) * 2, (0x1CB996FC, 0xBB002BE7)),
             ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0))]
    for key, count, expected in cases:
        out = fn(tf.constant(key, tf.uint32), tf.constant([count[0]], tf.uint32),
                 tf.constant([count[1]], tf.uint32))
        assert (int(out[0][0]), int(out[1][0])) == expected


def scipy_kstest(x):
    import scipy.stats

    return scipy.stats.kstest(x, "norm").pvalue


def test_box_filter_per_sample_windows_in_every_mode():
    x = np.random.RandomState(1).rand(12, 9, 11, 1).astype("float32")
    pick = np.arange(12) % 3
    windows = [3, 5, 7]
    for fn in (mask_augment._box_filter,
               tf.function(mask_augment._box_filter, jit_compile=True)):
        out = fn(tf.constant(x), tf.constant(pick, tf.int32), windows).numpy()
        for i in range(12):
            r = windows[pick[i]] // 2
            ref = [[x[i, max(0, y - r):y + r + 1, max(0, c - r):c + r + 1, 0].mean()
                    for c in range(11)] for y in range(9)]
            np.testing.assert_allclose(out[i, ..., 0], ref, atol=1e-5)

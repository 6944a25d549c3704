"""PuzzleMix: each piece against a NumPy transcription of the official
`mixup.py` (tests/puzzlemix_reference.py), the solvers' energies, and the
training model (its step, options, save/load/resume, mixed precision, XLA)."""

import importlib.util
import itertools

import keras
import numpy as np
import puzzlemix_reference as ref
import pytest
import tensorflow as tf

import keras_miamix as km
from keras_miamix.models import puzzle_mix as puzzle_module
from keras_miamix.ops import puzzlemix as pm

HAS_GCO = importlib.util.find_spec("gco") is not None
needs_gco = pytest.mark.skipif(not HAS_GCO, reason="gco-wrapper is not installed (cp311 wheels)")


def batch(n=6, size=32, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32)
    saliency = (rng.uniform(size=(n, size, size)) ** 3).astype(np.float32)
    perm = rng.permutation(n).astype(np.int32)
    lam = rng.uniform(size=n).astype(np.float32)
    return images, saliency, perm, lam


def official_terms(images, saliency, perm, n):
    return ref.graph_terms(images.transpose(0, 3, 1, 2) / 255.0, saliency, perm, n, 1.2, 0.5, 4)


# ------------------------------------------------------------ the energy
@pytest.mark.parametrize("block_num", [2, 4, 8, 16])
def test_graph_terms_and_costs_equal_the_officials(block_num):
    images, saliency, perm, lam = batch()
    terms = pm.graph_terms(images / 255.0, saliency, perm, block_num)
    unary1, unary2, pw_x, pw_y, beta, _ = official_terms(images, saliency, perm, block_num)
    # The official unary2 is the cost of showing the anchor, unary1 the partner.
    np.testing.assert_allclose(terms["unary_anchor"], unary2, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(terms["unary_partner"], unary1, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(terms["pairwise_rows"], pw_x, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(terms["pairwise_cols"], pw_y, rtol=1e-5, atol=1e-9)
    assert terms["beta"] == pytest.approx(beta)
    costs = np.asarray(pm.labelling_costs(terms, lam, 3, 0.2, block_num))
    rng = np.random.default_rng(block_num)
    labels = rng.integers(0, 3, (len(lam), block_num, block_num)).astype(np.int32)
    energy = np.asarray(pm.labelling_energy(costs, terms, labels))
    for b in range(len(lam)):
        float_cost, *_ = ref.graphcut_inputs(unary2[b], unary1[b], pw_x[b], pw_y[b], lam[b],
                                             beta, 0.2, 3)
        np.testing.assert_allclose(costs[b], float_cost, rtol=1e-5, atol=1e-8)
        want = ref.energy_loops(float_cost, pw_x[b], pw_y[b], beta, labels[b])
        np.testing.assert_allclose(energy[b], want, rtol=1e-5)


@pytest.mark.parametrize("n_labels", [2, 4])
def test_the_prior_is_the_officials_for_two_and_four_labels(n_labels):
    images, saliency, perm, lam = batch(n=3)
    terms = pm.graph_terms(images / 255.0, saliency, perm, 4)
    costs = np.asarray(pm.labelling_costs(terms, lam, n_labels, 0.2, 4))
    unary1, unary2, pw_x, pw_y, beta, _ = official_terms(images, saliency, perm, 4)
    for b in range(3):
        float_cost, *_ = ref.graphcut_inputs(unary2[b], unary1[b], pw_x[b], pw_y[b], lam[b],
                                             beta, 0.2, n_labels)
        np.testing.assert_allclose(costs[b], float_cost, rtol=1e-5, atol=1e-8)


def test_icm_finds_the_exhaustive_optimum_on_two_by_two_grids():
    # 3^4 = 81 labellings: every one evaluated for 128 random problems.
    images, saliency, perm, lam = batch(n=128, seed=3)
    terms = pm.graph_terms(images / 255.0, saliency ** 2, perm, 2)
    costs = pm.labelling_costs(terms, lam, 3, 0.2, 2)
    found = np.asarray(pm.labelling_energy(costs, terms, pm.icm_labels(costs, terms)))
    best = np.full(128, np.inf)
    for labels in itertools.product(range(3), repeat=4):
        grid = np.broadcast_to(np.reshape(labels, (1, 2, 2)), (128, 2, 2)).astype(np.int32)
        best = np.minimum(best, np.asarray(pm.labelling_energy(costs, terms, grid)))
    assert np.all(found >= best - 1e-7)
    assert np.mean(np.isclose(found, best, rtol=1e-6, atol=1e-9)) >= 0.95


@pytest.mark.parametrize("block_num", [4, 16])
def test_icm_is_never_above_its_starts(block_num):
    images, saliency, perm, lam = batch(n=16, seed=block_num)
    terms = pm.graph_terms(images / 255.0, saliency, perm, block_num)
    costs = pm.labelling_costs(terms, lam, 3, 0.2, block_num)
    found = np.asarray(pm.labelling_energy(costs, terms, pm.icm_labels(costs, terms)))
    starts = [np.argmin(np.asarray(costs), -1).astype(np.int32)]
    starts += [np.full((16, block_num, block_num), i, np.int32) for i in range(3)]
    for start in starts:
        assert np.all(found <= np.asarray(pm.labelling_energy(costs, terms, start)) + 1e-7)
    # More sweeps never give a higher energy than fewer.
    one = np.asarray(pm.labelling_energy(costs, terms, pm.icm_labels(costs, terms, sweeps=1)))
    assert np.all(found <= one + 1e-7)
    if block_num == 16:  # 4 x 4 grids settle within the first sweep
        assert np.any(found < one)


@needs_gco
@pytest.mark.parametrize("block_num", [2, 4, 8, 16])
def test_the_gco_solver_gives_the_officials_labels_and_icm_is_close(block_num):
    images, saliency, perm, lam = batch(n=8, seed=block_num)
    terms = pm.graph_terms(images / 255.0, saliency, perm, block_num)
    costs = pm.labelling_costs(terms, lam, 3, 0.2, block_num)
    labels = np.asarray(pm.gco_labels(costs, terms))
    unary1, unary2, pw_x, pw_y, beta, _ = official_terms(images, saliency, perm, block_num)
    for b in range(8):
        want = ref.graphcut_multi(unary2[b], unary1[b], pw_x[b], pw_y[b], lam[b], beta, 0.2, 3)
        np.testing.assert_array_equal(1.0 - labels[b] / 2.0, want)
    e_gco = np.asarray(pm.labelling_energy(costs, terms, labels))
    e_icm = np.asarray(pm.labelling_energy(costs, terms, pm.icm_labels(costs, terms)))
    # Measured on these inputs: at most 0.42% above gco (mostly equal).
    assert np.all(e_icm <= e_gco + 0.01 * np.abs(e_gco))


# ------------------------------------------------------------ transport and mix
def test_transport_moves_the_salient_block_into_the_kept_region_by_hand():
    # A 2x2 grid; the mask keeps only the top-left block, the saliency sits
    # in the bottom-right one: with t_eps 0.3 it moves there (cost
    # 0.3 * 2 - 1 < 0, the distance squared being 2), beating block 0.
    mask = np.array([[[1.0, 0.0], [0.0, 0.0]]], np.float32)
    saliency = np.array([[[0.0, 0.0], [0.0, 1.0]]], np.float32)
    plan = np.asarray(pm.mask_transport(mask, saliency, eps=0.3))
    np.testing.assert_array_equal(plan, ref.mask_transport(mask, saliency, eps=0.3))
    assert plan[0, 3, 0] == 1 and plan[0, :, 0].sum() == 1
    image = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    moved = np.asarray(pm.transport_blocks(image, plan, 2, 2))[0, ..., 0]
    np.testing.assert_array_equal(moved[:2, :2], image[0, 2:, 2:, 0])


@pytest.mark.parametrize("t_block", [2, 4, 8, 16])
def test_transport_plan_and_image_equal_the_officials(t_block):
    rng = np.random.default_rng(t_block)
    mask = rng.choice([0.0, 0.5, 1.0], (5, t_block, t_block)).astype(np.float32)
    saliency = rng.uniform(size=(5, t_block, t_block)).astype(np.float32)
    saliency /= saliency.sum(axis=(1, 2), keepdims=True)
    plan = np.asarray(pm.mask_transport(mask, saliency, eps=0.8))
    np.testing.assert_array_equal(plan, ref.mask_transport(mask, saliency, eps=0.8))
    images = rng.uniform(size=(5, 32, 32, 3)).astype(np.float32)
    moved = np.asarray(pm.transport_blocks(images, plan, t_block, t_block))
    want = ref.transport_image(images.transpose(0, 3, 1, 2), plan, 5, t_block, 32 // t_block)
    np.testing.assert_allclose(moved, want.transpose(0, 2, 3, 1), rtol=1e-6)


@pytest.mark.parametrize("block_num", [2, 4, 8, 16])
@pytest.mark.parametrize("t_size", [4, -1])
def test_the_mix_from_the_solved_mask_equals_the_officials(block_num, t_size):
    images, saliency, perm, lam = batch(seed=block_num)
    mixed, mask, weights = pm.puzzle_mix(images, images / 255.0, saliency, perm, lam,
                                         block_num, t_size=t_size)
    terms = pm.graph_terms(images / 255.0, saliency, perm, block_num)
    labels = np.asarray(pm.icm_labels(pm.labelling_costs(terms, lam, 3, 0.2, block_num), terms))
    want, want_mask, want_ratio = ref.mix_after_labels(
        images.transpose(0, 3, 1, 2), None, saliency, perm, 1.0 - labels / 2.0, block_num,
        t_size=t_size)
    np.testing.assert_allclose(mixed, want.transpose(0, 2, 3, 1), rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(mask)[..., 0], want_mask[:, 0])
    np.testing.assert_allclose(weights, want_ratio, rtol=1e-6)


@needs_gco
def test_the_whole_gco_mix_equals_the_officials():
    images, saliency, perm, lam = batch(seed=9)
    for block_num in (4, 16):
        mixed, mask, weights = pm.puzzle_mix(images, images / 255.0, saliency, perm, lam,
                                             block_num, solver="gco")
        unary1, unary2, pw_x, pw_y, beta, _ = official_terms(images, saliency, perm, block_num)
        labels = np.stack([ref.graphcut_multi(unary2[b], unary1[b], pw_x[b], pw_y[b], lam[b],
                                              beta, 0.2, 3) for b in range(len(lam))])
        want, want_mask, want_ratio = ref.mix_after_labels(
            images.transpose(0, 3, 1, 2), None, saliency, perm, labels, block_num)
        np.testing.assert_allclose(mixed, want.transpose(0, 2, 3, 1), rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(weights, want_ratio, rtol=1e-6)


def test_adversarial_noise_is_bounded_and_follows_the_flags():
    images, saliency, perm, lam = batch(n=4)
    noise = np.random.default_rng(0).uniform(-10 / 255, 10 / 255, images.shape).astype(np.float32)
    common = dict(transport=False, noise=noise)
    clean, mask, _ = pm.puzzle_mix(images, images / 255, saliency, perm, lam, 4,
                                   noise_anchor=False, noise_partner=False, **common)
    noisy, _, _ = pm.puzzle_mix(images, images / 255, saliency, perm, lam, 4,
                                noise_anchor=True, noise_partner=False, **common)
    mask = np.asarray(mask)
    diff = np.asarray(noisy) - np.asarray(clean)
    assert np.abs(diff).max() <= 10 + 1e-3 and np.abs(diff).max() > 2
    np.testing.assert_allclose(diff, mask * (np.clip(images + 255 * noise, 0, 255) - images),
                               atol=1e-3)


def test_non_square_sizes_keep_the_remainder_and_weights_follow_the_mask():
    rng = np.random.default_rng(2)
    images = rng.uniform(0, 255, (3, 18, 26, 3)).astype(np.float32)
    saliency = rng.uniform(size=(3, 18, 26)).astype(np.float32)
    mixed, mask, weights = pm.puzzle_mix(images, images / 255, saliency, np.array([1, 2, 0]),
                                         np.full(3, 0.5, np.float32), 4)
    assert mixed.shape == (3, 18, 26, 3) and mask.shape == (3, 18, 26, 1)
    np.testing.assert_allclose(weights, np.asarray(mask).mean(axis=(1, 2, 3)), rtol=1e-6)
    # Transport moves 4 x 4 blocks of the top-left 16 x 24 pixels; the last
    # rows and columns are each image's own, mixed by the mask.
    m = np.asarray(mask)
    want = m * images + (1 - m) * images[[1, 2, 0]]
    np.testing.assert_allclose(np.asarray(mixed)[:, 16:], want[:, 16:], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(mixed)[:, :, 24:], want[:, :, 24:], rtol=1e-6)


# ------------------------------------------------------------ the model
def classifier(shape=(16, 16, 3), classes=4):
    inputs = keras.Input(shape)
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(6, 3, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x))


def data(n=8, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32), np.arange(n) % 4


CE = keras.losses.CategoricalCrossentropy(from_logits=True)


def test_saliency_is_the_gradient_of_the_clean_loss_in_inference_mode():
    x, y = data()
    net = classifier()
    model = km.models.PuzzleMix(net, num_classes=4, input_std=(60.0, 50.0, 70.0), seed=0)
    bn = net.layers[3]
    before = np.asarray(bn.moving_mean).copy()
    onehot = np.eye(4, dtype=np.float32)[y]
    saliency, _, _ = model.saliency(tf.constant(x), onehot)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(onehot, net(xt)))
    g = tape.gradient(loss, xt).numpy() * np.array([60.0, 50.0, 70.0])
    np.testing.assert_allclose(saliency, np.sqrt(np.mean(g ** 2, -1)), rtol=1e-5)
    np.testing.assert_array_equal(bn.moving_mean, before)


def test_a_step_trains_on_the_mix_with_labels_weighted_by_each_mask():
    x, y = data()
    net = classifier()
    model = km.models.PuzzleMix(net, num_classes=4, seed=5)
    model.compile(keras.optimizers.SGD(0.0), CE)
    seed = model.seed_state.numpy()
    logs = model.train_on_batch(x, y, return_dict=True)
    onehot = np.eye(4, dtype=np.float32)[y]
    again = km.models.PuzzleMix(net, num_classes=4, seed=5)
    from keras_miamix.layers.base_mix_layer import next_seed

    again.seed_state.assign(seed)
    mixed, y_mixed, weights, masks, perm, _ = again.mix(x, onehot, next_seed(again.seed_state))
    np.testing.assert_allclose(weights, np.asarray(masks).mean(axis=(1, 2, 3)), rtol=1e-6)
    w = np.asarray(weights)[:, None]
    np.testing.assert_allclose(y_mixed, w * onehot + (1 - w) * onehot[np.asarray(perm)],
                               rtol=1e-6)
    want = float(CE(y_mixed, net(mixed, training=True)))
    np.testing.assert_allclose(logs["loss"], want, rtol=1e-5)
    assert not np.allclose(mixed, x)


def test_clean_lam_adds_twice_its_weight_times_the_clean_loss():
    x, y = data()
    net = classifier()
    model = km.models.PuzzleMix(net, num_classes=4, seed=2, clean_lam=1.0)
    model.compile(keras.optimizers.SGD(0.0), CE)
    seed = model.seed_state.numpy()
    logs = model.train_on_batch(x, y, return_dict=True)
    from keras_miamix.layers.base_mix_layer import next_seed

    again = km.models.PuzzleMix(net, num_classes=4, seed=2, clean_lam=1.0)
    again.seed_state.assign(seed)
    onehot = np.eye(4, dtype=np.float32)[y]
    mixed, y_mixed, *_ = again.mix(x, onehot, next_seed(again.seed_state))
    want = float(CE(y_mixed, net(mixed, training=True))) + 2 * float(
        CE(onehot, net(x, training=True)))
    np.testing.assert_allclose(logs["loss"], want, rtol=1e-5)


def test_seeded_xla_runs_repeat_and_batches_differ():
    x, y = data(n=12)
    losses = []
    for _ in range(2):
        keras.utils.set_random_seed(0)
        model = km.models.PuzzleMix(classifier(), num_classes=4, seed=1, adv_p=0.5)
        model.compile(keras.optimizers.SGD(0.05), CE, jit_compile=True)
        losses.append(model.fit(x, y, batch_size=6, epochs=2, shuffle=False,
                                verbose=0).history["loss"])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    onehot = np.eye(4, dtype=np.float32)[y]
    first = model.mix(x, onehot, tf.constant([1, 2]))[0]
    second = model.mix(x, onehot, tf.constant([1, 3]))[0]
    assert not np.allclose(first, second)
    with pytest.raises(ValueError, match="XLA"):
        gco_model = km.models.PuzzleMix(classifier(), num_classes=4, seed=1)
        gco_model.solver = "gco"
        tf.function(lambda a, b: gco_model.mix(a, b, tf.constant([1, 2])),
                    jit_compile=True)(x, onehot)


def test_uint8_odd_batch_batch_of_one_and_small_images():
    rng = np.random.default_rng(4)
    model = km.models.PuzzleMix(classifier((10, 14, 3)), num_classes=4, seed=0)
    assert model.grid_sizes(10, 14) == (2, 4, 8)
    for n in (5, 1):
        x = rng.integers(0, 256, (n, 10, 14, 3)).astype(np.uint8)
        onehot = np.eye(4, dtype=np.float32)[np.arange(n) % 4]
        mixed, y_mixed, weights, masks, _, _ = model.mix(x, onehot, tf.constant([0, n]))
        assert mixed.shape == (n, 10, 14, 3) and mixed.dtype == tf.float32
        np.testing.assert_allclose(np.sum(y_mixed, -1), 1.0, rtol=1e-6)
        assert np.all((0 <= np.asarray(weights)) & (np.asarray(weights) <= 1))
    with pytest.raises(ValueError, match="No grid"):
        model.grid_sizes(1, 5)


def test_saves_loads_and_resumes_the_random_stream(tmp_path):
    x, y = data(n=8)
    keras.utils.set_random_seed(0)
    model = km.models.PuzzleMix(classifier(), num_classes=4, seed=3, t_size=2, eta=0.3)
    model.compile(keras.optimizers.SGD(0.05), CE, metrics=["accuracy"])
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    path = str(tmp_path / "puzzlemix.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, km.models.PuzzleMix)
    same = lambda c: {k: v for k, v in c.items() if k != "model"}  # noqa: E731
    assert same(loaded.get_config()) == same(model.get_config()) and loaded.t_size == 2
    np.testing.assert_array_equal(loaded.seed_state.numpy(), model.seed_state.numpy())
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)
    # One more step from the file and from the live model: the same draws.
    a = model.train_on_batch(x[:4], y[:4], return_dict=True)["loss"]
    b = loaded.train_on_batch(x[:4], y[:4], return_dict=True)["loss"]
    np.testing.assert_allclose(a, b, rtol=1e-4)
    assert keras.saving.get_registered_object("keras_miamix>PuzzleMix") is km.models.PuzzleMix


def test_trains_under_mixed_precision():
    x, y = data(n=8)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = km.models.PuzzleMix(classifier(), num_classes=4, seed=0)
        model.compile(keras.optimizers.SGD(0.05), CE)
        history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.all(np.isfinite(history.history["loss"]))


def test_bad_arguments_name_the_fix(monkeypatch):
    net = classifier()
    for kwargs, match in [({"alpha": 0}, "alpha"), ({"beta": -1}, "beta"),
                          ({"n_labels": 1}, "n_labels"), ({"solver": "bp"}, "solver"),
                          ({"t_size": 0}, "t_size"), ({"adv_p": 2}, "adv_p"),
                          ({"block_nums": (1, 2)}, "block_nums"),
                          ({"value_range": (1, 0)}, "value_range")]:
        with pytest.raises(ValueError, match=match):
            km.models.PuzzleMix(net, **kwargs)
    monkeypatch.setattr(puzzle_module, "gco_available", lambda: False)
    with pytest.raises(ValueError, match="pip install gco-wrapper"):
        km.models.PuzzleMix(net, solver="gco")


@needs_gco
def test_the_solver_benchmark_writes_its_json_and_readme_table(tmp_path):
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "benchmarks"))
    import puzzlemix_solver
    import report

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (24, 16, 16, 3)).astype(np.uint8)
    y = np.arange(24) % 4
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    net = classifier()
    net.save(tmp_path / "c.keras")
    out = tmp_path / "s.json"
    puzzlemix_solver.main(["--data", str(tmp_path / "d.npz"), "--classifier",
                           str(tmp_path / "c.keras"), "--images", "16", "--batch", "8",
                           "--rounds", "1", "--json", str(out)])
    import json

    results = json.loads(out.read_text())
    assert [r["block_num"] for r in results["rows"]] == [2, 4, 8, 16]
    assert all(r["images"] == 16 and r["max_gap"] >= r["mean_gap"] for r in results["rows"])
    assert "| 16x16 |" in report.solver_table(results)

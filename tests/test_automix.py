"""AutoMix against the official code and Keras habits (issue 13)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_miamix as km
from keras_miamix.models.automix import momentum_schedule
from keras_miamix.ops.sampling import sample_uniform


def tiny_net(num_classes=4, size=16, weight_decay=0.0):
    return km.models.cifar_resnet18(num_classes=num_classes, input_shape=(size, size, 3),
                                    width=4, blocks_per_stage=(1, 1, 1, 1),
                                    weight_decay=weight_decay)


def data(n=16, size=16, k=4, seed=0):
    rng = np.random.RandomState(seed)
    return rng.rand(n, size, size, 3).astype("float32"), rng.randint(0, k, size=n)


def official_pixel_mix_block(feats, lam, index, wq, bq, wv, bv, scale, lam_concat):
    """OpenMixup's PixelMixBlock.forward (AutoMix settings: no lam_mul, no key
    conv, no x concat), written in numpy in channels-last layout; returns the
    anchor's weight `1 - mask_lam_`."""
    x_lam, x_lam_ = feats, feats[index]
    n, h, w, _ = feats.shape
    if lam_concat:
        x_lam = np.concatenate([x_lam, np.full((n, h, w, 1), lam)], -1)
        x_lam_ = np.concatenate([x_lam_, np.full((n, h, w, 1), 1 - lam)], -1)
    v_ = (x_lam_.reshape(n, h * w, -1) @ wv + bv)  # value of the partner: [N, HW, 1]
    q_x = x_lam.reshape(n, h * w, -1) @ wq + bq  # [N, HW, C/r]
    k_x = (x_lam_.reshape(n, h * w, -1) @ wq + bq).transpose(0, 2, 1)  # [N, C/r, HW]
    pairwise = q_x @ k_x / math.sqrt(q_x.shape[-1])
    pairwise = np.exp(pairwise - pairwise.max(-1, keepdims=True))
    pairwise /= pairwise.sum(-1, keepdims=True)  # softmax(dim=-1)
    mask_lam_ = (pairwise @ v_).reshape(n, h, w)
    mask_lam_ = mask_lam_.repeat(scale, axis=1).repeat(scale, axis=2)  # nearest
    return 1.0 - 1.0 / (1.0 + np.exp(-mask_lam_))


@pytest.mark.parametrize("lam_concat", [False, True])
def test_mix_block_computes_openmixups_pixel_mix_block(lam_concat):
    rng = np.random.RandomState(0)
    feats = rng.randn(5, 4, 4, 6).astype("float32")
    index = np.array([2, 0, 4, 1, 3])
    block = km.models.MixBlock(reduction=2, lambda_concat=lam_concat)
    block.build(feats.shape)
    # Weights far from the N(0, 0.01) start, so the masks are far from 0.5.
    for var in block.weights:
        var.assign(rng.randn(*var.shape).astype("float32"))
    out = block(feats, tf.constant(0.3), index, image_size=(8, 8)).numpy()[..., 0]
    expected = official_pixel_mix_block(
        feats.astype("float64"), 0.3, index, block.query.kernel.numpy(),
        block.query.bias.numpy(), block.value.kernel.numpy(), block.value.bias.numpy(), 2,
        lam_concat)
    assert np.abs(expected - 0.5).max() > 0.3
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_ema_uses_the_momentum_of_the_step_just_taken():
    x, y = data(n=8)
    # Two steps in all, no warm-up: step 0 has m = 0.999, step 1 about 0.9995.
    model = km.models.AutoMix(tiny_net(), num_classes=4, seed=0, total_steps=2,
                              momentum_warmup=0.0)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    old = [w.numpy() for w in model.teacher.trainable_weights]
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert float(momentum_schedule(0, 2, warmup_fraction=0.0)) == pytest.approx(0.999)
    m = 0.999
    student = [w.numpy() for w in model.student.trainable_weights]
    for new, o, s in zip(model.teacher.trainable_weights, old, student):
        np.testing.assert_allclose(new.numpy(), m * o + (1 - m) * s, rtol=1e-6, atol=1e-7)


class _Sequence(keras.utils.PyDataset):
    def __init__(self, x, y, batch):
        super().__init__()
        self.x, self.y, self.batch = x, y, batch

    def __len__(self):
        return len(self.x) // self.batch

    def __getitem__(self, i):
        s = slice(i * self.batch, (i + 1) * self.batch)
        return self.x[s], self.y[s]


def _steps_seen(model):
    return int(model.total_steps.numpy())


def test_schedules_read_the_run_length_from_keras():
    x, y = data(n=16)
    model = km.models.AutoMix(tiny_net(), num_classes=4, seed=0)
    model.compile(optimizer="sgd")
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)  # arrays: 4 steps x 2
    assert _steps_seen(model) == 8
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # a second fit: 8 done + 4
    assert _steps_seen(model) == 12
    model = km.models.AutoMix(tiny_net(), num_classes=4, seed=0)
    model.compile(optimizer="sgd")
    model.fit(x, y, batch_size=4, epochs=1, validation_split=0.5, verbose=0)  # 8 images
    assert _steps_seen(model) == 2 == int(model.optimizer.iterations.numpy())
    model = km.models.AutoMix(tiny_net(), num_classes=4, seed=0)
    model.compile(optimizer="sgd")
    model.fit(_Sequence(x, y, 8), epochs=3, verbose=0)
    assert _steps_seen(model) == 6
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).filter(lambda a, b: True)
    assert int(ds.cardinality()) < 0  # unknown size
    model = km.models.AutoMix(tiny_net(), num_classes=4, seed=0)
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="total_steps"):
        model.fit(ds, epochs=1, verbose=0)

    def generator():
        while True:
            yield x[:4], y[:4]

    with pytest.raises(ValueError, match="total_steps"):
        model.fit(generator(), epochs=1, verbose=0)
    model.fit(generator(), epochs=2, steps_per_epoch=3, verbose=0)
    assert _steps_seen(model) == 6
    fixed = km.models.AutoMix(tiny_net(), num_classes=4, seed=0, total_steps=1000)
    fixed.compile(optimizer="sgd")
    fixed.fit(generator(), epochs=1, steps_per_epoch=2, verbose=0)
    assert _steps_seen(fixed) == 1000


def test_regularisation_losses_are_added():
    x, y = data(n=8)
    losses = {}
    for wd in (0.0, 10.0):
        model = km.models.AutoMix(tiny_net(weight_decay=wd), num_classes=4, seed=0,
                                  total_steps=10)
        model.compile(optimizer=keras.optimizers.SGD(0.0))  # no step: same weights
        history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
        losses[wd] = history.history["loss"][0]
        reg = float(tf.add_n(model.student.losses + model.student_head_mix.losses)) if wd else 0.0
        parts = sum(history.history[k][0] for k in ("loss_student", "loss_mix_block",
                                                    "mask_loss"))
        assert losses[wd] == pytest.approx(parts + reg, rel=1e-5)
    assert losses[10.0] > losses[0.0] + 1.0


def test_sample_weights_weight_the_losses():
    x, y = data(n=8)
    model = km.models.AutoMix(tiny_net(), num_classes=4, seed=0, total_steps=10)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    history = model.fit(x, y, sample_weight=np.zeros(8), batch_size=8, epochs=1, verbose=0)
    assert history.history["loss_student"][0] == 0.0
    assert history.history["loss_mix_block"][0] == 0.0
    history = model.fit(x, y, sample_weight=np.full(8, 2.0), batch_size=8, epochs=1,
                        verbose=0)
    plain = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert history.history["loss_student"][0] > 1.5 * plain.history["loss_student"][0]


def test_keras_habits_compile_fit_and_callbacks(tmp_path):
    x, y = data(n=16)
    model = km.models.AutoMix(tiny_net(), num_classes=4, seed=0)
    with pytest.raises(ValueError, match="loss"):
        model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="metrics"):
        model.compile(optimizer="sgd", metrics=["accuracy"])
    model.compile(optimizer="sgd")
    history = model.fit(x, y, 8, 2, verbose=0)  # Keras's order: batch_size, epochs
    assert len(history.history["loss"]) == 2
    path = str(tmp_path / "best.weights.h5")
    checkpoint = keras.callbacks.ModelCheckpoint(path, monitor="val_accuracy",
                                                 save_best_only=True, save_weights_only=True)
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=0)
    history = model.fit(x, y, batch_size=8, epochs=3, validation_data=(x, y),
                        callbacks=[checkpoint, stop], verbose=0)
    assert "val_accuracy" in history.history and "val_student_accuracy" in history.history
    assert np.isfinite(checkpoint.best) and (tmp_path / "best.weights.h5").exists()
    assert stop.best == max(history.history["val_accuracy"])
    teacher = model.teacher.predict(x, verbose=0).argmax(1)
    scores = model.evaluate(x, y, return_dict=True, verbose=0)
    assert scores["accuracy"] == pytest.approx(np.mean(teacher == y))


def test_separate_heads_option():
    x, y = data(n=8)
    model = km.models.AutoMix(tiny_net(), num_classes=4, seed=0, total_steps=10,
                              separate_heads=True)
    head, head_mix = model.student.layers[-1], model.student_head_mix
    assert len(model.trainable_weights) == (len(model.student.trainable_weights)
                                           + len(head_mix.trainable_weights)
                                           + len(model.mix_block.trainable_weights))
    # The mixed loss trains the mix head; the Mix Block's loss does not reach
    # the student at all.
    yy = tf.one_hot(y, 4)
    with tf.GradientTape(persistent=True) as tape:
        out = model.compute_losses(x, yy, tf.constant(0.3), tf.constant(0.6),
                                   tf.range(8)[::-1], tf.range(8)[::-1], 0)
    assert all(g is not None for g in tape.gradient(out["loss_student"],
                                                    head_mix.trainable_weights))
    assert all(g is None for g in tape.gradient(out["loss_mix_block"],
                                                head_mix.trainable_weights))
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    old_t = [w.numpy() for w in model.teacher_head_mix.trainable_weights]
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    # EMA of the mix heads with step 0's momentum, 0.999.
    for t, o, s in zip(model.teacher_head_mix.trainable_weights, old_t,
                       head_mix.trainable_weights):
        np.testing.assert_allclose(t.numpy(), 0.999 * o + 0.001 * s.numpy(), rtol=1e-6,
                                   atol=1e-7)
    assert not np.allclose(head.get_weights()[0], head_mix.get_weights()[0])
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               model.teacher.predict(x, verbose=0), atol=1e-5)


def test_separate_heads_survive_save_and_load(tmp_path):
    x, y = data(n=8)
    model = km.models.AutoMix(tiny_net(), num_classes=4, seed=0, total_steps=10,
                              separate_heads=True)
    model.compile(optimizer="sgd")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "a.keras")
    loaded = keras.models.load_model(tmp_path / "a.keras")
    assert loaded.separate_heads
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_head_one_mix_batch_is_a_mixup_or_cutmix_of_each_sample_and_its_partner():
    """Each sample i has the constant value i, so every mixed pixel says which
    images it came from: a MixUp batch is `w * i + (1 - w) * j` everywhere, a
    CutMix batch is i outside one box of j, and the labels give i the weight
    of its own pixels."""
    n, h, w = 7, 9, 12  # odd batch, non-square
    model = km.models.AutoMix(tiny_net(num_classes=n, size=16), num_classes=n, seed=0,
                              total_steps=10, head_one_mix=True)
    x = tf.broadcast_to(tf.range(n, dtype=tf.float32)[:, None, None, None], [n, h, w, 3])
    y = tf.one_hot(tf.range(n), n)
    sw = tf.range(1, n + 1, dtype=tf.float32)
    kinds = set()
    for s in range(40):
        images, labels, weights = (v.numpy() for v in model.mix_one_batch(
            x, y, sw, tf.constant([s, 7])))
        img = images[..., 0]
        partner = np.array([np.argmax(np.where(np.arange(n) == i, -1, labels[i]))
                            if labels[i, i] < 1 else i for i in range(n)])
        own = np.diag(labels)
        constant = np.all(np.abs(img - img[:, :1, :1]) < 1e-5)
        kinds.add("mixup" if constant else "cutmix")
        for i in range(n):
            j = partner[i]
            np.testing.assert_allclose(labels[i].sum(), 1.0, atol=1e-6)
            np.testing.assert_allclose(weights[i], own[i] * sw[i] + (1 - own[i]) * sw[j],
                                       rtol=1e-5)
            if constant:
                np.testing.assert_allclose(img[i], own[i] * i + (1 - own[i]) * j, atol=1e-4)
                continue
            keep = img[i] == i
            assert np.all(keep | (img[i] == j))
            np.testing.assert_allclose(own[i], 1.0 if i == j else keep.mean(), atol=1e-6)
            if i != j and not keep.all():
                rows, cols = np.nonzero(~keep)
                box = np.zeros_like(keep)
                box[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
                np.testing.assert_array_equal(~keep, box)
        # One permutation: the partners of the samples mixed with another are distinct.
        mixed = partner != np.arange(n)
        assert len(set(partner[mixed])) == mixed.sum()
    assert kinds == {"mixup", "cutmix"}


def test_head_one_mix_draws_officials_lambdas_and_choice():
    """Over 1,000 batches of 8: MixUp in half of them (sd 0.016); its anchors'
    label weights have Beta(0.8, 0.8)'s mean 0.5 and variance 0.0962 (sd of
    the estimate about 0.0013 over some 3,500 draws; Beta(1, 1)'s would be
    0.0833), and CutMix's weights average what the package's CutMix mask gives
    for uniform lambdas (clipped boxes: about 0.72 here, not 0.5; sd of the
    difference about 0.006)."""
    model = km.models.AutoMix(tiny_net(), num_classes=4, seed=0, total_steps=10,
                              head_one_mix=True)
    n, size = 8, 16
    x = tf.broadcast_to(tf.range(n, dtype=tf.float32)[:, None, None, None], [n, size, size, 1])
    y = tf.one_hot(tf.range(n), n)
    fn = tf.function(lambda s: model.mix_one_batch(x, y, tf.ones([n]), s))
    mixup_batches, mixup_w, cutmix_w = 0, [], []
    for s in range(1000):
        images, labels, _ = (v.numpy() for v in fn(tf.constant([s, 1])))
        img = images[..., 0]
        own = np.diag(labels)
        # Pairs with another sample (a self-pair keeps weight 1 whatever lambda).
        paired = labels.max(axis=1) < 1 - 1e-6
        if np.all(np.abs(img - img[:, :1, :1]) < 1e-5):
            mixup_batches += 1
            mixup_w.append(own[paired])
        else:
            cutmix_w.append(own[paired])
    assert abs(mixup_batches / 1000 - 0.5) < 0.065, mixup_batches
    m = np.concatenate(mixup_w)
    assert abs(m.mean() - 0.5) < 0.025, m.mean()
    assert abs(m.var() - 0.64 / (2.56 * 2.6)) < 0.0065, m.var()
    c = np.concatenate(cutmix_w)
    lam = sample_uniform([20000], tf.constant([9, 9]))
    reference = km.ops.cutmix_mask(lam, size, size, tf.constant([9, 8])).numpy().mean()
    assert abs(c.mean() - reference) < 0.025, (c.mean(), reference)


def test_head_one_mix_trains_reproducibly_and_survives_save_and_load(tmp_path):
    x, y = data(n=12)

    initial = tiny_net().get_weights()
    # The Mix Block's random start too: every weight of the first model built.
    start = {}

    def fitted(**options):
        net = tiny_net()
        net.set_weights(initial)  # the same initial weights
        model = km.models.AutoMix(net, num_classes=4, seed=3, total_steps=4, **options)
        start.setdefault("mix_block", model.mix_block.get_weights())
        model.mix_block.set_weights(start["mix_block"])
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        model.fit(x, y, batch_size=6, epochs=2, verbose=0, shuffle=False)
        return model

    a, b = fitted(head_one_mix=True), fitted(head_one_mix=True)
    # Same seed, same draws: the two runs' random states agree, and a state
    # gives the same mixed batch each time. (Their weights are not compared:
    # in CI's worker they differed by up to 0.03 after 4 steps, where alone
    # they agree to 2e-7; the CPU's threaded float sums are not ordered.)
    np.testing.assert_array_equal(a.seed_state.numpy(), b.seed_state.numpy())
    seed = tf.cast(a.seed_state, tf.int32)
    for one_a, one_b in zip(a.mix_one_batch(x, tf.one_hot(y, 4), tf.ones([12]), seed),
                            b.mix_one_batch(x, tf.one_hot(y, 4), tf.ones([12]), seed)):
        np.testing.assert_array_equal(one_a.numpy(), one_b.numpy())
    # The option changes what the student learns from: same seed, other weights.
    plain = fitted()
    assert not np.allclose(plain.student.get_weights()[0], a.student.get_weights()[0])
    # Two seeds a step with the option, one without.
    assert int(a.seed_state.numpy()[1]) == 2 * int(plain.seed_state.numpy()[1])
    a.save(tmp_path / "a.keras")
    loaded = keras.models.load_model(tmp_path / "a.keras")
    assert loaded.head_one_mix
    assert ({k: v for k, v in loaded.get_config().items() if k != "backbone"}
            == {k: v for k, v in a.get_config().items() if k != "backbone"})
    np.testing.assert_allclose(loaded.predict(x, verbose=0), a.predict(x, verbose=0),
                               atol=1e-6)


def test_head_one_mix_loss_is_the_students_cross_entropy_on_the_mixed_batch():
    x, y = data(n=8)
    yy = tf.one_hot(y, 4)
    model = km.models.AutoMix(tiny_net(), num_classes=4, seed=0, total_steps=10,
                              head_one_mix=True)
    one = model.mix_one_batch(tf.constant(x), yy, tf.ones([8]), tf.constant([5, 5]))
    args = (tf.constant(x), yy, tf.constant(0.3), tf.constant(0.6), tf.range(8)[::-1],
            tf.range(8)[::-1], 0)
    with_one = model.compute_losses(*args, one_seed=tf.constant([5, 5]))
    model.head_one_mix = False
    clean = model.compute_losses(*args)
    logits = model.student(one[0], training=True).numpy()
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected_one = -np.mean(np.sum(one[1].numpy() * log_p, axis=1))
    logits_c = model.student(x, training=True).numpy()
    log_pc = logits_c - np.log(np.exp(logits_c).sum(1, keepdims=True))
    expected_clean = -np.mean(np.sum(yy.numpy() * log_pc, axis=1))
    # loss_student = one + mix; the mixed part is the same in both calls.
    np.testing.assert_allclose(
        with_one["loss_student"].numpy() - clean["loss_student"].numpy(),
        expected_one - expected_clean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(with_one["labels_one"].numpy(), one[1].numpy())


def test_every_optimised_weight_is_decayed_with_decay_all_weights():
    """With the official configuration's weight decay on every weight, the
    reported loss is the three losses plus `l2 * sum(w ** 2)` over exactly the
    optimised weights: the student (kernels, BatchNorm scales and offsets,
    the head's bias), the mixed-batch head (a separate copy) and the Mix
    Block's kernels and biases; the teacher's copies add nothing."""
    x, y = data(n=8)
    l2 = 0.25
    net = km.models.cifar_resnet18(num_classes=4, input_shape=(16, 16, 3), width=4,
                                   blocks_per_stage=(1, 1, 1, 1), weight_decay=l2,
                                   decay_all_weights=True)
    model = km.models.AutoMix(net, num_classes=4, seed=0, total_steps=10,
                              mix_block_weight_decay=l2, mix_block_decay_all_weights=True)
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # no step: same weights
    # Non-zero biases and offsets, so that leaving one out would show.
    for w in model.trainable_weights:
        if "bias" in w.path or "beta" in w.path:
            w.assign(np.full(w.shape, 0.3, "float32"))
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False).history
    weights = model.trainable_weights
    names = {w.path.split("/")[-1] for w in weights}
    assert {"kernel", "gamma", "beta", "bias"} <= names
    head_mix = {id(w) for w in model.student_head_mix.trainable_weights}
    assert len(head_mix) == 2 and head_mix <= {id(w) for w in weights}
    assert not head_mix & {id(w) for w in model.student.trainable_weights}
    expected = l2 * sum(float(np.sum(np.square(w.numpy()))) for w in weights)
    parts = sum(history[k][0] for k in ("loss_student", "loss_mix_block", "mask_loss"))
    assert history["loss"][0] == pytest.approx(parts + expected, rel=1e-5)
    assert model.get_config()["mix_block_decay_all_weights"] is True
    restored = km.models.MixBlock.from_config(model.mix_block.get_config())
    assert restored.decay_all_weights and restored.weight_decay == l2


def test_official_cifar_defaults_two_heads_and_a_constant_mask_loss_weight():
    model = km.models.AutoMix(tiny_net(), num_classes=4, seed=0)
    assert model.separate_heads and model.mask_loss_schedule == "constant"
    assert model.mask_loss_weight == 0.1 and model.mix_block_weight_decay == 0.0


def test_the_mix_block_kernels_are_weight_decayed():
    """`mix_block_weight_decay` adds `wd * sum(k ** 2)` over the Mix Block's
    two kernels (not its biases) to the loss it reports, and survives saving."""
    x, y = data(n=8)
    model = km.models.AutoMix(tiny_net(), num_classes=4, seed=0, total_steps=10,
                              mix_block_weight_decay=0.5)
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # no step: same weights
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False).history
    block = model.mix_block
    expected = 0.5 * sum(float(np.sum(np.square(k))) for k in
                         (block.query.kernel.numpy(), block.value.kernel.numpy()))
    assert expected > 0
    parts = sum(history[k][0] for k in ("loss_student", "loss_mix_block", "mask_loss"))
    assert history["loss"][0] == pytest.approx(parts + expected, rel=1e-5)
    config = model.get_config()
    assert config["mix_block_weight_decay"] == 0.5
    assert km.models.MixBlock.from_config(block.get_config()).weight_decay == 0.5
    with pytest.raises(ValueError, match="weight_decay"):
        km.models.MixBlock(weight_decay=-1.0)


def test_outside_fit_the_schedules_need_total_steps():
    """`train_on_batch` without `total_steps` would train with the momentum
    at its end and gamma at 0: it raises, naming `total_steps=`; with it (or
    after a `fit` has set the length) it trains at the schedule's step."""
    x, y = data(n=8)
    model = km.models.AutoMix(tiny_net(), num_classes=4, seed=0)
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="total_steps="):
        model.train_on_batch(x, y)
    with pytest.raises(ValueError, match="total_steps"):
        km.models.AutoMix(tiny_net(), num_classes=4, total_steps=0)
    fixed = km.models.AutoMix(tiny_net(), num_classes=4, seed=0, total_steps=5,
                              momentum=0.9, momentum_end=0.99, momentum_warmup=0.0)
    fixed.compile(optimizer="sgd")
    logs = fixed.train_on_batch(x, y, return_dict=True)
    assert logs["momentum"] == pytest.approx(0.9, abs=1e-6)  # step 0 of 5
    logs = fixed.train_on_batch(x, y, return_dict=True)  # each call its own logs
    assert logs["momentum"] == pytest.approx(0.99 - 0.09 * (math.cos(math.pi / 5) + 1) / 2,
                                             abs=1e-6)  # step 1 of 5
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # sets the length (2 steps)
    assert np.isfinite(model.train_on_batch(x, y, return_dict=True)["loss"])

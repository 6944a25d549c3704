"""MixModel, Manifold Mixup, the Mix Block and AutoMix."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_miamix as km
from keras_miamix.models.automix import momentum_schedule

CE = keras.losses.CategoricalCrossentropy(from_logits=True)


def tiny_net(num_classes=4, size=16):
    return km.models.cifar_resnet18(num_classes=num_classes, input_shape=(size, size, 3),
                                    width=4, blocks_per_stage=(1, 1, 1, 1))


def data(n=16, size=16, k=4, seed=0):
    rng = np.random.RandomState(seed)
    return rng.rand(n, size, size, 3).astype("float32"), rng.randint(0, k, size=n)


def weights_of(variables):
    return [np.array(v) for v in variables]


# ------------------------------------------------------------------ ResNet
def test_resnet18_has_named_stages_and_standard_size():
    net = km.models.cifar_resnet18(num_classes=10)
    assert [layer.name for layer in net.layers[1:]] == list(km.models.resnet.STAGES)
    # CIFAR ResNet-18: about 11.2M parameters.
    assert 11.1e6 < net.count_params() < 11.3e6
    assert net.output.shape == (None, 10)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


@pytest.mark.parametrize("decay_all", [False, True])
def test_resnet_weight_decay_on_the_kernels_or_on_every_weight(decay_all):
    """The L2 terms are `l2 * sum(w ** 2)` over the convolution and dense
    kernels, or over every trainable weight with `decay_all_weights` (as
    PyTorch's SGD decays BatchNorm's weights and biases too)."""
    l2 = 0.125
    net = km.models.small_resnet(num_classes=3, input_shape=(8, 8, 3), filters=(4, 8),
                                 weight_decay=l2, decay_all_weights=decay_all)
    for w in net.trainable_weights:  # offsets and biases are 0 at first
        w.assign(np.random.RandomState(0).rand(*w.shape).astype("float32") + 0.5)
    decayed = [w for w in net.trainable_weights if decay_all or w.path.endswith("kernel")]
    kinds = {w.path.split("/")[-1] for w in decayed}
    assert kinds == ({"kernel", "gamma", "beta", "bias"} if decay_all else {"kernel"})
    expected = l2 * sum(float(np.sum(np.square(w.numpy()))) for w in decayed)
    assert float(sum(net.losses)) == pytest.approx(expected, rel=1e-5)
    # Saved and loaded with the regularisers.
    clone = keras.models.model_from_json(net.to_json())
    clone.set_weights(net.get_weights())
    assert float(sum(clone.losses)) == pytest.approx(expected, rel=1e-5)


def test_pytorch_batch_norm_constants_match_batchnorm2d():
    """`bn_momentum=0.9, bn_epsilon=1e-5` reach every BatchNormalization, and
    such a layer in training is PyTorch's `BatchNorm2d()` (momentum 0.1,
    eps 1e-5): the same output and running mean after three batches; the
    running variance differs only by PyTorch's unbiased n / (n - 1)."""
    torch = pytest.importorskip("torch")
    net = km.models.cifar_resnet(num_classes=3, input_shape=(8, 8, 3), filters=(4,),
                                 blocks_per_stage=(1,), bn_momentum=0.9, bn_epsilon=1e-5)
    norms = [la for la in _all_layers(net) if isinstance(la, keras.layers.BatchNormalization)]
    assert len(norms) == 3 and all(
        (la.momentum, la.epsilon) == (0.9, 1e-5) for la in norms)
    default = km.models.small_resnet(num_classes=3, input_shape=(8, 8, 3), filters=(4,))
    assert {(la.momentum, la.epsilon) for la in _all_layers(default)
            if isinstance(la, keras.layers.BatchNormalization)} == {(0.99, 1e-3)}

    rng = np.random.RandomState(1)
    keras_bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    torch_bn = torch.nn.BatchNorm2d(5).double()
    n = 4 * 6 * 7
    for _ in range(3):
        x = (rng.randn(4, 6, 7, 5) * 3 + 2).astype("float32")
        out = keras.ops.convert_to_numpy(keras_bn(x, training=True))
        ref = torch_bn(torch.from_numpy(x.astype("float64")).permute(0, 3, 1, 2))
        np.testing.assert_allclose(out, ref.permute(0, 2, 3, 1).detach().numpy(),
                                   rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras_bn.moving_mean),
                               torch_bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    # Each update mixes 0.1 of the batch variance, biased (Keras) or not.
    torch_var = torch_bn.running_var.numpy()
    keras_var = keras.ops.convert_to_numpy(keras_bn.moving_variance)
    biased_share = (torch_var - 0.9 ** 3) * (n - 1) / n + 0.9 ** 3
    np.testing.assert_allclose(keras_var, biased_share, rtol=1e-5)


# ---------------------------------------------------------------- MixModel
@pytest.mark.parametrize("name", ["MixUp", "CutMix", "FMix", "GridMix", "GMix", "AGMix",
                                  "ResizeMix", "SaliencyMix", "MiAMix"])
def test_mix_model_trains_with_each_mixing_layer_under_xla(name):
    x, y = data()
    model = km.models.MixModel(tiny_net(), getattr(km, name)(num_classes=4, seed=0))
    model.compile("adam", CE, metrics=["accuracy"], jit_compile=True)
    before = weights_of(model.model.trainable_weights)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = weights_of(model.model.trainable_weights)
    assert any(not np.allclose(a, b) for a, b in zip(before, after))
    # evaluate and predict use the wrapped model unchanged.
    np.testing.assert_allclose(model.predict(x, verbose=0), model.model.predict(x, verbose=0),
                               atol=1e-5)
    assert "accuracy" in model.evaluate(x, y, verbose=0, return_dict=True)


def test_mix_model_honours_sample_weights():
    # All-zero sample weights stay zero after mixing: zero loss, no update.
    x, y = data()
    model = km.models.MixModel(tiny_net(), km.MiAMix(num_classes=4, seed=0))
    model.compile(keras.optimizers.SGD(0.1), CE)
    before = weights_of(model.model.trainable_weights)
    history = model.fit(x, y, sample_weight=np.zeros(16), batch_size=8, epochs=1, verbose=0)
    assert history.history["loss"][0] == 0.0
    for a, b in zip(before, weights_of(model.model.trainable_weights)):
        np.testing.assert_array_equal(a, b)


def test_mix_model_mixup_off_epoch_stops_mixing_without_retracing():
    x, y = data(n=8)
    model = km.models.MixModel(tiny_net(), km.CutMix(num_classes=4, seed=0), mixup_off_epoch=1)
    y1 = tf.one_hot(y, 4)
    model.epoch.assign(0)
    _, mixed_labels, _ = model.mixed_forward(x, y1, None)
    assert not np.allclose(mixed_labels, y1)
    model.epoch.assign(1)
    _, clean_labels, _ = model.mixed_forward(x, y1, None)
    np.testing.assert_array_equal(clean_labels, y1)
    traces = []
    original = model.mixed_forward

    def counting(*args, **kwargs):
        traces.append(1)  # Python side effect: runs once per trace
        return original(*args, **kwargs)

    model.mixed_forward = counting
    model.compile("sgd", CE)
    model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert int(model.epoch.numpy()) == 2
    assert len(traces) == 1


def test_mix_model_save_and_load(tmp_path):
    x, y = data(n=8)
    model = km.models.MixModel(tiny_net(), km.MiAMix(num_classes=4, seed=3), mixup_off_epoch=5)
    model.compile("adam", CE)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = os.path.join(tmp_path, "mix.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.mixer, km.MiAMix) and loaded.mixup_off_epoch == 5
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)


def test_mix_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mixer"):
        km.models.MixModel(tiny_net(), keras.layers.Dense(2))
    with pytest.raises(ValueError, match="mixup_off_epoch"):
        km.models.MixModel(tiny_net(), km.MixUp(), mixup_off_epoch=-1)


# ----------------------------------------------------------- ManifoldMixup
def test_manifold_mixup_mixes_hidden_states_at_the_chosen_layer():
    # Blocks that add 1, multiply by 2 and add 10: mixing after block b must
    # give lam * h + (1 - lam) * h[perm] there, and the rest applied on top.
    inputs = keras.Input((2,))
    a = keras.layers.Lambda(lambda t: t + 1.0, name="add1")(inputs)
    b = keras.layers.Lambda(lambda t: t * 2.0, name="times2")(a)
    c = keras.layers.Lambda(lambda t: t + 10.0, name="add10")(b)
    model = keras.Model(inputs, c)
    mm = km.models.ManifoldMixup(model, mix_layers=("input", "add1", "times2"), num_classes=2)
    x = np.array([[1.0, 2.0], [3.0, 5.0], [7.0, 11.0]], np.float32)
    y = tf.one_hot([0, 1, 0], 2)
    perm = tf.constant([2, 0, 1])
    lam = tf.constant([0.25])
    h1 = x + 1
    mixed = 0.25 * h1 + 0.75 * h1[[2, 0, 1]]
    out, y_mixed = mm.mixed_pass(x, y, tf.constant(2), lam, perm)
    np.testing.assert_allclose(out, mixed * 2 + 10, atol=1e-5)
    np.testing.assert_allclose(y_mixed, 0.25 * y + 0.75 * tf.gather(y, perm), atol=1e-6)
    out0, _ = mm.mixed_pass(x, y, tf.constant(0), lam, perm)
    np.testing.assert_allclose(out0, ((0.25 * x + 0.75 * x[[2, 0, 1]]) + 1) * 2 + 10, atol=1e-5)


def test_manifold_mixup_draws_layers_uniformly_and_trains_under_xla():
    x, y = data()
    mm = km.models.ManifoldMixup(tiny_net(), num_classes=4, seed=0)
    assert mm.positions == (0, 2, 3)  # input, after stage1, after stage2
    mm.compile("sgd", CE, jit_compile=True)
    history = mm.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_manifold_mixup_rejects_unknown_layers_and_non_chains():
    with pytest.raises(ValueError, match="mix_layers"):
        km.models.ManifoldMixup(tiny_net(), mix_layers=("stage9",))
    inputs = keras.Input((4,))
    a = keras.layers.Dense(4, name="a")(inputs)
    b = keras.layers.Add(name="skip")([a, inputs])
    with pytest.raises(ValueError, match="chain"):
        km.models.ManifoldMixup(keras.Model(inputs, b))


# ------------------------------------------------------------------ AutoMix
def make_automix(**kwargs):
    kwargs.setdefault("num_classes", 4)
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("total_steps", 100)
    return km.models.AutoMix(tiny_net(), feature_layer="stage3", **kwargs)


def test_teacher_starts_as_an_exact_copy_and_ema_is_exact_after_one_step():
    x, y = data(n=8)
    model = make_automix()
    for t, s in zip(model.teacher.weights, model.student.weights):
        np.testing.assert_array_equal(t, s)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    old_teacher = weights_of(model.teacher.trainable_weights)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    m = float(momentum_schedule(0, 100))
    student = weights_of(model.student.trainable_weights)
    for new, old, s in zip(weights_of(model.teacher.trainable_weights), old_teacher, student):
        np.testing.assert_allclose(new, m * old + (1 - m) * s, rtol=1e-6, atol=1e-7)
    assert any(not np.allclose(s, o) for s, o in zip(student, old_teacher))


def test_momentum_schedule_follows_openmixup():
    total = 1000
    assert float(momentum_schedule(0, total)) == pytest.approx(0.999)
    assert float(momentum_schedule(99, total)) == pytest.approx(0.999)  # warm-up
    t = 500
    expected = 0.999999 - (0.999999 - 0.999) * (np.cos(np.pi * t / total) + 1) / 2
    assert float(momentum_schedule(t, total)) == pytest.approx(expected, abs=1e-7)
    assert float(momentum_schedule(total, total)) == pytest.approx(0.999999, abs=1e-7)


def test_gradients_flow_only_where_they_should():
    """One head (the papers' description; two heads: test_separate_heads_option)."""
    x, y = data(n=8)
    model = make_automix(separate_heads=False)
    y1 = tf.one_hot(y, 4)
    perm = tf.constant([1, 2, 3, 4, 5, 6, 7, 0])
    with tf.GradientTape(persistent=True) as tape:
        out = model.compute_losses(tf.constant(x), y1, tf.constant(0.3), tf.constant(0.6),
                                   perm, perm, tf.constant(0, tf.int64))
    student, teacher = model.student.trainable_weights, model.teacher.trainable_weights
    block = model.mix_block.trainable_weights
    # Teacher branch: gradients reach the Mix Block only.
    assert all(g is None for g in tape.gradient(out["loss_mix_block"], student))
    assert all(g is not None for g in tape.gradient(out["loss_mix_block"], block))
    # Student branch: none reach the Mix Block (its mask is stopped).
    assert all(g is None for g in tape.gradient(out["loss_student"], block))
    assert all(g is not None for g in tape.gradient(out["loss_student"], student))
    # The optimizer only ever sees the student and the Mix Block.
    ids = {id(v) for v in model.trainable_variables}
    assert not any(id(v) in ids for v in teacher)
    assert ids == {id(v) for v in student + block}


def test_teacher_is_never_optimised_but_uses_batch_statistics():
    x, y = data(n=8)
    model = make_automix(momentum=1.0, momentum_end=1.0)  # EMA keeps the teacher
    model.compile(optimizer=keras.optimizers.SGD(0.5), jit_compile=True)
    old = weights_of(model.teacher.trainable_weights)
    bn = [v for v in model.teacher.non_trainable_weights if "moving_mean" in v.path]
    old_bn = weights_of(bn)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for a, b in zip(old, weights_of(model.teacher.trainable_weights)):
        np.testing.assert_array_equal(a, b)
    # Training-mode BatchNorm in the teacher passes updates its moving statistics.
    assert any(not np.allclose(a, b) for a, b in zip(old_bn, weights_of(bn)))


def test_masks_are_in_unit_range_at_image_size_and_start_near_half():
    x, y = data(n=8)
    model = make_automix()
    out = model.compute_losses(tf.constant(x), tf.one_hot(y, 4), tf.constant(0.3),
                               tf.constant(0.5), tf.range(8)[::-1], tf.range(8),
                               tf.constant(0, tf.int64))
    for key in ("mask_mb", "mask_bb"):
        mask = out[key].numpy()
        assert mask.shape == (8, 16, 16, 1)
        assert mask.min() >= 0 and mask.max() <= 1
        assert np.abs(mask - 0.5).max() < 0.05


def test_plain_mixup_for_the_student_near_the_edges():
    x, y = data(n=8)
    model = make_automix()
    out = model.compute_losses(tf.constant(x), tf.one_hot(y, 4), tf.constant(0.3),
                               tf.constant(0.05), tf.range(8)[::-1], tf.range(8),
                               tf.constant(0, tf.int64))
    np.testing.assert_allclose(out["mask_bb"], 0.05)


def test_mask_loss_formula_on_a_hand_made_mask():
    mask = np.zeros((2, 4, 4, 1), np.float32)
    mask[0] = 1.0  # mean 0.5
    loss = km.models.mask_loss(tf.constant(mask), 0.2, 0.1, margin=0.1)
    assert float(loss) == pytest.approx(0.1 * (abs(0.5 - 0.2) - 0.1))
    assert float(km.models.mask_loss(tf.constant(mask), 0.45, 0.1)) == 0.0


def test_mask_loss_weight_is_constant_by_default_or_decreases_linearly():
    """OpenMixup's CIFAR configs keep gamma at 0.1; the AAAI paper's linear
    decay to 0 is the option."""
    model = make_automix()
    for step in (0, 50, 100):
        assert float(model.mask_loss_gamma(tf.constant(step))) == pytest.approx(0.1)
    linear = make_automix(mask_loss_schedule="linear")
    assert float(linear.mask_loss_gamma(tf.constant(0))) == pytest.approx(0.1)
    assert float(linear.mask_loss_gamma(tf.constant(50))) == pytest.approx(0.05)
    assert float(linear.mask_loss_gamma(tf.constant(100))) == pytest.approx(0.0)


def test_lambda_concat_mix_block_and_bad_arguments():
    model = make_automix(lambda_concat=True)
    assert model.mix_block.query.kernel.shape[0] == model.mix_block.value.kernel.shape[0]
    with pytest.raises(ValueError, match="feature_layer"):
        km.models.AutoMix(tiny_net(), feature_layer="nope")
    with pytest.raises(ValueError, match="momentum"):
        make_automix(momentum=0.9999999, momentum_end=0.99)


def test_automix_predicts_with_the_teacher_and_evaluates_both():
    x, y = data(n=8)
    model = make_automix()
    model.compile(optimizer="sgd")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               model.teacher.predict(x, verbose=0), atol=1e-5)
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    assert {"accuracy", "student_accuracy", "loss"} <= set(result)
    assert "teacher_accuracy" not in result


def test_automix_save_load_and_resume_give_the_same_weights(tmp_path):
    x, y = data(n=16)
    model = make_automix()
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    path = os.path.join(tmp_path, "automix.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_automix_lowers_the_loss_on_real_images(cifar):
    x = cifar["x_train"][:256].astype("float32") / 255.0
    y = cifar["y_train"][:256].astype("int32")
    net = km.models.cifar_resnet18(num_classes=10, width=8, blocks_per_stage=(1, 1, 1, 1))
    model = km.models.AutoMix(net, num_classes=10, seed=0, total_steps=64)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), jit_compile=True)
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0)
    losses = history.history["loss_student"]
    assert losses[-1] < losses[0] - 0.2, losses


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np, tensorflow as tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras_miamix as km
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    x = np.random.RandomState(0).rand(16, 16, 16, 3).astype("float32")
    y = np.arange(16) % 4
    with strategy.scope():
        net = km.models.cifar_resnet18(num_classes=4, input_shape=(16, 16, 3), width=4,
                                       blocks_per_stage=(1, 1, 1, 1))
        model = km.models.AutoMix(net, num_classes=4, seed=0, total_steps=10)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        mm = km.models.MixModel(
            km.models.cifar_resnet18(num_classes=4, input_shape=(16, 16, 3), width=4,
                                     blocks_per_stage=(1, 1, 1, 1)),
            km.MixUp(num_classes=4, seed=0))
        mm.compile("sgd", keras.losses.CategoricalCrossentropy(from_logits=True))
    assert strategy.num_replicas_in_sync == 2
    h = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(h.history["loss"]))
    for v in model.teacher.trainable_weights + model.student.trainable_weights:
        values = [np.array(t) for t in v.value.values]
        np.testing.assert_array_equal(values[0], values[1])
    h2 = mm.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(h2.history["loss"][0])
    print("MIRRORED_OK")
    """
)


def test_two_replica_mirrored_strategy_in_its_own_process(tmp_path):
    script = os.path.join(tmp_path, "mirrored.py")
    with open(script, "w") as f:
        f.write(MIRRORED_SCRIPT)
    result = subprocess.run([sys.executable, script], capture_output=True, text=True,
                            timeout=600)
    assert "MIRRORED_OK" in result.stdout, result.stderr[-3000:]


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("kind", ["mix_model", "manifold_mixup", "automix"])
def test_models_train_under_mixed_float16(kind, jit, mixed_float16):
    x = np.random.RandomState(0).rand(16, 16, 16, 3).astype("float32")
    y = np.arange(16) % 4
    net = km.models.cifar_resnet18(num_classes=4, input_shape=(16, 16, 3), width=4)
    assert net.compute_dtype == "float16"
    loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    if kind == "mix_model":
        model = km.models.MixModel(net, km.MiAMix(num_classes=4, seed=0))
        model.compile("sgd", loss, jit_compile=jit)
    elif kind == "manifold_mixup":
        model = km.models.ManifoldMixup(net, num_classes=4, seed=0)
        model.compile("sgd", loss, jit_compile=jit)
    else:
        model = km.models.AutoMix(net, num_classes=4, seed=0)
        model.compile(optimizer="sgd", jit_compile=jit)
    before = [w.numpy().copy() for w in net.trainable_weights]
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for values in history.history.values():
        assert np.all(np.isfinite(values))
    # Keras's loss scaling wrapped the optimizer, and the weights moved.
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, net.trainable_weights))
    assert all(w.dtype == "float32" for w in net.trainable_weights)

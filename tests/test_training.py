"""The training floor: data loading, the one training path, the command."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import StopAt
from conftest import epoch_counter
from conftest import stop_before

from keras_miamix import training
from keras_miamix.training import cli
from keras_miamix.training import data as data_lib

QUICK = dict(epochs=1, steps_per_epoch=2, batch_size=16, verbose=0)


@pytest.fixture(scope="module")
def digits():
    return training.load_data("digits", limit=64, test_limit=32)


def test_digits_are_real_offline_images_split_80_20():
    data = training.load_data("digits")
    assert (data.train_size, data.test_size) == (1437, 360)
    assert data.image_shape == (32, 32, 1) and data.num_classes == 10
    x, y = data.take_images(data.train_size)
    assert x.dtype == np.uint8 and x.shape == (1437, 32, 32, 1)
    np.testing.assert_allclose(data.mean, [x.mean()], rtol=1e-6)
    np.testing.assert_allclose(data.std, [x.std()], rtol=1e-6)
    assert sorted(np.bincount(y)) [0] > 100  # every digit is there


def test_npz_float_and_grey_arrays(tmp_path):
    rng = np.random.RandomState(0)
    path = str(tmp_path / "d.npz")
    x = rng.rand(10, 12, 9).astype("float32")  # floats in [0, 1], no channel axis
    np.savez(path, x_train=x, y_train=np.arange(10) % 3, x_test=x[:4], y_test=[0, 1, 2, 2],
             label_names=np.array(["a", "b", "c"]))
    data = training.load_data(path)
    assert data.image_shape == (12, 9, 1) and data.num_classes == 3
    assert data.class_names == ["a", "b", "c"]
    images, labels = data.take_images(10)
    np.testing.assert_array_equal(images[..., 0], np.round(x * 255).astype(np.uint8))
    np.testing.assert_array_equal(labels, np.arange(10) % 3)
    with pytest.raises(training.DatasetUnavailableError, match="No such .npz"):
        training.load_data(str(tmp_path / "missing.npz"))
    np.savez(path, x_train=x)
    with pytest.raises(ValueError, match="missing"):
        training.load_data(path)


def test_folder_of_class_subfolders(tmp_path):
    from PIL import Image

    rng = np.random.RandomState(0)
    for name, value in (("cats", 30), ("dogs", 200)):
        os.makedirs(tmp_path / name)
        for i in range(5):
            pixels = np.full((20, 24, 3), value, np.uint8) + rng.randint(0, 3, (20, 24, 3),
                                                                          dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    data = training.load_data(str(tmp_path), image_size=16)
    assert data.class_names == ["cats", "dogs"]
    assert data.train_size + data.test_size == 10 and data.image_shape == (16, 16, 3)
    x, y = data.take_images(data.train_size)
    # Labels follow the folders: dark images are cats, bright ones dogs.
    np.testing.assert_array_equal(y, (x.mean(axis=(1, 2, 3)) > 100).astype(int))


def test_tfds_dataset_by_name_with_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=24, data_dir=str(tmp_path)):
        data = training.load_data("cifar10", data_dir=str(tmp_path))
        assert data.image_shape == (32, 32, 3) and data.num_classes == 10
        assert data.train_size == 24
        result = training.train(training.TrainConfig(method="cutmix", **QUICK), data=data)
    assert 0.0 <= result.report["test_accuracy"] <= 1.0


def _offline(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def no_network(self, *args, **kwargs):
        raise ConnectionError("Failed to resolve 'www.cs.toronto.edu'")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_network)


def test_tfds_without_internet_is_one_clear_paragraph(monkeypatch, tmp_path, capsys):
    _offline(monkeypatch)
    with pytest.raises(training.DatasetUnavailableError) as err:
        training.load_data("cifar10", data_dir=str(tmp_path))
    message = str(err.value)
    assert "could not be downloaded" in message and "--dataset digits" in message
    assert ".npz" in message and "folder" in message and "\n" not in message
    code = cli.main(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2 and "--dataset digits" in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_unknown_dataset_names_are_refused(tmp_path):
    with pytest.raises(training.DatasetUnavailableError, match="not a TensorFlow Datasets"):
        training.load_data("no_such_dataset_xyz", data_dir=str(tmp_path))
    with pytest.raises(training.DatasetUnavailableError, match="neither an existing folder"):
        training.load_data("./no/such/folder")


def test_train_pipeline_augments_reproducibly_and_mixes(digits):
    a = [x.numpy() for x, _ in training.train_pipeline(digits, 16, seed=3).take(2)]
    b = [x.numpy() for x, _ in training.train_pipeline(digits, 16, seed=3).take(2)]
    np.testing.assert_array_equal(a[0], b[0])
    c = [x.numpy() for x, _ in training.train_pipeline(digits, 16, seed=4).take(1)]
    assert not np.array_equal(a[0], c[0])
    plain = [x.numpy() for x, _ in training.train_pipeline(digits, 16, seed=3, augment=False)
             .take(1)]
    assert not np.array_equal(a[0], plain[0])
    # Pad-and-crop with zero padding: pixels are shifted originals or zeros,
    # and the pixel values stay in 0..255.
    assert a[0].min() >= 0 and a[0].max() <= 255
    mixer = training.make_mixer("mixup", digits.num_classes, {}, seed=0)
    for _, y in training.train_pipeline(digits, 16, seed=3, mixer=mixer).take(1):
        assert y.shape == (16, 10)
        np.testing.assert_allclose(y.numpy().sum(1), 1.0, atol=1e-6)
        assert (y.numpy() > 0).sum(1).max() == 2  # mixed labels


@pytest.mark.parametrize("method, where", [
    ("none", "data"), ("miamix", "data"), ("gmix", "device"), ("manifold_mixup", "data"),
    ("automix", "data"), ("keras_mixup", "data"), ("saliencymix", "data"), ("augmix", "data"),
    ("puzzlemix", "data")])
def test_every_kind_of_method_trains_through_the_one_path(method, where, digits, tmp_path):
    config = training.TrainConfig(method=method, where=where, output=str(tmp_path), **QUICK)
    result = training.train(config, data=digits)
    report = result.report
    assert report["method"] == method and report["epochs"] == 1
    assert 0.0 <= report["test_accuracy"] <= 1.0
    files = {"history.json", "curves.png", "report.json", "model.keras"}
    if method != "keras_mixup":
        files.add("samples.png")
    assert files <= set(os.listdir(tmp_path))
    assert json.load(open(tmp_path / "report.json"))["test_accuracy"] == report["test_accuracy"]
    # The cosine decays to the method's floor (AutoMix's paper's 1e-3 on
    # CIFAR-10, else 0), reached at the run's last step.
    floor = 1e-3 if method == "automix" else 0.0
    assert report["min_lr"] == floor
    assert float(result.model.optimizer.learning_rate) == pytest.approx(floor, abs=1e-8)
    if method == "puzzlemix":  # its saliency is on the normalised input
        assert result.model.input_std == tuple(digits.std)
    if method == "automix":
        assert {"teacher_accuracy", "student_accuracy"} <= set(report)
        # OpenMixup's optimisation: weight decay 1e-4 (PyTorch-style) on every
        # weight, the Mix Block's too, and PyTorch's BatchNorm constants.
        assert (report["weight_decay"], report["decay_all_weights"],
                report["batch_norm"]) == (1e-4, True, "torch")
        assert result.model.mix_block.weight_decay == pytest.approx(1e-4 / 2)
        assert result.model.mix_block.decay_all_weights
        stem_bn = result.classifier.get_layer("stem").get_layer("stem_bn")
        assert (stem_bn.momentum, stem_bn.epsilon) == (0.9, 1e-5)
        assert stem_bn.gamma_regularizer is not None
        import keras as keras_

        whole = keras_.models.load_model(tmp_path / "automix.keras")
        x, _ = digits.take_images(4, "test")
        perm = tf.constant([1, 0, 3, 2])
        np.testing.assert_allclose(whole.predict_masks(x, 0.5, perm),
                                   result.model.predict_masks(x, 0.5, perm), atol=1e-5)
    else:
        assert (report["weight_decay"], report["decay_all_weights"],
                report["batch_norm"]) == (5e-4, False, "keras")
    # The saved classifier predicts what the trained one predicts.
    import keras

    x, _ = digits.take_images(4, "test")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict(x.astype("float32"), verbose=0),
                               result.classifier.predict(x.astype("float32"), verbose=0),
                               atol=1e-4)


def test_an_interrupted_run_resumes_from_its_output_folder(digits, tmp_path):
    config = training.TrainConfig(method="cutmix", output=str(tmp_path),
                                  **{**QUICK, "epochs": 2})
    with pytest.raises(StopAt):
        training.train(config, data=digits, callbacks=[stop_before(1)])
    assert os.path.isdir(tmp_path / "backup")
    assert len(json.load(open(tmp_path / "history.json"))) == 1

    count = epoch_counter()
    result = training.train(config, data=digits, callbacks=[count])
    assert count.epochs == [1]  # only the epoch that was missing
    assert [h["epoch"] for h in result.history] == [0, 1]
    assert not os.path.exists(tmp_path / "backup")


def test_a_run_stopped_while_writing_its_backup_resumes_from_the_epoch_before(digits, tmp_path):
    config = training.TrainConfig(method="mixup", output=str(tmp_path), **{**QUICK, "epochs": 3})
    with pytest.raises(StopAt):
        training.train(config, data=digits, callbacks=[stop_before(2)])
    # Epoch 1's backup cut short, as a stop in the middle of writing it does.
    weights = tmp_path / "backup" / "latest.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])

    count = epoch_counter()
    result = training.train(config, data=digits, callbacks=[count])
    assert count.epochs == [1, 2]  # from epoch 0's backup
    assert [h["epoch"] for h in result.history] == [0, 1, 2]


def test_same_seed_same_run(digits):
    a = training.train(training.TrainConfig(method="cutmix", **QUICK), data=digits)
    b = training.train(training.TrainConfig(method="cutmix", **QUICK), data=digits)
    assert a.history[0]["loss"] == pytest.approx(b.history[0]["loss"], rel=1e-5)


def test_config_and_method_arguments_are_checked():
    with pytest.raises(ValueError, match="method"):
        training.TrainConfig(method="mixop").validate()
    with pytest.raises(ValueError, match="epochs"):
        training.TrainConfig(epochs=0).validate()
    with pytest.raises(ValueError, match="min_lr=0.5"):
        training.TrainConfig(lr=0.1, min_lr=0.5).validate()
    with pytest.raises(ValueError, match="automix's default"):
        training.TrainConfig(method="automix", lr=1e-4).validate()
    assert training.TrainConfig(method="automix", min_lr=0.0).resolved_min_lr() == 0.0
    assert training.TrainConfig(method="mixup").resolved_min_lr() == 0.0
    automix, mixup = training.TrainConfig(method="automix"), training.TrainConfig(method="mixup")
    assert [automix.resolved(k) for k in ("weight_decay", "decay_all_weights", "batch_norm")] \
        == [1e-4, True, "torch"]
    assert [mixup.resolved(k) for k in ("weight_decay", "decay_all_weights", "batch_norm")] \
        == [5e-4, False, "keras"]
    assert training.TrainConfig(method="automix", weight_decay=0.0).resolved("weight_decay") == 0
    with pytest.raises(ValueError, match="weight_decay=-1"):
        training.TrainConfig(weight_decay=-1.0).validate()
    with pytest.raises(ValueError, match="batch_norm='tf'"):
        training.TrainConfig(batch_norm="tf").validate()
    with pytest.raises(ValueError, match="batch_norm='tf'"):
        training.build_classifier("small_resnet", 10, (32, 32, 3), batch_norm="tf")
    with pytest.raises(ValueError, match="own networks"):
        training.build_classifier("MobileNetV2", 10, (32, 32, 3), decay_all_weights=True)
    assert training.parse_method_args(["k_max=3", "p_self=0.05", "merge=sum",
                                       "methods=('mixup','cutmix')"]) == {
        "k_max": 3, "p_self": 0.05, "merge": "sum", "methods": ("mixup", "cutmix")}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        training.parse_method_args(["k_max"])
    with pytest.raises(ValueError, match="p_self"):
        training.make_mixer("miamix", 10, {"p_self": 2.0})
    with pytest.raises(ValueError, match="k_max"):
        training.make_mixer("cutmix", 10, {"k_max": 2})
    with pytest.raises(ValueError, match="model"):
        training.build_classifier("NoSuchNet", 10, (32, 32, 3))


def test_keras_applications_models_by_name():
    model = training.build_classifier("MobileNetV2", 5, (32, 32, 3),
                                      ((100.0,) * 3, (50.0,) * 3), weight_decay=5e-4)
    assert model(tf.zeros((2, 32, 32, 3))).shape == (2, 5)
    assert len(model.losses) > 10  # an L2 term per kernel


def test_command_help_lists_methods_datasets_and_models(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    for word in (*training.METHODS, "digits", "tf_flowers", ".npz", "folder", "small_resnet",
                 "resnet18", "keras.applications", "--set", "--where", "--jit", "--output"):
        assert word in out, word


def test_command_refuses_bad_method_arguments_by_name(capsys):
    assert cli.main(["train", "--method", "miamix", "--set", "k_max=0"]) == 2
    err = capsys.readouterr().err
    assert "k_max" in err and "Traceback" not in err


def test_command_trains_and_shows(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["train", "--method", "mixup", "--epochs", "1", "--limit", "48",
                     "--batch-size", "16", "--min-lr", "0.01", "--weight-decay", "1e-3",
                     "--decay-all-weights", "--batch-norm", "torch", "--quiet",
                     "--output", str(out)])
    assert code == 0
    report = json.load(open(out / "report.json"))
    assert (report["min_lr"], report["weight_decay"], report["decay_all_weights"],
            report["batch_norm"]) == (0.01, 1e-3, True, "torch")
    printed = capsys.readouterr().out
    assert "test top-1 accuracy" in printed and "seconds per epoch" in printed
    assert {"history.json", "curves.png", "samples.png", "report.json", "model.keras"} <= set(
        os.listdir(out))
    png = tmp_path / "fmix.png"
    assert cli.main(["show", "--method", "fmix", "--output", str(png)]) == 0
    assert png.stat().st_size > 10000
    # PuzzleMix draws with the trained classifier's saliency.
    png = tmp_path / "puzzlemix.png"
    assert cli.main(["show", "--method", "puzzlemix", "--classifier", str(out / "model.keras"),
                     "--set", "block_nums=(4,)", "--output", str(png)]) == 0
    assert png.stat().st_size > 10000
    assert cli.main(["show", "--method", "puzzlemix", "--set", "n_labels=1"]) == 2
    assert "n_labels" in capsys.readouterr().err


def test_json_history_overwrites_the_resumed_epochs(tmp_path):
    path = str(tmp_path / "h.json")
    h = training.JsonHistory(path)
    for epoch in range(3):
        h.on_epoch_begin(epoch)
        h.on_epoch_end(epoch, {"loss": float(epoch)})
    h2 = training.JsonHistory(path)  # a resumed run starting at epoch 1
    h2.on_epoch_begin(1)
    h2.on_epoch_end(1, {"loss": 10.0})
    assert [e["loss"] for e in json.load(open(path))] == [0.0, 10.0]


def test_offline_message_names_the_choices():
    message = data_lib._offline_message("cifar10", ConnectionError("x"))
    assert "cifar10" in message and "digits" in message
    missing = ModuleNotFoundError("No module named 'importlib_resources'",
                                  name="importlib_resources")
    message = data_lib._offline_message("cifar10", missing)
    assert "pip install importlib_resources" in message and "digits" in message
    assert "\n" not in message


@pytest.mark.parametrize("where", ["data", "device"])
def test_miamix_views_are_the_only_flip_and_crop(where):
    # MiAMix draws its own two views: the pipeline's flip and crop would come
    # on top (crops up to 8 px), in the pipeline as on the device.
    plan = training.trainer.augmentation_plan
    args, augment = plan(training.TrainConfig(method="miamix", where=where))
    assert not augment and "augmentation" not in args
    args, augment = plan(training.TrainConfig(method="cutmix", where=where))
    assert augment
    args, augment = plan(training.TrainConfig(method="miamix", where=where, augment=False))
    assert not augment and args["augmentation"] is None
    args, augment = plan(training.TrainConfig(
        method="miamix", where=where, method_args={"augmentation": None}))
    assert augment  # MiAMix without views of its own: the pipeline's


def test_pipeline_and_miamix_share_one_flip_and_crop():
    # One function, one padding mode (zeros): MiAMix's anchor view of a
    # batch is the pipeline's augmentation drawn from the same maps.
    from keras_miamix.ops import augment as aug
    from keras_miamix.ops.mixing import gather_partners

    images = np.random.RandomState(0).rand(8, 12, 10, 3).astype("float32") + 1
    seed = np.array([3, 4], "int32")
    out = np.asarray(aug.random_flip_translate(images, seed))
    rows, cols = aug.flip_translate_maps(8, 12, 10, seed)
    np.testing.assert_array_equal(
        out, np.asarray(gather_partners(images, np.arange(8, dtype="int32"), rows, cols,
                                        zero_outside=True)))
    shift = np.asarray(rows)[:, 0] * -1  # rows = r - dy
    for i in range(8):
        dy = int(shift[i])
        zero_rows = out[i, :dy] if dy > 0 else out[i, out.shape[1] + dy:]
        assert (zero_rows == 0).all()  # zero padding, never a reflection
        inner = out[i, max(dy, 0):out.shape[1] + min(dy, 0)]
        assert (inner.max(axis=(1, 2)) > 0).all()

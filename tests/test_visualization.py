"""Plots draw what the layers did; the notebook's code is valid Python."""

import os

import numpy as np
import pytest

import keras_miamix as km

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from keras_miamix import visualization  # noqa: E402


def test_mix_for_display_matches_the_layer_info():
    images = np.random.RandomState(0).rand(6, 16, 16, 3).astype("float32")
    d = visualization.mix_for_display(km.CutMix(seed=0), images)
    p = d["info"]["partner_index"]
    np.testing.assert_array_equal(d["partners"], images[p])
    expected = d["masks"][..., None] * images + (1 - d["masks"][..., None]) * images[p]
    np.testing.assert_allclose(d["mixed"], expected, atol=1e-6)
    np.testing.assert_allclose(d["label_weights"], d["masks"].mean((1, 2)), atol=1e-6)


def test_plots_have_one_row_per_sample(tmp_path):
    images = (np.random.RandomState(0).rand(5, 16, 16, 3) * 255).astype("uint8")
    fig = visualization.plot_mixing(km.FMix(seed=0), images, num=3)
    assert len(fig.axes) == 3 * 4
    fig.savefig(os.path.join(tmp_path, "fmix.png"))
    fig = visualization.plot_miamix_stages(km.MiAMix(seed=0), images.astype("float32") / 255,
                                           num=2)
    assert len(fig.axes) == 2 * (2 * 2 + 4)  # views, k_max x (raw, final), merged, mixed


def test_miamix_display_uses_its_two_views():
    images = np.random.RandomState(1).rand(6, 16, 16, 3).astype("float32")
    d = visualization.mix_for_display(km.MiAMix(seed=0), images)
    m = d["masks"][..., None]
    # The mixed image is made of the views, not of the inputs.
    np.testing.assert_allclose(d["mixed"], m * d["anchors"] + (1 - m) * d["partners"],
                               atol=1e-5)
    raw, final = d["info"]["raw_layer_masks"], d["info"]["layer_masks"]
    untouched = ~(d["info"]["rotated"] | d["info"]["smoothed"])
    np.testing.assert_array_equal(raw[untouched], final[untouched])


def test_method_pictures_and_curves():
    images = (np.random.RandomState(0).rand(8, 16, 16, 3) * 255).astype("uint8")
    labels = np.arange(8) % 3
    for method in ("cutmix", "manifold_mixup", "none"):
        fig = visualization.plot_method_samples(method, images, labels, ["a", "b", "c"], num=2)
        titles = [ax.get_title() for ax in fig.axes]
        assert "anchor: a" in titles and len(fig.axes) == 8
        visualization.close(fig)
    with pytest.raises(ValueError, match="trained"):
        visualization.plot_method_samples("automix", images)
    history = [{"loss": 2.0, "accuracy": 0.2, "val_loss": 2.1, "val_accuracy": 0.3},
               {"loss": 1.5, "accuracy": 0.4, "val_loss": 1.7, "val_accuracy": 0.5}]
    fig = visualization.plot_history(history)
    lines = fig.axes[1].get_lines()
    np.testing.assert_array_equal(lines[1].get_ydata(), [0.3, 0.5])


def test_saliencymix_and_augmix_pictures_show_what_they_computed():
    images = (np.random.RandomState(2).rand(6, 16, 16, 3) * 255).astype("uint8")
    labels = np.arange(6) % 3
    fig = visualization.plot_method_samples("saliencymix", images, labels, ["a", "b", "c"],
                                            num=2)
    assert len(fig.axes) == 2 * 5
    saliency_ax = fig.axes[4]
    assert saliency_ax.get_title() == "partner saliency, peak, box"
    box = saliency_ax.patches[0]
    # The drawn box is the mask's hole and the dot the peak the layer used.
    d = visualization.mix_for_display(km.SaliencyMix(seed=0), images)
    rows, cols = np.nonzero(d["masks"][0] < 0.5)
    assert box.get_width() == cols.max() - cols.min() + 1
    assert saliency_ax.get_lines()[0].get_xdata()[0] == d["info"]["peak_cols"][0]
    visualization.close(fig)
    fig = visualization.plot_method_samples("augmix", images, labels, ["a", "b", "c"], num=2)
    assert len(fig.axes) == 2 * (3 + 2)  # image, three chains, output
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "a" and titles[4].startswith("AugMix, m=")
    assert all(t.startswith("w=") for t in titles[1:4])
    info = km.AugMix(seed=0)(images, return_info=True)[1]
    first_ops = [km.ops.augmix.ALL_OPS[o] for o in np.asarray(info["ops"])[0, 0] if o >= 0]
    assert titles[1].split("\n")[1] == " + ".join(first_ops)
    visualization.close(fig)


def test_automix_display_weights_labels_by_lambda():
    # AutoMix's loss weights labels by lambda (not by the mask's mean); the
    # display says so, and shows each mask's mean beside it. Without
    # lambda_concat the Mix Block does not see lambda: the same masks at
    # every lambda; with it, they differ.
    import keras_miamix as km

    images = np.random.RandomState(0).rand(6, 16, 16, 3).astype("float32")
    for concat in (False, True):
        net = km.models.cifar_resnet18(num_classes=4, input_shape=(16, 16, 3), width=4,
                                       blocks_per_stage=(1, 1, 1, 1))
        model = km.models.AutoMix(net, num_classes=4, lambda_concat=concat, seed=0)
        model.build((None, 16, 16, 3))
        low, high = (visualization.automix_masks_for_display(model, images, lam)
                     for lam in (0.2, 0.8))
        np.testing.assert_allclose(low["label_weights"], 0.2)
        np.testing.assert_allclose(high["label_weights"], 0.8)
        np.testing.assert_allclose(low["mask_means"], low["masks"].mean((1, 2)), atol=1e-6)
        assert np.array_equal(low["masks"], high["masks"]) == (not concat)
    fig = visualization.plot_automix_lambdas([low, high], (0.2, 0.8), num=2)
    titles = [ax.get_title() for ax in fig.axes]
    assert "label weight 0.80" in titles and any(t.startswith("lambda=0.2: mask") for t in titles)
    visualization.close(fig)


def test_make_pictures_script_writes_every_picture(tmp_path):
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "docs", "make_pictures.py")
    spec = importlib.util.spec_from_file_location("make_pictures", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    # PuzzleMix's saliency from an untrained classifier of the digits' shape.
    assert script.main(["--dataset", "digits", "--out", str(tmp_path), "--skip-automix",
                        "--puzzlemix-classifier", ""]) == 0
    import keras_miamix.training as training

    written = sorted(os.listdir(tmp_path / "methods"))
    assert written == sorted(f"{m}.png"
                             for m in [*training.LAYER_METHODS, "augmix", "puzzlemix"])
    assert (tmp_path / "miamix_stages.png").stat().st_size > 10_000


def test_puzzlemix_picture_draws_what_the_model_mixed():
    import keras

    import keras_miamix as km

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (6, 16, 16, 3)).astype(np.float32)
    net = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255.0),
                            keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(),
                            keras.layers.Dense(3)])
    model = km.models.PuzzleMix(net, num_classes=3, seed=0)
    d = visualization.puzzlemix_for_display(model, images, np.arange(6) % 3, seed=1,
                                            block_num=4)
    assert int(d["block_num"]) == 4
    np.testing.assert_allclose(d["label_weights"], d["masks"].mean(axis=(1, 2, 3)), rtol=1e-6)
    m = d["masks"]
    np.testing.assert_allclose(d["mixed"], m * d["anchor_moved"] + (1 - m) * d["partner_moved"],
                               rtol=1e-5, atol=1e-3)
    fig = visualization.plot_method_samples("puzzlemix", images, np.arange(6) % 3, num=3,
                                            mixer=model)
    assert len(fig.axes) == 21 and fig.axes[3].get_title() == "mask (white = anchor)"
    visualization.close(fig)
    with pytest.raises(ValueError, match="mixer"):
        visualization.plot_method_samples("puzzlemix", images)

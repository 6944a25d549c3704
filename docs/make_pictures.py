"""Makes the README's pictures from the package's own visualisation functions.

    python docs/make_pictures.py                      # CIFAR-10 subset, else tfds cifar10
    python docs/make_pictures.py --dataset cifar10    # any --dataset of keras-miamix

Writes docs/methods/<method>.png (masks and mixed samples of every mixing
layer), docs/miamix_stages.png, and docs/automix_masks.png: the masks of an
AutoMix trained through `keras_miamix.training.train`, either for
`--automix-epochs` here or, better, a full run's saved model
(`--automix-model benchmarks/results/work/automix-seed0/automix.keras`, written
by `benchmarks/accuracy.py`): after a few epochs the Mix Block still gives
masks of about 0.5 everywhere.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import keras_miamix as km  # noqa: E402
from keras_miamix import training  # noqa: E402
from keras_miamix import visualization  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SUBSET = os.environ.get("KERAS_MIAMIX_CIFAR",
                        os.path.join(HERE, "..", "..", "shared", "data", "cifar10_subset.npz"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=SUBSET if os.path.exists(SUBSET) else "cifar10")
    parser.add_argument("--out", default=HERE)
    parser.add_argument("--automix-epochs", type=int, default=4)
    parser.add_argument("--automix-model", help="a saved AutoMix (.keras) to draw")
    parser.add_argument("--skip-automix", action="store_true")
    args = parser.parse_args(argv)
    data = training.load_data(args.dataset)
    images, labels = data.take_images(32)
    os.makedirs(os.path.join(args.out, "methods"), exist_ok=True)
    picks = [0, 5, 9]  # three anchors, the same for every method
    for method in training.LAYER_METHODS:
        fig = visualization.plot_method_samples(method, images[picks + list(range(10, 20))],
                                                labels[picks + list(range(10, 20))],
                                                data.class_names, num=3, seed=1)
        fig.savefig(os.path.join(args.out, "methods", f"{method}.png"), dpi=75)
        visualization.close(fig)
    fig = visualization.plot_miamix_stages(km.MiAMix(seed=3), images, num=5)
    fig.savefig(os.path.join(args.out, "miamix_stages.png"), dpi=70)
    visualization.close(fig)
    if not args.skip_automix:
        if args.automix_model:
            import keras

            model = keras.models.load_model(args.automix_model)
            accuracy = model.evaluate(training.test_pipeline(data, 256), verbose=0,
                                      return_dict=True)["accuracy"]
            trained_for = "a full run"
        else:
            result = training.train(training.TrainConfig(
                method="automix", epochs=args.automix_epochs, verbose=2), data=data)
            model, accuracy = result.model, result.report["test_accuracy"]
            trained_for = f"{args.automix_epochs} epochs"
        rows = []
        for lam in (0.2, 0.5, 0.8):
            rows.append(visualization.automix_masks_for_display(model, images[:8], lam))
        fig = visualization.plot_automix_lambdas(rows, (0.2, 0.5, 0.8), labels[:8],
                                                 data.class_names, num=4)
        fig.suptitle(f"AutoMix's learned masks after {trained_for} (test accuracy "
                     f"{100 * accuracy:.1f}%): white = anchor", fontsize=10, y=1.0)
        fig.savefig(os.path.join(args.out, "automix_masks.png"), dpi=70)
        visualization.close(fig)
    print("wrote", sorted(os.listdir(os.path.join(args.out, "methods"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Makes the README's pictures from the package's own visualisation functions.

    python docs/make_pictures.py                      # CIFAR-10 subset, else tfds cifar10
    python docs/make_pictures.py --dataset cifar10    # any --dataset of keras-miamix
    python docs/make_pictures.py --methods saliencymix  # one method's picture only

Writes docs/methods/<method>.png (masks and mixed samples of every mixing
layer; AugMix's chains; PuzzleMix's saliency, mask and transport, the
saliency from `--puzzlemix-classifier`, by default the classifier of the
benchmark's finished MiAMix run when it is there, else an untrained one),
docs/miamix_stages.png, and docs/automix_masks.png: the masks of an AutoMix
trained through `keras_miamix.training.train`, either for
`--automix-epochs` here or, better, a run of `benchmarks/accuracy.py`
(`--automix-run benchmarks/results/work/automix-seed0`: its saved model when
the run has finished, else the weights of its last backup, restored through
`train` in a copy of the folder): after a few epochs the Mix Block still gives
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


def automix_from_backup(run):
    """The AutoMix of an unfinished `benchmarks/accuracy.py` run: `train` with
    the benchmark's protocol and as many epochs as the backup holds restores
    it and trains no further (in a copy: a finished `train` deletes its
    backup). Returns (model, test accuracy, description)."""
    import json
    import shutil
    import tempfile

    sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
    import accuracy as benchmark

    with open(os.path.join(run, "backup", "training_metadata.json")) as f:
        done = json.load(f)["epoch"]
    settings = benchmark.protocol(False)
    planned = settings["epochs"]
    seed = int(os.path.basename(os.path.normpath(run)).rsplit("seed", 1)[-1])
    copy = os.path.join(tempfile.mkdtemp(), "run")
    shutil.copytree(run, copy)
    result = training.train(training.TrainConfig(
        method="automix", seed=seed, output=copy, verbose=0, **dict(settings, epochs=done)),
        data=training.load_data(benchmark.DEFAULT_DATA))
    return (result.model, result.report["test_accuracy"],
            f"{done} of {planned} epochs (a benchmark run in progress)")


PUZZLEMIX_CLASSIFIER = os.path.join(HERE, "..", "benchmarks", "results", "work", "miamix-seed0",
                                    "model.keras")


def puzzlemix_picture(classifier_path, data, images, labels):
    """PuzzleMix on an 8 x 8 grid, the saliency of a trained classifier."""
    import keras

    if classifier_path and os.path.exists(classifier_path):
        classifier = keras.models.load_model(classifier_path)
        how = "saliency of a trained classifier"
    else:
        classifier = training.build_classifier("small_resnet", data.num_classes,
                                               data.image_shape, (data.mean, data.std))
        how = "saliency of an untrained classifier"
    model = km.models.PuzzleMix(classifier, num_classes=data.num_classes, input_std=data.std,
                                seed=0)
    rows = [0, 5, 9, 10, 11, 12, 13, 14]
    return visualization.plot_puzzlemix(
        model, images[rows], labels[rows], num=3, class_names=data.class_names, seed=5,
        block_num=8, title=f"PuzzleMix, 8x8 grid ({how})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=SUBSET if os.path.exists(SUBSET) else "cifar10")
    parser.add_argument("--out", default=HERE)
    parser.add_argument("--automix-epochs", type=int, default=4)
    parser.add_argument("--automix-model", help="a saved AutoMix (.keras) to draw")
    parser.add_argument("--automix-run",
                        help="an AutoMix run folder of benchmarks/accuracy.py, finished or not")
    parser.add_argument("--skip-automix", action="store_true")
    parser.add_argument("--puzzlemix-classifier", default=PUZZLEMIX_CLASSIFIER,
                        help="the trained classifier (.keras) whose saliency PuzzleMix uses")
    parser.add_argument("--methods", nargs="+",
                        choices=[*training.LAYER_METHODS, "augmix", "puzzlemix"],
                        help="only these layers' pictures (no MiAMix stages, no AutoMix)")
    args = parser.parse_args(argv)
    data = training.load_data(args.dataset)
    images, labels = data.take_images(32)
    os.makedirs(os.path.join(args.out, "methods"), exist_ok=True)
    picks = [0, 5, 9]  # three anchors, the same for every method
    for method in args.methods or [*training.LAYER_METHODS, "augmix", "puzzlemix"]:
        if method == "puzzlemix":
            fig = puzzlemix_picture(args.puzzlemix_classifier, data, images, labels)
            fig.savefig(os.path.join(args.out, "methods", "puzzlemix.png"), dpi=75)
            visualization.close(fig)
            continue
        fig = visualization.plot_method_samples(method, images[picks + list(range(10, 20))],
                                                labels[picks + list(range(10, 20))],
                                                data.class_names, num=3, seed=1)
        fig.savefig(os.path.join(args.out, "methods", f"{method}.png"), dpi=75)
        visualization.close(fig)
    if args.methods:
        return 0
    fig = visualization.plot_miamix_stages(km.MiAMix(seed=3), images, num=5)
    fig.savefig(os.path.join(args.out, "miamix_stages.png"), dpi=70)
    visualization.close(fig)
    if not args.skip_automix:
        if args.automix_run and not os.path.exists(
                os.path.join(args.automix_run, "automix.keras")):
            model, accuracy, trained_for = automix_from_backup(args.automix_run)
        elif args.automix_model or args.automix_run:
            import keras

            model = keras.models.load_model(
                args.automix_model or os.path.join(args.automix_run, "automix.keras"))
            accuracy = model.evaluate(training.test_pipeline(data, 256), verbose=0,
                                      return_dict=True)["accuracy"]
            trained_for = "a full run"
        else:
            result = training.train(training.TrainConfig(
                method="automix", epochs=args.automix_epochs, verbose=2), data=data)
            model, accuracy = result.model, result.report["test_accuracy"]
            trained_for = f"{args.automix_epochs} epochs"
        heading = (f"AutoMix's learned masks after {trained_for} (test accuracy "
                   f"{100 * accuracy:.1f}%)")
        if model.lambda_concat:
            lambdas = (0.2, 0.5, 0.8)
            rows = [visualization.automix_masks_for_display(model, images[:8], lam)
                    for lam in lambdas]
            fig = visualization.plot_automix_lambdas(rows, lambdas, labels[:8],
                                                     data.class_names, num=4)
            fig.suptitle(heading + ": white = anchor", fontsize=10, y=1.0)
        else:
            # OpenMixup's CIFAR setting: the Mix Block does not see lambda, so
            # one lambda shows it all; the labels are weighted by lambda.
            fig = visualization.plot_automix_masks(
                model, images[:8], labels[:8], lam=0.5, num=4, class_names=data.class_names)
            fig.suptitle(f"AutoMix's learned masks after {trained_for}\n"
                         f"test accuracy {100 * accuracy:.1f}%; white = anchor (mean above)\n"
                         "labels weighted by lambda = 0.5 (its Mix Block does not see lambda)",
                         fontsize=8.5)
            fig.tight_layout()
        fig.savefig(os.path.join(args.out, "automix_masks.png"), dpi=70)
        visualization.close(fig)
    print("wrote", sorted(os.listdir(os.path.join(args.out, "methods"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

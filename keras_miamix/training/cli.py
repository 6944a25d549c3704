"""The `keras-miamix` command (also `python -m keras_miamix`).

    keras-miamix train --method miamix                  # digits, offline
    keras-miamix train --method cutmix --where device --dataset cifar10
    keras-miamix train --method miamix --set k_max=3 --set p_self=0.05
    keras-miamix show --method fmix --output fmix.png   # the picture only
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_miamix.training import data as data_lib  # noqa: E402
from keras_miamix.training import methods as methods_lib  # noqa: E402

DATASET_HELP = (
    "'digits' (scikit-learn's bundled handwritten digits: real images, no download; the "
    "default), any image classification dataset of TensorFlow Datasets by name (cifar10, "
    "cifar100, tf_flowers, ...; see --data-dir), a local .npz with x_train, y_train, x_test "
    "and y_test, or a folder of class sub-folders of images (optionally with train/ and "
    "test/ sub-folders)")
MODEL_HELP = (
    "'small_resnet' (3 stages of 32/64/128 filters, quick), 'resnet18' (the CIFAR "
    "ResNet-18), or any keras.applications model by name, e.g. ResNet50, MobileNetV2 "
    "(random weights; the image size must suit it)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-miamix",
        description="Train image classifiers with mixed-sample data augmentation "
                    "(MiAMix, AutoMix, Manifold Mixup, MixUp, CutMix, FMix, GridMix, GMix, "
                    "AGMix, ResizeMix, SaliencyMix, PuzzleMix, AugMix), or draw what a "
                    "method does.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a classifier with one method",
                           description="Train a classifier with one mixing method and write "
                                       "history.json, curves.png, samples.png, report.json "
                                       "and model.keras to --output (resumes from it).")
    train.add_argument("--method", default="miamix", choices=methods_lib.METHODS,
                       help="the mixing method (default: miamix; 'none' trains without "
                            "mixing; keras_mixup/keras_cutmix are Keras core's layers)")
    train.add_argument("--where", default="data", choices=("data", "device"),
                       help="mixing layers: in the tf.data pipeline (data) or inside the "
                            "compiled train step through MixModel (device)")
    _common(train)
    train.add_argument("--model", default="small_resnet", help=MODEL_HELP)
    train.add_argument("--epochs", type=int, default=20)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--lr", type=float, default=0.1,
                       help="SGD learning rate, cosine-decayed to --min-lr (default 0.1)")
    train.add_argument("--min-lr", type=float,
                       help="the floor of the cosine decay (default: the method's, 1e-3 for "
                            "automix as in its paper's CIFAR-10 runs, else 0)")
    train.add_argument("--weight-decay", type=float,
                       help="PyTorch-style SGD weight decay (default: the method's, 1e-4 for "
                            "automix as in OpenMixup's CIFAR configs, else 5e-4)")
    train.add_argument("--decay-all-weights", action=argparse.BooleanOptionalAction,
                       help="decay BatchNorm's weights and the biases too, as PyTorch's SGD "
                            "(default: the method's, on for automix, else kernels only)")
    train.add_argument("--batch-norm", choices=("keras", "torch"),
                       help="BatchNormalization constants: Keras's (momentum 0.99, epsilon "
                            "1e-3) or PyTorch's (0.1 on the new batch, 1e-5); default: the "
                            "method's, torch for automix, else keras")
    train.add_argument("--no-augment", action="store_true",
                       help="no random flip and pad-and-crop before mixing")
    train.add_argument("--limit", type=int, help="use only this many training images")
    train.add_argument("--jit", action="store_true", help="compile the train step with XLA")
    train.add_argument("--data-service", metavar="ADDRESS",
                       help="run the input pipeline (mixing included) on a tf.data service "
                            "dispatcher, e.g. grpc://localhost:5050 (each worker mixes its own "
                            "share of the images)")
    train.add_argument("--output", help="output folder (default: runs/METHOD-DATASET-seedN)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")

    show = sub.add_parser("show", help="save a picture of a method's masks and mixed samples",
                          description="Save a picture of one method's masks and mixed "
                                      "samples on real images, without training.")
    show.add_argument("--method", required=True,
                      choices=[m for m in methods_lib.METHODS
                               if m not in methods_lib.KERAS_BASELINES + ("automix",)],
                      help="the method (AutoMix learns its masks: train it to see them; "
                           "puzzlemix follows a classifier's saliency: see --classifier)")
    _common(show)
    show.add_argument("--num", type=int, default=6, help="samples to draw")
    show.add_argument("--output", help="the PNG to write (default: METHOD.png)")
    show.add_argument("--classifier", metavar="MODEL.keras",
                      help="puzzlemix: the trained classifier whose saliency guides the masks "
                           "(e.g. a run's model.keras; default: an untrained small_resnet)")
    return parser


def _common(p):
    p.add_argument("--dataset", default="digits", help=DATASET_HELP)
    p.add_argument("--data-dir", help="TensorFlow Datasets' data directory")
    p.add_argument("--image-size", type=int, help="resize images to this side")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="an argument of the method's layer or model, e.g. --set k_max=3 "
                        "--set p_self=0.05 (repeatable; values are Python literals)")
    p.add_argument("--seed", type=int, default=0)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        return _show(args)
    except data_lib.DatasetUnavailableError as err:
        print(f"keras-miamix: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"keras-miamix: error: {err}", file=sys.stderr)
        return 2


def _dataset_tag(spec):
    base = os.path.basename(os.path.normpath(spec))
    return base[:-4] if base.endswith(".npz") else base


def _train(args):
    from keras_miamix.training import trainer

    config = trainer.TrainConfig(
        method=args.method, method_args=methods_lib.parse_method_args(args.set),
        where=args.where, dataset=args.dataset, data_dir=args.data_dir,
        image_size=args.image_size, limit=args.limit, model=args.model, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, min_lr=args.min_lr, weight_decay=args.weight_decay,
        decay_all_weights=args.decay_all_weights, batch_norm=args.batch_norm,
        augment=not args.no_augment, seed=args.seed, jit=args.jit,
        data_service=args.data_service,
        output=args.output or os.path.join(
            "runs", f"{args.method}-{_dataset_tag(args.dataset)}-seed{args.seed}"),
        verbose=2 if args.quiet else "auto")
    config.validate()
    # Fail on bad method arguments before loading any data.
    if args.method in methods_lib.LAYER_METHODS:
        methods_lib.make_mixer(args.method, None, config.method_args)
    result = trainer.train(config)
    print("\n".join(trainer.summary_lines(result.report)))
    print(f"  wrote {', '.join(result.report['files'])} to {config.output}")
    return 0


def _show(args):
    from keras_miamix import visualization

    method_args = methods_lib.parse_method_args(args.set)
    if args.method in methods_lib.LAYER_METHODS:
        methods_lib.make_mixer(args.method, None, method_args)
    data = data_lib.load_data(args.dataset, args.data_dir, args.image_size)
    images, labels = data.take_images(max(args.num, 8))
    mixer = None
    if args.method == "puzzlemix":
        mixer = _puzzlemix_for_show(args, data, method_args)
    fig = visualization.plot_method_samples(args.method, images, labels, data.class_names,
                                            num=args.num, mixer=mixer,
                                            method_args=method_args, seed=args.seed)
    path = args.output or f"{args.method}.png"
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")
    return 0


def _puzzlemix_for_show(args, data, method_args):
    import keras

    if args.classifier:
        classifier = keras.models.load_model(args.classifier)
        if tuple(classifier.input_shape[1:]) != tuple(data.image_shape):
            raise ValueError(f"--classifier takes images of shape {classifier.input_shape[1:]}; "
                             f"the dataset's are {tuple(data.image_shape)}.")
    else:
        classifier = methods_lib.build_classifier("small_resnet", data.num_classes,
                                                  data.image_shape, (data.mean, data.std))
    return methods_lib.make_puzzlemix(classifier, data.num_classes, method_args, args.seed,
                                      data.std)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

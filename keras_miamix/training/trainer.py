"""The one training path: `train(TrainConfig(...))`.

The `keras-miamix train` command, the notebooks and `benchmarks/accuracy.py`
all call this function, so a result from one is a result from the others.
It loads the data, builds the classifier and the method, trains with `fit`
(SGD with momentum, cosine decay to the method's floor, PyTorch-style weight
decay), evaluates
on the test split and, given an output folder, writes `history.json`,
`curves.png`, `samples.png`, `report.json` and the trained classifier as
`model.keras`; an interrupted run resumes from that folder
(`keras.callbacks.BackupAndRestore`).
"""

import dataclasses
import json
import math
import os
import time

import keras
import numpy as np

from keras_miamix.models.base_mix_trainer import BaseMixTrainer
from keras_miamix.training import data as data_lib
from keras_miamix.training import methods as methods_lib


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run depends on.

    Attributes:
        method: one of `keras_miamix.training.METHODS`.
        method_args: keyword arguments of the method's layer or model.
        where: "data" (mix in the `tf.data` pipeline) or "device" (mix inside
            the compiled train step through `MixModel`).
        dataset: "digits", a TensorFlow Datasets name, an `.npz` or a folder.
        data_dir: TensorFlow Datasets' data directory.
        image_size: resize images to this side (or (height, width)).
        limit: use only this many training images.
        test_limit: use only this many test images.
        model: "small_resnet", "resnet18" or a `keras.applications` name.
        epochs, batch_size, lr, momentum: the optimisation.
        min_lr: the floor of the cosine decay.
        weight_decay: PyTorch-style SGD weight decay (an L2 of half of it).
        decay_all_weights: decay every weight (BatchNorm's, biases) of the
            package's own networks, not only the kernels.
        batch_norm: "keras" or "torch", the BatchNormalization constants of
            the package's own networks (`methods.BATCH_NORM`).
            For these four, None (the default) means the method's own setting:
            `methods.PROTOCOL_SETTINGS` (floor 0, weight decay 5e-4 on the
            kernels, Keras's constants) except where
            `methods.METHOD_SETTINGS` has the official configuration
            (AutoMix: floor 1e-3, 1e-4 on every weight, PyTorch's constants).
        augment: random flip and 4-pixel pad-and-crop before mixing. MiAMix
            (with `--where data` or `device`) makes its own two views with the
            same flip and crop instead; with `augment=False` it gets
            `augmentation=None` unless `method_args` says otherwise.
        steps_per_epoch: optional cap on the steps of an epoch (quick runs).
        seed: seeds the shuffling, the augmentation, the method and the
            weights' initialisation.
        jit: compile the train step with XLA.
        data_service: address of a tf.data service dispatcher (e.g.
            "grpc://localhost:5050"): the pipeline, mixing included, then runs
            on the service's workers (`train_pipeline`), each worker taking
            its own share of the images ("distributed_epoch"). `train` seeds
            TensorFlow globally, so "parallel_epochs" (every worker a whole
            epoch) would have every worker send the same batches; it is left
            to `train_pipeline`.
        output: folder for the files and the resumable backup (None: none).
        verbose: Keras' `fit` verbosity ("auto": progress bars).
    """

    method: str = "miamix"
    method_args: dict = dataclasses.field(default_factory=dict)
    where: str = "data"
    dataset: str = "digits"
    data_dir: str = None
    image_size: object = None
    limit: int = None
    test_limit: int = None
    model: str = "small_resnet"
    epochs: int = 15
    batch_size: int = 64
    lr: float = 0.1
    min_lr: float = None
    momentum: float = 0.9
    weight_decay: float = None
    decay_all_weights: bool = None
    batch_norm: str = None
    augment: bool = True
    steps_per_epoch: int = None
    seed: int = 0
    jit: bool = False
    data_service: str = None
    output: str = None
    verbose: object = "auto"

    def validate(self):
        if self.method not in methods_lib.METHODS:
            raise ValueError(f"`method` must be one of {methods_lib.METHODS}; "
                             f"received method={self.method!r}.")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"`{name}` must be a positive integer; received {name}={value!r}.")
        if not self.lr > 0:
            raise ValueError(f"`lr` must be positive; received lr={self.lr!r}.")
        if not self.resolved("weight_decay") >= 0:
            raise ValueError("`weight_decay` must be >= 0; received "
                             f"weight_decay={self.weight_decay!r}.")
        if not 0 <= self.resolved_min_lr() <= self.lr:
            given = "" if self.min_lr is not None else f" ({self.method}'s default)"
            raise ValueError(f"`min_lr` must be between 0 and lr={self.lr!r}; received "
                             f"min_lr={self.resolved_min_lr()!r}{given}.")
        methods_lib.check_batch_norm(self.resolved("batch_norm"))

    def resolved(self, name):
        """Setting `name` ("min_lr", "weight_decay", "decay_all_weights",
        "batch_norm"), or the method's default where it is None."""
        value = getattr(self, name)
        return methods_lib.default_setting(self.method, name) if value is None else value

    def resolved_min_lr(self):
        """`min_lr`, or the method's default where it is None."""
        return float(self.resolved("min_lr"))


@dataclasses.dataclass
class TrainResult:
    """What `train` returns: the report (also `report.json`), the per-epoch
    history, the trained classifier (the network `predict` uses: AutoMix's
    teacher), the model that was fitted and the data."""

    report: dict
    history: list
    classifier: keras.Model
    model: keras.Model
    data: data_lib.ImageData


def augmentation_plan(config):
    """(method_args, pipeline_augments): who flips and crops the images.

    The pipeline does (`data.train_pipeline`), except for MiAMix, which makes
    its own two views with the same flip and crop in the pipeline or on the
    device (`--where device`), where the pipeline's would come on top of
    them. With `augment=False` nothing does: MiAMix then gets
    `augmentation=None` unless `method_args` sets it.
    """
    method_args = dict(config.method_args)
    if config.method == "miamix" and not config.augment:
        method_args.setdefault("augmentation", None)
    own_views = config.method == "miamix" and method_args.get("augmentation",
                                                              "default") is not None
    return method_args, config.augment and not own_views


def train(config, data=None, callbacks=None):
    """Trains one method on one dataset; see the module docstring.

    Args:
        config: a `TrainConfig`.
        data: an already loaded `ImageData` (otherwise loaded from `config`).
        callbacks: extra Keras callbacks.

    Returns:
        A `TrainResult`.
    """
    config.validate()
    if data is None:
        data = data_lib.load_data(config.dataset, config.data_dir, config.image_size,
                                  config.limit, config.test_limit)
    keras.utils.set_random_seed(config.seed)
    steps = config.steps_per_epoch or math.ceil(data.train_size / config.batch_size)
    if config.steps_per_epoch:
        steps = min(steps, math.ceil(data.train_size / config.batch_size))
    total_steps = steps * config.epochs
    weight_decay = float(config.resolved("weight_decay"))
    decay_all = bool(config.resolved("decay_all_weights"))
    classifier = methods_lib.build_classifier(
        config.model, data.num_classes, data.image_shape, (data.mean, data.std),
        weight_decay, decay_all, config.resolved("batch_norm"))
    method_args, augment = augmentation_plan(config)
    model, mixer = methods_lib.build_training_model(
        config.method, classifier, data.num_classes, config.where, method_args,
        config.seed, total_steps, weight_decay, input_std=data.std,
        decay_all_weights=decay_all)
    train_ds = data_lib.train_pipeline(
        data, config.batch_size, config.seed, augment, mixer,
        data_service=config.data_service)
    test_ds = data_lib.test_pipeline(data, config.batch_size)
    min_lr = config.resolved_min_lr()
    optimizer = keras.optimizers.SGD(
        keras.optimizers.schedules.CosineDecay(config.lr, total_steps,
                                               alpha=min_lr / config.lr),
        momentum=config.momentum)
    if config.method == "automix":
        model.compile(optimizer=optimizer, jit_compile=config.jit)
    else:
        model.compile(optimizer, keras.losses.CategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], jit_compile=config.jit)

    out = config.output
    history_cb = JsonHistory(os.path.join(out, "history.json") if out else None)
    all_callbacks = [history_cb, *(callbacks or [])]
    if out:
        os.makedirs(out, exist_ok=True)
        if config.method not in ("automix", "puzzlemix", *methods_lib.KERAS_BASELINES):
            _save_samples(config, data, mixer, os.path.join(out, "samples.png"))
        # Build every weight (optimizer included) before a backup is restored.
        if not model.built:
            model.build((None, *data.image_shape))
        # `double_checkpoint`: the backup is overwritten in place at each
        # epoch's end, so a run stopped while writing it leaves a truncated
        # file; the restart then falls back to the epoch before.
        all_callbacks.append(keras.callbacks.BackupAndRestore(os.path.join(out, "backup"),
                                                              double_checkpoint=True))
    model.fit(train_ds, epochs=config.epochs, steps_per_epoch=config.steps_per_epoch, shuffle=False,
              validation_data=test_ds, callbacks=all_callbacks, verbose=config.verbose)

    scores = model.evaluate(test_ds, verbose=0, return_dict=True)
    trained = _classifier_of(model)
    report = {
        "method": config.method,
        "method_args": config.method_args,
        "where": config.where,
        "dataset": data.name,
        "train_images": data.train_size,
        "test_images": data.test_size,
        "image_shape": list(data.image_shape),
        "model": config.model,
        "parameters": int(classifier.count_params()),
        "epochs": config.epochs,
        "steps_per_epoch": steps,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "min_lr": min_lr,
        "weight_decay": weight_decay,
        "decay_all_weights": decay_all,
        "batch_norm": config.resolved("batch_norm"),
        "seed": config.seed,
        "jit": config.jit,
        "test_accuracy": float(scores["accuracy"]),
        "test_loss": float(scores["loss"]),
        "seconds_per_epoch": history_cb.seconds_per_epoch(),
    }
    if config.method == "automix":
        report["teacher_accuracy"] = float(scores["accuracy"])
        report["student_accuracy"] = float(scores["student_accuracy"])
    if out:
        trained.save(os.path.join(out, "model.keras"))
        if config.method == "automix":  # the whole model: its Mix Block draws masks
            model.save(os.path.join(out, "automix.keras"))
        from keras_miamix import visualization

        fig = visualization.plot_history(history_cb.history, title=_run_title(config, data))
        fig.savefig(os.path.join(out, "curves.png"), dpi=100)
        if config.method in ("automix", "puzzlemix"):  # masks of the trained model
            _save_samples(config, data, model, os.path.join(out, "samples.png"))
        report["files"] = sorted(f for f in os.listdir(out) if f != "backup")
        if "report.json" not in report["files"]:
            report["files"] = sorted(report["files"] + ["report.json"])
        with open(os.path.join(out, "report.json"), "w") as f:
            json.dump(report, f, indent=2)
    return TrainResult(report, history_cb.history, trained, model, data)


def summary_lines(report):
    """A short printed summary of a report."""
    lines = [f"{report['method']} on {report['dataset']} ({report['train_images']} train / "
             f"{report['test_images']} test images), {report['model']}, "
             f"{report['epochs']} epochs:",
             f"  test top-1 accuracy  {100 * report['test_accuracy']:.2f}%"]
    if "teacher_accuracy" in report:
        lines.append(f"  teacher / student   {100 * report['teacher_accuracy']:.2f}% / "
                     f"{100 * report['student_accuracy']:.2f}%")
    lines.append(f"  seconds per epoch    {report['seconds_per_epoch']:.1f}")
    return lines


class JsonHistory(keras.callbacks.Callback):
    """Per-epoch logs and wall time, written to a JSON file after every epoch.

    It keeps what an earlier, interrupted run wrote, so the history of a
    resumed run (`BackupAndRestore`) is whole: epoch `e` overwrites entry `e`.
    """

    def __init__(self, path=None):
        super().__init__()
        self.path = path
        self.history = []
        if path and os.path.exists(path):
            with open(path) as f:
                self.history = json.load(f)

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": epoch, "seconds": time.perf_counter() - self._start}
        entry.update({k: float(v) for k, v in (logs or {}).items()})
        self.history = self.history[:epoch] + [entry]
        if self.path:
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.history, f, indent=1)
            os.replace(tmp, self.path)

    def seconds_per_epoch(self):
        """Median wall time of an epoch (the first, which compiles, left out
        when there are more)."""
        seconds = [h["seconds"] for h in self.history]
        if len(seconds) > 1:
            seconds = seconds[1:]
        return float(np.median(seconds)) if seconds else float("nan")


def _classifier_of(model):
    """The network that predicts: AutoMix's teacher, a wrapper's model, or
    the model itself."""
    if isinstance(model, methods_lib.mix_models.AutoMix):
        return model.teacher
    if isinstance(model, BaseMixTrainer):
        return model.model
    return model


def _run_title(config, data):
    return f"{config.method} on {data.name}, {config.model}"


def _save_samples(config, data, mixer_or_model, path, count=6):
    """The picture of the chosen method's mixed training images."""
    from keras_miamix import visualization

    images, labels = data.take_images(max(count, 8))
    fig = visualization.plot_method_samples(
        config.method, images, labels, data.class_names, num=count,
        mixer=mixer_or_model, method_args=config.method_args, seed=config.seed)
    fig.savefig(path, dpi=100)
    visualization.close(fig)

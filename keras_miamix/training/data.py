"""Image classification data for training: loading and the input pipelines.

`load_data(spec)` reads any of

* `"digits"`: scikit-learn's bundled handwritten digits (1,797 real 8x8 grey
  images, no download), the offline default;
* a local `.npz` with `x_train`, `y_train`, `x_test`, `y_test` (and optionally
  `label_names`);
* a folder of class sub-folders of images (or with `train/` and `test/`
  sub-folders of those), read by `keras.utils.image_dataset_from_directory`;
* the name of any image classification dataset of TensorFlow Datasets
  (`cifar10`, `cifar100`, `tf_flowers`, ...).

and returns an `ImageData`: unbatched `tf.data` datasets of `(uint8 image,
int32 label)`, all images at one size, with the class names and the
per-channel mean and standard deviation of the training images (pixel units).
`train_pipeline` and `test_pipeline` turn them into the batched pipelines the
trainer uses.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from keras_miamix import backend as kb
from keras_miamix.layers.base_mix_layer import content_salt
from keras_miamix.ops.augment import random_flip_translate
from keras_miamix.ops.sampling import fold_seed

# Images the statistics are computed from (the whole set when smaller).
_STAT_IMAGES = 10000


class DatasetUnavailableError(RuntimeError):
    """A dataset cannot be read here (no download possible, missing file)."""


@dataclasses.dataclass
class ImageData:
    """A loaded image classification dataset.

    Attributes:
        name: what was loaded.
        train, test: unbatched datasets of `(image uint8 (H, W, C), label int32)`.
        train_size, test_size: numbers of images.
        num_classes: number of classes.
        class_names: a name per class.
        image_shape: (H, W, C).
        mean, std: per-channel statistics of the training images (0..255 units).
    """

    name: str
    train: tf.data.Dataset
    test: tf.data.Dataset
    train_size: int
    test_size: int
    num_classes: int
    class_names: list
    image_shape: tuple
    mean: tuple
    std: tuple

    def take_images(self, count, split="train"):
        """The first `count` images and labels of a split as numpy arrays."""
        ds = self.train if split == "train" else self.test
        images, labels = [], []
        for x, y in ds.take(count).batch(count):
            images.append(x.numpy())
            labels.append(y.numpy())
        return np.concatenate(images), np.concatenate(labels)


def load_data(spec="digits", data_dir=None, image_size=None, limit=None, test_limit=None):
    """Loads a dataset by name, `.npz` path or folder (see the module docstring).

    Args:
        spec: "digits", a `.npz` path, a folder, or a TensorFlow Datasets name.
        data_dir: TensorFlow Datasets' data directory.
        image_size: (height, width) or an int; images are resized to it
            (bilinear). Needed for datasets of varying image sizes; "digits"
            defaults to 32 (its 8x8 images upsampled).
        limit: use only the first `limit` training images.
        test_limit: use only the first `test_limit` test images.

    Raises:
        DatasetUnavailableError: the dataset cannot be read here (for example
            TensorFlow Datasets cannot download it); the message says what to
            use instead.
        ValueError: a bad argument, named.
    """
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if image_size is not None and (len(image_size) != 2 or min(image_size) < 1):
        raise ValueError(
            f"`image_size` must be an int or (height, width); received {image_size!r}.")
    spec = str(spec)
    if spec == "digits":
        arrays, names = _digits_arrays()
        data = _from_arrays("digits", *arrays, names, image_size or (32, 32))
    elif spec.endswith(".npz"):
        if not os.path.exists(spec):
            raise DatasetUnavailableError(f"No such .npz file: {spec!r}.")
        arrays, names = _npz_arrays(spec)
        data = _from_arrays(os.path.basename(spec), *arrays, names, image_size)
    elif os.path.isdir(spec):
        data = _from_folder(spec, image_size)
    elif os.sep in spec or spec.startswith("."):
        raise DatasetUnavailableError(
            f"{spec!r} is neither an existing folder nor an .npz file.")
    else:
        data = _from_tfds(spec, data_dir, image_size)
    if limit:
        data = dataclasses.replace(data, train=data.train.take(limit),
                                   train_size=min(data.train_size, int(limit)))
    if test_limit:
        data = dataclasses.replace(data, test=data.test.take(test_limit),
                                   test_size=min(data.test_size, int(test_limit)))
    return data


SERVICE_MODES = ("distributed_epoch", "parallel_epochs")


def train_pipeline(data, batch_size, seed=0, augment=True, mixer=None, shuffle=True,
                   data_service=None, processing_mode="distributed_epoch"):
    """The training pipeline: shuffle, batch, float pixels 0..255, the CIFAR
    augmentation (random flip and 4-pixel pad-and-crop, zero padding, drawn
    per sample from stateless seeds: `ops.augment.random_flip_translate`,
    the function MiAMix's own views use), then the mixing layer if any.

    Labels come out one-hot (mixed by the layer when there is one). The mixing
    layer runs as one sequential map so that a `seed` gives the same batches
    run to run (`num_parallel_calls` would let parallel calls read its seed
    state in any order); `tf.data` still overlaps it with training.

    With `data_service` (a tf.data service dispatcher's address, e.g.
    "grpc://host:5050") the whole pipeline runs on the service's workers:
    "distributed_epoch" hands each worker its own share of the images, so
    each image is seen once per epoch and every worker mixes different
    batches; "parallel_epochs" has every worker produce a whole epoch, so its
    shuffle is left unseeded. Workers then differ only while TensorFlow has no
    global seed: after `keras.utils.set_random_seed` (or `tf.random.set_seed`)
    every worker shuffles, and so mixes, alike and sends the same batches.
    Either way which worker builds which batch is up to the service, so a
    `seed` no longer fixes the batches.
    """
    ds = data.train
    if shuffle:
        shuffle_seed = None if data_service and processing_mode == "parallel_epochs" else seed
        ds = ds.shuffle(min(data.train_size, 50000), seed=shuffle_seed,
                        reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    num_classes = data.num_classes
    shift = 4 / 32 if data.image_shape[0] >= 16 else 0.125

    def prepare(index, batch):
        images = tf.cast(batch[0], tf.float32)
        if augment:
            # The batch's content joins the seed: the index repeats every
            # epoch, the shuffled content does not. In the tf.data graph the
            # package's ops compute with TensorFlow whatever the backend.
            with kb.use("tensorflow"):
                step_seed = fold_seed(tf.stack([tf.cast(seed, tf.int32),
                                                tf.cast(index, tf.int32)]), content_salt(images))
                images = random_flip_translate(images, step_seed, max_shift=shift)
        return images, tf.one_hot(batch[1], num_classes)

    ds = ds.enumerate().map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    if mixer is not None:
        ds = ds.map(mixer)
    if data_service:
        # Everything above (reading, augmenting, mixing) runs on the tf.data
        # service's workers; the trainer only receives the finished batches.
        if processing_mode not in SERVICE_MODES:
            raise ValueError(f"`processing_mode` must be one of {SERVICE_MODES}; received "
                             f"processing_mode={processing_mode!r}.")
        ds = ds.apply(tf.data.experimental.service.distribute(
            processing_mode=processing_mode, service=data_service))
    return ds.prefetch(tf.data.AUTOTUNE)


def test_pipeline(data, batch_size, one_hot=True):
    """Batched test images as float pixels 0..255 with one-hot labels."""
    num_classes = data.num_classes

    def prepare(images, labels):
        images = tf.cast(images, tf.float32)
        return images, (tf.one_hot(labels, num_classes) if one_hot else labels)

    return data.test.batch(batch_size).map(prepare, num_parallel_calls=tf.data.AUTOTUNE) \
        .prefetch(tf.data.AUTOTUNE)


# ------------------------------------------------------------------ sources
def _digits_arrays():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int32)
    # A fixed 80/20 split (seed 0), computed once on the host when loading;
    # nothing random here reaches traced code.
    order = np.random.RandomState(0).permutation(len(images))
    cut = int(0.8 * len(images))
    train, test = order[:cut], order[cut:]
    names = [str(i) for i in range(10)]
    return (images[train], labels[train], images[test], labels[test]), names


def _npz_arrays(path):
    with np.load(path) as d:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in d]
        if missing:
            raise ValueError(
                f"The .npz file {path!r} must hold x_train, y_train, x_test and y_test; "
                f"missing {missing}.")
        arrays = [d[k] for k in ("x_train", "y_train", "x_test", "y_test")]
        names = [str(n) for n in d["label_names"]] if "label_names" in d else None
    return arrays, names


def _as_uint8_images(x, what):
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"`{what}` must be images (N, H, W[, C]); received shape {x.shape}.")
    if x.dtype != np.uint8:
        x = x.astype(np.float32)
        if x.max() <= 1.0:  # floats in [0, 1]
            x = x * 255.0
        x = np.clip(np.round(x), 0, 255).astype(np.uint8)
    return x


def _from_arrays(name, x_train, y_train, x_test, y_test, names, image_size):
    x_train = _as_uint8_images(x_train, "x_train")
    x_test = _as_uint8_images(x_test, "x_test")
    y_train = np.asarray(y_train).reshape(-1).astype(np.int32)
    y_test = np.asarray(y_test).reshape(-1).astype(np.int32)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    if names is None or len(names) < num_classes:
        names = [str(i) for i in range(num_classes)]
    if image_size is not None and tuple(image_size) != x_train.shape[1:3]:
        x_train = _resize_array(x_train, image_size)
        x_test = _resize_array(x_test, image_size)
    mean, std = _statistics(x_train[:_STAT_IMAGES])
    return ImageData(
        name=name,
        train=tf.data.Dataset.from_tensor_slices((x_train, y_train)),
        test=tf.data.Dataset.from_tensor_slices((x_test, y_test)),
        train_size=len(x_train), test_size=len(x_test), num_classes=num_classes,
        class_names=list(names)[:num_classes], image_shape=tuple(x_train.shape[1:]),
        mean=mean, std=std)


def _resize_array(x, size):
    out = tf.image.resize(tf.cast(x, tf.float32), size, method="bilinear", antialias=True)
    return np.clip(np.round(out.numpy()), 0, 255).astype(np.uint8)


def _statistics(images):
    x = np.asarray(images, np.float64)
    mean = x.mean(axis=(0, 1, 2))
    std = np.maximum(x.std(axis=(0, 1, 2)), 1e-3)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _from_folder(path, image_size):
    import keras

    size = tuple(image_size or (64, 64))
    sub = {d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d))}
    common = dict(image_size=size, batch_size=None, label_mode="int", seed=0)
    if {"train", "test"} <= sub:
        train = keras.utils.image_dataset_from_directory(os.path.join(path, "train"), **common)
        test = keras.utils.image_dataset_from_directory(
            os.path.join(path, "test"), class_names=train.class_names, shuffle=False,
            **{k: v for k, v in common.items() if k != "seed"})
    else:
        train, test = keras.utils.image_dataset_from_directory(
            path, validation_split=0.2, subset="both", **common)
    names = list(train.class_names)

    def to_uint8(x, y):
        return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8), tf.cast(y, tf.int32)

    train = train.map(to_uint8).cache()
    test = test.map(to_uint8).cache()
    return _from_streams(os.path.basename(os.path.normpath(path)), train, test, names,
                         (size[0], size[1], None))


def _from_streams(name, train, test, names, shape):
    """Counts, statistics and shape of streamed datasets (one pass each)."""
    stats = []
    train_size = 0
    for x, _ in train.batch(512):
        if train_size < _STAT_IMAGES:
            stats.append(x.numpy())
        train_size += int(x.shape[0])
    test_size = sum(int(x.shape[0]) for x, _ in test.batch(512))
    if not train_size or not test_size:
        raise ValueError(f"The dataset {name!r} has an empty train or test split.")
    sample = np.concatenate(stats)[:_STAT_IMAGES]
    mean, std = _statistics(sample)
    return ImageData(name=name, train=train, test=test, train_size=train_size,
                     test_size=test_size, num_classes=len(names), class_names=names,
                     image_shape=tuple(sample.shape[1:]), mean=mean, std=std)


def _offline_message(name, err):
    if isinstance(err, ModuleNotFoundError):
        # tfds 4.9.10 on Python 3.11 prepares datasets through etils, which
        # imports `importlib_resources` without declaring it.
        return (
            f"TensorFlow Datasets could not prepare {name!r}: the package "
            f"{err.name!r} that it imports is not installed (pip install {err.name}). "
            "Without it, or offline, use `--dataset digits` (scikit-learn's bundled "
            "handwritten digits), a local `.npz` file with x_train, y_train, x_test and "
            "y_test, or a folder of class sub-folders of images."
        )
    return (
        f"TensorFlow Datasets could not provide {name!r}: it is not in the data "
        "directory and could not be downloaded (no internet here?). Offline, use "
        "`--dataset digits` (scikit-learn's bundled handwritten digits), a local "
        "`.npz` file with x_train, y_train, x_test and y_test, or a folder of class "
        "sub-folders of images; or download the dataset once on a connected machine "
        f"and pass its `--data-dir`. (The error was: {type(err).__name__}: "
        f"{str(err).splitlines()[0][:200] if str(err) else ''})"
    )


def _from_tfds(name, data_dir, image_size):
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise DatasetUnavailableError(
            f"{name!r} is read through TensorFlow Datasets, which is not installed: "
            "pip install tensorflow-datasets (or use --dataset digits, an .npz or a folder)."
        ) from err
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as err:  # unknown names
        raise DatasetUnavailableError(
            f"{name!r} is not a TensorFlow Datasets dataset, an existing folder or an "
            f".npz file ({type(err).__name__}).") from None
    try:
        if not builder.is_prepared():
            # tfds retries a failed connection 10 times with back-off (about
            # 3.5 minutes offline); 3 retries answer within seconds.
            from tensorflow_datasets.core.download import downloader

            retries = getattr(downloader, "MAX_RETRIES", None)
            downloader.MAX_RETRIES = 3
            try:
                builder.download_and_prepare()
            finally:
                if retries is not None:
                    downloader.MAX_RETRIES = retries
    except Exception as err:  # no network, or a broken download
        raise DatasetUnavailableError(_offline_message(name, err)) from None
    info = builder.info
    if "label" not in info.features or "image" not in info.features:
        raise ValueError(f"{name!r} is not an image classification dataset "
                         f"(features {list(info.features)}).")
    # (Empty when the metadata has no split sizes, as under tfds' mock data.)
    splits = set(info.splits) or {"train", "test"}
    if "test" in splits:
        train_split, test_split = "train", "test"
    elif "validation" in splits:
        train_split, test_split = "train", "validation"
    else:
        train_split, test_split = "train[:90%]", "train[90%:]"
    shape = info.features["image"].shape
    if image_size is None and None in shape[:2]:
        image_size = (64, 64)
    channels = shape[2]

    def prepare(x, y):
        if image_size is not None:
            x = tf.image.resize(tf.cast(x, tf.float32), image_size, antialias=True)
            x = tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)
        if channels is None:
            x = x[..., :3]
        return x, tf.cast(y, tf.int32)

    train = builder.as_dataset(split=train_split, as_supervised=True).map(
        prepare, num_parallel_calls=tf.data.AUTOTUNE)
    test = builder.as_dataset(split=test_split, as_supervised=True).map(
        prepare, num_parallel_calls=tf.data.AUTOTUNE)
    names = list(info.features["label"].names)
    h, w = image_size if image_size is not None else shape[:2]
    try:
        count = builder.info.splits[train_split].num_examples
    except KeyError:
        count = 0
    if h * w * 3 * count < 2e9:
        train, test = train.cache(), test.cache()
    return _from_streams(name, train, test, names, (h, w, channels))

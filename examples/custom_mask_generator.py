"""A mixing method of your own: write the mask generator, get the whole layer
contract (tuples and dicts, labels weighted by the mask's mean, seeds, uint8,
channels_first, XLA, `.keras` saving) from `BetaMixLayer`.

    python examples/custom_mask_generator.py
"""

import argparse

import keras
import tensorflow as tf

from keras_miamix import training
from keras_miamix.layers import BetaMixLayer


def horizontal_split_mask(lam, height, width, seed):
    """(B, H, W, 1) masks keeping the anchor's top rows: the first
    round(lam * H) rows of each sample come from the anchor. Vectorised over
    the batch, no Python loop, no draws beyond lam."""
    rows = tf.cast(tf.round(lam * tf.cast(height, tf.float32)), tf.int32)  # (B,)
    keep = tf.range(height)[None, :] < rows[:, None]  # (B, H)
    masks = tf.cast(keep, tf.float32)[:, :, None, None]
    return tf.broadcast_to(masks, tf.stack([tf.shape(lam)[0], height, width, 1]))


@keras.saving.register_keras_serializable(package="my_project")
class SplitMix(BetaMixLayer):
    """Top rows from the anchor, bottom rows from the partner, lam ~ Beta(a, a)."""

    mask_function = staticmethod(horizontal_split_mask)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args(argv)

    data = training.load_data(args.dataset, limit=args.limit)
    layer = SplitMix(alpha=1.0, num_classes=data.num_classes, seed=0)
    images, labels = data.take_images(8)
    _, info = layer((images, labels), return_info=True)
    print("label weights (kept rows / height):", info["label_weights"].numpy().round(3))

    train_ds = training.train_pipeline(data, 64, mixer=layer)
    model = keras.Sequential([
        keras.Input(data.image_shape), keras.layers.Rescaling(1 / 255.0),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(data.num_classes)])
    model.compile("adam", keras.losses.CategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model.fit(train_ds, epochs=args.epochs, verbose=2)


if __name__ == "__main__":
    main()

"""A mixing layer in a tf.data pipeline, then an ordinary `model.fit`.

    python examples/mix_in_tf_data.py --method cutmix --epochs 10
"""

import argparse

import keras
import tensorflow as tf

import keras_miamix as km
from keras_miamix import training


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", default="miamix", choices=list(training.LAYER_METHODS))
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args(argv)

    data = training.load_data(args.dataset, limit=args.limit)
    mixer = training.make_mixer(args.method, num_classes=data.num_classes, seed=0)
    train_ds = (data.train.shuffle(10000, seed=0).batch(64)
                .map(lambda x, y: (tf.cast(x, tf.float32), y))
                .map(mixer)  # after batch: mixed images, soft labels
                .prefetch(tf.data.AUTOTUNE))
    test_ds = data.test.batch(256).map(
        lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(y, data.num_classes)))

    model = km.models.small_resnet(data.num_classes, data.image_shape,
                                   normalization=(data.mean, data.std))
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model.fit(train_ds, epochs=args.epochs, validation_data=test_ds, verbose=2)


if __name__ == "__main__":
    main()

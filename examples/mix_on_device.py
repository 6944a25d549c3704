"""Mixing inside the compiled train step: `MixModel` (on a GPU, with XLA).

    python examples/mix_on_device.py --method miamix --jit
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
    parser.add_argument("--jit", action="store_true", help="compile the step with XLA")
    args = parser.parse_args(argv)

    data = training.load_data(args.dataset, limit=args.limit)

    def as_float(x, y):
        return tf.cast(x, tf.float32), y  # MixModel takes integer labels too

    train_ds = data.train.shuffle(10000, seed=0).batch(64).map(as_float)
    test_ds = data.test.batch(256).map(as_float)

    net = km.models.small_resnet(data.num_classes, data.image_shape,
                                 normalization=(data.mean, data.std))
    mixer = training.make_mixer(args.method, num_classes=data.num_classes, seed=0)
    # Mixing stops for the last epoch (timm's mixup_off_epoch), without retracing.
    model = km.models.MixModel(net, mixer, mixup_off_epoch=max(args.epochs - 1, 1))
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.CategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=args.jit)
    return model.fit(train_ds, epochs=args.epochs, validation_data=test_ds, verbose=2)
    # `net` is the plain classifier: net.save("classifier.keras") to serve it.


if __name__ == "__main__":
    main()

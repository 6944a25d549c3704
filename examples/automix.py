"""AutoMix: masks learned by a Mix Block through a momentum teacher.

    python examples/automix.py --epochs 30
"""

import argparse
import math

import keras

import keras_miamix as km
from keras_miamix import training


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args(argv)

    data = training.load_data(args.dataset, limit=args.limit)
    train_ds = training.train_pipeline(data, 64)  # flip + pad-and-crop, one-hot labels
    test_ds = training.test_pipeline(data, 256)
    total_steps = args.epochs * math.ceil(data.train_size / 64)

    net = km.models.small_resnet(data.num_classes, data.image_shape,
                                 normalization=(data.mean, data.std))
    model = km.models.AutoMix(net, feature_layer="stage3", num_classes=data.num_classes,
                              total_steps=total_steps, seed=0)
    schedule = keras.optimizers.schedules.CosineDecay(0.1, total_steps)
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9))
    history = model.fit(train_ds, epochs=args.epochs, validation_data=test_ds, verbose=2)
    print(model.evaluate(test_ds, return_dict=True, verbose=0))  # teacher and student
    return history


if __name__ == "__main__":
    main()

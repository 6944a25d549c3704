"""MiAMix on the tf.data service: the input pipeline on other CPUs.

When the host cannot mix batches as fast as the accelerator trains on them,
TensorFlow's tf.data service runs the pipeline (reading, augmentation, MiAMix)
on a fleet of CPU workers and streams finished batches to the trainer. Here a
dispatcher and `--workers` workers run in this process on localhost, as a
demonstration; on a cluster they run on their own machines
(`tf.data.experimental.service.DispatchServer(port=5050)` on one,
`WorkerServer(WorkerConfig(dispatcher_address="host:5050"))` on each of the
others) and the trainer gets `--dispatcher grpc://host:5050`:

    python examples/tf_data_service.py --workers 2 --epochs 5
    python examples/tf_data_service.py --dispatcher grpc://host:5050
    keras-miamix train --method miamix --data-service grpc://host:5050   # the same
"""

import argparse

import keras
import tensorflow as tf

import keras_miamix as km
from keras_miamix import training


def local_service(workers):
    """A dispatcher and `workers` workers on localhost (kept alive by the
    returned objects)."""
    svc = tf.data.experimental.service
    dispatcher = svc.DispatchServer()
    address = dispatcher.target.split("://")[1]
    return dispatcher, [svc.WorkerServer(svc.WorkerConfig(dispatcher_address=address))
                        for _ in range(workers)]


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--dispatcher", help="an existing dispatcher, grpc://host:port")
    parser.add_argument("--workers", type=int, default=2, help="local workers to start")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args(argv)

    servers = None
    address = args.dispatcher
    if address is None:
        servers = local_service(args.workers)
        address = servers[0].target

    data = training.load_data(args.dataset, limit=args.limit)
    mixer = km.MiAMix(num_classes=data.num_classes, seed=0)
    # The same pipeline as `keras-miamix train`, ending in the service: each
    # worker takes its own share of the images ("distributed_epoch") and mixes
    # its batches with its own draws.
    train_ds = training.train_pipeline(data, 64, seed=0, augment=False, mixer=mixer,
                                       data_service=address)
    test_ds = training.test_pipeline(data, 256)

    model = km.models.small_resnet(data.num_classes, data.image_shape,
                                   normalization=(data.mean, data.std))
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = model.fit(train_ds, epochs=args.epochs, validation_data=test_ds, verbose=2)
    del servers  # stops the local service
    return history


if __name__ == "__main__":
    main()

"""One worker of a two-worker `MultiWorkerMirroredStrategy` run on localhost.

Started twice (worker 0 and 1) by `tests/test_distributed.py`:

    python multi_worker.py PHASE INDEX PORT0 PORT1 OUT_DIR

PHASE is one of
* "train": MixModel(MiAMix), ManifoldMixup and AutoMix train two epochs; each
  worker saves its weights, and the output of the same MiAMix layer called on
  the same images in `strategy.run` (the replicas' draws);
* "scale": one SGD step of a small network without batch statistics through
  MixModel with a mixer that changes nothing, each worker reading its own half
  of a batch of 8 (`INDEX` -1 runs it alone, on the whole batch, in one
  process, for comparison);
* "resume": three epochs with `keras.callbacks.BackupAndRestore`; with the
  environment variable STOP_AFTER_EPOCH set, worker 1 exits at the end of that
  epoch, as a stopped machine would; each worker appends an epoch to
  `saved-INDEX.txt` once that epoch's backup is written.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
PHASE, INDEX, PORT0, PORT1, OUT = sys.argv[1], int(sys.argv[2]), *sys.argv[3:6]
if INDEX >= 0:
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"localhost:{PORT0}", f"localhost:{PORT1}"]},
        "task": {"type": "worker", "index": INDEX},
    })

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_miamix as km  # noqa: E402

strategy = (tf.distribute.MultiWorkerMirroredStrategy() if INDEX >= 0
            else tf.distribute.get_strategy())
x = np.random.RandomState(0).rand(32, 16, 16, 3).astype("float32")
y = np.arange(32) % 4
LOSS = keras.losses.CategoricalCrossentropy(from_logits=True)


def resnet():
    # Synchronized batch normalisation: the workers also keep the same moving
    # statistics, so that every weight can be compared.
    return km.models.cifar_resnet18(num_classes=4, input_shape=(16, 16, 3), width=4,
                                    blocks_per_stage=(1, 1, 1, 1), synchronized_bn=True)


def save(name, arrays):
    np.savez(os.path.join(OUT, f"{name}-{INDEX}.npz"), **arrays)


def weights(model):
    return {f"{i}:{w.path}": np.array(w.numpy()) for i, w in enumerate(model.weights)}


if PHASE == "train":
    with strategy.scope():
        models = {
            "mix_model": km.models.MixModel(resnet(), km.MiAMix(num_classes=4, seed=0)),
            "manifold_mixup": km.models.ManifoldMixup(resnet(), num_classes=4, seed=0),
            "automix": km.models.AutoMix(resnet(), num_classes=4, seed=0, total_steps=8),
        }
        for name, model in models.items():
            if name == "automix":
                model.compile(optimizer=keras.optimizers.SGD(0.05))
            else:
                model.compile(keras.optimizers.SGD(0.05), LOSS)
        probe = km.MiAMix(num_classes=4, seed=5)
    for name, model in models.items():
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        assert all(np.all(np.isfinite(v)) for v in history.history.values()), history.history
        save(name, weights(model))
    # The same images on every replica: the draws must still differ.
    images = tf.constant(x[:6])
    mixed = strategy.run(tf.function(lambda im: probe(im)), args=(images,))
    save("draws", {"mixed": strategy.experimental_local_results(mixed)[0].numpy()})

elif PHASE == "scale":
    def build():
        net = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3),
                                keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4)])
        # Each sample mixed with itself: the mixer changes nothing.
        identity = km.MiAMix(num_classes=4, methods=("mixup",), weights=(1,), p_self=1.0,
                             augmentation=None, seed=0)
        model = km.models.MixModel(net, identity)
        model.compile(keras.optimizers.SGD(1.0), LOSS)
        return model

    with strategy.scope():
        model = build()
    model.build((None, 16, 16, 3))
    keras.utils.set_random_seed(1)
    for w, v in zip(model.model.weights,
                    [np.random.RandomState(i).randn(*w.shape) * 0.3
                     for i, w in enumerate(model.model.weights)]):
        w.assign(v.astype("float32"))
    if INDEX >= 0:
        def shard(ctx):
            part = slice(4 * ctx.input_pipeline_id, 4 * ctx.input_pipeline_id + 4)
            return tf.data.Dataset.from_tensor_slices((x[part], y[part])).batch(4)

        data = strategy.distribute_datasets_from_function(shard)
    else:
        data = tf.data.Dataset.from_tensor_slices((x[:8], y[:8])).batch(8)
    model.fit(data, epochs=1, steps_per_epoch=1, verbose=0)
    save("scale", weights(model.model))

elif PHASE == "resume":
    stop = int(os.environ.get("STOP_AFTER_EPOCH", "-1"))

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if INDEX == 1 and epoch == stop:
                os._exit(3)

    class Epochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            with open(os.path.join(OUT, f"epochs-{INDEX}.txt"), "a") as f:
                f.write(f"{epoch}\n")

    class Saved(keras.callbacks.Callback):
        # After the backup's own `on_epoch_end`: this epoch's backup is
        # written, so the test may kill this worker without cutting it short.
        def on_epoch_end(self, epoch, logs=None):
            with open(os.path.join(OUT, f"saved-{INDEX}.txt"), "a") as f:
                f.write(f"{epoch}\n")

    with strategy.scope():
        model = km.models.MixModel(resnet(), km.MiAMix(num_classes=4, seed=0))
        model.compile(keras.optimizers.SGD(0.05), LOSS)
    # One directory per worker: Keras 3's callback writes the same file from
    # every worker (two workers on one disk collide on its HDF5 lock).
    backup = keras.callbacks.BackupAndRestore(os.path.join(OUT, f"backup-{INDEX}"))
    model.fit(x, y, batch_size=8, epochs=3, verbose=0,
              callbacks=[Epochs(), backup, Saved(), Stop()])
    save("resume", weights(model))

print(f"WORKER_{INDEX}_OK", flush=True)

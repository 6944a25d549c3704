"""MultiWorkerMirroredStrategy with two worker processes on localhost.

Each test starts both workers of `tests/distributed/multi_worker.py` (see its
docstring) with `TF_CONFIG` on two free localhost ports, and checks what they
saved.
"""

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

WORKER = os.path.join(os.path.dirname(__file__), "distributed", "multi_worker.py")


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def start(phase, out, env=None, indices=(0, 1)):
    ports = [str(free_port()), str(free_port())]
    return [subprocess.Popen([sys.executable, WORKER, phase, str(i), *ports, str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, **(env or {})))
            for i in indices]


def finish(procs, timeout=600):
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0 and "_OK" in out, f"worker {i}:\n{err[-4000:]}"


def load(out, name, index):
    with np.load(os.path.join(out, f"{name}-{index}.npz")) as f:
        return {k: f[k] for k in f.files}


def assert_same_weights(a, b):
    """Every weight equal on both workers (the networks use synchronized batch
    normalisation, so the moving statistics too)."""
    assert a.keys() == b.keys() and a
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_models_train_in_step_on_two_workers_with_different_draws(tmp_path):
    finish(start("train", tmp_path))
    for name in ("mix_model", "manifold_mixup", "automix"):
        a, b = load(tmp_path, name, 0), load(tmp_path, name, 1)
        assert_same_weights(a, b)
        if name == "automix":
            # Student and momentum teacher (same layer names), each with its
            # clean and its mixed head (separate heads, the default), are all
            # compared.
            assert sum(k.endswith("logits/kernel") for k in a) == 4
    # The same images given to both replicas come back mixed differently.
    a, b = load(tmp_path, "draws", 0)["mixed"], load(tmp_path, "draws", 1)["mixed"]
    assert np.abs(a - b).max() > 0.1


def test_two_workers_make_the_same_update_as_one_with_the_whole_batch(tmp_path):
    procs = start("scale", tmp_path)
    single = start("scale", tmp_path, indices=(-1,))
    finish(procs + single)
    one, two = load(tmp_path, "scale", -1), load(tmp_path, "scale", 0)
    assert_same_weights(two, load(tmp_path, "scale", 1))
    for i, k in enumerate(sorted(one, key=lambda k: int(k.split(":")[0]))):
        init = (np.random.RandomState(i).randn(*one[k].shape) * 0.3).astype("float32")
        assert np.abs(one[k] - init).max() > 1e-3  # the step moved the weight
        np.testing.assert_allclose(two[k], one[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_backup_and_restore_resumes_after_a_worker_stops(tmp_path):
    procs = start("resume", tmp_path, env={"STOP_AFTER_EPOCH": "0"})
    procs[1].communicate(timeout=600)
    assert procs[1].returncode == 3  # stopped at the end of epoch 0
    # Its peer is gone, so worker 0 would wait in the next all-reduce: kill
    # it, but only once its epoch-0 backup is written (killed while writing
    # it, the restart read a truncated HDF5 file).
    saved = tmp_path / "saved-0.txt"
    deadline = time.monotonic() + 300
    while not (saved.exists() and saved.read_text().split()[:1] == ["0"]):
        assert procs[0].poll() is None and time.monotonic() < deadline, procs[0].communicate()
        time.sleep(0.2)
    procs[0].kill()
    procs[0].communicate()
    finish(start("resume", tmp_path))
    for i in (0, 1):
        with open(os.path.join(tmp_path, f"epochs-{i}.txt")) as f:
            assert f.read().split() == ["0", "1", "2"]  # epoch 0 not repeated
    assert_same_weights(load(tmp_path, "resume", 0), load(tmp_path, "resume", 1))




# ------------------------------------------------------------ tf.data service
def local_service(workers=2):
    """A dispatcher and `workers` workers of the tf.data service on localhost."""
    import tensorflow as tf

    svc = tf.data.experimental.service
    dispatcher = svc.DispatchServer()
    address = dispatcher.target.split("://")[1]
    return dispatcher, [svc.WorkerServer(svc.WorkerConfig(dispatcher_address=address))
                        for _ in range(workers)]


def test_miamix_pipeline_runs_on_a_tf_data_service_with_two_workers():
    import tensorflow as tf

    import keras_miamix as km

    dispatcher, workers = local_service(2)
    n = 96
    x = np.random.RandomState(0).rand(n, 8, 8, 3).astype("float32")
    data = {"images": x, "labels": np.arange(n) % 4, "id": np.arange(n)}

    def on_service(ds, mode):
        ds = ds.batch(8).map(km.MiAMix(num_classes=4, seed=0))
        ds = ds.apply(tf.data.experimental.service.distribute(
            processing_mode=mode, service=dispatcher.target))
        return list(ds.as_numpy_iterator())

    # Each worker its own share: every image exactly once, every batch mixed.
    batches = on_service(tf.data.Dataset.from_tensor_slices(data), "distributed_epoch")
    assert sorted(np.concatenate([b["id"] for b in batches]).tolist()) == list(range(n))
    for b in batches:
        assert np.abs(b["images"] - x[b["id"]]).max() > 0.05
    # Every worker a whole epoch (unseeded shuffles): each image twice, mixed
    # differently by the two workers. Unseeded means no global seed either
    # (another test may have set one): with one, both workers shuffle alike.
    tf.random.set_seed(None)
    batches = on_service(tf.data.Dataset.from_tensor_slices(data).shuffle(n), "parallel_epochs")
    ids = np.concatenate([b["id"] for b in batches])
    images = np.concatenate([b["images"] for b in batches])
    assert np.bincount(ids, minlength=n).tolist() == [2] * n
    for i in range(n):
        first, second = images[ids == i]
        assert np.abs(first - second).max() > 1e-3, i


def test_trainer_reads_its_pipeline_from_a_tf_data_service():
    from keras_miamix.training import TrainConfig
    from keras_miamix.training import train

    dispatcher, workers = local_service(2)
    result = train(TrainConfig(method="miamix", dataset="digits", limit=256, test_limit=64,
                               epochs=2, batch_size=32, data_service=dispatcher.target,
                               verbose=0))
    assert len(result.history) == 2
    assert all(np.isfinite(h["loss"]) for h in result.history)
    with pytest.raises(ValueError, match="processing_mode"):
        from keras_miamix.training import train_pipeline

        train_pipeline(result.data, 8, data_service=dispatcher.target, processing_mode="x")

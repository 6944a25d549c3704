"""The example script, on mock CIFAR-10 from tfds and on the local subset."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import train_cifar10  # noqa: E402

TINY = ["--epochs", "1", "--batch", "16", "--width", "4"]


@pytest.mark.parametrize("method, where", [("miamix", "data"), ("cutmix", "device"),
                                           ("automix", "data")])
def test_example_trains_on_mock_tfds_cifar10(method, where, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=32, data_dir=str(tmp_path)):
        history, result = train_cifar10.main(
            ["--method", method, "--where", where, *TINY, "--data-dir", str(tmp_path)])
    assert len(history.history["loss"]) == 1
    assert "loss" in result


def test_example_on_the_local_cifar_subset(cifar):
    from conftest import DATA_PATH

    history, result = train_cifar10.main(
        ["--method", "manifold", "--data", DATA_PATH, "--limit", "64", *TINY])
    assert 0.0 <= result["accuracy"] <= 1.0

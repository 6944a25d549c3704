"""Every docstring example of the public classes runs and prints what it says."""

import doctest
import importlib

import pytest

MODULES = [
    "keras_miamix.layers.mix_up",
    "keras_miamix.layers.cut_mix",
    "keras_miamix.layers.f_mix",
    "keras_miamix.layers.grid_mix",
    "keras_miamix.layers.g_mix",
    "keras_miamix.layers.ag_mix",
    "keras_miamix.layers.resize_mix",
    "keras_miamix.layers.mia_mix",
    "keras_miamix.layers.saliency_mix",
    "keras_miamix.layers.aug_mix",
    "keras_miamix.models.resnet",
    "keras_miamix.models.mix_model",
    "keras_miamix.models.manifold_mixup",
    "keras_miamix.models.automix",
    "keras_miamix.models.puzzle_mix",
    "keras_miamix.models.augmix_model",
    "keras_miamix.training.cifar_c",
    "keras_miamix.visualization",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    if name.endswith("visualization"):
        pytest.importorskip("matplotlib").use("Agg")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0

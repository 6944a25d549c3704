"""The notebooks run under the README's test command (nbmake) in quick mode:
small data and a few steps; the real CIFAR-10 images where they are
(`../shared/data` or $KERAS_MIAMIX_CIFAR), else scikit-learn's digits."""

import os

_SUBSET = os.environ.get(
    "KERAS_MIAMIX_CIFAR",
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10_subset.npz"))
os.environ.setdefault("KERAS_MIAMIX_QUICK", "1")
os.environ.setdefault("KERAS_MIAMIX_DATASET",
                      os.path.abspath(_SUBSET) if os.path.exists(_SUBSET) else "digits")

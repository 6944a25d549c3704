import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.stats  # noqa: E402

DATA_PATH = os.environ.get(
    "KERAS_MIAMIX_CIFAR",
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10_subset.npz"),
)


# The notebooks run in the same pytest command (nbmake, whose kernels inherit
# this environment) in quick mode: small data and a few steps, on the real
# CIFAR-10 images where they are, else scikit-learn's digits.
os.environ.setdefault("KERAS_MIAMIX_QUICK", "1")
os.environ.setdefault("KERAS_MIAMIX_DATASET",
                      os.path.abspath(DATA_PATH) if os.path.exists(DATA_PATH) else "digits")


def chi2_pvalue(samples, dist, bins=20):
    """Chi-square goodness of fit on `bins` equal-probability bins of `dist`.

    Robust to float32 rounding at the ends of the support (unlike KS, which
    treats values rounded to exactly 1.0 as a jump).
    """
    edges = dist.ppf(np.linspace(0, 1, bins + 1))
    edges[0], edges[-1] = -np.inf, np.inf
    counts, _ = np.histogram(np.asarray(samples, np.float64), edges)
    expected = np.full(bins, len(samples) / bins)
    return scipy.stats.chisquare(counts, expected).pvalue


@pytest.fixture
def cifar():
    if not os.path.exists(DATA_PATH):
        pytest.skip(f"CIFAR-10 subset not found at {DATA_PATH}")
    data = np.load(DATA_PATH)
    return data


class StopAt(Exception):
    """Raised by `stop_before`: a run stopped from outside."""


def stop_before(stop_epoch):
    """A callback that stops training as `stop_epoch` begins."""
    import keras

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == stop_epoch:
                raise StopAt()

    return Interrupt()


def epoch_counter():
    """A callback whose `epochs` lists the epochs that began."""
    import keras

    class Count(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs.append(epoch)

    return Count()

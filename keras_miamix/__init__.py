"""keras_miamix: mixed-sample data augmentation for Keras 3 (TensorFlow, JAX, PyTorch)."""

from keras_miamix import layers
from keras_miamix import models
from keras_miamix import ops
from keras_miamix.layers import AGMix
from keras_miamix.layers import AugMix
from keras_miamix.layers import CutMix
from keras_miamix.layers import FMix
from keras_miamix.layers import GMix
from keras_miamix.layers import GridMix
from keras_miamix.layers import MiAMix
from keras_miamix.layers import MixUp
from keras_miamix.layers import ResizeMix
from keras_miamix.layers import SaliencyMix
from keras_miamix.version import __version__

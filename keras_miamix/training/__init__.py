"""The training floor, above `models/`: data loading, the one training path
(`train`) that the `keras-miamix` command, the notebooks and the benchmarks
call, and the evaluation (calibration, corruption robustness)."""

from keras_miamix.training.data import DatasetUnavailableError
from keras_miamix.training.data import ImageData
from keras_miamix.training.data import load_data
from keras_miamix.training.data import test_pipeline
from keras_miamix.training.data import train_pipeline
from keras_miamix.training.methods import LAYER_METHODS
from keras_miamix.training.methods import METHODS
from keras_miamix.training.methods import build_classifier
from keras_miamix.training.methods import build_training_model
from keras_miamix.training.methods import make_mixer
from keras_miamix.training.methods import parse_method_args
from keras_miamix.training.trainer import JsonHistory
from keras_miamix.training.trainer import TrainConfig
from keras_miamix.training.trainer import TrainResult
from keras_miamix.training.trainer import summary_lines
from keras_miamix.training.trainer import train

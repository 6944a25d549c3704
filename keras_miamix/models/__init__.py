"""Training models: mixing inside `train_step`, Manifold Mixup, AutoMix,
Puzzle Mix, AugMix's consistency loss, and the CIFAR ResNet-18 they use."""

from keras_miamix.models.augmix_model import AugMixModel
from keras_miamix.models.augmix_model import jensen_shannon
from keras_miamix.models.automix import AutoMix
from keras_miamix.models.automix import momentum_schedule
from keras_miamix.models.manifold_mixup import ManifoldMixup
from keras_miamix.models.mix_block import MixBlock
from keras_miamix.models.mix_block import mask_loss
from keras_miamix.models.mix_model import MixModel
from keras_miamix.models.puzzle_mix import PuzzleMix
from keras_miamix.models.resnet import cifar_resnet
from keras_miamix.models.resnet import cifar_resnet18
from keras_miamix.models.resnet import small_resnet

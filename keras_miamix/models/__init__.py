"""Training models: mixing inside `train_step`, Manifold Mixup, AutoMix, and
the CIFAR ResNet-18 they use."""

from keras_miamix.models.automix import AutoMix
from keras_miamix.models.automix import momentum_schedule
from keras_miamix.models.manifold_mixup import ManifoldMixup
from keras_miamix.models.mix_block import MixBlock
from keras_miamix.models.mix_block import mask_loss
from keras_miamix.models.mix_model import MixModel
from keras_miamix.models.resnet import cifar_resnet
from keras_miamix.models.resnet import cifar_resnet18
from keras_miamix.models.resnet import small_resnet

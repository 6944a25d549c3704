"""Mixing layers: one file per method over a shared base layer."""

from keras_miamix.layers.ag_mix import AGMix
from keras_miamix.layers.aug_mix import AugMix
from keras_miamix.layers.base_mix_layer import BaseMixLayer
from keras_miamix.layers.base_mix_layer import BetaMixLayer
from keras_miamix.layers.cut_mix import CutMix
from keras_miamix.layers.f_mix import FMix
from keras_miamix.layers.g_mix import GMix
from keras_miamix.layers.grid_mix import GridMix
from keras_miamix.layers.mia_mix import MiAMix
from keras_miamix.layers.mix_up import MixUp
from keras_miamix.layers.resize_mix import ResizeMix
from keras_miamix.layers.saliency_mix import SaliencyMix

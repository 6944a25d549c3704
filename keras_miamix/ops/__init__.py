"""Pure, batch-first functions: samplers, mask generators, saliency maps, mask
augmentation, image augmentation and the shared mixing path."""

from keras_miamix.ops.augment import random_flip_translate
from keras_miamix.ops.augmix import augment_and_mix
from keras_miamix.ops.mask_augment import box_filter
from keras_miamix.ops.mask_augment import random_box_filter
from keras_miamix.ops.mask_augment import random_rotate_shear
from keras_miamix.ops.mask_augment import warp_masks
from keras_miamix.ops.masks import MASK_GENERATORS
from keras_miamix.ops.masks import agmix_mask
from keras_miamix.ops.masks import cutmix_mask
from keras_miamix.ops.masks import fmix_mask
from keras_miamix.ops.masks import gmix_mask
from keras_miamix.ops.masks import gridmix_mask
from keras_miamix.ops.masks import mixup_mask
from keras_miamix.ops.masks import resizemix_mask
from keras_miamix.ops.masks import saliencymix_mask
from keras_miamix.ops.mixing import label_weights
from keras_miamix.ops.mixing import mix_batch
from keras_miamix.ops.mixing import mix_labels
from keras_miamix.ops.mixing import prepare_labels
from keras_miamix.ops.saliency import fine_grained_saliency
from keras_miamix.ops.saliency import saliency_peaks
from keras_miamix.ops.sampling import random_permutation
from keras_miamix.ops.sampling import sample_beta
from keras_miamix.ops.sampling import sample_categorical
from keras_miamix.ops.sampling import sample_dirichlet
from keras_miamix.ops.sampling import stateless_log_gamma

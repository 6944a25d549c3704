"""The official AugMix operations (google-research/augmix `augmentations.py`)
with the level and sign given instead of drawn, on Pillow images: the
reference the AugMix tests compare against, under every backend."""

import numpy as np
from PIL import Image
from PIL import ImageEnhance
from PIL import ImageOps


def official(name, img, level, sign=1.0):
    pil = Image.fromarray(img)
    size = img.shape[1], img.shape[0]
    if name == "autocontrast":
        out = ImageOps.autocontrast(pil)
    elif name == "equalize":
        out = ImageOps.equalize(pil)
    elif name == "posterize":
        out = ImageOps.posterize(pil, 4 - int(level * 4 / 10))
    elif name == "rotate":
        out = pil.rotate(sign * int(level * 30 / 10), resample=Image.BILINEAR)
    elif name == "solarize":
        out = ImageOps.solarize(pil, 256 - int(level * 256 / 10))
    elif name in ("shear_x", "shear_y"):
        s = sign * float(level) * 0.3 / 10.0
        data = (1, s, 0, 0, 1, 0) if name == "shear_x" else (1, 0, 0, s, 1, 0)
        out = pil.transform(size, Image.AFFINE, data, resample=Image.BILINEAR)
    elif name in ("translate_x", "translate_y"):
        side = size[0] if name == "translate_x" else size[1]
        t = sign * int(level * (side / 3) / 10)
        data = (1, 0, t, 0, 1, 0) if name == "translate_x" else (1, 0, 0, 0, 1, t)
        out = pil.transform(size, Image.AFFINE, data, resample=Image.BILINEAR)
    else:
        enhancer = {"color": ImageEnhance.Color, "contrast": ImageEnhance.Contrast,
                    "brightness": ImageEnhance.Brightness,
                    "sharpness": ImageEnhance.Sharpness}[name](pil)
        out = enhancer.enhance(float(level) * 1.8 / 10 + 0.1)
    return np.asarray(out, dtype=np.int64)

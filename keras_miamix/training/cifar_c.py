"""CIFAR-10-C and CIFAR-100-C: the 19 corruptions at 5 severities, built or loaded.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR 2019. The released CIFAR-10-C /
CIFAR-100-C arrays were made by their `ImageNet-C/create_c/make_cifar_c.py`
(hendrycks/robustness): 15 benchmark corruptions plus 4 extra ones, each at
severities 1 to 5, applied to every test image, saved as `<name>.npy`
(5 x N images, severity 1 first) and `labels.npy`.

Three ways to get them, all giving a `CorruptedSet`:

* `load_cifar_c(folder)`: a folder of the released `.npy` files (the
  CIFAR-10-C / CIFAR-100-C tar files unpacked), or one `build_cifar_c` wrote;
* `load_cifar_c(tfds_name="cifar10_corrupted")`: the tensorflow-datasets
  build of the same arrays (95 configs `<corruption>_<severity>`);
* `build_cifar_c(images, labels)`: corrupts your own test images (a subset, or
  CIFAR-100's) with `make_cifar_c.py`'s functions and CIFAR parameters.

`build_cifar_c` follows `make_cifar_c.py` line by line (its CIFAR parameters,
its random draws in its order, its helper functions, `np.uint8` truncation of
the result) with three differences, each forced by a dependency:

* motion blur (and the snow's streaks) used ImageMagick through Wand; here it
  is `imagecorruptions`' NumPy re-implementation of ImageMagick's motion blur
  (bethgelab's maintained package of the same corruptions), so the two
  corruptions that use it are close to, not equal to, the released arrays;
* the frost textures are the six pictures shipped with `imagecorruptions`
  (the same files as the official repository's), found without importing the
  package (its import needs `pkg_resources`, gone from recent setuptools);
* the noises take a seeded `numpy.random.RandomState` per corruption instead
  of NumPy's global state, so a set is the same run to run and one
  corruption can be rebuilt alone. `skimage.util.random_noise` (impulse
  noise) gets a generator seeded from it.

The official script is written for 32 x 32 images; on other sizes the
hard-coded 32 becomes the image's height and width (glass blur's shuffle, the
fog's fractal, the frost crop) and the elastic transform's `IMSIZE` the
shorter side. The CIFAR parameters stay: for ImageNet-sized images use
`imagecorruptions` itself, whose parameters are ImageNet-C's.

Needs OpenCV (`cv2`, any of the opencv-python packages), SciPy,
scikit-image, Pillow and, for frost, `imagecorruptions`:
`pip install keras-miamix[robustness]`.

Example:

>>> import numpy as np
>>> from keras_miamix.training import cifar_c
>>> images = np.random.RandomState(0).randint(0, 256, (4, 32, 32, 3)).astype("uint8")
>>> data = cifar_c.build_cifar_c(images, np.arange(4), corruptions=("fog", "pixelate"))
>>> data.images["fog"].shape
(5, 4, 32, 32, 3)
"""

import importlib.util
import io
import os
import zlib

import numpy as np

# The released files' names, in the paper's order: the 15 benchmark
# corruptions, then the 4 extra ("validation") ones.
BENCHMARK = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
             "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
             "elastic_transform", "pixelate", "jpeg_compression")
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
CORRUPTIONS = BENCHMARK + EXTRA
SEVERITIES = (1, 2, 3, 4, 5)
# tensorflow-datasets' `cifar10_corrupted` names two of them differently.
TFDS_NAMES = {"glass_blur": "frosted_glass_blur", "elastic_transform": "elastic"}

# make_cifar_c.py's parameters, severity 1 to 5.
PARAMETERS = {
    "gaussian_noise": (0.04, 0.06, .08, .09, .10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (.01, .02, .03, .05, .07),
    "speckle_noise": (.06, .1, .12, .16, .2),
    "gaussian_blur": (.4, .6, 0.7, .8, 1),
    # sigma, max_delta, iterations
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    "zoom_blur": tuple(np.arange(1, stop, 0.01) for stop in (1.06, 1.11, 1.16, 1.21, 1.26)),
    "fog": ((.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
    "snow": ((0.1, 0.2, 1, 0.6, 8, 3, 0.95),
             (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
             (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
             (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)),
    "spatter": ((0.62, 0.1, 0.7, 0.7, 0.5, 0),
                (0.65, 0.1, 0.8, 0.7, 0.5, 0),
                (0.65, 0.3, 1, 0.69, 0.5, 0),
                (0.65, 0.1, 0.7, 0.69, 0.6, 1),
                (0.65, 0.1, 0.5, 0.68, 0.6, 1)),
    "contrast": (.75, .5, .4, .3, 0.15),
    "brightness": (.05, .1, .15, .2, .3),
    "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
    "jpeg_compression": (80, 65, 58, 50, 40),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    # In units of IMSIZE (32 for CIFAR): alpha, sigma, affine jitter.
    "elastic_transform": ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06),
                          (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)),
}
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")


class CorruptedSet:
    """Corrupted test images: `images[name]` is (5, N, H, W, C) uint8, one
    block per severity (1 first), `labels` (N,), the same for every block."""

    def __init__(self, images, labels, source=""):
        self.images = dict(images)
        self.labels = np.asarray(labels)
        self.source = source
        for name, block in self.images.items():
            if block.shape[:2] != (len(SEVERITIES), len(self.labels)):
                raise ValueError(f"`images[{name!r}]` must be (5, {len(self.labels)}, H, W, C) "
                                 f"for {len(self.labels)} labels; received {block.shape}.")

    @property
    def corruptions(self):
        return tuple(self.images)

    def take(self, count):
        """The first `count` images of every block (the released files keep
        the test set's order, so the first N are the first N test images)."""
        return CorruptedSet({k: v[:, :count] for k, v in self.images.items()},
                            self.labels[:count], self.source)

    def save(self, folder):
        """Writes the released layout: `<name>.npy` (5N images) and `labels.npy`."""
        os.makedirs(folder, exist_ok=True)
        for name, block in self.images.items():
            np.save(os.path.join(folder, f"{name}.npy"),
                    np.asarray(block).reshape((-1,) + block.shape[2:]))
        np.save(os.path.join(folder, "labels.npy"), np.tile(self.labels, len(SEVERITIES)))


def _check_names(corruptions):
    names = CORRUPTIONS if corruptions is None else tuple(corruptions)
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown:
        raise ValueError(f"`corruptions` must be names from {CORRUPTIONS}; "
                         f"received {unknown}.")
    return names


def load_cifar_c(folder=None, tfds_name=None, corruptions=None, limit=None, data_dir=None):
    """Loads CIFAR-10-C / CIFAR-100-C from a folder of the released `.npy`
    files or from tensorflow-datasets.

    Args:
        folder: a folder with `<name>.npy` and `labels.npy` (the released tar
            unpacked, or `CorruptedSet.save`). Arrays are memory-mapped.
        tfds_name: instead of `folder`, a tensorflow-datasets name:
            "cifar10_corrupted" (95 configs `<corruption>_<severity>`, split
            "test"); `data_dir` is passed to `tfds.load`.
        corruptions: names to load (default all 19).
        limit: keep the first `limit` images of each block.
    """
    names = _check_names(corruptions)
    if (folder is None) == (tfds_name is None):
        raise ValueError("Pass exactly one of `folder` and `tfds_name`; received "
                         f"folder={folder!r}, tfds_name={tfds_name!r}.")
    if folder is not None:
        labels_path = os.path.join(folder, "labels.npy")
        if not os.path.exists(labels_path):
            raise FileNotFoundError(f"`folder` must hold the CIFAR-C labels.npy; "
                                    f"{labels_path} does not exist.")
        labels = np.load(labels_path)
        n = len(labels) // len(SEVERITIES)
        images = {}
        for name in names:
            path = os.path.join(folder, f"{name}.npy")
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path} is missing: `folder` must hold all "
                                        f"of {names} (or pass `corruptions=`).")
            block = np.load(path, mmap_mode="r")
            images[name] = block.reshape((len(SEVERITIES), n) + block.shape[1:])
        data = CorruptedSet(images, labels[:n], source=os.path.abspath(folder))
    else:
        import tensorflow_datasets as tfds

        images, labels = {}, None
        for name in names:
            blocks = []
            for severity in SEVERITIES:
                config = f"{tfds_name}/{TFDS_NAMES.get(name, name)}_{severity}"
                ds = tfds.load(config, split="test", as_supervised=True, data_dir=data_dir)
                if limit is not None:
                    ds = ds.take(limit)
                pairs = list(tfds.as_numpy(ds))
                blocks.append(np.stack([p[0] for p in pairs]))
                block_labels = np.array([p[1] for p in pairs])
                if labels is None:
                    labels = block_labels
                elif not np.array_equal(labels, block_labels):
                    raise ValueError(f"{config}'s labels differ from the first config's.")
            images[name] = np.stack(blocks)
        data = CorruptedSet(images, labels, source=f"tfds:{tfds_name}")
    return data if limit is None else data.take(limit)


def build_cifar_c(images, labels, corruptions=None, seed=0, folder=None):
    """Corrupts `images` (N, H, W, 3) uint8 with make_cifar_c.py's 19
    corruptions at severities 1..5.

    Args:
        images: uint8 RGB images (or floats in 0..255, cast to uint8).
        labels: their labels (N,).
        corruptions: names to build (default all 19).
        seed: seeds each corruption's noise (a RandomState per corruption,
            from `seed` and the corruption's name).
        folder: when given, the set is saved there in the released layout
            (and `load_cifar_c(folder)` reads it back).
    """
    names = _check_names(corruptions)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError("`images` must be RGB images (N, H, W, 3); "
                         f"received shape {images.shape}.")
    images = images.astype(np.uint8)
    labels = np.asarray(labels)
    if len(labels) != len(images):
        raise ValueError(f"`labels` must have one label per image ({len(images)}); "
                         f"received {len(labels)}.")
    out = {}
    for name in names:
        rng = np.random.RandomState((zlib.crc32(name.encode()) + int(seed)) % 2 ** 32)
        out[name] = np.stack([np.stack([corrupt_image(im, name, s, rng) for im in images])
                              for s in SEVERITIES])
    data = CorruptedSet(out, labels, source=f"build_cifar_c(seed={seed})")
    if folder is not None:
        data.save(folder)
    return data


def corrupt_image(image, name, severity, rng, parameter=None):
    """One image (H, W, 3) uint8 corrupted as make_cifar_c.py does, returned
    as uint8 (`np.uint8` of the float result: truncated, as the script saves).

    `rng` is a `numpy.random.RandomState` (its draws are the script's, in its
    order); `parameter` overrides the CIFAR parameter of `severity`.
    """
    if name not in PARAMETERS:
        raise ValueError(f"`name` must be one of {CORRUPTIONS}; received name={name!r}.")
    if severity not in SEVERITIES:
        raise ValueError(f"`severity` must be 1..5; received severity={severity!r}.")
    c = PARAMETERS[name][severity - 1] if parameter is None else parameter
    x = np.asarray(image, np.uint8)
    return np.uint8(_FUNCTIONS[name](x, c, rng))


# ---- make_cifar_c.py's helpers -------------------------------------------

def _gaussian(x, sigma, **kwargs):
    from skimage.filters import gaussian

    if x.ndim == 3:
        kwargs.setdefault("channel_axis", -1)
    return gaussian(x, sigma=sigma, **kwargs)


def disk(radius, alias_blur=0.1, dtype=np.float32):
    import cv2

    if radius <= 8:
        grid, ksize = np.arange(-8, 8 + 1), (3, 3)
    else:
        grid, ksize = np.arange(-radius, radius + 1), (5, 5)
    xx, yy = np.meshgrid(grid, grid)
    aliased_disk = np.array((xx ** 2 + yy ** 2) <= radius ** 2, dtype=dtype)
    aliased_disk /= np.sum(aliased_disk)
    return cv2.GaussianBlur(aliased_disk, ksize=ksize, sigmaX=alias_blur)


def plasma_fractal(rng, mapsize=32, wibbledecay=3):
    """The diamond-square height map in [0, 1] (`mapsize` a power of two)."""
    if mapsize & (mapsize - 1):
        raise ValueError(f"`mapsize` must be a power of two; received {mapsize}.")
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100

    def wibbledmean(array):
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while stepsize >= 2:
        # Squares: each middle value is the mean of its corners plus wibble.
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        maparray[stepsize // 2:mapsize:stepsize,
                 stepsize // 2:mapsize:stepsize] = wibbledmean(squareaccum)
        # Diamonds.
        drgrid = maparray[stepsize // 2:mapsize:stepsize, stepsize // 2:mapsize:stepsize]
        ulgrid = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        ltsum = drgrid + np.roll(drgrid, 1, axis=0) + ulgrid + np.roll(ulgrid, -1, axis=1)
        maparray[0:mapsize:stepsize, stepsize // 2:mapsize:stepsize] = wibbledmean(ltsum)
        ttsum = drgrid + np.roll(drgrid, 1, axis=1) + ulgrid + np.roll(ulgrid, -1, axis=0)
        maparray[stepsize // 2:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(ttsum)
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    return maparray / maparray.max()


def clipped_zoom(img, zoom_factor):
    """Zooms the centre crop of side ceil(side / factor) back to the image's
    size (the script's square version, per axis for non-square images)."""
    from scipy.ndimage import zoom

    h, w = img.shape[:2]
    ch, cw = int(np.ceil(h / zoom_factor)), int(np.ceil(w / zoom_factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    img = zoom(img[top:top + ch, left:left + cw], (zoom_factor, zoom_factor, 1), order=1)
    trim_top, trim_left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return img[trim_top:trim_top + h, trim_left:trim_left + w]


def motion_blur_kernel_image(x, radius, sigma, angle):
    """ImageMagick's motion blur (MagickMotionBlurImage) as `imagecorruptions`
    re-implements it in NumPy: a one-sided Gaussian of width 2 radius + 1
    along `angle`, the image shifted with edge replication."""
    width = 2 * radius + 1
    kernel = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2)) / (np.sqrt(2 * np.pi) * sigma)
    kernel = kernel / np.sum(kernel)
    point = (width * np.sin(np.deg2rad(angle)), width * np.cos(np.deg2rad(angle)))
    hypot = np.hypot(point[0], point[1])
    blurred = np.zeros_like(x, dtype=np.float32)
    for i in range(width):
        dy = -int(np.ceil(((i * point[0]) / hypot) - 0.5))
        dx = -int(np.ceil(((i * point[1]) / hypot) - 0.5))
        if abs(dy) >= x.shape[0] or abs(dx) >= x.shape[1]:
            break  # the motion left the image
        blurred = blurred + kernel[i] * _shift(x, dx, dy)
    return blurred


def _shift(image, dx, dy):
    shifted = image
    if dx < 0:
        shifted = np.roll(image, shift=image.shape[1] + dx, axis=1)
        shifted[:, dx:] = shifted[:, dx - 1:dx]
    elif dx > 0:
        shifted = np.roll(image, shift=dx, axis=1)
        shifted[:, :dx] = shifted[:, dx:dx + 1]
    if dy < 0:
        shifted = np.roll(shifted, shift=image.shape[0] + dy, axis=0)
        shifted[dy:, :] = shifted[dy - 1:dy, :]
    elif dy > 0:
        shifted = np.roll(shifted, shift=dy, axis=0)
        shifted[:dy, :] = shifted[dy:dy + 1, :]
    return shifted


def frost_folder():
    """The folder of imagecorruptions' frost pictures, found without importing it."""
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("The frost corruption needs the frost pictures of `imagecorruptions`: "
                          "pip install imagecorruptions (or keras-miamix[robustness]).")
    return os.path.join(list(spec.submodule_search_locations)[0], "frost")


_FROST_CACHE = {}


def frost_texture(index):
    """frost{index+1} read by OpenCV (BGR) and resized by 0.2, as the script does."""
    import cv2

    if index not in _FROST_CACHE:
        path = os.path.join(frost_folder(), FROST_FILES[index])
        texture = cv2.imread(path)
        if texture is None:
            raise FileNotFoundError(f"Could not read the frost picture {path}.")
        _FROST_CACHE[index] = cv2.resize(texture, (0, 0), fx=0.2, fy=0.2)
    return _FROST_CACHE[index]


# ---- the 19 corruptions (x: uint8 (H, W, 3); returns floats 0..255) -------

def _gaussian_noise(x, c, rng):
    x = np.array(x) / 255.
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1) * 255


def _shot_noise(x, c, rng):
    x = np.array(x) / 255.
    return np.clip(rng.poisson(x * c) / c, 0, 1) * 255


def _impulse_noise(x, c, rng):
    from skimage.util import random_noise

    generator = np.random.default_rng(rng.randint(2 ** 31))
    x = random_noise(np.array(x) / 255., mode="s&p", amount=c, rng=generator)
    return np.clip(x, 0, 1) * 255


def _speckle_noise(x, c, rng):
    x = np.array(x) / 255.
    return np.clip(x + x * rng.normal(size=x.shape, scale=c), 0, 1) * 255


def _gaussian_blur(x, c, rng):
    x = _gaussian(np.array(x) / 255., sigma=c)
    return np.clip(x, 0, 1) * 255


def _glass_blur(x, c, rng):
    x = np.uint8(_gaussian(np.array(x) / 255., sigma=c[0]) * 255)
    height, width = x.shape[:2]
    # Locally shuffle pixels. The script's tuple swap of two NumPy views
    # copies the second pixel onto the first and leaves the second as it was:
    # kept, since the released images were made with it.
    for _ in range(c[2]):
        for h in range(height - c[1], c[1], -1):
            for w in range(width - c[1], c[1], -1):
                dx, dy = rng.randint(-c[1], c[1], size=(2,))
                h_prime, w_prime = h + dy, w + dx
                x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
    return np.clip(_gaussian(x / 255., sigma=c[0]), 0, 1) * 255


def _defocus_blur(x, c, rng):
    import cv2

    x = np.array(x) / 255.
    kernel = disk(radius=c[0], alias_blur=c[1])
    channels = np.stack([cv2.filter2D(x[:, :, d], -1, kernel) for d in range(3)], axis=-1)
    return np.clip(channels, 0, 1) * 255


def _motion_blur(x, c, rng):
    x = motion_blur_kernel_image(np.array(x), radius=c[0], sigma=c[1],
                                 angle=rng.uniform(-45, 45))
    return np.clip(x, 0, 255)


def _zoom_blur(x, c, rng):
    x = (np.array(x) / 255.).astype(np.float32)
    out = np.zeros_like(x)
    for zoom_factor in c:
        out += clipped_zoom(x, zoom_factor)
    x = (x + out) / (len(c) + 1)
    return np.clip(x, 0, 1) * 255


def _fog(x, c, rng):
    height, width = x.shape[:2]
    mapsize = 1 << max(int(max(height, width)) - 1, 1).bit_length()
    x = np.array(x) / 255.
    max_val = x.max()
    x += c[0] * plasma_fractal(rng, mapsize, wibbledecay=c[1])[:height, :width][..., np.newaxis]
    return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


def _frost(x, c, rng):
    height, width = x.shape[:2]
    idx = rng.randint(5)  # the script draws from the first five pictures
    frost = frost_texture(idx)
    if frost.shape[0] <= height or frost.shape[1] <= width:
        raise ValueError(f"frost: images must be smaller than the frost picture "
                         f"({frost.shape[:2]}); received {x.shape[:2]}.")
    x_start = rng.randint(0, frost.shape[0] - height)
    y_start = rng.randint(0, frost.shape[1] - width)
    frost = frost[x_start:x_start + height, y_start:y_start + width][..., [2, 1, 0]]
    return np.clip(c[0] * np.array(x) + c[1] * frost, 0, 255)


def _snow(x, c, rng):
    import cv2

    height, width = x.shape[:2]
    x = np.array(x, dtype=np.float32) / 255.
    snow_layer = rng.normal(size=x.shape[:2], loc=c[0], scale=c[1])
    snow_layer = clipped_zoom(snow_layer[..., np.newaxis], c[2])
    snow_layer[snow_layer < c[3]] = 0
    # The script goes through an 8-bit PNG for ImageMagick: round to uint8
    # before the blur and after it.
    snow_layer = np.uint8(np.clip(snow_layer.squeeze(), 0, 1) * 255)
    snow_layer = motion_blur_kernel_image(snow_layer, radius=c[4], sigma=c[5],
                                          angle=rng.uniform(-135, -45))
    snow_layer = (np.round(np.clip(snow_layer, 0, 255)).astype(np.uint8) / 255.)[..., np.newaxis]
    gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).reshape(height, width, 1)
    x = c[6] * x + (1 - c[6]) * np.maximum(x, gray * 1.5 + 0.5)
    return np.clip(x + snow_layer + np.rot90(snow_layer, k=2), 0, 1) * 255


def _spatter(x, c, rng):
    import cv2

    x = np.array(x, dtype=np.float32) / 255.
    liquid_layer = rng.normal(size=x.shape[:2], loc=c[0], scale=c[1])
    liquid_layer = _gaussian(liquid_layer, sigma=c[2])
    liquid_layer[liquid_layer < c[3]] = 0
    if c[5] == 0:
        # Water: the script treats the RGB image as BGR here; kept.
        liquid_layer = (liquid_layer * 255).astype(np.uint8)
        dist = 255 - cv2.Canny(liquid_layer, 50, 150)
        dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        ker = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
        dist = cv2.filter2D(dist, cv2.CV_8U, ker)
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        m = cv2.cvtColor(liquid_layer * dist, cv2.COLOR_GRAY2BGRA)
        m /= np.max(m, axis=(0, 1))
        m *= c[4]
        color = np.concatenate([v / 255. * np.ones_like(m[..., :1]) for v in (175, 238, 238)],
                               axis=2)
        color = cv2.cvtColor(color, cv2.COLOR_BGR2BGRA)
        x = cv2.cvtColor(x, cv2.COLOR_BGR2BGRA)
        return cv2.cvtColor(np.clip(x + m * color, 0, 1), cv2.COLOR_BGRA2BGR) * 255
    # Mud.
    m = np.where(liquid_layer > c[3], 1, 0)
    m = _gaussian(m.astype(np.float32), sigma=c[4])
    m[m < 0.8] = 0
    color = np.concatenate([v / 255. * np.ones_like(x[..., :1]) for v in (63, 42, 20)], axis=2)
    color *= m[..., np.newaxis]
    x *= (1 - m[..., np.newaxis])
    return np.clip(x + color, 0, 1) * 255


def _contrast(x, c, rng):
    x = np.array(x) / 255.
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def _brightness(x, c, rng):
    from skimage.color import hsv2rgb
    from skimage.color import rgb2hsv

    x = rgb2hsv(np.array(x) / 255.)
    x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
    return np.clip(hsv2rgb(x), 0, 1) * 255


def _saturate(x, c, rng):
    from skimage.color import hsv2rgb
    from skimage.color import rgb2hsv

    x = rgb2hsv(np.array(x) / 255.)
    x[:, :, 1] = np.clip(x[:, :, 1] * c[0] + c[1], 0, 1)
    return np.clip(hsv2rgb(x), 0, 1) * 255


def _jpeg_compression(x, c, rng):
    from PIL import Image

    output = io.BytesIO()
    Image.fromarray(x).save(output, "JPEG", quality=c)
    return np.array(Image.open(output))


def _pixelate(x, c, rng):
    from PIL import Image

    height, width = x.shape[:2]
    image = Image.fromarray(x).resize((int(width * c), int(height * c)), Image.BOX)
    return np.array(image.resize((width, height), Image.BOX))


def _elastic_transform(image, c, rng):
    import cv2
    from scipy.ndimage import map_coordinates

    image = np.array(image, dtype=np.float32) / 255.
    shape = image.shape
    shape_size = shape[:2]
    imsize = min(shape_size)
    c = tuple(imsize * v for v in c)
    # Random affine.
    center_square = np.float32(shape_size) // 2
    square_size = min(shape_size) // 3
    pts1 = np.float32([center_square + square_size,
                       [center_square[0] + square_size, center_square[1] - square_size],
                       center_square - square_size])
    pts2 = pts1 + rng.uniform(-c[2], c[2], size=pts1.shape).astype(np.float32)
    matrix = cv2.getAffineTransform(pts1, pts2)
    image = cv2.warpAffine(image, matrix, shape_size[::-1], borderMode=cv2.BORDER_REFLECT_101)
    dx = (_gaussian(rng.uniform(-1, 1, size=shape[:2]), c[1], mode="reflect", truncate=3)
          * c[0]).astype(np.float32)
    dy = (_gaussian(rng.uniform(-1, 1, size=shape[:2]), c[1], mode="reflect", truncate=3)
          * c[0]).astype(np.float32)
    dx, dy = dx[..., np.newaxis], dy[..., np.newaxis]
    x, y, z = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    indices = np.reshape(y + dy, (-1, 1)), np.reshape(x + dx, (-1, 1)), np.reshape(z, (-1, 1))
    warped = map_coordinates(image, indices, order=1, mode="reflect").reshape(shape)
    return np.clip(warped, 0, 1) * 255


_FUNCTIONS = {name: globals()[f"_{name}"] for name in CORRUPTIONS}

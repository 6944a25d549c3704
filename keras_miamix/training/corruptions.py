"""CIFAR-10-C corruptions as vectorised TensorFlow ops, with Hendrycks and
Dietterich's CIFAR parameters.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR 2019; the parameters are those of their
`make_cifar_c.py` (severities 1 to 5). The ones computed here are the
corruptions that need no external image library and no weather textures:
Gaussian, shot and impulse noise, defocus and Gaussian blur, contrast,
brightness, JPEG compression and pixelate. The maintained Python package of
the ImageNet-C corruptions (`imagecorruptions`) uses the ImageNet parameters
and needs OpenCV and scikit-image, so these follow the CIFAR script directly:

* gaussian_noise: `x + N(0, c^2)`, c = .04, .06, .08, .09, .10 (x in [0, 1]);
* shot_noise: `Poisson(x * c) / c`, c = 500, 250, 100, 75, 50;
* impulse_noise: salt-and-pepper on a fraction c = .01, .02, .03, .05, .07 of
  the values (half salt, half pepper), as `skimage.util.random_noise`;
* defocus_blur: the aliased disk of radius r blurred by a 3x3 Gaussian of
  sigma s, (r, s) = (.3, .4), (.4, .5), (.5, .6), (1, .2), (1.5, .1), applied
  with reflected borders (OpenCV's `filter2D` default);
* gaussian_blur: sigma = .4, .6, .7, .8, 1, kernel truncated at 4 sigma,
  nearest borders (`scipy.ndimage.gaussian_filter` defaults as skimage uses);
* contrast: `(x - mean) * c + mean`, c = .75, .5, .4, .3, .15, the mean per
  image and channel;
* brightness: V + c in HSV, c = .05, .1, .15, .2, .3;
* jpeg_compression: quality 80, 65, 58, 50, 40;
* pixelate: box-downsample to `int(side * c)`, c = .95, .9, .85, .75, .65, and
  box-upsample back, as PIL's `BOX` filter does.

Every function takes a uint8 or float batch in pixel units 0..255
(B, H, W, C) and returns float32 pixels 0..255; the noises take a stateless
seed, so a corrupted test set is the same run to run.
"""


import numpy as np
import tensorflow as tf

SEVERITIES = (1, 2, 3, 4, 5)
_PARAMS = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "jpeg_compression": (80, 65, 58, 50, 40),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
}
CORRUPTIONS = tuple(_PARAMS)


def corruption_parameter(name, severity):
    """The CIFAR-10-C parameter of `name` at `severity` (1..5)."""
    if name not in _PARAMS:
        raise ValueError(f"`name` must be one of {CORRUPTIONS}; received name={name!r}.")
    if severity not in SEVERITIES:
        raise ValueError(f"`severity` must be 1..5; received severity={severity!r}.")
    return _PARAMS[name][severity - 1]


def corrupt(images, name, severity, seed=(0, 0)):
    """Applies one corruption at one severity to a batch (pixels 0..255).

    Returns float32 pixels rounded to integers in 0..255, as the saved
    CIFAR-10-C images are.
    """
    c = corruption_parameter(name, severity)
    x = tf.cast(tf.convert_to_tensor(images), tf.float32) / 255.0
    if x.shape.rank != 4:
        raise ValueError(f"`images` must be a batch (B, H, W, C); received shape {x.shape}.")
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
    if name == "gaussian_noise":
        x = x + c * tf.random.stateless_normal(tf.shape(x), seed)
    elif name == "shot_noise":
        x = tf.random.stateless_poisson(tf.shape(x), seed, x * c, dtype=tf.float32) / c
    elif name == "impulse_noise":
        u = tf.random.stateless_uniform(tf.shape(x), seed)
        salt = tf.random.stateless_uniform(tf.shape(x), seed + [0, 1]) < 0.5
        x = tf.where(u < c, tf.where(salt, 1.0, 0.0), x)
    elif name == "defocus_blur":
        x = _filter(x, defocus_kernel(*c), "reflect")
    elif name == "gaussian_blur":
        k = gaussian_kernel_1d(c)
        x = _filter(x, np.outer(k, k), "edge")
    elif name == "contrast":
        mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        x = (x - mean) * c + mean
    elif name == "brightness":
        if x.shape[-1] == 3:
            hsv = tf.image.rgb_to_hsv(tf.clip_by_value(x, 0.0, 1.0))
            hsv = tf.concat([hsv[..., :2], tf.clip_by_value(hsv[..., 2:] + c, 0.0, 1.0)], -1)
            x = tf.image.hsv_to_rgb(hsv)
        else:
            x = x + c
    elif name == "jpeg_compression":
        u8 = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)
        x = tf.map_fn(lambda im: tf.image.adjust_jpeg_quality(im, c), u8,
                      fn_output_signature=tf.uint8)
        x = tf.cast(x, tf.float32) / 255.0
    elif name == "pixelate":
        height, width = int(x.shape[1]), int(x.shape[2])
        small = (int(height * c), int(width * c))
        down_r, down_c = box_resize_matrix(height, small[0]), box_resize_matrix(width, small[1])
        up_r, up_c = box_resize_matrix(small[0], height), box_resize_matrix(small[1], width)
        x = tf.einsum("ih,bhwc,jw->bijc", down_r, x, down_c)
        x = tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0) / 255.0  # PIL keeps uint8
        x = tf.einsum("ih,bhwc,jw->bijc", up_r, x, up_c)
    return tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0)


def gaussian_kernel_1d(sigma, truncate=4.0):
    """scipy.ndimage's Gaussian: radius `int(truncate * sigma + 0.5)`."""
    radius = int(truncate * sigma + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * t * t / (sigma * sigma))
    return (k / k.sum()).astype(np.float32)


def defocus_kernel(radius, alias_blur):
    """The CIFAR script's `disk(radius, alias_blur)`: a 17x17 aliased disk
    (a 3x3 Gaussian of sigma `alias_blur` for radius <= 8, as cv2's
    `GaussianBlur(ksize=(3, 3))`, reflected borders)."""
    grid = np.arange(-8, 9)
    xx, yy = np.meshgrid(grid, grid)
    disk = ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.float64)
    disk /= disk.sum()
    g = np.exp(-np.arange(-1, 2) ** 2 / (2.0 * alias_blur ** 2))
    g /= g.sum()
    padded = np.pad(disk, 1, mode="reflect")
    blurred = sum(g[i] * g[j] * padded[i:i + 17, j:j + 17]
                  for i in range(3) for j in range(3))
    # Trim the zero border: the same filter, a smaller convolution.
    rows = np.nonzero(blurred.sum(1) > 0)[0]
    r = max(8 - rows.min(), rows.max() - 8)
    return blurred[8 - r:9 + r, 8 - r:9 + r].astype(np.float32)


def box_resize_matrix(size_in, size_out):
    """(size_out, size_in) weights of PIL's `BOX` resampling along one axis.

    PIL: scale = in / out, support = 0.5 * max(scale, 1); output pixel i
    averages the input pixels j in [int(center - support + 0.5),
    int(center + support + 0.5)) with center = (i + 0.5) * scale, each with
    the box filter's weight (1 inside (-0.5, 0.5] after dividing by the
    filter scale), normalised.
    """
    scale = size_in / size_out
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    w = np.zeros((size_out, size_in), np.float64)
    for i in range(size_out):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), size_in)
        for j in range(lo, hi):
            t = (j - center + 0.5) / filterscale
            w[i, j] = 1.0 if -0.5 < t <= 0.5 else 0.0
        w[i] /= max(w[i].sum(), 1e-12)
    return w.astype(np.float32)


def _filter(x, kernel, border):
    """2-D filter of every channel with `kernel`, borders "reflect"
    (OpenCV's default, without repeating the edge) or "edge" (nearest)."""
    kernel = np.asarray(kernel, np.float32)
    r = kernel.shape[0] // 2
    if border == "reflect":
        padded = tf.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode="REFLECT")
    else:
        h, w = int(x.shape[1]), int(x.shape[2])
        rows = np.clip(np.arange(-r, h + r), 0, h - 1)
        cols = np.clip(np.arange(-r, w + r), 0, w - 1)
        padded = tf.gather(tf.gather(x, rows, axis=1), cols, axis=2)
    channels = int(x.shape[-1])
    k = tf.constant(np.tile(kernel[:, :, None, None], (1, 1, channels, 1)))
    return tf.nn.depthwise_conv2d(padded, k, [1, 1, 1, 1], "VALID")



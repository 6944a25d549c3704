"""Saliency maps that mixing methods place their boxes and masks by.

`fine_grained_saliency` is OpenCV's `StaticSaliencyFineGrained` (opencv_contrib,
`modules/saliency/src/staticSaliencyFineGrained.cpp`; Montabone and Soto,
2010), the map the official SaliencyMix code centres its box on, reimplemented
batch-first in the ops of the computing backend (`keras_miamix.backend`), so
that it runs vectorised over a batch inside `tf.data`, under XLA and `jax.jit`.
On uint8 images it gives OpenCV's map bit for bit (tested against `cv2`).
"""

from fractions import Fraction

import numpy as np

from keras_miamix import backend as kb
from keras_miamix.backend import numpy as knp

# OpenCV's neighbourhoods (half-sizes of the surround windows), in its order.
NEIGHBOURHOODS = (12, 24, 48, 28, 56, 112)
# cvtColor's fixed-point BGR->gray weights of 8-bit images (R, G, B here),
# over 2^15 (`gray_shift`; 0.299, 0.587, 0.114).
_GRAY_WEIGHTS = (9798, 19235, 3735)
_GRAY_SHIFT = 15


def _rounds_down(t):
    """Whether float32(t / 255) < t / 255: where `255 * (m / M)` is a whole
    number t, OpenCV's `(uchar)(255. * (float)(m / (float)M))` gives t - 1 then."""
    q = np.float32(t) / np.float32(255)
    return Fraction(float(q)) < Fraction(t, 255)


_ROUNDS_DOWN = tuple(int(_rounds_down(t)) for t in range(256))


def _take_clipped(x, start, size, axis):
    """`x` at the indices `clip(start + arange(size), 0, n - 1)` along `axis`
    (n = `x.shape[axis]`, static): what `gather` of those indices gives, by
    slicing and repeating the edges. Slices are contiguous copies, where a
    gather along an inner axis copies element by element (on CPU, XLA's
    gathers made the blurs and windows below about three times slower)."""
    n = x.shape[axis]
    below = min(max(-start, 0), size)
    above = min(max(start + size - n, 0), size)
    first, middle = max(start, 0), size - below - above

    def part(lo, hi):
        return x[(slice(None),) * axis + (slice(lo, hi),)]

    pieces = []
    if below:
        pieces.append(knp.repeat(part(0, 1), below, axis=axis))
    if middle:
        pieces.append(part(first, first + middle))
    if above:
        pieces.append(knp.repeat(part(n - 1, n), above, axis=axis))
    return pieces[0] if len(pieces) == 1 else knp.concatenate(pieces, axis=axis)


def _pad_reflect101(x, axis):
    """`x` with one entry more on each side of `axis`, reflected without
    repeating the edge (OpenCV's BORDER_REFLECT_101, the default border of
    GaussianBlur; a length-1 axis repeats its one entry)."""
    n = x.shape[axis]
    if n == 1:
        return knp.repeat(x, 3, axis=axis)
    return knp.concatenate([_take_clipped(x, 1, 1, axis), x, _take_clipped(x, n - 2, 1, axis)],
                           axis=axis)


def _blur3(gray):
    """`cv2.GaussianBlur(gray, (3, 3), 0)` on (B, H, W) int32 values in
    [0, 255]: the kernel [1, 2, 1] / 4 along both axes, reflect-101 border,
    rounded half up once at the end (OpenCV's bit-exact 8-bit path)."""
    rows = _pad_reflect101(gray, 1)
    vert = rows[:, :-2] + 2 * rows[:, 1:-1] + rows[:, 2:]
    cols = _pad_reflect101(vert, 2)
    total = cols[:, :, :-2] + 2 * cols[:, :, 1:-1] + cols[:, :, 2:]
    return knp.floor_divide(total + 8, 16)


def grayscale_uint8(images):
    """(B, H, W) int32 gray levels of uint8-valued RGB (or one-channel) images,
    as `cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)` computes them: fixed-point
    weights 9798, 19235, 3735 over 2^15, rounded half up."""
    pixels = kb.cast(images, "int32")
    if pixels.shape[-1] == 1:
        return pixels[..., 0]
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    wr, wg, wb = _GRAY_WEIGHTS
    total = r * wr + g * wg + b * wb + (1 << (_GRAY_SHIFT - 1))
    return knp.floor_divide(total, 1 << _GRAY_SHIFT)


def _window_bounds(size, neighbourhood):
    """OpenCV's `getMean` corners along one axis of the integral image (of
    size + 1 entries): P1 = x - n + 1 and P2 = x + n + 1, each clipped to
    [0, size]; the window is [P1, P2), 2n pixels where it fits."""
    x = knp.arange(size, dtype="int32")
    low = knp.clip(x - neighbourhood + 1, 0, size)
    high = knp.clip(x + neighbourhood + 1, 0, size)
    return low, high


def _scale_to_255(values, peak):
    """`(uchar)(255. * (float)(values / (float)peak))` of OpenCV's `mixScales`,
    in exact integer arithmetic for `values` in [0, peak] (int32 (B, H, W),
    `peak` (B, 1, 1)); 0 where the peak is 0 (OpenCV divides 0 by 0 there)."""
    safe = knp.maximum(peak, 1)
    scaled = 255 * values
    whole = knp.floor_divide(scaled, safe)
    exact = knp.equal(scaled - whole * safe, 0)
    down = kb.gather(kb.convert(_ROUNDS_DOWN, "int32"), knp.clip(whole, 0, 255))
    out = whole - knp.where(exact, down, 0)
    return knp.where(peak > 0, out, 0)


def _divide_float32(numerator, denominator, zero):
    """The correctly rounded float32 quotient of int32 tensors, as OpenCV's
    float division. `zero` is a float32 zero the compiler cannot see through
    (from the data): added to the denominator, it keeps XLA and TensorFlow's
    graph optimiser from turning the division by these constant areas into a
    multiplication by the reciprocal, which rounds differently (measured:
    about 1 pixel in 1000 of OpenCV's map moved by one level)."""
    return kb.cast(numerator, "float32") / (kb.cast(denominator, "float32") + zero)


def fine_grained_saliency(images):
    """OpenCV's fine-grained static saliency of a batch, (B, H, W) int32.

    `images` (B, H, W, 3) RGB or (B, H, W, 1) gray, with uint8 values (any
    dtype; they are read as integers in [0, 255]). The map is what
    `cv2.saliency.StaticSaliencyFineGrained_create().computeSaliency(bgr)`
    returns for the image in OpenCV's BGR order, step by step as in
    `staticSaliencyFineGrained.cpp`:

    1. gray levels (`cvtColor`, fixed point), blurred twice with the 3x3
       Gaussian (`GaussianBlur(gray, gray, Size(3, 3), 0, 0)`);
    2. for each neighbourhood n in (12, 24, 48, 28, 56, 112), the mean of the
       window [x - n + 1, x + n + 1) clipped to the image, without its
       centre pixel (float32, as OpenCV's integral image and division), and
       the on / off maps `trunc(max(+-(gray - mean), 0))`;
    3. the on maps summed over scales and scaled to 255 by their maximum
       (likewise the off maps), then `255 * (on + off) / max(max on, max off)`
       truncated to uint8, which wraps past 255 as OpenCV's cast does on x86.

    Every integer step is exact; the means are float32 divisions of exact
    sums, identical to OpenCV's while the image's pixel sum stays below 2^23
    (about 180 x 180 pixels; larger images may differ by one level at rare
    pixels). A constant image has the map 0 (OpenCV divides 0 by 0 there).
    The official SaliencyMix code calls OpenCV on *normalised float* images,
    whose bytes OpenCV then reads as uint8 gray levels (`gray.at<uchar>`),
    a map unrelated to the image; this function computes the meaningful map
    of the uint8 image instead.
    """
    gray = grayscale_uint8(images)
    gray = _blur3(_blur3(gray))
    height, width = gray.shape[1], gray.shape[2]
    # Integral image (B, H + 1, W + 1), int32: exact up to 2^31 / 255 pixels.
    integral = knp.pad(kb.cumsum(kb.cumsum(gray, axis=1), axis=2),
                       ((0, 0), (1, 0), (1, 0)))
    centre = kb.cast(gray, "float32")
    # 0 for gray levels >= 0, which only the data says: see _divide_float32.
    zero = knp.minimum(centre[:, :1, :1], 0.0)
    on_sum, off_sum = 0, 0
    for n in NEIGHBOURHOODS:
        y1, y2 = _window_bounds(height, n)
        x1, x2 = _window_bounds(width, n)
        # The window's sum, integral[y2, x2] + integral[y1, x1] - integral[y2, x1]
        # - integral[y1, x2], as the difference of the rows' then the columns'.
        rows = (_take_clipped(integral, n + 1, height, axis=1)
                - _take_clipped(integral, 1 - n, height, axis=1))
        window = (_take_clipped(rows, n + 1, width, axis=2)
                  - _take_clipped(rows, 1 - n, width, axis=2))
        area = (y2 - y1)[:, None] * (x2 - x1)[None, :] - 1
        mean = _divide_float32(window - gray, area[None], zero)
        # trunc(gray - mean): floor(max(diff, 0)) is its positive part, the
        # on map, and floor(max(-diff, 0)) its negative part, the off map.
        diff = kb.cast(centre - mean, "int32")
        on_sum = on_sum + knp.maximum(diff, 0)
        off_sum = off_sum + knp.maximum(-diff, 0)
    on = _scale_to_255(on_sum, kb.amax(on_sum, axis=(1, 2), keepdims=True))
    off = _scale_to_255(off_sum, kb.amax(off_sum, axis=(1, 2), keepdims=True))
    peak = knp.maximum(kb.amax(on, axis=(1, 2), keepdims=True),
                       kb.amax(off, axis=(1, 2), keepdims=True))
    both = knp.floor_divide(255 * (on + off), knp.maximum(peak, 1))
    return knp.where(peak > 0, knp.mod(both, 256), 0)


def saliency_peaks(saliency):
    """(row, col) int32 (B,) of each map's maximum, the first in row-major
    order where it ties (`np.unravel_index(np.argmax(map), map.shape)`)."""
    width = saliency.shape[2]
    flat = knp.reshape(saliency, (kb.shape(saliency)[0], -1))
    index = kb.cast(knp.argmax(flat, axis=1), "int32")
    return knp.floor_divide(index, width), knp.mod(index, width)

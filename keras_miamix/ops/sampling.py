"""Random samplers that compile under XLA, on every Keras backend.

TensorFlow's gamma op (behind `tf.random.gamma`, `keras.random.beta` and the
TFP Beta/Dirichlet samplers) has no XLA kernel, so Beta and Dirichlet draws are
built here from stateless uniform and normal draws only:

* Gamma(a) by Marsaglia and Tsang's squeeze-rejection method (ACM TOMS 26(3),
  2000) applied to Gamma(a + 1), with the boost Gamma(a) = Gamma(a + 1) * U**(1/a)
  so that every a > 0 is handled the same way. The rejection loop is replaced by
  `num_proposals` vectorised proposals of which the first accepted one is kept.
  For a + 1 >= 1 each proposal is accepted with probability above 0.95, so with
  16 proposals the chance that none is accepted is below 1e-20; in that case the
  sample falls back to the mode of Gamma(a + 1). The draw is therefore exact up
  to that probability.
* Everything is kept in log space, so Beta(a, b) = sigmoid(log Ga - log Gb) and
  Dirichlet = softmax(log G) stay finite even for small concentrations, where
  U**(1/a) underflows.

All functions take a stateless `seed` (a shape-(2,) int32 tensor of the backend
that computes, `keras_miamix.backend`) and are written in that backend's ops,
so they run under TensorFlow (eager, `tf.function`, `tf.data`, XLA), `jax.jit`
and PyTorch alike. On TensorFlow, eager code,
`tf.function` and `tf.data` share the same kernels and give identical draws for
a seed; XLA compiles its own generator (measured here: different numbers for the
same seed, even with the algorithm named), so a `jit_compile=True` call is
reproducible with itself and follows the same distributions, but does not
repeat the eager numbers. Under XLA the large normal draws (FMix's spectra) come
from Threefry-2x32 written as fused integer ops (`threefry2x32`), several times
cheaper there than XLA's own generators. JAX and PyTorch draw from their own
generators (`keras_miamix.backend.uniform`): reproducible per backend, other
numbers than TensorFlow's.
"""

import math

from keras_miamix import backend as kb
from keras_miamix.backend import in_tf_data_function  # noqa: F401 (re-exported)
from keras_miamix.backend import in_xla_context
from keras_miamix.backend import numpy as knp

_NUM_PROPOSALS = 16

_SALT_MULTIPLIER = 65537


def fold_seed(seed, salt):
    """Derives the seed of an independent sub-stream from `seed` and a salt
    (a Python int or an int32 scalar tensor).

    `[s0 * 65537 + salt, s1]` (int32, wrapping): distinct salts (< 65537) at
    each nesting level give distinct seeds, and the stateless generators
    scramble the seed (Philox key/counter derivation, Threefry), so
    neighbouring seeds give independent streams. Two ops, where
    `tf.random.experimental.stateless_fold_in` costs about fifty: on CPU under
    `tf.function` the per-op overhead, not the arithmetic, dominates small
    batches.
    """
    seed = kb.cast(seed, "int32")
    multiplier = kb.convert([_SALT_MULTIPLIER, 1], "int32")
    if isinstance(salt, int):
        return seed * multiplier + kb.convert([salt, 0], "int32")
    salt = knp.stack([kb.cast(salt, "int32"), knp.zeros((), "int32")])
    return seed * multiplier + salt


def normal_pair(shape, seed):
    """Two independent standard normal tensors of `shape`.

    On TensorFlow outside XLA, one Box-Muller draw on Philox uniforms (the
    cosine and the sine of the same radius and angle):
    `r = sqrt(-2 log(1 - u1))`, `z = (r cos(2 pi u2), r sin(2 pi u2))`, exactly
    N(0, 1) up to float32 rounding, as TensorFlow's own normal kernel. For
    FMix's spectra (3.2 million draws on 2 CPU cores) it costs 12 ms where two
    `tf.random.stateless_normal` calls cost 20.

    Under TensorFlow's XLA, `sqrt(2) erfinv(2u - 1)` of Threefry uniforms
    (`_xla_uniform`): XLA's CPU Philox costs 24 ms for those 3.2 million
    uniforms and its sine and cosine 15 ms more, where Threefry as fused
    integer ops costs 4 ms and the inverse error function (a polynomial) 4 ms.
    Same distribution, other numbers (as every XLA draw here). JAX and PyTorch
    use their own normal generators.
    """
    if not kb.is_tensorflow():
        z = kb.normal((2,) + tuple(shape), seed)
        return z[0], z[1]
    import tensorflow as tf

    shape = tf.convert_to_tensor(shape, tf.int32)
    if in_xla_context():
        u = _xla_uniform(tf.concat([[2], shape], 0), seed)
        z = math.sqrt(2.0) * tf.math.erfinv(2.0 * u - 1.0)
        return z[0], z[1]
    u = tf.random.stateless_uniform(tf.concat([[2], shape], 0), seed, alg="philox")
    radius = tf.sqrt(-2.0 * tf.math.log1p(-u[0]))
    angle = (2.0 * math.pi) * u[1]
    return radius * tf.cos(angle), radius * tf.sin(angle)


_THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_THREEFRY_PARITY = 0x1BD11BDA


def _rotate_left(x, r):
    import tensorflow as tf

    return tf.bitwise.bitwise_or(tf.bitwise.left_shift(x, tf.constant(r, tf.uint32)),
                                 tf.bitwise.right_shift(x, tf.constant(32 - r, tf.uint32)))


def threefry2x32(key, x0, x1):
    """Threefry-2x32 with 20 rounds (Salmon et al., "Parallel random numbers:
    as easy as 1, 2, 3", SC 2011; the Random123 reference and JAX's default
    generator): two uint32 counter words to two uint32 random words under a
    key of two uint32 words. Plain elementwise integer ops, which XLA fuses
    into one vectorised loop (it has no kernel of its own for this).

    Args:
        key: (2,) uint32.
        x0, x1: uint32 tensors of one shape, the counter.

    Returns:
        Two uint32 tensors of that shape.
    """
    import tensorflow as tf

    k0, k1 = key[0], key[1]
    keys = (k0, k1, k0 ^ k1 ^ tf.constant(_THREEFRY_PARITY, tf.uint32))
    x0 = x0 + k0
    x1 = x1 + k1
    for block in range(5):
        for r in _THREEFRY_ROTATIONS[block % 2]:
            x0 = x0 + x1
            x1 = _rotate_left(x1, r) ^ x0
        x0 = x0 + keys[(block + 1) % 3]
        x1 = x1 + keys[(block + 2) % 3] + tf.constant(block + 1, tf.uint32)
    return x0, x1


def _xla_uniform(shape, seed):
    """Float32 uniforms of `shape` from Threefry-2x32 keyed by `seed`, two per
    counter: 23 random bits each, on the grid (k + 1/2) / 2**23 in the open
    (0, 1), symmetric about 1/2 (so `erfinv(2u - 1)` stays finite)."""
    import tensorflow as tf

    size = tf.reduce_prod(shape)
    half = (size + 1) // 2
    counter = tf.bitcast(tf.range(half, dtype=tf.int32), tf.uint32)
    bits = tf.concat(threefry2x32(tf.bitcast(tf.cast(seed, tf.int32), tf.uint32),
                                  counter, tf.zeros_like(counter)), 0)[:size]
    k = tf.cast(tf.bitwise.right_shift(bits, tf.constant(9, tf.uint32)), tf.int32)
    return tf.reshape((tf.cast(k, tf.float32) + 0.5) * (2.0 ** -23), shape)


def uniform(shape, seed, minval=0.0, maxval=1.0, dtype="float32"):
    """Uniform draws in [minval, maxval); integers when `dtype` is int32
    (`keras_miamix.backend.uniform`)."""
    return kb.uniform(shape, seed, minval=minval, maxval=maxval, dtype=kb_dtype(dtype))


def kb_dtype(dtype):
    """A dtype as its name ("float32"), from a name or a TensorFlow dtype."""
    return getattr(dtype, "name", dtype)


def stateless_log_gamma(shape, alpha, seed, num_proposals=_NUM_PROPOSALS):
    """Log of Gamma(alpha, 1) samples, without the (non-XLA) gamma op.

    Args:
        shape: output shape.
        alpha: concentration, a float or a tensor broadcastable to `shape`;
            every value must be positive.
        seed: stateless seed, shape (2,).
        num_proposals: vectorised rejection proposals per sample.

    Returns:
        float32 tensor of `shape` holding log(G), G ~ Gamma(alpha, 1).
    """
    alpha = knp.broadcast_to(kb.cast(kb.convert(alpha), "float32"), shape)
    boosted = alpha + 1.0
    d = boosted - 1.0 / 3.0
    c = 1.0 / knp.sqrt(9.0 * d)
    prop_shape = (num_proposals,) + tuple(kb.shape(alpha))
    if kb.is_tensorflow():
        import tensorflow as tf

        prop_shape = tf.concat([[num_proposals], tf.shape(alpha)], axis=0)
    x = kb.normal(prop_shape, fold_seed(seed, 1))
    u = uniform(prop_shape, fold_seed(seed, 2))
    v = 1.0 + c * x
    v_pos = knp.maximum(v, 1e-12)
    v3 = v_pos * v_pos * v_pos
    log_v3 = 3.0 * knp.log(v_pos)
    accept = (v > 0.0) & (
        knp.log(knp.maximum(u, 1e-30)) < 0.5 * x * x + d - d * v3 + d * log_v3
    )
    # First accepted proposal; if none is accepted keep the mode (v = 1).
    accept_i = kb.cast(accept, "int32")
    first = kb.cast(knp.argmax(accept_i, axis=0), "int32")
    any_accept = kb.amax(accept_i, axis=0) > 0
    pick = kb.cast(knp.expand_dims(first, 0) == _proposal_index(num_proposals, rank=len(
        alpha.shape)), "float32")
    log_v3_first = knp.sum(log_v3 * pick, axis=0)
    log_v3_first = knp.where(any_accept, log_v3_first, knp.zeros_like(log_v3_first))
    log_g_boosted = knp.log(d) + log_v3_first
    u_boost = uniform(kb.shape(alpha) if not kb.is_tensorflow() else _tf_shape(alpha),
                      fold_seed(seed, 3), minval=1e-30, maxval=1.0)
    return log_g_boosted + knp.log(u_boost) / alpha


def _tf_shape(x):
    import tensorflow as tf

    return tf.shape(x)


def _proposal_index(num_proposals, rank):
    """(P, 1, ..., 1) int32 proposal numbers 0..P-1."""
    return knp.reshape(knp.arange(num_proposals, dtype="int32"), (num_proposals,) + (1,) * rank)


def sample_beta(shape, alpha, beta, seed):
    """Beta(alpha, beta) samples of `shape`, XLA-compatible.

    `alpha` and `beta` are floats or tensors broadcastable to `shape`.
    Beta(1, 1) is drawn as the uniform it is.
    """
    if isinstance(alpha, (int, float)) and isinstance(beta, (int, float)) and alpha == beta == 1:
        return uniform(shape, fold_seed(seed, 11))
    both = knp.stack(
        [knp.broadcast_to(kb.cast(kb.convert(alpha), "float32"), shape),
         knp.broadcast_to(kb.cast(kb.convert(beta), "float32"), shape)]
    )
    log_g = stateless_log_gamma(_shape_of(both), both, fold_seed(seed, 11))
    return kb.nn.sigmoid(log_g[0] - log_g[1])


def _shape_of(x):
    """The shape to draw like `x`: a shape tensor on TensorFlow (dynamic
    sizes), a tuple of ints elsewhere."""
    return _tf_shape(x) if kb.is_tensorflow() else tuple(x.shape)


def sample_dirichlet(concentration, seed, active=None):
    """Dirichlet samples, one per row of `concentration`, XLA-compatible.

    Args:
        concentration: (..., K) positive concentrations.
        seed: stateless seed.
        active: optional boolean (..., K); inactive components get exactly 0
            and the active ones follow the Dirichlet of their concentrations
            (a Dirichlet restricted to a subset of components is the
            normalised subset of independent Gammas).

    Returns:
        float32 (..., K) rows summing to one.
    """
    concentration = kb.cast(kb.convert(concentration), "float32")
    log_g = stateless_log_gamma(_shape_of(concentration), concentration, seed)
    if active is not None:
        log_g = knp.where(active, log_g, knp.full_like(log_g, -1e30))
    probs = kb.nn.softmax(log_g, axis=-1)
    if active is not None:
        probs = knp.where(active, probs, knp.zeros_like(probs))
    return probs


def sample_uniform(shape, seed, minval=0.0, maxval=1.0):
    """Uniform floats in [minval, maxval)."""
    return uniform(shape, seed, minval=minval, maxval=maxval)


def sample_categorical(batch_size, weights, seed):
    """Draws `batch_size` indices with probabilities proportional to `weights`.

    Uses the inverse CDF on a uniform draw (XLA-compatible, no multinomial op).
    """
    weights = kb.cast(kb.convert(weights), "float32")
    cdf = knp.cumsum(weights / knp.sum(weights), axis=0)
    u = uniform([batch_size], seed)
    idx = knp.sum(kb.cast(u[:, None] >= cdf[None, :], "int32"), axis=-1)
    return knp.minimum(idx, kb.shape(weights)[0] - 1)


def random_permutation(batch_size, seed):
    """A random permutation of range(batch_size) (argsort of uniforms)."""
    u = uniform([batch_size], seed)
    if kb.is_tensorflow():
        import tensorflow as tf

        return tf.argsort(u)
    return kb.cast(knp.argsort(u), "int32")

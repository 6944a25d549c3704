"""The backend that `keras_miamix.ops` compute with, and the few primitives
that Keras' own backend modules lack or make slower.

The ops are written once, against `keras.src.backend.<name>` (the modules
behind `keras.ops`), through the namespaces `numpy`, `core`, `math`, `nn`
and `linalg` of this module. Which backend those resolve to is Keras'
configured backend (`KERAS_BACKEND`), except inside `use("tensorflow")`: a
layer in a `tf.data` map switches to TensorFlow there whatever the Keras
backend, as Keras core's preprocessing layers do (`keras.layers.DataLayer`),
because `tf.data` graphs hold TensorFlow tensors only. The switch is
thread-local, so pipelines traced in other threads keep their own.

The primitives below take and return the active backend's tensors:

* `uniform` and `normal`: stateless draws from a (2,) int32 seed tensor.
  TensorFlow uses its stateless kernels (Philox under XLA, see `_rng_alg`),
  JAX `jax.random` with the seed as its raw Threefry key, PyTorch a
  `torch.Generator` seeded from the 64 bits of the seed. A seed gives the
  same numbers run to run on each backend; the backends' generators differ,
  so the numbers differ between backends (the distributions do not).
* `gather`, `cumsum` (exclusive and reverse), `segment_sum` (negative ids
  dropped), `cond`: thin and, on TensorFlow, exactly the ops the library used
  before it ran on other backends, so its TensorFlow graphs did not change.
* `switch`, `fori_loop`, `input_gradient` (a gradient with respect to the
  input inside a training step) and `host_call` (NumPy code on the host):
  what PuzzleMix's step needs on each backend.
* `in_xla_context`, `static_shapes`, `in_tf_data_function`: which code path a
  function takes while it is traced.
"""

import contextlib
import importlib
import threading

import keras

_local = threading.local()
_MODULES = {}


def name():
    """The backend the ops compute with now: "tensorflow", "jax" or "torch"."""
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else keras.backend.backend()


def is_tensorflow():
    return name() == "tensorflow"


@contextlib.contextmanager
def use(backend_name):
    """Computes with `backend_name` inside the block (this thread only)."""
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(backend_name)
    try:
        yield
    finally:
        stack.pop()


def module():
    """`keras.src.backend.<active backend>`."""
    backend_name = name()
    mod = _MODULES.get(backend_name)
    if mod is None:
        mod = _MODULES[backend_name] = importlib.import_module(
            f"keras.src.backend.{backend_name}")
    return mod


class _Namespace:
    """`numpy.where(...)` resolves to `keras.src.backend.<active>.numpy.where`."""

    __slots__ = ("_sub",)

    def __init__(self, sub):
        self._sub = sub

    def __getattr__(self, attr):
        return getattr(getattr(module(), self._sub), attr)


numpy = _Namespace("numpy")
core = _Namespace("core")
math = _Namespace("math")
nn = _Namespace("nn")
linalg = _Namespace("linalg")


def _tf():
    import tensorflow as tf

    return tf


# ------------------------------------------------------------------ tensors
def convert(x, dtype=None):
    """`x` as a tensor of the active backend (a no-op for one already)."""
    return module().convert_to_tensor(x, dtype=dtype)


def cast(x, dtype):
    return module().cast(x, dtype)


def is_tensor(x):
    return module().is_tensor(x)


def dtype_name(x):
    """The dtype of a tensor as Keras names it ("float32", "uint8", ...)."""
    return keras.backend.standardize_dtype(x.dtype)


def shape(x):
    """Static sizes as Python ints where the graph knows them, scalar tensors
    where it does not (TensorFlow graphs); always ints on JAX and PyTorch."""
    if is_tensorflow():
        tf = _tf()
        dynamic = tf.shape(x)
        return tuple(s if s is not None else dynamic[i] for i, s in enumerate(x.shape))
    return tuple(x.shape)


def rank(x):
    return len(x.shape)


def to_numpy(x):
    import numpy as np

    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def to_native(x):
    """A concrete tensor of any backend as a tensor of Keras' backend (for
    results computed with TensorFlow under another Keras backend)."""
    if x is None or keras.backend.backend() == "tensorflow":
        return x
    return keras.ops.convert_to_tensor(to_numpy(x))


# ------------------------------------------------------------ tracing state
def in_xla_context():
    """True while TensorFlow traces for XLA (`tf.function(jit_compile=True)`),
    False otherwise and on the other backends. AutoGraph must not convert
    it: the converted copy fails when a function that `tf.data` converts (a
    `ds.map` of user code) reaches it."""
    if not is_tensorflow():
        return False
    return _xla_context_tf()


def _xla_context_tf():
    tf = _tf()
    from tensorflow.python.ops import control_flow_util

    graph = tf.compat.v1.get_default_graph()
    return bool(control_flow_util.GraphOrParentsInXlaContext(graph))


def static_shapes():
    """Whether the code must keep every shape static: under XLA on TensorFlow,
    and always on JAX and PyTorch (`jax.jit` and `torch.compile` need it, and
    one path per backend keeps eager and compiled results equal)."""
    return not is_tensorflow() or in_xla_context()


def in_tf_graph():
    """True inside a TensorFlow graph that is not being traced by JAX: a
    `tf.data` map, a `tf.function`."""
    from keras.src.utils import backend_utils

    return backend_utils.in_tf_graph()


def in_tf_data_function():
    """True while `tf.data` traces a function (a `ds.map(layer)`, or a
    function of the user's that calls the layer inside one), False eagerly and
    in a `tf.function` of one's own. tf.data names its functions after the
    transformation ("Dataset_map_<fn>", "tf_data_experimental_...")."""
    import sys

    if sys.modules.get("tensorflow") is None:  # never imported, or absent
        return False
    tf = _tf()
    if tf.executing_eagerly():
        return False
    graph = tf.compat.v1.get_default_graph()
    while graph is not None:
        if getattr(graph, "name", "").startswith(("Dataset_", "tf_data_")):
            return True
        graph = getattr(graph, "outer_graph", None)
    return False


# ------------------------------------------------------------------ gathers
def gather(x, indices, axis=0):
    """`x` at `indices` along `axis` (indices in range, none negative)."""
    backend_name = name()
    if backend_name == "tensorflow":
        return _tf().gather(x, indices, axis=axis)
    if backend_name == "jax":
        import jax.numpy as jnp

        return jnp.take(x, indices, axis=axis, mode="clip")
    import torch

    axis = axis % x.ndim
    if indices.ndim == 1:
        return torch.index_select(x, axis, indices.long())
    flat = torch.index_select(x, axis, indices.reshape(-1).long())
    return flat.reshape(x.shape[:axis] + indices.shape + x.shape[axis + 1:])


def batch_gather(x, indices):
    """`x[b, indices[b, ...]]` for (B, N, ...) `x` and (B, M) `indices`:
    TensorFlow's `tf.gather(x, indices, batch_dims=1)`."""
    if is_tensorflow():
        return _tf().gather(x, indices, batch_dims=1)
    extra = x.shape[2:]
    idx = cast(indices, "int32")
    idx = numpy.reshape(idx, tuple(idx.shape) + (1,) * len(extra))
    idx = numpy.broadcast_to(idx, tuple(indices.shape) + tuple(extra))
    return numpy.take_along_axis(x, idx, axis=1)


def cumsum(x, axis, exclusive=False, reverse=False):
    """TensorFlow's `tf.cumsum` on every backend."""
    if is_tensorflow():
        return _tf().cumsum(x, axis=axis, exclusive=exclusive, reverse=reverse)
    if reverse:
        x = numpy.flip(x, axis=axis)
    out = numpy.cumsum(x, axis=axis)
    if exclusive:
        out = out - x
    if reverse:
        out = numpy.flip(out, axis=axis)
    return out


def segment_sum(data, segment_ids, num_segments):
    """Sums of `data` by id into `num_segments` (a static int off TensorFlow),
    for `data` and `segment_ids` of one shape; entries with a negative id are
    dropped."""
    backend_name = name()
    if backend_name == "tensorflow":
        return _tf().math.unsorted_segment_sum(data, segment_ids, num_segments)
    if backend_name == "jax":
        import jax

        # Elementwise: `data` and `segment_ids` of one shape.
        return jax.ops.segment_sum(data.reshape(-1), segment_ids.reshape(-1),
                                   num_segments=num_segments, mode="drop")
    import torch

    ids = segment_ids.reshape(-1).long()
    vals = data.reshape(-1)
    keep = ids >= 0
    out = torch.zeros((num_segments + 1,), dtype=data.dtype, device=data.device)
    out.index_add_(0, torch.where(keep, ids, num_segments), vals)
    return out[:num_segments]


def cond(pred, true_fn, false_fn):
    """`tf.cond` / `jax.lax.cond`; PyTorch evaluates the predicate eagerly."""
    backend_name = name()
    if backend_name == "tensorflow":
        return _tf().cond(pred, true_fn, false_fn)
    if backend_name == "jax":
        import jax

        return jax.lax.cond(pred, true_fn, false_fn)
    return true_fn() if bool(pred) else false_fn()


def switch(index, branches):
    """`branches[index]()`: `tf.switch_case` / `jax.lax.switch`; PyTorch
    calls the chosen branch eagerly. Every branch returns the same shapes."""
    backend_name = name()
    if backend_name == "tensorflow":
        return _tf().switch_case(index, branches)
    if backend_name == "jax":
        import jax

        return jax.lax.switch(index, [lambda _, f=f: f() for f in branches], None)
    return branches[int(index)]()


def fori_loop(count, body, init):
    """`init` passed through `body(i, value)` `count` (a static int) times:
    a `tf.while_loop` / `jax.lax.fori_loop`, a Python loop on PyTorch."""
    backend_name = name()
    if backend_name == "tensorflow":
        tf = _tf()
        _, out = tf.while_loop(lambda i, _: i < count, lambda i, v: (i + 1, body(i, v)),
                               (tf.constant(0), init))
        return out
    if backend_name == "jax":
        import jax

        return jax.lax.fori_loop(0, count, body, init)
    value = init
    for i in range(count):
        value = body(i, value)
    return value


def input_gradient(fn, x):
    """`(d fn(x)[0] / dx, fn(x)[1])` for `fn` returning (scalar, aux), the
    gradient cut from any outer differentiation (`aux` keeps its own).

    TensorFlow records `fn` on a nested `GradientTape`, JAX takes
    `jax.value_and_grad(..., has_aux=True)`, PyTorch `torch.autograd.grad`
    with the graph kept, so that `aux` (a loss the caller adds) still
    carries the gradients of the weights.
    """
    backend_name = name()
    if backend_name == "tensorflow":
        tf = _tf()
        with tf.GradientTape() as tape:
            tape.watch(x)
            value, aux = fn(x)
        return tf.stop_gradient(tape.gradient(value, x)), aux
    if backend_name == "jax":
        import jax

        (_, aux), grad = jax.value_and_grad(fn, has_aux=True)(x)
        return jax.lax.stop_gradient(grad), aux
    import torch

    leaf = x.detach().requires_grad_(True)
    value, aux = fn(leaf)
    (grad,) = torch.autograd.grad(value, leaf, retain_graph=True)
    return grad.detach(), aux


def host_call(fn, args, shape, dtype):
    """`fn(*numpy arrays)` on the host, returning an array of a static
    `shape` and `dtype`: `tf.numpy_function` (no XLA kernel), JAX's
    `pure_callback`, NumPy directly on PyTorch."""
    import numpy as np

    backend_name = name()
    if backend_name == "tensorflow":
        tf = _tf()
        out = tf.numpy_function(lambda *a: np.asarray(fn(*a), dtype), list(args), dtype,
                                stateful=False)
        return tf.ensure_shape(out, shape)
    if backend_name == "jax":
        import jax

        return jax.pure_callback(lambda *a: np.asarray(fn(*[np.asarray(v) for v in a]), dtype),
                                 jax.ShapeDtypeStruct(tuple(shape), dtype), *args)
    import torch

    device = args[0].device
    out = fn(*[a.detach().cpu().numpy() for a in args])
    return torch.as_tensor(np.asarray(out, dtype), device=device)


def bitcast_float_to_int32(x):
    """The bit pattern of float32 values as int32."""
    backend_name = name()
    if backend_name == "tensorflow":
        tf = _tf()
        return tf.bitcast(tf.cast(x, tf.float32), tf.int32)
    if backend_name == "jax":
        import jax

        return jax.lax.bitcast_convert_type(x.astype("float32"), "int32")
    import torch

    return x.to(torch.float32).view(torch.int32)


# ----------------------------------------------------------------- randomness
def _rng_alg():
    """Philox under XLA, whose default generator on CPU costs about 25x more
    per number (measured: 32 against 1.4 ms for 139,000 uniforms, which made
    MiAMix's few thousand Dirichlet proposals cost more than the whole blend);
    elsewhere the default, so that non-XLA draws stay what they were."""
    return "philox" if in_xla_context() else "auto_select"


def _jax_key(seed):
    import jax
    import jax.numpy as jnp

    return jax.lax.bitcast_convert_type(jnp.asarray(seed, jnp.int32), jnp.uint32)


def _torch_generator(seed, device):
    import torch

    s0, s1 = (int(v) for v in seed.detach().cpu().tolist())
    gen = torch.Generator(device=device)
    gen.manual_seed(((s0 & 0xFFFFFFFF) << 32) | (s1 & 0xFFFFFFFF))
    return gen


def _static_shape(shape):
    return tuple(int(s) for s in shape)


def uniform(shape, seed, minval=0.0, maxval=1.0, dtype="float32"):
    """Uniform draws in [minval, maxval); integers when `dtype` is "int32".
    `seed` is a (2,) int32 tensor of the active backend."""
    backend_name = name()
    if backend_name == "tensorflow":
        tf = _tf()
        return tf.random.stateless_uniform(shape, seed, minval=minval, maxval=maxval,
                                           dtype=dtype, alg=_rng_alg())
    shape = _static_shape(shape)
    if backend_name == "jax":
        import jax

        key = _jax_key(seed)
        if "int" in str(dtype):
            return jax.random.randint(key, shape, minval, maxval, dtype=dtype)
        return jax.random.uniform(key, shape, dtype=dtype, minval=minval, maxval=maxval)
    import torch

    device = seed.device
    gen = _torch_generator(seed, device)
    if "int" in str(dtype):
        return torch.randint(int(minval), int(maxval), shape, generator=gen, device=device,
                             dtype=getattr(torch, dtype))
    u = torch.rand(shape, generator=gen, device=device, dtype=getattr(torch, dtype))
    return u * (maxval - minval) + minval


def normal(shape, seed, dtype="float32"):
    """Standard normal draws (TensorFlow: `tf.random.stateless_normal`)."""
    backend_name = name()
    if backend_name == "tensorflow":
        return _tf().random.stateless_normal(shape, seed, dtype=dtype, alg=_rng_alg())
    shape = _static_shape(shape)
    if backend_name == "jax":
        import jax

        return jax.random.normal(_jax_key(seed), shape, dtype=dtype)
    import torch

    gen = _torch_generator(seed, seed.device)
    return torch.randn(shape, generator=gen, device=seed.device, dtype=getattr(torch, dtype))


# --------------------------------------------------------------- reductions
def amax(x, axis=None, keepdims=False):
    """`max` that, on TensorFlow, is `tf.reduce_max` (Keras' version asserts
    that the tensor is not empty, which MiAMix's empty row groups are)."""
    if is_tensorflow():
        return _tf().reduce_max(x, axis=axis, keepdims=keepdims)
    return numpy.max(x, axis=axis, keepdims=keepdims)


def amin(x, axis=None, keepdims=False):
    """`min`, likewise `tf.reduce_min` on TensorFlow."""
    if is_tensorflow():
        return _tf().reduce_min(x, axis=axis, keepdims=keepdims)
    return numpy.min(x, axis=axis, keepdims=keepdims)


def _exclude_from_autograph():
    """Keeps AutoGraph from converting these primitives when a user's
    `tf.function` reaches them: they hold no tensor-dependent Python control
    flow, and converted copies were seen to be called with another function's
    arguments (a `tf.function` over AutoMix's `mix_one_batch`)."""
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - TensorFlow is a dependency
        return
    module_globals = globals()
    for fn_name in ("name", "is_tensorflow", "module", "convert", "cast", "is_tensor",
                    "dtype_name", "shape", "rank", "gather", "batch_gather", "cumsum",
                    "segment_sum", "cond", "switch", "fori_loop", "input_gradient",
                    "host_call", "bitcast_float_to_int32", "uniform", "normal",
                    "amax", "amin", "in_xla_context", "static_shapes", "in_tf_graph",
                    "in_tf_data_function"):
        module_globals[fn_name] = tf.autograph.experimental.do_not_convert(
            module_globals[fn_name])


_exclude_from_autograph()

"""The base of every mixing layer: one input/output contract for all methods."""

import os

import keras
import numpy as np

from keras_miamix import backend as kb
from keras_miamix.backend import numpy as knp
from keras_miamix.ops.mixing import check_batch_sizes
from keras_miamix.ops.mixing import mix_batch
from keras_miamix.ops.mixing import prepare_labels
from keras_miamix.ops.sampling import fold_seed
from keras_miamix.ops.sampling import in_tf_data_function
from keras_miamix.ops.sampling import in_xla_context
from keras_miamix.ops.sampling import random_permutation
from keras_miamix.ops.sampling import sample_beta

IMAGES = "images"
LABELS = "labels"
SAMPLE_WEIGHT = "sample_weight"
SEGMENTATION_MASKS = "segmentation_masks"
_DICT_KEYS = (IMAGES, LABELS, SAMPLE_WEIGHT, SEGMENTATION_MASKS)
# TensorFlow Datasets' keys (`tfds.load(..., as_supervised=False)`).
_KEY_ALIASES = {"image": IMAGES, "label": LABELS}


def seed_state_dtype():
    """int64 where the backend has it; int32 on JAX, whose 64-bit types are
    off by default."""
    return "int32" if keras.backend.backend() == "jax" else "int64"


def add_seed_state(layer, seed, name="seed_state"):
    """A (2,) integer non-trainable weight `[seed, calls]` holding a layer's or
    model's random state (int64; int32 on JAX).

    Unlike `keras.random.SeedGenerator`, whose state Keras does not save, it is
    an ordinary weight, so a `.keras` file or checkpoint restores it and a
    resumed run continues the random stream instead of replaying it. With
    `seed=None` the initial value comes from the operating system.
    """
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little") >> 1
    dtype = seed_state_dtype()
    value = np.array([int(seed) & 0x7FFFFFFF, 0], dtype)
    return layer.add_weight(
        shape=(2,),
        dtype=dtype,
        trainable=False,
        initializer=lambda shape, dtype=None: kb.convert(value, dtype),
        name=name,
    )


def next_seed(state):
    """Reads the stateless seed of this call and advances the state.

    Under a `tf.distribute` strategy with several replicas (MirroredStrategy,
    MultiWorkerMirroredStrategy, TPUStrategy) the replica's index is folded in,
    so that no two replicas mix their shards with the same draws while the
    state itself stays one mirrored value.

    `state` is the Keras weight of `add_seed_state`, or (a layer of another
    Keras backend inside `tf.data`) a `tf.Variable` standing in for it.
    """
    if not kb.is_tensorflow():
        value = state.value
        state.assign(value + kb.convert([0, 1], state.dtype))
        return kb.cast(value, "int32")
    import tensorflow as tf

    value = state.read_value() if isinstance(state, tf.Variable) else state.value
    seed = tf.cast(tf.identity(value), tf.int32)
    state.assign_add(tf.constant([0, 1], tf.int64))
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        seed = fold_seed(seed, 4096 + tf.cast(ctx.replica_id_in_sync_group, tf.int32))
    return seed


def content_salt(images):
    """A 32-bit checksum of a batch: the bit pattern of the float sum of three
    rows of every image (at 1/4, 1/2 and 3/4 of the height).

    Folded into each call's seed. `ds.map(layer, num_parallel_calls=...)` runs
    calls concurrently, and reading then advancing the seed state is not atomic
    (TensorFlow has no fetch-and-add on resource variables): measured here, two
    of 500 batches drew the same seed. With the batch's content folded in, such
    batches still get different draws unless they are identical, and the same
    data with the same seed state still gives the same result. Whole rows are
    contiguous, so this costs ~0.05 ms where a strided sample cost 0.8 ms.
    """
    height = kb.shape(images)[1]
    rows = knp.stack([height // 4, height // 2, (3 * height) // 4])
    total = knp.sum(kb.gather(images, kb.cast(rows, "int32"), axis=1))
    return kb.bitcast_float_to_int32(total)


def check_positive(name, value):
    if not value > 0:
        raise ValueError(f"`{name}` must be positive; received {name}={value!r}.")


def check_probability(name, value):
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1]; received {name}={value!r}.")


def check_range(name, value, low=None, high=None, integer=False):
    """Checks a `(min, max)` pair with `low <= min <= max <= high`."""
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be a pair (min, max); received {name}={value!r}."
        ) from None
    ok = lo <= hi and (low is None or lo >= low) and (high is None or hi <= high)
    if integer:
        ok = ok and int(lo) == lo and int(hi) == hi
    if not ok:
        bounds = f" within [{low}, {high}]" if low is not None or high is not None else ""
        raise ValueError(
            f"`{name}` must be a pair (min, max) with min <= max{bounds}; "
            f"received {name}={value!r}."
        )
    return (lo, hi)


class BaseMixLayer(keras.layers.Layer):
    """Base class of the mixing layers.

    A subclass only says how to draw masks (`generate_masks`); this class
    handles the input structures, labels, dtypes, data format, seeds and the
    mixing itself (through `keras_miamix.ops.mix_batch`).

    Inputs, all batched (call `ds.batch()` before `ds.map(layer)`):

    * `images` alone;
    * a tuple `(images, labels)` or `(images, labels, sample_weight)`;
    * a dict with "images" and optionally "labels", "sample_weight" and
      "segmentation_masks"; TensorFlow Datasets' "image" and "label" work too
      and come back under the same keys, and any other key (a tfds "id", say)
      passes through unchanged (it describes the anchor).

    The output has the input's structure. Images may be uint8 or floating, of
    any size and channel count, channels-last or channels-first; they come
    out in the layer's compute dtype, like Keras core's preprocessing layers
    (float32 by default, float16 under `mixed_float16`), while masks, label
    weights and the blend itself are computed in float32. Labels may be
    one-hot or soft floats (B, K), or class indices (B,) or (B, 1) with
    `num_classes` (checked to lie in [0, num_classes): eagerly and in
    `tf.data` an index out of range is an error naming it; XLA drops that
    check); they come out as float32 (B, K), and sample weights as float32.

    Args:
        num_classes: number of classes, needed for integer labels.
        label_smoothing: label smoothing in [0, 1) applied before mixing.
        data_format: "channels_last" or "channels_first" (default: Keras'
            image data format).
        seed: integer seed. The same seed gives the same draws run to run;
            every call advances the layer's seed state, so two batches in a
            row get different draws.
        jit_compile: whether to compile the mixing with XLA where the layer
            runs outside it. "auto" (the default) compiles it inside `tf.data`
            (`ds.map(layer)`) when TensorFlow sees a GPU or TPU: there the
            host's pipeline must keep up with the device, and compiled a batch
            costs one op instead of hundreds of small ones (MiAMix and FMix
            make 1.5 to 3 times the images per second). On a CPU-only machine,
            where training shares the cores and the compilation does not pay
            for itself, "auto" leaves it uncompiled, like Keras' own "auto".
            True compiles it eagerly, in `tf.function` and in `tf.data`;
            False never. Under a model compiled with `jit_compile=True` the
            layer is compiled with the model whatever this says. Compiled, the
            first batch of each shape pays the compilation (MiAMix: about 10 s
            on 2 CPU cores; a smaller last batch compiles once more), and the
            draws follow XLA's generators: the same distributions and, for a
            seed, the same numbers run to run, but not the uncompiled numbers.
    """

    def __init__(
        self,
        num_classes=None,
        label_smoothing=0.0,
        data_format=None,
        seed=None,
        jit_compile="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not (isinstance(jit_compile, bool) or jit_compile == "auto"):
            raise ValueError(
                "`jit_compile` must be True, False or 'auto'; received "
                f"jit_compile={jit_compile!r}.")
        self.jit_compile = jit_compile
        self._jit_mix = {}
        if num_classes is not None and (int(num_classes) != num_classes or num_classes < 1):
            raise ValueError(
                "`num_classes` must be a positive integer or None; received "
                f"num_classes={num_classes!r}."
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                "`label_smoothing` must be in [0, 1); received "
                f"label_smoothing={label_smoothing!r}."
            )
        self.num_classes = None if num_classes is None else int(num_classes)
        self.label_smoothing = float(label_smoothing)
        data_format = data_format or keras.config.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                "`data_format` must be 'channels_last' or 'channels_first'; "
                f"received data_format={data_format!r}."
            )
        self.data_format = data_format
        self.seed = seed
        self.seed_state = add_seed_state(self, seed)
        # Its one weight exists from here: built, so that `stateless_call`
        # (jax.jit) works before a first call.
        self.built = True
        self.supports_jit = True
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True

    # ------------------------------------------------------------------ hooks
    def generate_masks(self, batch_size, height, width, seed):
        """Returns a dict with "masks" (B, H, W, 1), "lam" (B,) and optionally
        "source_rows" (B, H) and "source_cols" (B, W), a separable map of the
        partner's pixels (ResizeMix). Implemented by every method."""
        raise NotImplementedError

    def mix(self, data, seed):
        """Mixes unpacked, channels-last float data; returns (outputs, info).

        The default pairs each sample with a random permutation of the batch and
        uses `generate_masks`; MiAMix overrides it.
        """
        images = data[IMAGES]
        batch = kb.shape(images)[0]
        height, width = _spatial_size(images)
        perm = random_permutation(batch, fold_seed(seed, 101))
        gen = self.generate_masks(batch, height, width, fold_seed(seed, 102))
        out = mix_batch(
            images,
            gen["masks"],
            perm,
            labels=data.get(LABELS),
            sample_weight=data.get(SAMPLE_WEIGHT),
            segmentation_masks=data.get(SEGMENTATION_MASKS),
            source_rows=gen.get("source_rows"),
            source_cols=gen.get("source_cols"),
        )
        info = {
            "masks": gen["masks"],
            "partner_index": perm,
            "label_weights": out["label_weights"],
            "lam": gen["lam"],
        }
        return out, info

    def _compiled_mix(self, with_info):
        """`mix` compiled with XLA, built once per layer and per `with_info`.

        Without `with_info` the compiled program returns only the mixed data:
        every output of an XLA program is written out in full, and `mix`'s
        extras (the partner images, MiAMix's views and layer masks) cost more
        than the mixing itself at 224 px. No AutoGraph: `mix` is plain
        traceable code, and Keras calls `call` unconverted anyway. (Converted,
        it once failed inside a long benchmark's tf.data map with a method
        called without its `self`, `BetaMixLayer.generate_masks`.)
        """
        if with_info not in self._jit_mix:
            def mix(data, seed):
                out, info = self.mix(data, seed)
                if with_info:
                    return out, info
                return {k: v for k, v in out.items() if k in _DICT_KEYS}, {}

            import tensorflow as tf

            self._jit_mix[with_info] = tf.function(
                mix, jit_compile=True, reduce_retracing=True, autograph=False)
        return self._jit_mix[with_info]

    # ------------------------------------------------------------------- call
    def __call__(self, inputs, *args, **kwargs):
        """Chooses the backend that computes this call.

        * Inside a TensorFlow graph (a `tf.data` map, a `tf.function`) under
          another Keras backend: TensorFlow, whatever `KERAS_BACKEND` says, as
          Keras core's preprocessing layers do; the random state then lives in
          a `tf.Variable` beside the layer's weight, started from it.
        * Otherwise Keras' backend, on its native arrays: NumPy inputs are
          converted, and JAX and PyTorch get JAX and PyTorch arrays back
          (traceable by `jax.jit`, or on the GPU under PyTorch).
        """
        structured = isinstance(inputs, (tuple, list, dict))
        backend_name = keras.backend.backend()
        leaves = keras.tree.flatten(inputs)
        symbolic = any(isinstance(x, keras.KerasTensor) for x in leaves)
        if backend_name != "tensorflow" and not symbolic and _tf_graph_inputs(leaves):
            with kb.use("tensorflow"):
                if structured:
                    inputs = keras.tree.map_structure(_to_tensor, inputs)
                return super().__call__(inputs, *args, **kwargs)
        # Keras refuses nested arguments that mix tensors and numpy arrays;
        # users pass (images, numpy labels) all the time, so convert first.
        if structured:
            inputs = keras.tree.map_structure(_to_tensor, inputs)
        elif backend_name != "tensorflow" and not symbolic:
            inputs = _to_tensor(inputs)
        return super().__call__(inputs, *args, **kwargs)

    def _seed_state_here(self):
        """The random state this call advances: the layer's weight, or inside
        `tf.data` under another Keras backend a `tf.Variable` started from it
        (created once, outside the traced function)."""
        if kb.name() == keras.backend.backend():
            return self.seed_state
        mirror = self.__dict__.get("_tf_seed_state")
        if mirror is None:
            import tensorflow as tf

            with tf.init_scope():
                start = kb.to_numpy(self.seed_state.value).astype("int64")
                mirror = tf.Variable(start, dtype=tf.int64, trainable=False)
            # Outside Keras' attribute tracking: not a weight of the layer.
            object.__setattr__(self, "_tf_seed_state", mirror)
        return mirror

    def call(self, inputs, labels=None, sample_weight=None, training=True, return_info=False):
        """Mixes a batch.

        Args:
            inputs: images, a tuple or a dict (see the class docstring).
            labels: labels, when `inputs` are images; `ds.map(layer)` on a
                dataset of `(images, labels)` tuples passes them this way.
            sample_weight: sample weights, likewise.
            training: when False the inputs come back unchanged.
            return_info: also return a dict with the per-sample "masks"
                (B, H, W, 1) (1 keeps the anchor), "partner_index" (B,),
                "label_weights" (B,) (the anchor's label share) and "lam" (B,)
                (the sampled ratio); subclasses add more.
        """
        if labels is not None:
            inputs = (inputs, labels) if sample_weight is None else (inputs, labels, sample_weight)
        elif sample_weight is not None:
            raise ValueError("`sample_weight` was given without `labels`.")
        if not training:
            return (inputs, None) if return_info else inputs
        data, repack = self._unpack(inputs)
        images = data[IMAGES]
        compute_images = kb.cast(images, "float32")
        channels_first = self.data_format == "channels_first"
        if channels_first:
            compute_images = knp.transpose(compute_images, (0, 2, 3, 1))
            if SEGMENTATION_MASKS in data and kb.rank(data[SEGMENTATION_MASKS]) == 4:
                data[SEGMENTATION_MASKS] = knp.transpose(data[SEGMENTATION_MASKS], (0, 2, 3, 1))
        data[IMAGES] = compute_images
        seed = next_seed(self._seed_state_here())
        seed = fold_seed(seed, content_salt(compute_images))
        if self._compiles_here():
            out, info = self._compiled_mix(return_info)(data, seed)
        else:
            out, info = self.mix(data, seed)
        if return_info:
            shape = kb.shape(compute_images)
            info["masks"] = knp.broadcast_to(info["masks"], tuple(shape[:3]) + (1,))
        mixed = out[IMAGES]
        if channels_first:
            mixed = knp.transpose(mixed, (0, 3, 1, 2))
            if SEGMENTATION_MASKS in out and kb.rank(out[SEGMENTATION_MASKS]) == 4:
                out[SEGMENTATION_MASKS] = knp.transpose(out[SEGMENTATION_MASKS], (0, 3, 1, 2))
        out[IMAGES] = kb.cast(mixed, self.compute_dtype)
        result = repack(out)
        return (result, info) if return_info else result

    def _compiles_here(self):
        """Whether this call runs `mix` through XLA itself (see `jit_compile`)."""
        if self.jit_compile is False or not kb.is_tensorflow() or in_xla_context():
            return False
        return self.jit_compile is True or (in_tf_data_function() and accelerator_present())

    def _unpack(self, inputs):
        """Returns (dict of tensors, function that rebuilds the structure)."""
        if isinstance(inputs, dict):
            names = {_KEY_ALIASES.get(k, k): k for k in inputs}
            if IMAGES not in names or len(names) != len(inputs):
                raise ValueError(
                    f"{type(self).__name__} takes a dict with the key 'images' (or "
                    f"tfds' 'image') and optionally {_DICT_KEYS[1:]} (or 'label'), "
                    f"each once; received keys {sorted(inputs)}."
                )
            data = {k: kb.convert(inputs[names[k]]) for k in _DICT_KEYS if k in names}
            passthrough = {k: v for k, v in inputs.items()
                           if _KEY_ALIASES.get(k, k) not in _DICT_KEYS}

            def repack(out):
                result = {names[k]: out[k] for k in _DICT_KEYS if k in names}
                result.update(passthrough)
                return {k: result[k] for k in inputs}

        elif isinstance(inputs, (tuple, list)):
            if len(inputs) not in (2, 3):
                raise ValueError(
                    f"{type(self).__name__} takes a tuple (images, labels) or "
                    "(images, labels, sample_weight); received a "
                    f"{type(inputs).__name__} of length {len(inputs)}."
                )
            keys = (IMAGES, LABELS, SAMPLE_WEIGHT)[: len(inputs)]
            data = {k: kb.convert(v) for k, v in zip(keys, inputs)}

            def repack(out):
                return tuple(out[k] for k in keys)

        else:
            data = {IMAGES: kb.convert(inputs)}

            def repack(out):
                return out[IMAGES]

        images = data[IMAGES]
        if kb.rank(images) != 4:
            raise ValueError(
                f"{type(self).__name__} expects a batch of images of rank 4 "
                "(batch, height, width, channels) or (batch, channels, height, "
                f"width); received images of shape {tuple(images.shape)}. In tf.data, "
                "call `ds.batch(...)` before `ds.map(layer)`."
            )
        image_dtype = kb.dtype_name(images)
        if not ("float" in image_dtype or "int" in image_dtype):
            raise ValueError(
                f"`images` must be floating or integer; received dtype {image_dtype}."
            )
        if LABELS in data:
            data[LABELS] = prepare_labels(
                data[LABELS], self.num_classes, self.label_smoothing
            )
        if SAMPLE_WEIGHT in data:
            sw = kb.cast(data[SAMPLE_WEIGHT], "float32")
            if kb.rank(sw) == 2 and sw.shape[-1] == 1:
                sw = sw[:, 0]
            if kb.rank(sw) != 1:
                raise ValueError(
                    "`sample_weight` must have shape (batch,) or (batch, 1); "
                    f"received shape {tuple(data[SAMPLE_WEIGHT].shape)}."
                )
            data[SAMPLE_WEIGHT] = sw
        if SEGMENTATION_MASKS in data and kb.rank(data[SEGMENTATION_MASKS]) not in (3, 4):
            raise ValueError(
                "`segmentation_masks` must have shape (batch, height, width) or "
                "(batch, height, width, classes); received shape "
                f"{tuple(data[SEGMENTATION_MASKS].shape)}."
            )
        check_batch_sizes(
            images,
            labels=data.get(LABELS),
            sample_weight=data.get(SAMPLE_WEIGHT),
            segmentation_masks=data.get(SEGMENTATION_MASKS),
        )
        return data, repack

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, inputs, labels=None, sample_weight=None, training=True,
                            return_info=False):
        """Images in the compute dtype, labels (B, K) and sample weights (B,)
        in float32, segmentation masks and other dict entries as they came."""
        if labels is not None:
            inputs = (inputs, labels) if sample_weight is None else (inputs, labels,
                                                                     sample_weight)

        def spec(key, x):
            key = _KEY_ALIASES.get(key, key)
            if key == IMAGES:
                return keras.KerasTensor(x.shape, dtype=self.compute_dtype)
            if key == LABELS:
                k = self.num_classes if (len(x.shape) == 1 or x.shape[-1] == 1
                                         or "int" in str(x.dtype)) else x.shape[-1]
                return keras.KerasTensor((x.shape[0], k), dtype="float32")
            if key == SAMPLE_WEIGHT:
                return keras.KerasTensor((x.shape[0],), dtype="float32")
            return keras.KerasTensor(x.shape, dtype=x.dtype)

        if isinstance(inputs, dict):
            return {k: spec(k, v) for k, v in inputs.items()}
        if isinstance(inputs, (tuple, list)):
            return tuple(spec(k, v) for k, v in zip((IMAGES, LABELS, SAMPLE_WEIGHT), inputs))
        return spec(IMAGES, inputs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "label_smoothing": self.label_smoothing,
                "data_format": self.data_format,
                "seed": self.seed,
                "jit_compile": self.jit_compile,
            }
        )
        return config


def accelerator_present():
    """True when TensorFlow sees a GPU or TPU: then `jit_compile="auto"`
    compiles the mixing inside `tf.data`, as Keras' own "auto" enables XLA
    only off CPU-only machines."""
    import tensorflow as tf

    return any(d.device_type != "CPU" for d in tf.config.list_logical_devices())


def _tf_graph_inputs(leaves):
    """Whether the inputs are TensorFlow graph tensors (a `tf.data` map, a
    `tf.function`), or TensorFlow tensors at all (a layer of another backend
    is then run with TensorFlow)."""
    import sys

    if sys.modules.get("tensorflow") is None:  # never imported, or absent
        return False
    import tensorflow as tf

    if any(isinstance(x, tf.Tensor) and not hasattr(x, "numpy") for x in leaves):
        return True
    return kb.in_tf_graph() and not any(_is_traced(x) for x in leaves)


def _is_traced(x):
    """A JAX tracer, or a tensor that `torch.compile` traces."""
    name = keras.backend.backend()
    if name == "jax":
        import jax

        return isinstance(x, jax.core.Tracer)
    if name == "torch":
        import torch

        return torch.compiler.is_compiling()
    return False


def _to_tensor(value):
    if value is None or isinstance(value, keras.KerasTensor) or isinstance(
            value, keras.Variable):
        return value
    if kb.is_tensor(value):
        return value
    import sys

    if not kb.is_tensorflow() and sys.modules.get("tensorflow") is not None:
        import tensorflow as tf

        if isinstance(value, (tf.Tensor, tf.Variable)):
            # A concrete TensorFlow tensor under another backend.
            return kb.convert(kb.to_numpy(value))
    return kb.convert(value)


def _spatial_size(images):
    """(height, width) as Python ints when static, else scalar tensors."""
    shape = kb.shape(images)
    return shape[1], shape[2]


class BetaMixLayer(BaseMixLayer):
    """A mixing layer whose anchor share is lam ~ Beta(alpha, alpha) per sample.

    Subclasses set `mask_function` (a generator of `keras_miamix.ops.masks`)
    and, through `mask_kwargs`, its extra arguments.

    Args:
        alpha: concentration of the symmetric Beta distribution, > 0.
        **kwargs: see `BaseMixLayer`.
    """

    mask_function = None

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        check_positive("alpha", alpha)
        self.alpha = float(alpha)

    def mask_kwargs(self):
        return {}

    def generate_masks(self, batch_size, height, width, seed):
        lam = sample_beta([batch_size], self.alpha, self.alpha, fold_seed(seed, 1))
        masks = type(self).mask_function(
            lam, height, width, fold_seed(seed, 2), **self.mask_kwargs())
        return {"masks": masks, "lam": lam}

    def get_config(self):
        config = super().get_config()
        config["alpha"] = self.alpha
        return config

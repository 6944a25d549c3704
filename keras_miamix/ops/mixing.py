"""The one mixing path shared by every mask-based method.

`mix_batch` takes the per-sample masks (1 keeps the anchor x_i, 0 takes the
partner x_j), the partner indices and whatever travels with the images, and
returns

* images   `mask * x_i + (1 - mask) * x_j`,
* labels   `w * y_i + (1 - w) * y_j` with `w` the mean of the applied mask,
* sample weights mixed with the same `w`,
* segmentation masks taken pixel-wise from the image with the larger share
  (`mask >= 0.5` keeps the anchor's), kept in their dtype and channel count.

Helpers here also prepare labels (one-hot, smoothing) and validate inputs, so
that every layer and model reports bad input the same way. Written in the
ops of the computing backend (`keras_miamix.backend`).
"""

import numpy as np

from keras_miamix import backend as kb
from keras_miamix.backend import numpy as knp


def label_weights(masks):
    """Per-sample anchor share, the mean of each (B, H, W, 1) mask."""
    return knp.mean(masks, axis=(1, 2, 3))


def gather_partners(images, partner_index, source_rows=None, source_cols=None,
                    zero_outside=False):
    """The partner of every sample, `images[partner_index]`.

    With `source_rows` (B, H) and `source_cols` (B, W), output pixel (r, c) of
    sample b takes pixel `(source_rows[b, r], source_cols[b, c])` of its partner
    (a separable map such as ResizeMix's resize or the flip-and-crop of
    `ops.augment`), in one gather of pixels. With `zero_outside`, pixels whose
    map points outside the image are 0 (the zero padding of a crop); else the
    maps must lie inside it. (Gathering whole rows, transposing and gathering
    again was measured too: no faster in `tf.function` and up to 5x slower
    under XLA on CPU.)
    """
    if source_rows is None:
        return kb.gather(images, partner_index)
    shape = kb.shape(images)
    height, width = shape[1], shape[2]
    if zero_outside:
        valid = (((source_rows >= 0) & (source_rows < height))[:, :, None]
                 & ((source_cols >= 0) & (source_cols < width))[:, None, :])
        source_rows = knp.minimum(knp.maximum(source_rows, 0), height - 1)
        source_cols = knp.minimum(knp.maximum(source_cols, 0), width - 1)
    index = (partner_index[:, None, None] * (height * width)
             + source_rows[:, :, None] * width + source_cols[:, None, :])
    flat = knp.reshape(images, (-1, shape[3]))
    out = knp.reshape(kb.gather(flat, index), shape)
    if zero_outside:
        out = knp.where(valid[..., None], out, knp.zeros_like(out))
    return out


def mix_labels(labels, weights, partner_index):
    """`w * y_i + (1 - w) * y_j` for (B, K) float labels (or (B,) weights)."""
    labels = kb.convert(labels)
    partner = kb.gather(labels, partner_index)
    w = knp.reshape(kb.cast(weights, labels.dtype), (-1,) + (1,) * (kb.rank(labels) - 1))
    return partner + w * (labels - partner)


def mix_sample_weights(sample_weight, weights, partner_index):
    """Per-sample weights mixed like the labels (None stays None)."""
    if sample_weight is None:
        return None
    return mix_labels(kb.cast(knp.reshape(sample_weight, (-1,)), "float32"), weights,
                      partner_index)


def weighted_mean(values, sample_weight=None):
    """The mean of (B,) `values`, weighted by `sample_weight` when given."""
    if sample_weight is None:
        return knp.mean(values)
    w = kb.cast(knp.reshape(sample_weight, (-1,)), "float32")
    return knp.sum(values * w) / knp.maximum(knp.sum(w), 1e-12)


def mix_batch(
    images,
    masks,
    partner_index,
    labels=None,
    sample_weight=None,
    segmentation_masks=None,
    partner_images=None,
    partner_segmentation_masks=None,
    source_rows=None,
    source_cols=None,
    label_weight=None,
    zero_outside=False,
):
    """Mixes a channels-last batch with per-sample masks.

    Args:
        images: (B, H, W, C) floating anchors x_i.
        masks: (B, H, W, 1) in [0, 1], or (B, 1, 1, 1) for a constant mask;
            1 keeps the anchor.
        partner_index: (B,) int32, the partner j of each sample i.
        labels: optional (B, K) float labels.
        sample_weight: optional (B,) sample weights.
        segmentation_masks: optional (B, H, W) or (B, H, W, S) per-pixel labels.
        partner_images: optional (B, H, W, C) batch the partners are taken from
            (`partner_images[j]`); defaults to `images` (MiAMix passes a second
            augmented view here).
        partner_segmentation_masks: optional batch the partners' segmentation
            masks are taken from; defaults to `segmentation_masks`.
        source_rows, source_cols: optional (B, H) and (B, W) separable pixel
            map into the partner (ResizeMix's resized paste).
        zero_outside: the partner pixels whose map points outside the image
            are 0 (MiAMix's zero-padded partner views); see `gather_partners`.
        label_weight: optional (B,) anchor weight for labels and sample
            weights; defaults to the mask's mean. Only MiAMix's
            `lambda_mode="orig"` ablation passes its sampled lambda here.

    Returns:
        dict with "images", "label_weights", "partners" (each sample's
        partner pixels as mixed in) and, when given, "labels",
        "sample_weight" and "segmentation_masks".
    """
    if partner_images is None:
        partner_images = images
    partner = gather_partners(partner_images, partner_index, source_rows, source_cols,
                              zero_outside)
    m = kb.cast(masks, images.dtype)
    if kb.rank(m) == 4 and m.shape[1] == 1 and m.shape[2] == 1:
        # A per-sample constant: two cheap broadcasts beat the form below
        # (10.2 vs 11.2 ms at (64, 224, 224, 3) on 2 CPU cores).
        out = {"images": m * images + (1 - m) * partner}
    else:
        # m * x_i + (1 - m) * x_j with one (B, H, W, 1) broadcast instead of two
        # (18.5 vs 22.4 ms at the same size).
        out = {"images": partner + m * (images - partner)}
    weights = label_weights(masks) if label_weight is None else label_weight
    out["label_weights"] = weights
    out["partners"] = partner
    if labels is not None:
        out["labels"] = mix_labels(labels, weights, partner_index)
    if sample_weight is not None:
        out["sample_weight"] = mix_labels(sample_weight, weights, partner_index)
    if segmentation_masks is not None:
        seg = kb.convert(segmentation_masks)
        seg_source = seg if partner_segmentation_masks is None else partner_segmentation_masks
        squeeze = kb.rank(seg) == 3
        if squeeze:
            seg, seg_source = seg[..., None], seg_source[..., None]
        seg_partner = gather_partners(seg_source, partner_index, source_rows, source_cols,
                                      zero_outside)
        keep = knp.broadcast_to(masks >= 0.5, tuple(kb.shape(seg)[:3]) + (1,))
        seg = knp.where(keep, seg, seg_partner)
        out["segmentation_masks"] = seg[..., 0] if squeeze else seg
    return out


def prepare_labels(labels, num_classes=None, label_smoothing=0.0, dtype="float32"):
    """Turns labels into (B, K) float rows, optionally smoothed.

    Class indices, integer labels or any labels of shape (B,) (or (B, 1) with
    `num_classes` > 1), need `num_classes`; other float labels are taken as
    one-hot or soft rows of shape (B, K).

    Raises:
        ValueError: integer labels without `num_classes`, or a bad shape.
    """
    labels = kb.convert(labels)
    rank = kb.rank(labels)
    label_dtype = kb.dtype_name(labels)
    # Class indices: integer labels, or labels of shape (B,) / (B, 1) of any
    # dtype (Keras' adapters turn integer arrays into floats under
    # tf.distribute).
    indices = "int" in label_dtype or label_dtype == "bool" or rank == 1 or (
        rank == 2 and labels.shape[-1] == 1 and num_classes not in (None, 1))
    if indices:
        if num_classes is None:
            raise ValueError(
                "Class-index labels need `num_classes`: pass "
                "`num_classes=K` to the layer (or one-hot float labels). "
                f"Received labels of dtype {label_dtype} and shape "
                f"{tuple(labels.shape)}."
            )
        if rank == 2 and labels.shape[-1] == 1:
            labels = labels[:, 0]
        elif rank != 1:
            raise ValueError(
                "Integer labels must have shape (batch,) or (batch, 1); "
                f"received shape {tuple(labels.shape)}."
            )
        labels = kb.nn.one_hot(check_class_indices(labels, num_classes), num_classes,
                               dtype=dtype)
    else:
        if rank != 2:
            raise ValueError(
                "Float labels must be one-hot or soft rows of shape "
                f"(batch, num_classes); received shape {tuple(labels.shape)}. For "
                "class indices pass integer labels and `num_classes`."
            )
        if num_classes is not None and labels.shape[-1] not in (None, num_classes):
            raise ValueError(
                f"`num_classes={num_classes}` does not match labels of shape "
                f"{tuple(labels.shape)}."
            )
        labels = kb.cast(labels, dtype)
    if label_smoothing:
        k = kb.cast(kb.convert(kb.shape(labels)[-1]), dtype)
        labels = labels * (1.0 - label_smoothing) + label_smoothing / k
    return labels


def check_class_indices(labels, num_classes):
    """Class-index labels as int32, checked to lie in [0, num_classes).

    One-hot encoding turns an index out of range into an all-zero row, so a
    wrong `num_classes` would train on wrong targets without a word. Labels
    whose values are known when tracing (eager code on any backend, constants)
    raise a `ValueError` at once; in a TensorFlow graph (`tf.data`, a
    `tf.function`) others get a run-time assertion, which fails the pipeline
    or the step with the same message. XLA (`jit_compile=True`) drops
    assertions, and `jax.jit` and `torch.compile` have none, so a compiled
    train step cannot check them.
    """
    indices = kb.cast(labels, "int32")
    message = (f"Labels must be class indices in [0, num_classes) with "
               f"num_classes={num_classes}; received label")
    static = _static_value(indices)
    if static is not None:
        bad = static[(static < 0) | (static >= num_classes)]
        if bad.size:
            raise ValueError(f"{message} {int(bad.flat[0])} (labels seen: min "
                             f"{int(static.min())}, max {int(static.max())}).")
        return indices
    if not kb.is_tensorflow():
        return indices
    import tensorflow as tf

    ok = (indices >= 0) & (indices < num_classes)
    first_bad = tf.gather(indices, tf.argmin(tf.cast(ok, tf.int32)))
    check = tf.debugging.Assert(tf.reduce_all(ok), [message, first_bad])
    with tf.control_dependencies([check]):
        return tf.identity(indices)


def _static_value(x):
    """The values of `x` as a NumPy array when they are known now: always for
    concrete tensors, for TensorFlow graph tensors when constant; None for
    traced values (a `jax.jit` tracer, a graph placeholder, a tensor that
    `torch.compile` traces)."""
    name = kb.name()
    if name == "tensorflow":
        import tensorflow as tf

        return tf.get_static_value(x)
    if name == "jax":
        import jax

        if isinstance(x, jax.core.Tracer):
            return None
        return np.asarray(x)
    import torch

    if torch.compiler.is_compiling() or x.is_meta:
        return None
    return x.detach().cpu().numpy()


def check_batch_sizes(images, **others):
    """Raises a ValueError when a tensor's batch size differs from the images'.

    Checked statically when both sizes are known, else at run time
    (TensorFlow graphs with an unknown batch).
    """
    n = images.shape[0]
    for name, value in others.items():
        if value is None:
            continue
        m = value.shape[0]
        if n is not None and m is not None:
            if n != m:
                raise ValueError(
                    f"`{name}` has batch size {m} but `images` has batch size "
                    f"{n}; they must match. Received {name} of shape "
                    f"{tuple(value.shape)} and images of shape {tuple(images.shape)}."
                )
        elif kb.is_tensorflow():
            import tensorflow as tf

            tf.debugging.assert_equal(
                tf.shape(value)[0],
                tf.shape(images)[0],
                message=f"`{name}` and `images` have different batch sizes",
            )

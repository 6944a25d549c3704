"""Plots of masks and mixed samples (needs matplotlib: `pip install keras_miamix[vis]`).

Built on the layers' `return_info=True`, so what is drawn is exactly what the
layer did: the anchor, its partner, the mask (white keeps the anchor) and the
mixed image, with the label weight of the anchor in the title.
"""

import numpy as np


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - exercised without matplotlib
        raise ImportError(
            "keras_miamix.visualization needs matplotlib: pip install matplotlib"
        ) from err
    return plt


def _to_display(images):
    x = np.asarray(images, np.float32)
    if x.max() > 1.5:  # uint8 range
        x = x / 255.0
    lo, hi = x.min(), x.max()
    if lo < 0.0 or hi > 1.0:
        x = (x - lo) / max(hi - lo, 1e-8)
    return np.clip(x, 0.0, 1.0)


def mix_for_display(layer, images, labels=None):
    """Runs `layer` once with `return_info=True` on a channels-last batch.

    Returns:
        dict with "anchors", "partners", "masks", "mixed" (numpy, channels
        last), "label_weights" and the layer's whole info dict under "info".
    """
    inputs = images if labels is None else (images, labels)
    out, info = layer(inputs, training=True, return_info=True)
    mixed = out if labels is None else out[0]
    partner_index = np.asarray(info["partner_index"])
    images = np.asarray(images)
    return {
        "anchors": images,
        "partners": images[partner_index],
        "masks": np.asarray(info["masks"])[..., 0],
        "mixed": np.asarray(mixed),
        "label_weights": np.asarray(info["label_weights"]),
        "info": {k: np.asarray(v) for k, v in info.items()},
    }


def plot_mixing(layer, images, labels=None, num=6, title=None, class_names=None):
    """A grid of `num` samples: anchor, partner, mask and mixed image per row.

    Args:
        layer: a mixing layer of `keras_miamix.layers`.
        images: a channels-last batch (float or uint8).
        labels: optional class indices (or what the layer takes).
        num: how many samples to draw.
        title: figure title (default: the layer's class name).
        class_names: names of the classes, for the titles (with integer
            labels).

    Returns:
        The matplotlib figure.

    Example:

    >>> import keras, keras_miamix as km
    >>> fig = plot_mixing(km.FMix(seed=0), keras.random.uniform((6, 32, 32, 3), seed=0))
    """
    d = mix_for_display(layer, images, labels)
    return _plot_rows(d, np.asarray(labels) if labels is not None else None, num,
                      title or type(layer).__name__, class_names)


def _class_of(labels, index, class_names):
    if labels is None:
        return None
    label = labels[index]
    label = int(np.argmax(label)) if np.ndim(label) else int(label)
    return class_names[label] if class_names is not None else str(label)


def _plot_rows(d, labels, num, title, class_names=None):
    plt = _pyplot()
    num = min(num, len(d["mixed"]))
    fig, axes = plt.subplots(num, 4, figsize=(7.2, 1.95 * num + 0.5), squeeze=False)
    partner_index = d["info"].get("partner_index", np.arange(len(d["mixed"])))
    for r in range(num):
        w = float(d["label_weights"][r])
        a_name = _class_of(labels, r, class_names)
        p_name = _class_of(labels, int(partner_index[r]), class_names)
        panels = (_to_display(d["anchors"][r]), _to_display(d["partners"][r]),
                  d["masks"][r], _to_display(d["mixed"][r]))
        titles = (f"anchor: {a_name}" if a_name else "anchor x_i",
                  f"partner: {p_name}" if p_name else "partner x_j",
                  "mask (white = anchor)",
                  f"{a_name} {w:.2f} + {p_name} {1 - w:.2f}" if a_name
                  else f"label weight {w:.2f}")
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            if panel.ndim == 3 and panel.shape[-1] == 1:
                panel = panel[..., 0]
            grey = c == 2 or panel.ndim == 2
            ax.imshow(panel, cmap="gray" if grey else None, vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(titles[c], fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_miamix_stages(layer, images, num=4):
    """MiAMix's stages for `num` samples: each layer mask with its method and
    augmentation, the merged mask and the mixed image."""
    plt = _pyplot()
    d = mix_for_display(layer, images)
    info = d["info"]
    layers = info["layer_masks"].shape[1]
    num = min(num, len(d["mixed"]))
    fig, axes = plt.subplots(num, layers + 3, figsize=(2.1 * (layers + 3), 2.2 * num),
                             squeeze=False)
    for r in range(num):
        axes[r, 0].imshow(_to_display(d["anchors"][r]))
        axes[r, 0].set_title("self-mix" if info["self_mixed"][r] else "anchor", fontsize=8)
        for j in range(layers):
            method = int(info["methods"][r, j])
            name = layer.methods[method] if method >= 0 else "(unused)"
            tags = "".join(t for t, on in (("+rot", info["rotated"][r, j]),
                                           ("+smooth", info["smoothed"][r, j])) if on)
            axes[r, j + 1].imshow(info["layer_masks"][r, j, ..., 0], cmap="gray", vmin=0, vmax=1)
            axes[r, j + 1].set_title(f"{name}{tags}\nlam={info['lambdas'][r, j]:.2f}",
                                     fontsize=8)
        axes[r, layers + 1].imshow(d["masks"][r], cmap="gray", vmin=0, vmax=1)
        axes[r, layers + 1].set_title(f"merged (k={info['k'][r]})", fontsize=8)
        axes[r, layers + 2].imshow(_to_display(d["mixed"][r]))
        axes[r, layers + 2].set_title(f"w={d['label_weights'][r]:.2f}", fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_history(history, title=None):
    """Loss and accuracy per epoch, train and test, from a list of per-epoch
    log dicts (`keras_miamix.training.JsonHistory`) or a Keras `History`."""
    plt = _pyplot()
    if hasattr(history, "history"):
        logs = history.history
        rows = [{k: v[i] for k, v in logs.items()} for i in range(len(next(iter(logs.values()))))]
    else:
        rows = list(history)
    epochs = np.arange(1, len(rows) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        keys = [(f"{metric}", "train (mixed batches)"), (f"val_{metric}", "test")]
        if metric == "accuracy" and rows and "accuracy" not in rows[0]:
            keys = [("accuracy", "train"), ("val_teacher_accuracy", "test (teacher)"),
                    ("val_student_accuracy", "test (student)")]
        for key, label in keys:
            values = [r.get(key, np.nan) for r in rows]
            if not np.all(np.isnan(values)):
                ax.plot(epochs, values, marker="." if len(rows) < 40 else None, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def automix_masks_for_display(model, images, lam=0.5, seed=0):
    """The masks a trained AutoMix's Mix Block makes for a batch at one lambda.

    Returns the same dict as `mix_for_display` (anchor mask: 1 keeps the anchor).
    """
    import tensorflow as tf

    from keras_miamix.ops.mixing import mix_batch
    from keras_miamix.ops.sampling import random_permutation

    x = tf.cast(tf.convert_to_tensor(images), tf.float32)
    perm = random_permutation(tf.shape(x)[0], tf.constant([seed, 7]))
    masks = model.predict_masks(x, lam, perm)
    out = mix_batch(x, masks, perm)
    p = np.asarray(perm)
    return {
        "anchors": np.asarray(images),
        "partners": np.asarray(images)[p],
        "masks": np.asarray(masks)[..., 0],
        "mixed": np.asarray(out["images"]),
        "label_weights": np.asarray(out["label_weights"]),
        "info": {"partner_index": p},
    }


def plot_automix_masks(model, images, labels=None, lam=0.5, num=6, class_names=None,
                       title=None):
    """Rows of anchor, partner, learned mask and mixed image from AutoMix's
    Mix Block at `lam` (the label weight is the mask's mean)."""
    d = automix_masks_for_display(model, images, lam)
    return _plot_rows(d, None if labels is None else np.asarray(labels), num,
                      title or f"AutoMix learned masks (lambda = {lam:.2f})", class_names)


def plot_method_samples(method, images, labels=None, class_names=None, num=6, mixer=None,
                        method_args=None, seed=0):
    """The picture of one method of `keras_miamix.training.METHODS` on a batch.

    Mixing layers (and Keras core's MixUp/CutMix) are built afresh from
    `method_args` and `seed`; AutoMix needs the trained model as `mixer`;
    Manifold Mixup mixes hidden states, so the picture shows its input-level
    case (one of its three mixing points) with its Beta(alpha, alpha) lambda;
    "none" shows the images unmixed.
    """
    from keras_miamix.training import methods as methods_lib

    images = np.asarray(images)
    args = dict(method_args or {})
    if method in methods_lib.LAYER_METHODS:
        layer = methods_lib.make_mixer(method, None, args, seed)
        return _plot_rows(mix_for_display(layer, images), _maybe(labels), num,
                          type(layer).__name__, class_names)
    if method == "automix":
        if mixer is None:
            raise ValueError("AutoMix's masks come from a trained model: pass `mixer=`.")
        return plot_automix_masks(mixer, images, labels, num=num, class_names=class_names)
    if method == "manifold_mixup":
        from keras_miamix.layers import MixUp

        layer = MixUp(alpha=args.get("alpha", 2.0), seed=seed)
        return _plot_rows(mix_for_display(layer, images), _maybe(labels), num,
                          "Manifold Mixup, input-level case (it also mixes hidden states)",
                          class_names)
    if method in methods_lib.KERAS_BASELINES:
        raise ValueError(f"No picture for Keras core's layers ({method!r}): they return no "
                         "masks.")
    d = {"anchors": images, "partners": images, "mixed": images,
         "masks": np.ones(images.shape[:3], np.float32),
         "label_weights": np.ones(len(images), np.float32), "info": {}}
    return _plot_rows(d, None if labels is None else np.asarray(labels), num,
                      "no mixing", class_names)


def _maybe(labels):
    return None if labels is None else np.asarray(labels)


def close(fig):
    """Closes a figure (frees its memory in long runs)."""
    _pyplot().close(fig)

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
    # MiAMix mixes two augmented views: draw those, not the inputs.
    anchors = np.asarray(info.get("anchor_view", images))
    partners = (np.asarray(info["partner_view"]) if "partner_view" in info
                else images[partner_index])
    return {
        "anchors": anchors,
        "partners": partners,
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
        labels: optional class indices or one-hot rows, for the titles.
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
    d = mix_for_display(layer, images)
    return _plot_rows(d, _maybe(labels), num, title or type(layer).__name__, class_names)


def _class_of(labels, index, class_names):
    if labels is None:
        return None
    label = labels[index]
    label = int(np.argmax(label)) if np.ndim(label) else int(label)
    return class_names[label] if class_names is not None else str(label)


def _plot_rows(d, labels, num, title, class_names=None):
    """Anchor, partner, mask and mixed image per row; with a saliency map in
    the info (SaliencyMix), the partner's map, its peak and the box too."""
    plt = _pyplot()
    num = min(num, len(d["mixed"]))
    saliency = d["info"].get("saliency")
    cols = 4 if saliency is None else 5
    fig, axes = plt.subplots(num, cols, figsize=(1.8 * cols, 1.95 * num + 0.5),
                             squeeze=False)
    partner_index = d["info"].get("partner_index", np.arange(len(d["mixed"])))
    for r in range(num):
        w = float(d["label_weights"][r])
        a_name = _class_of(labels, r, class_names)
        p_name = _class_of(labels, int(partner_index[r]), class_names)
        panels = (_to_display(d["anchors"][r]), _to_display(d["partners"][r]),
                  d["masks"][r], _to_display(d["mixed"][r]))
        titles = (f"anchor: {a_name}" if a_name else "anchor x_i",
                  f"partner: {p_name}" if p_name else "partner x_j",
                  "mask (white = anchor)" if "mask_means" not in d
                  else f"mask (white = anchor) {d['mask_means'][r]:.2f}",
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
        if saliency is not None:
            _plot_saliency(axes[r, 4], saliency[r], d["masks"][r],
                           (d["info"]["peak_rows"][r], d["info"]["peak_cols"][r]))
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def _plot_saliency(ax, saliency, mask, peak):
    """The partner's saliency map with its peak (red) and the pasted box."""
    plt = _pyplot()
    ax.imshow(saliency, cmap="magma", vmin=0, vmax=255, interpolation="nearest")
    rows, cols = np.nonzero(mask < 0.5)
    if rows.size:
        ax.add_patch(plt.Rectangle((cols.min() - 0.5, rows.min() - 0.5),
                                   cols.max() - cols.min() + 1, rows.max() - rows.min() + 1,
                                   fill=False, edgecolor="cyan", linewidth=1.2))
    ax.plot([peak[1]], [peak[0]], "o", color="red", markersize=3)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("partner saliency, peak, box", fontsize=8)


def plot_miamix_stages(layer, images, num=4):
    """MiAMix's stages for `num` samples, one row each: the two augmented
    views (anchor and partner), every layer's mask before and after its mask
    augmentation (with method, lambda and what was applied), the merged mask
    and the mixed image with its label weight."""
    plt = _pyplot()
    d = mix_for_display(layer, images)
    info = d["info"]
    layers = info["layer_masks"].shape[1]
    num = min(num, len(d["mixed"]))
    cols = 2 * layers + 4
    fig, axes = plt.subplots(num, cols, figsize=(1.75 * cols, 1.95 * num + 0.4), squeeze=False)
    for r in range(num):
        panels = [(_to_display(d["anchors"][r]), "anchor view", False),
                  (_to_display(d["partners"][r]),
                   "partner view (self)" if info["self_mixed"][r] else "partner view", False)]
        for j in range(layers):
            method = int(info["methods"][r, j])
            if method < 0:
                name, after = f"(k < {j + 1})", "unused"
            else:
                name = layer.methods[method]
                tags = [t for t, on in (("rotated", info["rotated"][r, j]),
                                        ("smoothed", info["smoothed"][r, j])) if on]
                after = " + ".join(tags) if tags else "not augmented"
            lam = info["lambdas"][r, j]
            panels.append((info["raw_layer_masks"][r, j, ..., 0],
                           f"{name}\npartner {lam:.2f}" if method >= 0 else name, True))
            panels.append((info["layer_masks"][r, j, ..., 0], after, True))
        panels.append((d["masks"][r], f"merged (k={info['k'][r]})", True))
        panels.append((_to_display(d["mixed"][r]),
                       f"mixed, w={d['label_weights'][r]:.2f}", False))
        for c, (panel, title, mask) in enumerate(panels):
            ax = axes[r, c]
            if panel.ndim == 3 and panel.shape[-1] == 1:
                panel = panel[..., 0]
            ax.imshow(panel, cmap="gray" if mask or panel.ndim == 2 else None, vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_title(title, fontsize=7.5)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("MiAMix: views, each layer's mask before/after augmentation, merged mask "
                 "(white = anchor)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_augmix(layer, images, labels=None, num=4, class_names=None):
    """AugMix of `num` images, one row each: the image, each chain's result
    (its operations and weight in the title) and the output, with the skip
    weight m (the chains' share)."""
    from keras_miamix.ops.augmix import ALL_OPS

    plt = _pyplot()
    images = np.asarray(images)
    out, info = layer(images, training=True, return_info=True)
    info = {k: np.asarray(v) for k, v in info.items()}
    num = min(num, len(images))
    width = info["chains"].shape[1]
    fig, axes = plt.subplots(num, width + 2, figsize=(2.2 * (width + 2), 2.3 * num + 0.5),
                             squeeze=False)
    for r in range(num):
        name = _class_of(labels, r, class_names)
        panels = [(images[r], name or "image")]
        for i in range(width):
            ops = [ALL_OPS[o] for o in info["ops"][r, i] if o >= 0]
            panels.append((info["chains"][r, i],
                           f"w={info['chain_weights'][r, i]:.2f}\n" + " + ".join(ops)))
        panels.append((np.asarray(out)[r], f"AugMix, m={info['skip_weight'][r]:.2f}"))
        for c, (panel, title) in enumerate(panels):
            ax = axes[r, c]
            low, high = layer.value_range
            panel = np.clip((np.asarray(panel, np.float32) - low) / (high - low), 0.0, 1.0)
            ax.imshow(panel[..., 0] if panel.shape[-1] == 1 else panel,
                      cmap="gray" if panel.shape[-1] == 1 else None, vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=6.5)
    fig.suptitle("AugMix", fontsize=11)
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
        if metric == "accuracy" and rows and "val_student_accuracy" in rows[0]:
            keys = [("accuracy", "train (student, clean batches)"),
                    ("val_accuracy", "test (teacher)"), ("val_student_accuracy", "test (student)")]
        for key, label in keys:
            values = [r.get(key, np.nan) for r in rows]
            if not np.all(np.isnan(values)):
                ax.plot(epochs, values, marker="." if len(rows) < 40 else None, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        if metric == "loss":
            ax.set_yscale("log")  # the first epochs' test loss dwarfs the rest
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def automix_masks_for_display(model, images, lam=0.5, seed=0):
    """The masks a trained AutoMix's Mix Block makes for a batch at one lambda.

    Returns the same dict as `mix_for_display` (anchor mask: 1 keeps the
    anchor), with AutoMix's label weight: lambda itself, which its mixed
    cross-entropy uses (the mask loss only keeps the batch's mean mask within
    0.1 of lambda); "mask_means" holds each mask's mean. Without
    `lambda_concat` (the official CIFAR setting) the Mix Block does not see
    lambda, so its masks are the same at every lambda.
    """
    from keras_miamix import backend as kb
    from keras_miamix.ops.mixing import mix_batch
    from keras_miamix.ops.sampling import random_permutation

    x = kb.cast(kb.convert(np.asarray(images)), "float32")
    perm = random_permutation(kb.shape(x)[0], kb.convert(np.array([seed, 7], "int32")))
    masks = model.predict_masks(x, lam, perm)
    out = mix_batch(x, masks, perm)
    p = kb.to_numpy(perm)
    return {
        "anchors": np.asarray(images),
        "partners": np.asarray(images)[p],
        "masks": kb.to_numpy(masks)[..., 0],
        "mixed": kb.to_numpy(out["images"]),
        "label_weights": np.full(len(p), float(lam), np.float32),
        "mask_means": kb.to_numpy(out["label_weights"]),
        "info": {"partner_index": p},
    }


def plot_automix_masks(model, images, labels=None, lam=0.5, num=6, class_names=None,
                       title=None):
    """Rows of anchor, partner, learned mask (with its mean) and mixed image
    from AutoMix's Mix Block at `lam` (the label weight is lambda, as in
    AutoMix's loss)."""
    d = automix_masks_for_display(model, images, lam)
    return _plot_rows(d, None if labels is None else np.asarray(labels), num,
                      title or f"AutoMix learned masks (lambda = {lam:.2f})", class_names)


def plot_automix_lambdas(displays, lambdas, labels=None, class_names=None, num=4):
    """Rows of samples; per lambda, AutoMix's learned mask and mixed image
    (`displays`: one `automix_masks_for_display` dict per lambda, same batch)."""
    plt = _pyplot()
    first = displays[0]
    num = min(num, len(first["mixed"]))
    cols = 2 + 2 * len(displays)
    fig, axes = plt.subplots(num, cols, figsize=(1.8 * cols, 1.95 * num + 0.5), squeeze=False)
    p = first["info"]["partner_index"]
    for r in range(num):
        a_name = _class_of(labels, r, class_names) if labels is not None else "anchor"
        p_name = _class_of(labels, int(p[r]), class_names) if labels is not None else "partner"
        panels = [(_to_display(first["anchors"][r]), f"anchor: {a_name}"),
                  (_to_display(first["partners"][r]), f"partner: {p_name}")]
        for lam, d in zip(lambdas, displays):
            mean = d.get("mask_means", d["label_weights"])[r]
            panels.append((d["masks"][r], f"lambda={lam:.1f}: mask {mean:.2f}"))
            panels.append((_to_display(d["mixed"][r]), f"label weight {d['label_weights'][r]:.2f}"))
        for c, (panel, title) in enumerate(panels):
            ax = axes[r, c]
            grey = panel.ndim == 2 or panel.shape[-1] == 1
            ax.imshow(panel[..., 0] if panel.ndim == 3 and panel.shape[-1] == 1 else panel,
                      cmap="gray" if grey else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=7.5)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def puzzlemix_for_display(model, images, labels=None, seed=0, block_num=None):
    """One Puzzle Mix batch of a `keras_miamix.models.PuzzleMix` (its
    classifier's saliency) as numpy: `PuzzleMix.mix(..., return_info=True)`.

    `labels` are class indices or one-hot rows (default: the classifier's
    predictions); `block_num` fixes the grid (default: drawn as in training).
    """
    from keras_miamix.models import PuzzleMix

    if block_num is not None:
        config = {k: v for k, v in model.get_config().items() if k not in ("model", "name")}
        config["block_nums"] = (int(block_num),)
        model = PuzzleMix(model.model, **config)
    images = np.asarray(images, np.float32)
    if labels is None:
        labels = np.argmax(np.asarray(model.model.predict(images, verbose=0)), -1)
    labels = np.asarray(labels)
    if labels.ndim == 1:
        classes = int(model.model.output_shape[-1])
        labels = np.eye(classes, dtype=np.float32)[labels]
    info = model.mix(images, labels.astype(np.float32), np.array([seed, 0], np.int32),
                     return_info=True)
    return {k: np.asarray(v) for k, v in info.items()}


def plot_puzzlemix(model, images, labels=None, num=6, class_names=None, seed=0, block_num=None,
                   title=None):
    """Rows of Puzzle Mix samples: anchor, partner, the anchor's saliency, the
    solved mask (white = anchor), the transported anchor and partner, and the
    mixed image with its label weights."""
    plt = _pyplot()
    d = puzzlemix_for_display(model, images, labels, seed, block_num)
    images = np.asarray(images)
    num = min(num, len(images))
    partner = d["partner_index"]
    fig, axes = plt.subplots(num, 7, figsize=(1.8 * 7, 1.95 * num + 0.5), squeeze=False)
    names = _maybe(labels)
    for r in range(num):
        a_name = _class_of(names, r, class_names)
        p_name = _class_of(names, int(partner[r]), class_names)
        w = float(d["label_weights"][r])
        sal = d["saliency"][r]
        panels = [(_to_display(images[r]), None, f"anchor: {a_name}" if a_name else "anchor"),
                  (_to_display(images[partner[r]]), None,
                   f"partner: {p_name}" if p_name else "partner"),
                  (sal / max(float(sal.max()), 1e-12), "magma", "anchor saliency"),
                  (d["masks"][r, ..., 0], "gray", "mask (white = anchor)"),
                  (_to_display(d["anchor_moved"][r]), None, "anchor transported"),
                  (_to_display(d["partner_moved"][r]), None, "partner transported"),
                  (_to_display(d["mixed"][r]), None,
                   f"{a_name} {w:.2f} + {p_name} {1 - w:.2f}" if a_name
                   else f"label weight {w:.2f}")]
        for c, (panel, cmap, name) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(name, fontsize=8)
    grid = int(d["block_num"])
    fig.suptitle(title or f"PuzzleMix ({grid}x{grid} grid, lambda {float(d['lam'][0]):.2f})",
                 fontsize=11)
    fig.tight_layout()
    return fig


def plot_method_samples(method, images, labels=None, class_names=None, num=6, mixer=None,
                        method_args=None, seed=0):
    """The picture of one method of `keras_miamix.training.METHODS` on a batch.

    Mixing layers (and Keras core's MixUp/CutMix) are built afresh from
    `method_args` and `seed`; AutoMix and PuzzleMix need the (trained)
    model as `mixer`;
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
    if method == "augmix":
        layer = methods_lib.make_augmix(
            None, {k: v for k, v in args.items() if k not in methods_lib.AUGMIX_MODEL_ARGS},
            seed)
        return plot_augmix(layer, images, _maybe(labels), num=num, class_names=class_names)
    if method == "automix":
        if mixer is None:
            raise ValueError("AutoMix's masks come from a trained model: pass `mixer=`.")
        return plot_automix_masks(mixer, images, labels, num=num, class_names=class_names)
    if method == "puzzlemix":
        if mixer is None:
            raise ValueError("PuzzleMix's masks follow a classifier's saliency: pass the "
                             "PuzzleMix model as `mixer=`.")
        return plot_puzzlemix(mixer, images, labels, num=num, class_names=class_names,
                              seed=seed)
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

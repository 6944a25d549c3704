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


def plot_mixing(layer, images, labels=None, num=6, title=None):
    """A grid of `num` samples: anchor, partner, mask and mixed image per row.

    Args:
        layer: a mixing layer of `keras_miamix.layers`.
        images: a channels-last batch (float or uint8).
        labels: optional labels (as the layer takes them).
        num: how many samples to draw.
        title: figure title (default: the layer's class name).

    Returns:
        The matplotlib figure.

    Example:

    >>> import keras, keras_miamix as km
    >>> fig = plot_mixing(km.FMix(seed=0), keras.random.uniform((6, 32, 32, 3), seed=0))
    """
    plt = _pyplot()
    d = mix_for_display(layer, images, labels)
    num = min(num, len(d["mixed"]))
    fig, axes = plt.subplots(num, 4, figsize=(8, 2.1 * num), squeeze=False)
    columns = ("anchor x_i", "partner x_j", "mask (1 = anchor)", "mixed")
    for r in range(num):
        panels = (_to_display(d["anchors"][r]), _to_display(d["partners"][r]),
                  d["masks"][r], _to_display(d["mixed"][r]))
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            cmap = "gray" if c == 2 else None
            ax.imshow(panel.squeeze() if panel.ndim == 3 and panel.shape[-1] == 1 else panel,
                      cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
        axes[r, 3].set_xlabel(f"label weight {d['label_weights'][r]:.3f}", fontsize=8)
    fig.suptitle(title or type(layer).__name__)
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

"""Evaluation of a trained classifier: accuracy, calibration and corruption
robustness (used by `benchmarks/accuracy.py`)."""

import numpy as np

from keras_miamix.training import corruptions as corruptions_lib


def softmax(logits):
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def predict_probabilities(classifier, images, batch_size=256):
    """Softmax probabilities of a classifier that outputs logits."""
    logits = classifier.predict(np.asarray(images, np.float32), batch_size=batch_size,
                                verbose=0)
    return softmax(logits)


def expected_calibration_error(probabilities, labels, bins=15):
    """ECE with `bins` equal-width confidence bins (Guo et al., 2017):
    `sum_b |B_b| / n * |accuracy(B_b) - confidence(B_b)|`, where a sample falls
    in the bin `(k / bins, (k + 1) / bins]` of its top probability."""
    p = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels).reshape(-1)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = index == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def negative_log_likelihood(probabilities, labels, eps=1e-12):
    """Mean `-log p(true class)`."""
    p = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels).reshape(-1)
    return float(-np.mean(np.log(np.maximum(p[np.arange(len(labels)), labels], eps))))


def accuracy(probabilities, labels):
    return float(np.mean(np.argmax(probabilities, axis=1) == np.asarray(labels).reshape(-1)))


def evaluate_classifier(classifier, images, labels, corruptions=None, severities=(1, 2, 3, 4, 5),
                        seed=0, batch_size=256):
    """Top-1 accuracy, ECE and NLL on the clean images, and the accuracy on
    every corruption and severity, their mean per corruption and over all
    (mCA, the mean corrupted accuracy).

    Args:
        classifier: images in pixel units 0..255 to logits.
        images: uint8 or float pixels 0..255 (N, H, W, C).
        labels: class indices (N,).
        corruptions: names from `keras_miamix.training.corruptions.CORRUPTIONS`
            (default: all of them); an empty tuple skips them.
        severities: severities to evaluate.
        seed: seeds the noises (the same corrupted images for every model).
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    probs = predict_probabilities(classifier, images, batch_size)
    result = {
        "accuracy": accuracy(probs, labels),
        "ece": expected_calibration_error(probs, labels),
        "nll": negative_log_likelihood(probs, labels),
    }
    names = corruptions_lib.CORRUPTIONS if corruptions is None else tuple(corruptions)
    if names:
        per = {}
        for i, name in enumerate(names):
            accs = {}
            for severity in severities:
                corrupted = corruptions_lib.corrupt(images, name, severity,
                                                    (seed, 1000 * i + severity)).numpy()
                accs[str(severity)] = accuracy(
                    predict_probabilities(classifier, corrupted, batch_size), labels)
            per[name] = {"by_severity": accs, "mean": float(np.mean(list(accs.values())))}
        result["corruptions"] = per
        result["mca"] = float(np.mean([v["mean"] for v in per.values()]))
    return result


def evaluate_corrupted(classifier, corrupted, batch_size=256):
    """Accuracy on CIFAR-10-C / CIFAR-100-C (a `cifar_c.CorruptedSet`: the 19
    corruptions at 5 severities, released, from tfds or built).

    Returns `{"corruptions": {name: {"by_severity": {"1": acc, ...}, "mean":
    acc}}, "mca": ..., "mca_benchmark": ..., "images": N, "source": ...}`:
    `mca` is the mean over every corruption and severity present (19 x 5 for
    a full set), `mca_benchmark` over the 15 benchmark corruptions only (the
    figure most papers quote), None unless all 15 are present.
    """
    from keras_miamix.training import cifar_c

    labels = np.asarray(corrupted.labels).reshape(-1).astype(np.int64)
    per = {}
    for name in corrupted.corruptions:
        accs = {}
        for i, severity in enumerate(cifar_c.SEVERITIES):
            probs = predict_probabilities(classifier, corrupted.images[name][i], batch_size)
            accs[str(severity)] = accuracy(probs, labels)
        per[name] = {"by_severity": accs, "mean": float(np.mean(list(accs.values())))}
    benchmark = [per[n]["mean"] for n in cifar_c.BENCHMARK if n in per]
    return {
        "corruptions": per,
        "mca": float(np.mean([v["mean"] for v in per.values()])),
        "mca_benchmark": (float(np.mean(benchmark)) if len(benchmark) == len(cifar_c.BENCHMARK)
                          else None),
        "images": int(len(labels)),
        "source": corrupted.source,
    }

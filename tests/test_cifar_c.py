"""CIFAR-10-C's 19 corruptions against the official make_cifar_c.py (a
transcription, tests/cifar_c_reference.py) and imagecorruptions' motion blur;
the released layout's round trip, the tfds loader and the evaluation."""

import importlib.util
import os
import sys
import types

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("cv2")
pytest.importorskip("skimage")

from keras_miamix.training import cifar_c  # noqa: E402
from keras_miamix.training import evaluation  # noqa: E402

HAS_FROST = importlib.util.find_spec("imagecorruptions") is not None
CIFAR = os.environ.get("KERAS_MIAMIX_CIFAR", os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10_subset.npz"))


@pytest.fixture(scope="module")
def images():
    """Real photos where the shared subset is present (the corruptions' edges,
    Canny and histograms behave as on CIFAR), a smooth synthetic picture and
    uniform noise otherwise; always 4 images."""
    rs = np.random.RandomState(0)
    yy, xx = np.mgrid[0:32, 0:32]
    smooth = np.stack([128 + 100 * np.sin(xx / 5.0 + k) * np.cos(yy / 7.0) for k in range(3)], -1)
    synthetic = [smooth.astype(np.uint8), rs.randint(0, 256, (32, 32, 3)).astype(np.uint8)]
    if os.path.exists(CIFAR):
        real = list(np.load(CIFAR)["x_test"][:2])
    else:
        real = [np.roll(synthetic[0], 7, axis=1), 255 - synthetic[0]]
    return np.stack(real + synthetic)


@pytest.fixture(scope="module")
def reference():
    import cifar_c_reference as ref

    ref.FROST = cifar_c.frost_folder() if HAS_FROST else None
    return ref


TRANSCRIBED = [n for n in cifar_c.CORRUPTIONS if n not in ("motion_blur", "snow")]


@pytest.mark.parametrize("name", TRANSCRIBED)
def test_equals_the_official_script(name, images, reference):
    if name == "frost" and not HAS_FROST:
        pytest.skip("frost needs imagecorruptions' pictures")
    for severity in cifar_c.SEVERITIES:
        for i, image in enumerate(images):
            seed = 100 * severity + i
            ours = cifar_c.corrupt_image(image, name, severity, np.random.RandomState(seed))
            np.random.seed(seed)
            reference.RNG[0] = np.random.default_rng(np.random.RandomState(seed).randint(2 ** 31))
            theirs = np.uint8(getattr(reference, name)(Image.fromarray(image), severity))
            np.testing.assert_array_equal(ours, theirs, err_msg=f"{name} severity {severity}")
            assert ours.dtype == np.uint8 and ours.shape == image.shape


def _import_imagecorruptions():
    """imagecorruptions imports `pkg_resources` (gone from setuptools >= 81):
    give it the one function it uses."""
    if importlib.util.find_spec("imagecorruptions") is None:
        pytest.skip("imagecorruptions is not installed")
    if "pkg_resources" not in sys.modules and importlib.util.find_spec("pkg_resources") is None:
        shim = types.ModuleType("pkg_resources")

        def resource_filename(package, path):
            root = os.path.dirname(importlib.util.find_spec(package).origin)
            return os.path.join(root, path)

        shim.resource_filename = resource_filename
        sys.modules["pkg_resources"] = shim
    import imagecorruptions.corruptions as ic

    return ic


@pytest.mark.parametrize("severity", cifar_c.SEVERITIES)
def test_motion_blur_is_imagecorruptions_motion_blur(severity, images):
    """The official script blurs with ImageMagick (Wand); both imagecorruptions
    and this module use imagecorruptions' NumPy version of it. With
    imagecorruptions' own (ImageNet) parameters the two agree exactly."""
    ic = _import_imagecorruptions()
    imagenet = [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)][severity - 1]
    for i, image in enumerate(images):
        ours = cifar_c.corrupt_image(image, "motion_blur", severity,
                                     np.random.RandomState(i), parameter=imagenet)
        np.random.seed(i)
        theirs = np.uint8(ic.motion_blur(Image.fromarray(image), severity))
        np.testing.assert_array_equal(ours, theirs)


def test_motion_blur_kernel_on_a_hand_made_image():
    # Angle 0: the blur looks along -x (dx = -i), a one-sided Gaussian of
    # width 2r + 1 with replicated edges. A single bright column at x = 5.
    image = np.zeros((3, 12), np.float32)
    image[:, 5] = 1.0
    out = cifar_c.motion_blur_kernel_image(image, radius=2, sigma=1.0, angle=0.0)
    k = np.exp(-np.arange(5) ** 2 / 2.0)
    k /= k.sum()
    expected = np.zeros(12)
    expected[5 - np.arange(5)] = k  # pixel x takes x + i, so 5 reaches x = 5 - i
    np.testing.assert_allclose(out[1], expected, atol=1e-6)


def test_snow_layer_is_symmetric_under_half_turn():
    """On a black image the output is a constant plus the snow layer and its
    180-degree rotation: symmetric under the half turn, brighter than the
    constant, and more snow at severity 5 than at 1."""
    black = np.zeros((32, 32, 3), np.uint8)
    means = []
    for severity in (1, 5):
        out = cifar_c.corrupt_image(black, "snow", severity, np.random.RandomState(3))
        np.testing.assert_array_equal(out, np.rot90(out, 2))
        c6 = cifar_c.PARAMETERS["snow"][severity - 1][6]
        floor = np.uint8((1 - c6) * 0.5 * 255)
        assert out.min() >= floor - 1 and out.mean() > floor
        means.append(out.mean())
    assert means[1] > means[0]


def test_seeded_and_shapes(images):
    a = cifar_c.build_cifar_c(images[:2], [3, 4], corruptions=("gaussian_noise", "glass_blur"),
                              seed=5)
    b = cifar_c.build_cifar_c(images[:2], [3, 4], corruptions=("gaussian_noise", "glass_blur"),
                              seed=5)
    c = cifar_c.build_cifar_c(images[:2], [3, 4], corruptions=("gaussian_noise",), seed=6)
    np.testing.assert_array_equal(a.images["gaussian_noise"], b.images["gaussian_noise"])
    assert not np.array_equal(a.images["gaussian_noise"], c.images["gaussian_noise"])
    # One corruption rebuilt alone is the same as in the full build.
    alone = cifar_c.build_cifar_c(images[:2], [3, 4], corruptions=("glass_blur",), seed=5)
    np.testing.assert_array_equal(alone.images["glass_blur"], a.images["glass_blur"])
    # Severities differ from one another.
    block = a.images["gaussian_noise"].astype(float)
    changes = [np.abs(block[s] - images[:2]).mean() for s in range(5)]
    assert changes == sorted(changes)


def test_every_corruption_on_odd_sizes():
    """Non-square images and a batch of one: every corruption keeps the shape."""
    rs = np.random.RandomState(1)
    image = rs.randint(0, 256, (1, 36, 44, 3)).astype(np.uint8)
    names = [n for n in cifar_c.CORRUPTIONS if HAS_FROST or n != "frost"]
    data = cifar_c.build_cifar_c(image, [0], corruptions=names)
    for name in names:
        assert data.images[name].shape == (5, 1, 36, 44, 3), name
        assert data.images[name].dtype == np.uint8


def test_released_layout_round_trip(images, tmp_path):
    data = cifar_c.build_cifar_c(images, [0, 1, 2, 3], corruptions=("contrast", "pixelate"),
                                 folder=str(tmp_path))
    # The released layout: 5N images per file, severity-major, 5N labels.
    flat = np.load(tmp_path / "contrast.npy")
    assert flat.shape == (20, 32, 32, 3)
    np.testing.assert_array_equal(flat[4:8], data.images["contrast"][1])
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), np.tile([0, 1, 2, 3], 5))
    back = cifar_c.load_cifar_c(str(tmp_path), corruptions=("contrast", "pixelate"), limit=3)
    assert back.corruptions == ("contrast", "pixelate")
    np.testing.assert_array_equal(back.images["pixelate"], data.images["pixelate"][:, :3])
    np.testing.assert_array_equal(back.labels, [0, 1, 2])
    with pytest.raises(FileNotFoundError, match="fog.npy"):
        cifar_c.load_cifar_c(str(tmp_path), corruptions=("fog",))
    with pytest.raises(FileNotFoundError, match="labels.npy"):
        cifar_c.load_cifar_c(str(tmp_path / "nowhere"))


def test_tfds_loader_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        data = cifar_c.load_cifar_c(tfds_name="cifar10_corrupted",
                                    corruptions=("glass_blur", "fog"))
    assert data.corruptions == ("glass_blur", "fog")
    assert data.images["fog"].shape == (5, 6, 32, 32, 3)
    assert data.labels.shape == (6,)


def test_bad_arguments(images):
    with pytest.raises(ValueError, match="corruptions"):
        cifar_c.build_cifar_c(images, [0, 1, 2, 3], corruptions=("rain",))
    with pytest.raises(ValueError, match="images"):
        cifar_c.build_cifar_c(images[..., 0], [0, 1, 2, 3])
    with pytest.raises(ValueError, match="labels"):
        cifar_c.build_cifar_c(images, [0, 1])
    with pytest.raises(ValueError, match="severity"):
        cifar_c.corrupt_image(images[0], "fog", 0, np.random.RandomState(0))
    with pytest.raises(ValueError, match="exactly one"):
        cifar_c.load_cifar_c()
    with pytest.raises(ValueError, match=r"images\['fog'\]"):
        cifar_c.CorruptedSet({"fog": np.zeros((4, 2, 32, 32, 3), np.uint8)}, [0, 1])


class _Oracle:
    """A 'classifier' that is right exactly on the images whose top-left
    pixel is even (logits: one-hot of the label or of label + 1)."""

    def __init__(self, labels_by_key):
        self.labels_by_key = labels_by_key

    def predict(self, x, batch_size=None, verbose=0):
        x = np.asarray(x)
        keys = x[:, 1, 1, 0].astype(int)
        right = x[:, 0, 0, 0].astype(int) % 2 == 0
        labels = np.array([self.labels_by_key[k] for k in keys])
        return np.eye(3)[np.where(right, labels, (labels + 1) % 3)] * 10.0


def test_evaluate_corrupted_counts_hand_made_accuracies():
    n = 4
    labels = np.array([0, 1, 2, 0])
    blocks = np.zeros((5, n, 32, 32, 3), np.uint8)
    blocks[:, :, 1, 1, 0] = np.arange(n)  # which image
    # Severity s: the first s - 1 images are wrong (odd top-left pixel).
    for s in range(5):
        blocks[s, :min(s, n), 0, 0, 0] = 1
    data = cifar_c.CorruptedSet({name: blocks for name in cifar_c.CORRUPTIONS}, labels)
    scores = evaluation.evaluate_corrupted(_Oracle(dict(enumerate(labels))), data)
    expected = [1.0, 0.75, 0.5, 0.25, 0.0]
    assert list(scores["corruptions"]["fog"]["by_severity"].values()) == expected
    assert scores["mca"] == pytest.approx(0.5)
    assert scores["mca_benchmark"] == pytest.approx(0.5)
    assert scores["images"] == n
    part = cifar_c.CorruptedSet({"fog": blocks}, labels)
    assert evaluation.evaluate_corrupted(_Oracle(dict(enumerate(labels))),
                                         part)["mca_benchmark"] is None

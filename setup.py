"""Packaging for keras_miamix."""

import pathlib

from setuptools import find_packages
from setuptools import setup

HERE = pathlib.Path(__file__).parent
version = {}
exec((HERE / "keras_miamix" / "version.py").read_text(), version)

setup(
    name="keras_miamix",
    version=version["__version__"],
    description=(
        "Mixed-sample data augmentation for Keras 3 (TensorFlow, JAX, PyTorch): MiAMix, "
        "AutoMix, Manifold Mixup, AugMix, MixUp, CutMix, FMix, GridMix, GMix, AGMix, "
        "ResizeMix and SaliencyMix as XLA-compatible, vectorised Keras layers and models."
    ),
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    url="https://github.com/keras-miamix/keras_miamix",
    license="Apache-2.0",
    packages=find_packages(include=["keras_miamix", "keras_miamix.*"]),
    python_requires=">=3.10",
    # Lower bounds are the versions this package was tested with.
    install_requires=[
        "tensorflow>=2.21",
        "keras>=3.15.1",
        "numpy>=1.26",
        # The `keras-miamix` command: its offline dataset and its pictures.
        "scikit-learn>=1.9",
        "matplotlib>=3.8",
    ],
    entry_points={"console_scripts": ["keras-miamix=keras_miamix.training.cli:main"]},
    extras_require={
        "vis": ["matplotlib>=3.8"],
        "tfds": ["tensorflow-datasets>=4.9.10"],
        "examples": ["tensorflow-datasets>=4.9.10", "matplotlib>=3.8"],
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "scipy>=1.11",
            "tensorflow-probability[tf]>=0.25",
            "tensorflow-datasets>=4.9.10",
            "matplotlib>=3.8",
            "ruff>=0.6",
            "nbmake>=1.5",
            "ipykernel>=6",
            # References the tests compare against: OpenCV's fine-grained
            # saliency (SaliencyMix) and Pillow's operations (AugMix).
            "opencv-contrib-python-headless>=4.10",
            "pillow>=13",
            # CIFAR-10-C's corruptions (keras_miamix.training.cifar_c). The
            # test command installs imagecorruptions (frost pictures, motion
            # blur reference) with --no-deps: its opencv-python requirement
            # would overwrite the contrib build's cv2.saliency above.
            "scikit-image>=0.26",
            # PuzzleMix's official graph cut; wheels for CPython 3.11 on
            # x86-64 only (the tests skip it elsewhere).
            "gco-wrapper>=3.0.9; python_version == '3.11' and platform_machine == 'x86_64'",
            # The other Keras backends, which the test command also runs.
            "jax[cpu]>=0.10",
            "torch>=2.14",
        ],
        # Building CIFAR-10-C / CIFAR-100-C (keras_miamix.training.cifar_c).
        "robustness": ["imagecorruptions>=1.1.2", "scikit-image>=0.26", "scipy>=1.11",
                       "pillow>=13"],
        "bench": ["keras-cv>=0.9.0"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Keras",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)

"""Packaging for tfdistill."""

import pathlib

import setuptools

_HERE = pathlib.Path(__file__).parent
_VERSION = "0.1.0"

_INSTALL_REQUIRES = [
    "tensorflow>=2.21,<2.22",
    "tf-keras>=2.21,<2.22",
    "tensorflow-recommenders>=0.7.3,<0.8",
    "tensorflow-model-optimization>=0.8,<0.9",
    "tensorflow-datasets>=4.9.4,<5",
    # TFDS 4.9.10 imports importlib_resources without declaring it.
    "importlib_resources>=5",
    "keras-tuner>=1.4,<2",
    "absl-py>=1.4",
    "ai-edge-litert>=2.0,<3",
    "tensorflow-serving-api>=2.21,<2.22",
    # TF 2.21 no longer installs TensorBoard; Keras's TensorBoard callback needs it.
    "tensorboard>=2.20",
    "numpy>=1.26",
    "pandas>=2.0",
    "pyarrow>=14",
    "matplotlib>=3.7",
    "tqdm>=4.60",
]

# `tfdistill cache` (the teacher's signals as an Apache Beam job). Beam 2.77+
# installs beside TensorFlow 2.21 (protobuf 6.33).
_BEAM_REQUIRES = ["apache-beam>=2.77,<3"]

_TEST_REQUIRES = _BEAM_REQUIRES + [
    "pytest>=8",
    "pytest-timeout>=2.2",
    "pytest-xdist>=3.8",  # --no-loadscope-reorder (pytest.ini)
    "nbformat>=5.9",
    "nbclient>=0.10",
    "ipykernel>=6.29",
    "psutil>=5.9",
]

setuptools.setup(
    name="tfdistill",
    version=_VERSION,
    description=(
        "Distil large TensorFlow Recommenders models into small students "
        "for TF Serving and TFLite."
    ),
    long_description=(_HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["tfdistill", "tfdistill.*"]),
    python_requires=">=3.10",
    install_requires=_INSTALL_REQUIRES,
    extras_require={"beam": _BEAM_REQUIRES, "test": _TEST_REQUIRES},
    entry_points={"console_scripts": ["tfdistill=tfdistill.cli:run"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)

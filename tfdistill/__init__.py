"""tfdistill: distil large TensorFlow Recommenders models into small students.

TFRS 0.7 and TF Model Optimization 0.8 only work with Keras 2 (`tf_keras`), so
this module routes `tf.keras` to `tf_keras` before TensorFlow is imported and
refuses to run if TensorFlow has already been bound to Keras 3. It also
turns TensorFlow's oneDNN kernels off unless the environment asks for them
(they corrupted the heap here; see `_default_to_eigen_kernels`).

The public API is imported lazily so that `import tfdistill` and the command
line stay fast; `tfdistill.Distiller` and friends load TensorFlow on first use.
Each package (`tfdistill.distill`, `.data`, `.models`, `.compress`, `.export`,
`.evaluation`, `.pipeline`) lists its public names in its `__init__`, and
`tfdistill` offers all of them.
"""

import os as _os
import sys as _sys

_LEGACY_KERAS_VALUES = ("1", "true", "True")


def _tf_keras_is_keras3(keras_attr) -> bool:
  """Whether tensorflow's `keras` attribute is already bound to Keras 3."""
  if keras_attr is None:
    return False
  # Until first use, tf.keras is a KerasLazyLoader; read its state through
  # vars() so that checking does not trigger the resolution.
  state = vars(keras_attr)
  if "_tfll_initialized" in state:
    return bool(state["_tfll_initialized"]) and state.get(
        "_tfll_keras_version") == "keras_3"
  # Once resolved, TensorFlow replaces the loader with the module itself.
  return not getattr(keras_attr, "__name__", "").startswith("tf_keras")


def _route_tf_keras_to_keras2() -> None:
  """Sets TF_USE_LEGACY_KERAS=1, or fails if Keras 3 is already bound."""
  tf_module = _sys.modules.get("tensorflow")
  if tf_module is not None and _tf_keras_is_keras3(vars(tf_module).get("keras")):
    raise ImportError(
        "tfdistill needs Keras 2 (tf_keras), but TensorFlow was already "
        "imported and bound to Keras 3. Import tfdistill before anything "
        "that uses tf.keras, or set TF_USE_LEGACY_KERAS=1 in the "
        "environment before starting Python.")
  _os.environ["TF_USE_LEGACY_KERAS"] = "1"


def _default_to_eigen_kernels() -> None:
  """TF_ENABLE_ONEDNN_OPTS=0 unless the environment already sets it.

  With TensorFlow 2.21's oneDNN kernels on, training tfdistill's attention
  teacher on an x86 CPU without AVX-512 sometimes died with a corrupted
  heap (a segfault in malloc under MklEinsum; BUILD.md has the runs and
  counts). TensorFlow reads the variable
  when it loads, so this only applies when tfdistill is imported first;
  `TF_ENABLE_ONEDNN_OPTS=1` in the environment turns oneDNN back on.
  """
  _os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


_route_tf_keras_to_keras2()
_default_to_eigen_kernels()

__version__ = "0.1.0"

#: The packages whose public names `tfdistill` offers too (each package's
#: `__init__` lists them once): `tfdistill.Distiller` is
#: `tfdistill.distill.Distiller`.
_PACKAGES = ("data", "models", "distill", "compress", "export", "evaluation",
             "pipeline")


def _package(name: str):
  import importlib  # pylint: disable=g-import-not-at-top
  return importlib.import_module(f"{__name__}.{name}")


def __getattr__(name):
  if name in _PACKAGES:
    return _package(name)
  for package in _PACKAGES:
    module = _package(package)
    if name in module.__all__:
      value = getattr(module, name)
      globals()[name] = value
      return value
  raise AttributeError(f"module 'tfdistill' has no attribute '{name}'")


def __dir__():
  return sorted(set(globals()) | set(_PACKAGES) | {
      name for package in _PACKAGES for name in _package(package).__all__})

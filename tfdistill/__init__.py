"""tfdistill: distil large TensorFlow Recommenders models into small students.

TFRS 0.7 and TF Model Optimization 0.8 only work with Keras 2 (`tf_keras`), so
this module routes `tf.keras` to `tf_keras` before TensorFlow is imported and
refuses to run if TensorFlow has already been bound to Keras 3. It also
turns TensorFlow's oneDNN kernels off unless the environment asks for them
(they corrupted the heap here; see `_default_to_eigen_kernels`).

The public API is imported lazily so that `import tfdistill` and the command
line stay fast; `tfdistill.Distiller` and friends load TensorFlow on first use.
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
  teacher on an x86 CPU without AVX-512 (2-core AMD EPYC) died one run in
  eight with a corrupted heap ("corrupted size vs. prev_size", a segfault
  in malloc under MklEinsum): 5 crashes in 41 tiny `train-teacher` runs,
  none in 48 with oneDNN off (BUILD.md). TensorFlow reads the variable
  when it loads, so this only applies when tfdistill is imported first;
  `TF_ENABLE_ONEDNN_OPTS=1` in the environment turns oneDNN back on.
  """
  _os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


_route_tf_keras_to_keras2()
_default_to_eigen_kernels()

__version__ = "0.1.0"

# Public name -> module that defines it. Resolved on first attribute access.
_LAZY_API = {
    # data
    "load_dataset": "tfdistill.data.sources",
    "prepare": "tfdistill.data.prepare",
    "PreparedData": "tfdistill.data.prepare",
    "PrepareConfig": "tfdistill.data.prepare",
    "SyntheticConfig": "tfdistill.data.synthetic",
    "sequence_examples": "tfdistill.data.examples",
    "pair_examples": "tfdistill.data.examples",
    "evaluation_set": "tfdistill.data.examples",
    # evaluation
    "evaluate_retrieval": "tfdistill.evaluation.evaluate",
    # models
    "SequentialRetrievalTeacher": "tfdistill.models.teachers",
    "TwoTowerRetrievalTeacher": "tfdistill.models.teachers",
    "DCNRankingTeacher": "tfdistill.models.teachers",
    "MultiTaskTeacher": "tfdistill.models.teachers",
    "build_sequential_student": "tfdistill.models.students",
    "build_two_tower_student": "tfdistill.models.students",
    "build_ranking_student": "tfdistill.models.students",
    # distillation
    "Distiller": "tfdistill.distill.distiller",
}


def __getattr__(name):
  module_name = _LAZY_API.get(name)
  if module_name is None:
    raise AttributeError(f"module 'tfdistill' has no attribute '{name}'")
  import importlib  # pylint: disable=g-import-not-at-top
  value = getattr(importlib.import_module(module_name), name)
  globals()[name] = value
  return value


def __dir__():
  return sorted(list(globals()) + list(_LAZY_API))

"""Saving and loading teachers and students, and describing them.

A saved model is a folder with `tfdistill_model.json` (what it is, its
parameter count, catalog size and vocabulary fingerprint) and either
`model.keras` (functional students) or `config.json` + a weights checkpoint
(subclassed TFRS teachers). Writes go to a temporary folder that is renamed
into place, so an interrupted save never leaves a half-written model.
"""

import contextlib
import errno
import json
import os
import warnings
import zipfile
from typing import Optional

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from tfdistill.errors import ModelError
from tfdistill.fileio import atomic_directory
from tfdistill.fileio import Marker
# Imported for their Keras registrations, needed when loading.
from tfdistill.models import embeddings  # pylint: disable=unused-import
from tfdistill.models import layers  # pylint: disable=unused-import
from tfdistill.models import ranking  # pylint: disable=unused-import
from tfdistill.models import students  # pylint: disable=unused-import
from tfdistill.models import teachers  # pylint: disable=unused-import

MODEL_FILE = "tfdistill_model.json"
#: What identifies a model folder that tfdistill wrote.
MODEL_MARKER = Marker(MODEL_FILE)
_KERAS_FILE = "model.keras"
# TF-MOT's quantization wrappers do not load from the .keras format (their
# variables are created in a different order); they round-trip through H5.
_H5_FILE = "model.h5"
_CONFIG_FILE = "config.json"
_WEIGHTS = os.path.join("weights", "checkpoint")
VOCABULARY_FILE = "items.txt"
REPRESENTATIVE_FILE = "representative_contexts.npy"
HOLDOUT_FILE = "holdout_contexts.npy"


def is_functional(model) -> bool:
  return isinstance(model, tf_keras.Model) and getattr(
      model, "_is_graph_network", False)


def count_parameters(model) -> int:
  """Number of trainable parameters, plus the integer codes of product-
  quantized item tables (learned from the teacher, stored with the model);
  feature tables are not counted."""
  stored = sum(layer.stored_parameters()
               for layer in _layers_and_submodules(model)
               if hasattr(layer, "stored_parameters"))
  return int(sum(np.prod(w.shape) for w in model.trainable_weights) + stored)


def _layers_and_submodules(model) -> list:
  """`model` and every module it holds (a wrapped layer once)."""
  modules = [model] + list(getattr(model, "submodules", ()))
  unique = {id(module): module for module in modules}
  return list(unique.values())


def _catalog_layer(model):
  for layer in model.layers if is_functional(model) else []:
    layer = getattr(layer, "layer", layer)  # inside a QAT/pruning wrapper
    if getattr(layer, "vocabulary_fingerprint", None) is not None and hasattr(
        layer, "num_items"):
      return layer
  return None


def catalog_size(model) -> int:
  """Number of score columns (catalog ids incl. padding/OOV) of a model."""
  layer = _catalog_layer(model)
  if layer is not None:
    return int(layer.num_items)
  if getattr(model, "num_items", None):
    return int(model.num_items)
  raise ModelError(f"{model.name} does not score a catalog.")


def model_card(model) -> dict:
  """What a model is: class, parameters, catalog size, vocabulary, inputs."""
  card = {"class_name": type(model).__name__, "name": model.name,
          "parameters": count_parameters(model)}
  source = _catalog_layer(model) or model
  for key in ("num_items", "vocabulary_fingerprint", "context_length"):
    if getattr(source, key, None) is not None:
      card[key] = getattr(source, key)
  if is_functional(model):
    card["inputs"] = {t.name.split(":")[0]: t.shape.as_list()[1:]
                      for t in model.inputs}
    card["context_length"] = card["inputs"].get("context", [None])[0]
  return card


def check_same_vocabulary(teacher_card: dict, student_card: dict) -> None:
  """Raises ModelError if two model cards name different item vocabularies
  (a card without a fingerprint matches any)."""
  a = teacher_card.get("vocabulary_fingerprint")
  b = student_card.get("vocabulary_fingerprint")
  if a and b and a != b:
    raise ModelError(f"teacher and student were built for different item "
                     f"vocabularies (fingerprints {a} and {b}); build both "
                     "from the same PreparedData.")


def input_signature(model) -> dict:
  """{input name: tf.TensorSpec} for teachers and functional students."""
  if is_functional(model):
    return {t.name.split(":")[0]: tf.TensorSpec(t.shape, t.dtype)
            for t in model.inputs}
  signature = getattr(model, "input_signature", None)
  if signature is None:
    raise ModelError(f"{type(model).__name__} declares no input_signature; "
                     "teachers must define one (see RetrievalTeacher).")
  return signature


def dummy_inputs(signature: dict, batch_size: int = 2,
                 unknown_size: int = 32) -> dict:
  """Zeros (padding ids) of the right shapes and dtypes; a dimension of
  unknown size (e.g. a candidate list's) gets `unknown_size`, enough for
  the top-K of the ranking losses."""
  return {name: tf.zeros([batch_size] + [d or unknown_size for d in
                                         spec.shape.as_list()[1:]],
                         spec.dtype)
          for name, spec in signature.items()}


def _has_quantize_wrappers(model) -> bool:
  return any(type(layer).__name__.startswith("QuantizeWrapper")
             for layer in model.layers)


@contextlib.contextmanager
def _tfmot_scopes():
  """Pruning and QAT wrappers must be known while loading such models."""
  # tfdistill's own QAT configs register themselves on import.
  from tfdistill.compress import quantization  # pylint: disable=import-outside-toplevel
  with tfmot.sparsity.keras.prune_scope(), \
      tfmot.quantization.keras.quantize_scope(quantization.CUSTOM_CONFIGS):
    yield


def save_model(model, directory: str, overwrite: bool = False,
               metadata: Optional[dict] = None, vocabulary=None,
               representative: Optional[np.ndarray] = None,
               holdout: Optional[np.ndarray] = None) -> str:
  """Saves a teacher or student to `directory` atomically.

  Args:
    model: A functional student or a registered subclassed teacher.
    directory: Target folder; must not exist unless `overwrite`.
    overwrite: Replace an existing folder.
    metadata: Extra JSON-serializable facts stored in tfdistill_model.json.
    vocabulary: The item `Vocabulary` (saved as items.txt), which exports
      need to map indices back to item ids.
    representative: A few hundred training contexts (int32 [M, L]) that
      calibrate int8 quantization.
    holdout: Held-out contexts on which exports check their parity.

  Returns:
    The directory.
  """
  with atomic_directory(
      directory, overwrite, ModelError,
      f"{directory} already exists; pass overwrite=True (--overwrite or "
      "--force) to replace it.", markers=[MODEL_MARKER],
      prefix=".model-") as staging:
    card = dict(model_card(model), **(metadata or {}))
    if is_functional(model) and _has_quantize_wrappers(model):
      card["format"] = "h5"
      with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*HDF5 file.*")
        model.save(os.path.join(staging, _H5_FILE))
    elif is_functional(model):
      card["format"] = "keras"
      model.save(os.path.join(staging, _KERAS_FILE))
    else:
      card["format"] = "config+checkpoint"
      card["registered_name"] = tf_keras.saving.get_registered_name(
          type(model))
      with open(os.path.join(staging, _CONFIG_FILE), "w") as f:
        json.dump(model.get_config(), f, indent=2)
      model.save_weights(os.path.join(staging, _WEIGHTS))
    if vocabulary is not None:
      vocabulary.save(os.path.join(staging, VOCABULARY_FILE))
    for name, value in ((REPRESENTATIVE_FILE, representative),
                        (HOLDOUT_FILE, holdout)):
      if value is not None:
        np.save(os.path.join(staging, name), np.asarray(value, np.int32))
    with open(os.path.join(staging, MODEL_FILE), "w") as f:
      json.dump(card, f, indent=2, default=str)
  return directory


def read_model_card(directory: str) -> dict:
  path = os.path.join(directory, MODEL_FILE)
  if not os.path.isfile(path):
    raise ModelError(f"{directory} holds no tfdistill model (no {MODEL_FILE});"
                     " pass a folder written by save_model or by a tfdistill "
                     "command (e.g. <run>/student_kd/model).")
  try:
    with open(path) as f:
      card = json.load(f)
    if not isinstance(card, dict) or "format" not in card:
      raise ValueError("not a model card")
  except ValueError as error:
    raise _corrupt(path, error) from None
  return card


def _machine_fault(error: BaseException) -> bool:
  """An OSError of the machine (permissions, I/O), not of a damaged or
  missing file."""
  return isinstance(error, OSError) and error.errno not in (None,
                                                            errno.ENOENT)


def _corrupt(path: str, error: BaseException) -> ModelError:
  first = (str(error).strip().splitlines() or [""])[0][:200]
  return ModelError(f"{path}: cannot read the model, the file is truncated "
                    f"or corrupt ({type(error).__name__}: {first}); rerun the "
                    "step that wrote it with --force, or save it again.")


#: What reading a damaged model file raises (h5py raises OSError without an
#: errno, the .keras zip reader BadZipFile, TensorFlow's checkpoint reader
#: OpError, the deserialisers ValueError, KeyError or IndexError).
_CORRUPT_FILE_ERRORS = (OSError, ValueError, KeyError, IndexError,
                        zipfile.BadZipFile, tf.errors.OpError)


def load_vocabulary(directory: str):
  """The item `Vocabulary` saved with a model, or None."""
  from tfdistill.data.vocab import Vocabulary  # pylint: disable=import-outside-toplevel
  path = os.path.join(directory, VOCABULARY_FILE)
  return Vocabulary.load(path) if os.path.isfile(path) else None


def load_contexts(directory: str, kind: str = "representative"
                 ) -> Optional[np.ndarray]:
  """Contexts saved with a model: "representative" (train) or "holdout"."""
  name = REPRESENTATIVE_FILE if kind == "representative" else HOLDOUT_FILE
  path = os.path.join(directory, name)
  return np.load(path) if os.path.isfile(path) else None


def load_model(directory: str):
  """Loads a model saved by `save_model`.

  Raises:
    ModelError: if the folder holds no tfdistill model.
  """
  card = read_model_card(directory)
  if card["format"] in ("keras", "h5"):
    path = os.path.join(directory, _KERAS_FILE if card["format"] == "keras"
                        else _H5_FILE)
    try:
      with _tfmot_scopes():
        return tf_keras.models.load_model(path, compile=False)
    except _CORRUPT_FILE_ERRORS as error:
      if _machine_fault(error):
        raise  # reported by tfdistill.cli.faults
      raise _corrupt(path, error) from None
  cls = tf_keras.saving.get_registered_object(card["registered_name"])
  if cls is None:
    raise ModelError(f"{directory}: unknown model class "
                     f"{card['registered_name']!r}.")
  path = os.path.join(directory, _WEIGHTS)
  try:
    with open(os.path.join(directory, _CONFIG_FILE)) as f:
      model = cls.from_config(json.load(f))
    model(dummy_inputs(model.input_signature), training=False)
    status = model.load_weights(path)
    status.assert_existing_objects_matched()
  except _CORRUPT_FILE_ERRORS + (AssertionError,) as error:
    if _machine_fault(error):
      raise
    raise _corrupt(path, error) from None
  status.expect_partial()  # the training optimizer's state is not loaded
  return model

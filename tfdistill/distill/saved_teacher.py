"""Teachers from a SavedModel on disk (no Python class needed): a
signature returning top-K ids and scores (a TF Serving retrieval export,
tfdistill's own `serving_default`), one scoring given candidates, one
returning a query embedding beside a signature embedding items, or one
returning a score."""

import os
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.distill.alignment import describe_specs
from tfdistill.distill.alignment import FeatureMapping
from tfdistill.distill.alignment import input_specs
from tfdistill.distill.alignment import item_keys_of
from tfdistill.distill.alignment import ItemAlignment
from tfdistill.distill.external import ExternalTeacher
from tfdistill.distill.external import IndexTeacher
from tfdistill.distill.external import RatingTeacher
from tfdistill.distill.external import to_student
from tfdistill.distill.external import TowerTeacher
from tfdistill.distill.soft_targets import MASKED_LOGIT
from tfdistill.distill.teacher_inputs import parse_inputs
from tfdistill.distill.teachers import TeacherSource
from tfdistill.distill.teachers import top_k_signals
from tfdistill.errors import ConfigError
from tfdistill.errors import ModelError
from tfdistill.models.signals import LOGITS

class _Signature:
  """A SavedModel signature called like a model (dict in, dict out)."""

  def __init__(self, function, name: str):
    self.function = function
    self.name = name
    self.structured_input_signature = function.structured_input_signature
    self.outputs = dict(function.structured_outputs)

  def __call__(self, inputs, training=False):
    del training
    return self.function(**inputs)


def _is_ids(spec) -> bool:
  return spec.shape.rank == 2 and (spec.dtype == tf.string or
                                   spec.dtype.is_integer)


def SavedModelTeacher(path: str, vocabulary, signature: str = "serving_default",
                      candidate_signature: str = "",
                      candidates: Optional[Sequence] = None,
                      output: str = "", **kwargs):  # pylint: disable=invalid-name
  """A teacher from a SavedModel on disk (no Python class needed).

  What it becomes depends on the signature:

  * an input of candidate ids [B, C] and float scores out (tfdistill's own
    `score` signature, a ranking export): scored over the whole catalog;
  * item ids and scores [B, K] out (the TF Serving retrieval export, a saved
    `tfrs.layers.factorized_top_k` index, tfdistill's own
    `serving_default`): a top-K teacher;
  * one float [B, d] (a query embedding) with `candidate_signature`, which
    maps item keys [N] to [N, d]: a `TowerTeacher` (the catalog is encoded
    once);
  * one float [B] or [B, 1]: a ranking teacher (`RatingTeacher`).

  Args:
    path: The SavedModel folder.
    vocabulary: The student's item `Vocabulary`.
    signature: The signature to call.
    candidate_signature: The signature that embeds item keys.
    candidates: The item keys to embed (default: the student's).
    output: The output to read, for a signature with several (e.g. a saved
      multi-task model's rating, "output_3"); a score [B] or [B, 1] then
      makes a ranking teacher.
    **kwargs: See `ExternalTeacher` (inputs=, item_keys=, user_keys=, ...).

  Raises:
    ModelError: for a path that is no SavedModel or a missing signature.
    ConfigError: when the inputs cannot be fed from the data, naming both.
  """
  if not os.path.isfile(os.path.join(path, "saved_model.pb")):
    raise ModelError(f"{path} is not a SavedModel (no saved_model.pb); pass "
                     "the folder tf.saved_model.save wrote (for TF Serving, "
                     "its numbered version folder).")
  loaded = tf.saved_model.load(path)
  available = sorted(loaded.signatures)
  if signature not in loaded.signatures:
    raise ModelError(f"{path} has no signature {signature!r}; it has "
                     f"{available} (--teacher_signature).")
  function = _Signature(loaded.signatures[signature], f"{path}:{signature}")
  kwargs.setdefault("origin", f"SavedModel {path} ({signature})")
  outputs = function.outputs
  ids = [n for n, s in outputs.items() if _is_ids(s) and s.dtype != tf.float32]
  floats = [n for n, s in outputs.items() if s.dtype.is_floating]
  candidate_input = _candidate_input(function)
  if output:
    if output not in outputs:
      raise ModelError(f"{path}:{signature} has no output {output!r}; it "
                       f"returns {describe_specs(outputs)}.")
    if not (outputs[output].dtype.is_floating and (
        outputs[output].shape.rank == 1 or
        outputs[output].shape.as_list()[1:] == [1])):
      raise ConfigError(f"output={output!r} of {path}:{signature} is "
                        f"{describe_specs({output: outputs[output]})}; a chosen "
                        "output is a score [B] or [B, 1].")
    teacher = RatingTeacher(function, vocabulary, output=output, **kwargs)
    teacher.saved_model = loaded
  elif candidate_input and floats:
    teacher = _SavedCandidateScores(function, vocabulary, candidate_input,
                                    floats[0], loaded, **kwargs)
  elif ids and floats:
    teacher = _SavedTopK(function, vocabulary, ids[0], floats[0], loaded,
                         **kwargs)
  elif len(floats) == 1 and outputs[floats[0]].shape.rank == 2 and (
      outputs[floats[0]].shape[-1] or 2) > 1:
    if not candidate_signature:
      candidate_signature = _embedding_signature(loaded, signature)
    if not candidate_signature:
      raise ConfigError(
          f"{path}:{signature} returns an embedding ({floats[0]}); name the "
          f"signature that embeds the items with candidate_signature= (it "
          f"has {available}; none other takes item ids [N] alone).")
    if candidate_signature not in loaded.signatures:
      raise ModelError(f"{path} has no signature {candidate_signature!r}; "
                       f"it has {available}.")
    candidate = _Signature(loaded.signatures[candidate_signature],
                           f"{path}:{candidate_signature}")
    teacher = TowerTeacher(_SingleOutput(function, floats[0]),
                           _SingleOutput(candidate),
                           vocabulary, candidates=candidates, **kwargs)
    teacher.saved_model = loaded  # keeps its variables alive
  elif len(floats) == 1:
    teacher = RatingTeacher(function, vocabulary, output=floats[0], **kwargs)
    teacher.saved_model = loaded
  else:
    raise ModelError(
        f"{path}:{signature} returns {describe_specs(outputs)}; a teacher "
        "signature returns item ids and scores [B, K], a query embedding "
        "[B, d] (with candidate_signature=), or a score [B].")
  return teacher


def _embedding_signature(loaded, query_signature: str) -> str:
  """The one other signature that maps item ids [N] to vectors [N, d]
  (the candidate tower of a two-signature export), or ""."""
  found = []
  for name, function in loaded.signatures.items():
    _, inputs = function.structured_input_signature
    outputs = list(function.structured_outputs.values())
    if name != query_signature and len(inputs) == 1 and len(outputs) == 1:
      (spec,) = inputs.values()
      if (spec.shape.rank == 1 and (spec.dtype == tf.string or
                                    spec.dtype.is_integer)
          and outputs[0].dtype.is_floating and outputs[0].shape.rank == 2):
        found.append(name)
  return found[0] if len(found) == 1 else ""


def _candidate_input(function: _Signature) -> Optional[str]:
  """The input of a signature that takes the candidates to score (an id
  matrix [B, C] named like candidates or items), or None."""
  _, inputs = function.structured_input_signature
  for name, spec in inputs.items():
    if _is_ids(spec) and any(w in name.lower() for w in (
        "candidate", "items", "movies", "products")):
      return name
  return None


class _SavedCandidateScores(ExternalTeacher):
  """A SavedModel signature that scores the candidates it is given (e.g.
  tfdistill's own `score`, or a ranking export): fed the whole catalog, in
  chunks of `chunk` columns, it gives dense "logits". Costly per step: cache
  its top-K once (`cache_teacher_signal`) for long distillations."""

  signal_names = (LOGITS,)

  def __init__(self, function: _Signature, vocabulary, candidate_input: str,
               scores: str, loaded, chunk: int = 512, **kwargs):
    super().__init__(vocabulary, **kwargs)
    self.saved_model = loaded
    self.function = function
    self._candidates, self._scores = candidate_input, scores
    self.chunk = chunk
    specs, _ = input_specs(function)
    self._candidate_dtype = specs.pop(candidate_input).dtype
    self.mapping = self._mapping(specs, function.name)
    self._align(self.item_keys[NUM_RESERVED:], function.name)
    known = self.alignment.student_to_teacher >= 0
    self._known = tf.constant(known)
    keys = np.asarray(self.item_keys, dtype=object).astype(str)
    keys[~known] = ""
    self.item_keys_of = (tf.constant(keys) if self._candidate_dtype == tf.string
                  else tf.constant([int(k) if k.lstrip("-").isdigit() else 0
                                    for k in keys], self._candidate_dtype))

  def __call__(self, inputs: dict, labels=None,
               signals: Optional[Sequence[str]] = None) -> dict:
    if signals is not None and LOGITS not in signals:
      return {}
    features = self.mapping(inputs)
    batch = tf.shape(next(iter(features.values())))[0]
    columns = []
    for start in range(0, len(self.vocabulary), self.chunk):
      chunk = self.item_keys_of[start:start + self.chunk]
      candidates = tf.tile(chunk[tf.newaxis], [batch, 1])
      scores = self.function(dict(features, **{self._candidates: candidates}))
      columns.append(tf.cast(scores[self._scores], tf.float32))
    logits = tf.concat(columns, axis=1)
    return {LOGITS: tf.stop_gradient(
        tf.where(self._known[tf.newaxis], logits, MASKED_LOGIT))}


class _SingleOutput:
  """A signature reduced to one output tensor, called with one tensor or a
  dict (what `TowerTeacher` expects of its towers)."""

  def __init__(self, function: _Signature, output: str = ""):
    self.function = function
    self.name = function.name
    self.output = output or next(iter(function.outputs))
    self.structured_input_signature = function.structured_input_signature

  def __call__(self, inputs, training=False):
    if not isinstance(inputs, dict):
      _, kwargs = self.structured_input_signature
      inputs = {next(iter(kwargs)): inputs}
    return self.function(inputs, training)[self.output]


class _SavedTopK(ExternalTeacher):
  """A SavedModel signature that returns item keys and scores [B, K]."""

  signal_names = (LOGITS,)

  def __init__(self, function: _Signature, vocabulary, ids: str,
               scores: str, loaded, **kwargs):
    super().__init__(vocabulary, **kwargs)
    self.saved_model = loaded  # also keeps its variables alive
    self.function = function
    self._ids, self._scores = ids, scores
    specs, _ = input_specs(function)
    self.mapping = self._mapping(specs, function.name)
    self.item_keys_of = None
    self._table = None

  def prepare(self) -> None:
    if self._table is not None:
      return
    # The teacher's own item keys when the SavedModel carries them (then
    # the items it lacks are reported); else the student's, and a key the
    # teacher returns that the student lacks is masked when it comes.
    keys = _saved_item_keys(self.saved_model)
    self._align(keys if keys is not None else self.item_keys[NUM_RESERVED:],
                self.function.name)
    self._table = self.alignment.key_table()

  def __call__(self, inputs: dict, labels=None,
               signals: Optional[Sequence[str]] = None) -> dict:
    self.prepare()
    if signals is not None and LOGITS not in signals:
      return {}
    result = self.function(self.mapping(inputs))
    ids, scores = to_student(self._table, result[self._ids],
                              result[self._scores])
    return top_k_signals(ids, tf.stop_gradient(scores), len(self.vocabulary))


#: Variables in which SavedModels keep their item keys: tfdistill's serving
#: module (`id_strings`), a saved `tfrs.layers.factorized_top_k` index.
_SAVED_KEY_VARIABLES = ("id_strings", "_identifiers", "identifiers")
_RESERVED_KEYS = ("[PAD]", "[OOV]", "")


def _saved_item_keys(loaded) -> Optional[list]:
  """The item keys a loaded SavedModel carries, or None."""
  for name in _SAVED_KEY_VARIABLES:
    value = getattr(loaded, name, None)
    if isinstance(value, tf.Variable):
      return [k for k in item_keys_of(value.numpy()) if k not in _RESERVED_KEYS]
  return None


def as_external_teacher(path: str, vocabulary, **kwargs) -> TeacherSource:
  """A teacher from a folder: a SavedModel, or a tfdistill model folder
  (which runs as an `OnlineTeacher`)."""
  from tfdistill.distill.teachers import OnlineTeacher  # pylint: disable=import-outside-toplevel
  from tfdistill.models.io import MODEL_FILE  # pylint: disable=import-outside-toplevel
  from tfdistill.models.io import load_model  # pylint: disable=import-outside-toplevel
  if os.path.isfile(os.path.join(path, MODEL_FILE)):
    return OnlineTeacher(load_model(path))
  return SavedModelTeacher(path, vocabulary, **kwargs)


__all__ = ["FeatureMapping", "IndexTeacher", "ItemAlignment", "RatingTeacher",
           "SavedModelTeacher", "TowerTeacher", "as_external_teacher",
           "input_specs", "parse_inputs"]

"""Teachers from the user's own models: TFRS towers, a factorized top-K
index or a ranking model, in memory (`tfdistill.distill.saved_teacher`
reads them from a SavedModel).

They give the Distiller the signals tfdistill's own teachers give: catalog
"logits" (dense, or a top-K), the "query_embedding", a "rating", in the
student's item numbering (`tfdistill.distill.alignment`).

    teacher = TowerTeacher(model.query_model, model.candidate_model,
                           prepared.items)             # in memory
    teacher = SavedModelTeacher("export/1", prepared.items)  # from disk
    distiller = Distiller(student, teacher)
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from tfdistill.data.examples import CANDIDATES
from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.distill.alignment import data_features
from tfdistill.distill.alignment import FeatureMapping
from tfdistill.distill.alignment import input_specs
from tfdistill.distill.alignment import item_keys_of
from tfdistill.distill.alignment import ItemAlignment
from tfdistill.distill.soft_targets import MASKED_LOGIT
from tfdistill.distill.teachers import TeacherSource
from tfdistill.distill.teachers import TOP_K_SIGNAL
from tfdistill.distill.teachers import top_k_signals
from tfdistill.errors import ConfigError
from tfdistill.errors import ModelError
from tfdistill.models.signals import LOGITS
from tfdistill.models.signals import QUERY_EMBEDDING
from tfdistill.models.signals import RATING

_QUERY_TOWERS = ("query_model", "user_model", "query_tower", "user_tower",
                 "query_encoder", "user_encoder")
_CANDIDATE_TOWERS = ("candidate_model", "item_model", "movie_model",
                     "candidate_tower", "item_tower", "movie_tower",
                     "candidate_encoder", "item_encoder")


def _call(model, style: str, inputs: dict):
  if style == "single":
    return model(next(iter(inputs.values())), training=False)
  return model(inputs, training=False)


def _lookup_vocabulary(model) -> Optional[list]:
  """The vocabulary of the first StringLookup/IntegerLookup inside a
  candidate tower (without mask and OOV tokens), or None."""
  flatten = getattr(model, "_flatten_layers", None)  # Keras layers only
  for layer in flatten(include_self=True) if flatten else ():
    if isinstance(layer, (tf_keras.layers.StringLookup,
                          tf_keras.layers.IntegerLookup)):
      vocabulary = layer.get_vocabulary(include_special_tokens=False)
      return [v for v in vocabulary if v != layer.mask_token]
  return None


class ExternalTeacher(TeacherSource):
  """What the sources below share: the feature mapping, the item
  alignment, and the card that makes the Distiller accept the student.

  Args:
    vocabulary: The student's item `Vocabulary` (its fingerprint is the
      card's, since the signals come out in the student's numbering).
    item_keys: The key the teacher knows each student item by (default the
      vocabulary's ids).
    user_keys: The key per student user index, for teachers that read the
      user (e.g. `prepared.users.tokens`).
    context_length: The student's context length L (the data's "context").
    inputs: {teacher input: batch feature} where it cannot be inferred.
    strict_vocabulary: Any student item the teacher lacks is an error.
    pad_key: The teacher's key for an empty history slot.
    origin: Where the teacher comes from, for reports.
  """

  def __init__(self, vocabulary, item_keys=None, user_keys=None,
               context_length: Optional[int] = None,
               inputs: Optional[dict] = None,
               strict_vocabulary: bool = False, pad_key: str = "",
               origin: str = ""):
    self.vocabulary = vocabulary
    self.item_keys = list(vocabulary.tokens if item_keys is None else
                          item_keys)
    if len(self.item_keys) != len(vocabulary):
      raise ConfigError(f"item_keys has {len(self.item_keys)} entries, the "
                        f"vocabulary {len(vocabulary)}.")
    self.user_keys = user_keys
    self.context_length = context_length
    self.inputs = inputs
    self.strict_vocabulary = strict_vocabulary
    self.pad_key = pad_key
    self.origin = origin
    self.alignment = None

  def _mapping(self, specs: dict, name: str,
               query: bool = True) -> FeatureMapping:
    return FeatureMapping(
        specs, data_features(self.context_length,
                              self.user_keys is not None),
        self.item_keys, self.user_keys, self.inputs, self.pad_key, name,
        query)

  def _align(self, teacher_keys, name: str) -> ItemAlignment:
    self.alignment = ItemAlignment(self.item_keys, teacher_keys,
                                   self.strict_vocabulary, name)
    return self.alignment

  def input_signature(self) -> dict:
    return dict(self.mapping.features)

  def card(self) -> dict:
    return {"num_items": len(self.vocabulary),
            "vocabulary_fingerprint": self.vocabulary.fingerprint,
            "origin": self.origin}

  def describe(self) -> dict:
    """Where the teacher comes from and how its items joined (reports)."""
    return {"origin": self.origin, "class": type(self).__name__,
            "inputs": dict(self.mapping.mapping),
            "vocabulary": self.alignment.report if self.alignment else None}


class TowerTeacher(ExternalTeacher):
  """A query tower and a candidate tower (TFRS two-tower retrieval).

  The catalog is encoded once (`prepare`): the candidate tower's vectors of
  the teacher's items, reordered into the student's catalog. At each step
  the query tower runs on the batch, and its dot products with them are the
  "logits" (masked where the teacher does not know a student item).

  Args:
    query_model: Keras model (or callable with `save_spec`) from the
      teacher's query features to [B, d].
    candidate_model: Keras model from item keys [N] to [N, d].
    vocabulary: See `ExternalTeacher`.
    candidates: The teacher's item keys to encode (default: the vocabulary
      of the StringLookup/IntegerLookup inside the candidate tower, else the
      student's item keys).
    top_k: If > 0, keep only the teacher's top-K scores.
    batch_size: Candidates encoded per call.
    **kwargs: See `ExternalTeacher`.
  """

  signal_names = (LOGITS, QUERY_EMBEDDING)

  def __init__(self, query_model, candidate_model, vocabulary,
               candidates: Optional[Sequence] = None, top_k: int = 0,
               batch_size: int = 4096, **kwargs):
    kwargs.setdefault("origin", f"towers {getattr(query_model, 'name', '?')}"
                      f" / {getattr(candidate_model, 'name', '?')}")
    super().__init__(vocabulary, **kwargs)
    self.query_model = query_model
    self.candidate_model = candidate_model
    self.top_k = top_k
    self.batch_size = batch_size
    specs, self._style = input_specs(query_model)
    self.mapping = self._mapping(specs, getattr(query_model, "name",
                                                "the query tower"))
    if candidates is None:
      candidates = _lookup_vocabulary(candidate_model)
    if candidates is None:
      candidates = self.item_keys[NUM_RESERVED:]
    self.candidates = item_keys_of(candidates)
    self._align(self.candidates, getattr(candidate_model, "name",
                                         "the candidate tower"))
    self._catalog = None
    self._known = None

  def models(self) -> list:
    return [m for m in (self.query_model, self.candidate_model)
            if isinstance(m, tf_keras.Model)]

  def _candidate_dtype(self) -> tf.DType:
    try:
      specs, _ = input_specs(self.candidate_model)
      return next(iter(specs.values())).dtype
    except ModelError:
      return tf.string

  def prepare(self) -> None:
    if self._catalog is not None:
      return
    dtype = self._candidate_dtype()
    keys = (tf.constant(self.candidates, tf.string) if dtype == tf.string
            else tf.constant([int(k) for k in self.candidates], dtype))
    vectors = tf.concat([
        tf.cast(self.candidate_model(keys[i:i + self.batch_size],
                                     training=False), tf.float32)
        for i in range(0, len(self.candidates), self.batch_size)], 0)
    rows = self.alignment.student_to_teacher
    known = rows >= 0
    self._catalog = tf.constant(tf.gather(vectors, np.maximum(rows, 0))
                                * known[:, None].astype(np.float32))
    self._known = tf.constant(known)

  def __call__(self, inputs: dict, labels=None,
               signals: Optional[Sequence[str]] = None) -> dict:
    self.prepare()
    query = tf.stop_gradient(tf.cast(_call(
        self.query_model, self._style, self.mapping(inputs)), tf.float32))
    out = {QUERY_EMBEDDING: query}
    if signals is None or LOGITS in signals:
      logits = tf.matmul(query, self._catalog, transpose_b=True)
      logits = tf.where(self._known[tf.newaxis], logits, MASKED_LOGIT)
      if self.top_k:
        scores, ids = tf.math.top_k(logits, k=self.top_k)
        out.update(top_k_signals(ids, scores, len(self.vocabulary)))
      else:
        out[LOGITS] = logits
    if signals is not None:
      out = {k: v for k, v in out.items()
             if k in signals or (k == TOP_K_SIGNAL and LOGITS in signals)}
    return out

  @classmethod
  def from_tfrs_model(cls, model, vocabulary, query_attribute: str = "",
                      candidate_attribute: str = "", **kwargs):
    """The towers of a subclassed `tfrs.Model`, found by attribute name
    (`query_model`, `user_model`, ... and `candidate_model`,
    `movie_model`, ...), or named by `query_attribute` and
    `candidate_attribute`."""
    found = {}
    for role, names, given in (("query", _QUERY_TOWERS, query_attribute),
                               ("candidate", _CANDIDATE_TOWERS,
                                candidate_attribute)):
      for name in ([given] if given else names):
        value = getattr(model, name, None)
        if isinstance(value, tf_keras.layers.Layer) or callable(value) and (
            given):
          found[role] = value
          break
      if role not in found:
        models = sorted(n for n, v in vars(model).items()
                        if isinstance(v, tf_keras.layers.Layer)
                        and not n.startswith("_"))
        raise ConfigError(
            f"{model.name} has no {role} tower named "
            f"{' or '.join([given] if given else names)}; its Keras "
            f"attributes are {models}. Name them with query_attribute= and "
            "candidate_attribute=.")
    kwargs.setdefault("origin", f"tfrs.Model {model.name} "
                      f"({type(model).__name__})")
    return cls(found["query"], found["candidate"], vocabulary, **kwargs)


class IndexTeacher(ExternalTeacher):
  """A query tower inside a `tfrs.layers.factorized_top_k` index
  (`BruteForce`, `Streaming`, `ScaNN`): its top-K ids and scores.

  Args:
    index: The index, built with `index_from_dataset` / `index` (its
      identifiers are the teacher's item keys).
    vocabulary: See `ExternalTeacher`.
    k: How many of the index's best items to ask for (default its own k).
    identifiers: The index's identifiers, for an index that does not keep
      them readable (default: read from a BruteForce index).
    **kwargs: See `ExternalTeacher`.
  """

  signal_names = (LOGITS, QUERY_EMBEDDING)

  def __init__(self, index, vocabulary, k: Optional[int] = None,
               identifiers: Optional[Sequence] = None, **kwargs):
    kwargs.setdefault("origin", f"{type(index).__name__} index "
                      f"{getattr(index, 'name', '')}")
    super().__init__(vocabulary, **kwargs)
    self.index = index
    self.k = k or getattr(index, "_k", 10)
    query_model = getattr(index, "query_model", None) or getattr(
        index, "_query_model", None)
    if query_model is None:
      raise ConfigError(f"{type(index).__name__} index has no query model; "
                        "build it as BruteForce(query_model) so that it "
                        "takes the query features.")
    self.query_model = query_model
    specs, self._style = input_specs(query_model)
    self.mapping = self._mapping(specs, getattr(query_model, "name",
                                                "the query tower"))
    if identifiers is None:
      identifiers = _index_identifiers(index)
    if identifiers is None:
      raise ConfigError(f"cannot read the identifiers of the "
                        f"{type(index).__name__} index; pass identifiers= "
                        "(the item keys it was indexed with).")
    self._align(item_keys_of(identifiers), f"{type(index).__name__} index")
    self._table = self.alignment.key_table()

  def models(self) -> list:
    return [m for m in (self.index, self.query_model)
            if isinstance(m, tf_keras.layers.Layer)]

  def __call__(self, inputs: dict, labels=None,
               signals: Optional[Sequence[str]] = None) -> dict:
    teacher_inputs = self.mapping(inputs)
    features = (next(iter(teacher_inputs.values()))
                if self._style == "single" else teacher_inputs)
    out = {}
    if signals is None or QUERY_EMBEDDING in signals:
      out[QUERY_EMBEDDING] = tf.stop_gradient(tf.cast(
          self.query_model(features, training=False), tf.float32))
    if signals is None or LOGITS in signals:
      scores, ids = self.index(features, k=self.k)
      student_ids, scores = to_student(self._table, ids, scores)
      out.update(top_k_signals(student_ids, tf.stop_gradient(scores),
                               len(self.vocabulary)))
    return out


def _index_identifiers(index) -> Optional[list]:
  """The item keys a factorized_top_k index returns: BruteForce (and ScaNN)
  keep them in `_identifiers`; Streaming reads its candidates dataset of
  (identifier, embedding) pairs at every query."""
  identifiers = getattr(index, "_identifiers", None)
  if identifiers is not None:
    return item_keys_of(identifiers)
  candidates = getattr(index, "_candidates", None)
  if isinstance(candidates, tf.data.Dataset) and isinstance(
      candidates.element_spec, tuple):
    return [k for ids, _ in candidates for k in item_keys_of(ids)]
  return None


def to_student(table, ids, scores) -> tuple:
  """Teacher item keys [B, K] -> student ids; unknown ones masked."""
  if ids.dtype != tf.string:
    ids = tf.strings.as_string(ids)
  student = table.lookup(ids)
  scores = tf.where(student > 0, tf.cast(scores, tf.float32), MASKED_LOGIT)
  return student, scores


class RatingTeacher(ExternalTeacher):
  """A ranking model that scores (query, item) pairs.

  Its "rating" is the score of each example's item. With `candidates`, it
  also scores every item of the batch's "candidates" feature [B, C]
  (`examples.candidate_examples`): "logits" [B, C], which the listwise and
  ranking losses distil into a listwise student
  (`build_listwise_ranking_student`; `RankingDistillation(num_reserved=0)`).

  Args:
    model: Keras model (or SavedModel signature) from the pair's features
      (e.g. user id and item id) to a rating or click logit [B] / [B, 1].
    vocabulary: See `ExternalTeacher`.
    output: The output to read when the model returns a dict or a tuple
      (a key, or a position).
    candidates: Score the batch's candidate lists ("logits").
    **kwargs: See `ExternalTeacher` (`user_keys` for a user feature).
  """

  def __init__(self, model, vocabulary, output=None, candidates: bool = False,
               **kwargs):
    kwargs.setdefault("origin", f"ranking model "
                      f"{getattr(model, 'name', type(model).__name__)}")
    super().__init__(vocabulary, **kwargs)
    self.model = model
    self.output = output
    self.candidates = candidates
    self.signal_names = (LOGITS, RATING) if candidates else (RATING,)
    specs, self._style = input_specs(model)
    self.mapping = self._mapping(specs, getattr(model, "name",
                                                "the ranking model"),
                                 query=False)
    if candidates and "item" not in self.mapping.mapping.values():
      raise ConfigError("candidates=True scores each candidate as the "
                        "model's item input, but no input reads 'item' "
                        f"({self.mapping.mapping}); map it with inputs=.")

  def models(self) -> list:
    return [self.model] if isinstance(self.model, tf_keras.Model) else []

  def input_signature(self) -> dict:
    signature = dict(self.mapping.features)
    if self.candidates:
      signature.pop("item", None)
      signature[CANDIDATES] = tf.TensorSpec([None, None], tf.int32)
    return signature

  def _candidate_scores(self, inputs: dict) -> tf.Tensor:
    """[B, C]: every candidate scored as the example's item."""
    candidates = tf.cast(inputs[CANDIDATES], tf.int32)
    count = tf.shape(candidates)[1]
    pairs = {name: tf.repeat(value, count, axis=0)
             for name, value in inputs.items() if name != CANDIDATES
             and name in self.mapping.features}
    pairs["item"] = tf.reshape(candidates, [-1])
    scores = self._rating(pairs)
    return tf.reshape(scores, tf.shape(candidates))

  def __call__(self, inputs: dict, labels=None,
               signals: Optional[Sequence[str]] = None) -> dict:
    out = {}
    if self.candidates and (signals is None or LOGITS in signals):
      out[LOGITS] = tf.stop_gradient(self._candidate_scores(inputs))
    if (signals is None or RATING in signals) and "item" in inputs:
      out[RATING] = tf.stop_gradient(tf.reshape(self._rating(inputs),
                                                  [-1, 1]))
    return out

  def _rating(self, inputs: dict) -> tf.Tensor:
    """[B] scores of the pairs in `inputs`."""
    result = _call(self.model, self._style, self.mapping(inputs))
    if isinstance(result, dict):
      if self.output is None and len(result) != 1:
        raise ConfigError(f"the ranking model returns {sorted(result)}; "
                          "choose one with output=.")
      result = result[self.output] if self.output is not None else next(
          iter(result.values()))
    elif isinstance(result, (list, tuple)):
      result = result[self.output if self.output is not None else -1]
    return tf.reshape(tf.cast(result, tf.float32), [-1])

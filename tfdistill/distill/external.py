"""Teachers from the user's own models: TFRS towers, a factorized top-K
index, a ranking model, or a SavedModel exported for TF Serving.

A teacher of the user's numbers its items its own way (strings through a
`StringLookup`, or other integer ids) and reads its own inputs (`user_id`,
`movie_title`, a history of movie ids...). The sources here translate, in
both directions:

* the batch's features (`context`, `user`, `item`: indices in the student's
  vocabularies) into the teacher's inputs, by the item and user keys the
  data carries (`FeatureMapping`);
* the teacher's scores into the student's catalog (`ItemAlignment`): the
  teacher's best item for a context comes out as the same item key in the
  student's numbering; student items the teacher does not know are reported
  and masked from its signals.

They give the Distiller the signals tfdistill's own teachers give: catalog
"logits" (dense, or a top-K), the "query_embedding", a "rating".

    teacher = TowerTeacher(model.query_model, model.candidate_model,
                           prepared.items)             # in memory
    teacher = SavedModelTeacher("export/1", prepared.items)  # from disk
    distiller = Distiller(student, teacher)
"""

import os
from typing import Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras

from tfdistill.data.examples import CANDIDATES
from tfdistill.data.examples import CONTEXT
from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.distill.soft_targets import MASKED_LOGIT
from tfdistill.distill.teachers import TOP_K_SIGNAL
from tfdistill.distill.teachers import TeacherSource
from tfdistill.distill.teachers import top_k_signals
from tfdistill.errors import ConfigError
from tfdistill.errors import ModelError

#: Batch features of tfdistill's examples that hold indices into the
#: student's item or user vocabulary (the rest are passed as they are).
ITEM_FEATURES = (CONTEXT, "item")
USER_FEATURES = ("user",)
_EXAMPLES = 5
_QUERY_TOWERS = ("query_model", "user_model", "query_tower", "user_tower",
                 "query_encoder", "user_encoder")
_CANDIDATE_TOWERS = ("candidate_model", "item_model", "movie_model",
                     "candidate_tower", "item_tower", "movie_tower",
                     "candidate_encoder", "item_encoder")


def _key(value) -> str:
  """An item or user key as a string (bytes decoded, 3.0 -> "3")."""
  if isinstance(value, bytes):
    return value.decode("utf-8")
  if isinstance(value, (float, np.floating)) and float(value).is_integer():
    return str(int(value))
  if isinstance(value, np.generic):
    return str(value.item())
  return str(value)


def _keys(values) -> list:
  if isinstance(values, (tf.Tensor, tf.Variable)):
    values = values.numpy()
  return [_key(v) for v in np.asarray(values).reshape(-1)]


def _examples(values: Sequence) -> str:
  shown = ", ".join(repr(v) for v in list(values)[:_EXAMPLES])
  return shown + (", ..." if len(values) > _EXAMPLES else "")


class ItemAlignment:
  """Joins the teacher's item keys to the student's catalog.

  Args:
    student_keys: The key of each student item index (padding and OOV
      first, e.g. `prepared.items.tokens`, or `prepared.item_titles` for a
      teacher keyed by title).
    teacher_keys: The teacher's item keys, in its own order (its candidate
      vocabulary, or the identifiers of its index).
    strict: Make any student item the teacher does not know an error.
    name: What to call the teacher in messages.

  Attributes:
    student_to_teacher: int64 [num_student_items], the teacher position of
      each student item, -1 for reserved ids and items it does not know.
    report: Counts and examples of the items that did not join.

  Raises:
    ConfigError: if no item joins, or with `strict` if any does not.
  """

  def __init__(self, student_keys: Sequence, teacher_keys: Sequence,
               strict: bool = False, name: str = "the teacher"):
    student = _keys(student_keys)
    teacher = _keys(teacher_keys)
    position = {}
    for index, key in enumerate(teacher):
      position.setdefault(key, index)
    self.student_to_teacher = np.array(
        [-1] * NUM_RESERVED + [position.get(k, -1)
                               for k in student[NUM_RESERVED:]], np.int64)
    self.num_items = len(student)
    self.teacher_keys = teacher
    unknown = [k for k, t in zip(student[NUM_RESERVED:],
                                 self.student_to_teacher[NUM_RESERVED:])
               if t < 0]
    known = set(student[NUM_RESERVED:])
    extra = [k for k in teacher if k not in known]
    self.report = {"student_items": len(student) - NUM_RESERVED,
                   "teacher_items": len(teacher),
                   "unknown_to_teacher": len(unknown),
                   "unknown_examples": unknown[:_EXAMPLES],
                   "teacher_items_not_in_student": len(extra)}
    if len(unknown) == len(student) - NUM_RESERVED:
      raise ConfigError(
          f"no item of the student's catalog is known to {name}: student "
          f"keys {_examples(student[NUM_RESERVED:])}, teacher keys "
          f"{_examples(teacher)}. Pass the item keys the teacher uses "
          "(item_keys=, e.g. prepared.item_titles for a teacher keyed by "
          "title).")
    if unknown:
      message = (f"{len(unknown)} of {len(student) - NUM_RESERVED} student "
                 f"items are unknown to {name} (e.g. {_examples(unknown)}); "
                 "their scores are masked from its signals")
      if strict:
        raise ConfigError(message + " (--strict_vocabulary).")
      logging.warning("%s", message)

  def teacher_to_student(self) -> np.ndarray:
    """int32 [num_teacher_items]: student index per teacher position (0,
    the padding id, for items the student's catalog lacks)."""
    out = np.zeros(len(self.teacher_keys), np.int32)
    for student, teacher in enumerate(self.student_to_teacher):
      if teacher >= 0 and out[teacher] == 0:
        out[teacher] = student
    return out

  def key_table(self) -> tf.lookup.StaticHashTable:
    """Teacher key (string) -> student index; unknown keys -> 0."""
    to_student = self.teacher_to_student()
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant(self.teacher_keys, tf.string),
        tf.constant(to_student, tf.int32)), default_value=0)


def input_specs(model) -> tuple:
  """({name: TensorSpec}, style) of what `model` is called with; style is
  "dict" (a feature dict) or "single" (one tensor, named by its spec).

  Raises:
    ModelError: if the model was never called (Keras cannot tell).
  """
  if hasattr(model, "structured_input_signature"):  # a SavedModel signature
    _, kwargs = model.structured_input_signature
    return dict(kwargs), "dict"
  spec = model.save_spec() if hasattr(model, "save_spec") else None
  if spec is None and getattr(model, "inputs", None):
    inputs = model.inputs
    spec = ([{t.name.split(":")[0]: tf.TensorSpec(t.shape, t.dtype)
              for t in inputs}] if len(inputs) > 1 else
            [tf.TensorSpec(inputs[0].shape, inputs[0].dtype,
                           name=inputs[0].name.split(":")[0])], {})
  if spec is None:
    raise ModelError(
        f"{model.name} has never been called, so its inputs are unknown; "
        "call it once on a batch of its features (or train it) first.")
  args, _ = spec
  first = args[0]
  if isinstance(first, dict):
    return {name: s for name, s in first.items()}, "dict"
  if isinstance(first, (list, tuple)):
    raise ModelError(f"{model.name} takes a list of inputs; wrap it in a "
                     "model that takes a dict of named features.")
  return {first.name or "input": first}, "single"


def _guess(name: str, spec: tf.TensorSpec, features: dict,
           query: bool = False) -> Optional[str]:
  """The batch feature that a teacher input most likely reads; `query`: an
  input of a retrieval query tower, whose one id is the user's."""
  if name in features:
    return name
  lowered = name.lower()
  rank = spec.shape.rank
  if "user" in lowered and "user" in features:
    return "user"
  if query and rank == 1 and "user" in features:
    return "user"
  if rank == 2 and CONTEXT in features:
    return CONTEXT
  if rank == 1 and any(w in lowered for w in ("item", "movie", "candidate",
                                              "product", "title")):
    return "item" if "item" in features else None
  if len(features) == 1:
    return next(iter(features))
  return None


def parse_inputs(spec: str) -> dict:
  """"context=movie_history,user=user_id" -> {"movie_history": "context",
  "user_id": "user"} (teacher input -> student feature)."""
  mapping = {}
  for part in filter(None, (p.strip() for p in (spec or "").split(","))):
    feature, sep, name = part.partition("=")
    if not sep or not feature or not name:
      raise ConfigError(f"--teacher_inputs: {part!r} is not "
                        "student_feature=teacher_input.")
    mapping[name] = feature
  return mapping


class FeatureMapping:
  """Turns a batch of tfdistill features into a teacher's inputs.

  Item and user features (student indices) become the teacher's keys:
  strings, or integers when the teacher's input is an integer. A history
  longer than the teacher's fixed context length keeps its most recent
  items; a shorter one is left-padded with `pad_key`.

  Args:
    teacher_specs: {teacher input name: TensorSpec}.
    features: {batch feature: TensorSpec} the data provides.
    item_keys, user_keys: Key per student index (padding and OOV first).
    inputs: Explicit {teacher input: batch feature}; the rest is inferred
      from names and shapes.
    pad_key: The teacher's key for an empty history slot.
    name: What to call the teacher in messages.
    query: The inputs are a retrieval query tower's (a single id input is
      then the user's).

  Raises:
    ConfigError: naming both sides, when an input cannot be fed.
  """

  def __init__(self, teacher_specs: dict, features: dict, item_keys,
               user_keys=None, inputs: Optional[dict] = None,
               pad_key: str = "", name: str = "the teacher",
               query: bool = False):
    inputs = dict(inputs or {})
    unknown = [n for n in inputs if n not in teacher_specs]
    if unknown:
      raise ConfigError(f"{name} has no input(s) {unknown}; its inputs are "
                        f"{_describe(teacher_specs)}.")
    self.mapping = {}
    for input_name, spec in teacher_specs.items():
      feature = inputs.get(input_name) or _guess(input_name, spec, features,
                                                 query)
      if feature is None or feature not in features:
        raise ConfigError(
            f"cannot feed {name}'s input {input_name!r} "
            f"({_describe({input_name: spec})}) from the data's features "
            f"{_describe(features)}; map it with inputs= (CLI: "
            f"--teacher_inputs=<feature>={input_name}).")
      self._check(input_name, spec, feature, features[feature], name)
      self.mapping[input_name] = feature
    self.specs = teacher_specs
    self.features = {f: features[f] for f in set(self.mapping.values())}
    self._tables = {}
    for kind, keys in (("item", item_keys), ("user", user_keys)):
      if keys is not None:
        strings = _keys(keys)
        strings[0] = pad_key
        self._tables[kind] = strings
    for input_name, feature in self.mapping.items():
      kind = self._kind(feature)
      if kind and kind not in self._tables:
        raise ConfigError(f"{name}'s input {input_name!r} reads the "
                          f"{kind} feature {feature!r}; pass {kind}_keys=.")
    self._converted = {}

  @staticmethod
  def _kind(feature: str) -> Optional[str]:
    if feature in ITEM_FEATURES:
      return "item"
    if feature in USER_FEATURES:
      return "user"
    return None

  def _check(self, input_name, spec, feature, feature_spec, name) -> None:
    kind = self._kind(feature)
    convertible = spec.dtype == tf.string or spec.dtype.is_integer or (
        kind is None and spec.dtype == feature_spec.dtype)
    if not convertible or not _rank_fits(spec, feature_spec):
      raise ConfigError(
          f"cannot feed {name}'s input {input_name!r}, which expects "
          f"{_describe({input_name: spec})}, from the data's feature "
          f"{feature!r} ({_describe({feature: feature_spec})}; "
          + ("item and user ids become strings or integers" if kind else
             "passed as it is") + "); map another feature with inputs= "
          f"(CLI: --teacher_inputs=<feature>={input_name}).")

  def _table(self, kind: str, dtype: tf.DType) -> tf.Tensor:
    cache_key = (kind, dtype.name)
    if cache_key not in self._converted:
      strings = self._tables[kind]
      if dtype == tf.string:
        table = tf.constant(strings, tf.string)
      else:
        try:
          values = [int(s) if s else 0 for s in strings[NUM_RESERVED:]]
        except ValueError:
          bad = next(s for s in strings[NUM_RESERVED:]
                     if not s.lstrip("-").isdigit())
          raise ConfigError(f"the teacher reads {kind} ids as integers, but "
                            f"the data's {kind} key {bad!r} is not one; "
                            "pass keys it knows (item_keys=/user_keys=).")
        table = tf.constant([0] * NUM_RESERVED + values, dtype)
      self._converted[cache_key] = table
    return self._converted[cache_key]

  def __call__(self, features: dict) -> dict:
    out = {}
    for input_name, feature in self.mapping.items():
      spec = self.specs[input_name]
      value = features[feature]
      kind = self._kind(feature)
      if kind:
        value = tf.gather(self._table(kind, spec.dtype),
                          tf.cast(value, tf.int32))
      elif value.dtype != spec.dtype:
        value = tf.cast(value, spec.dtype)
      out[input_name] = self._fit_length(value, spec)
    return out

  def _fit_length(self, value, spec) -> tf.Tensor:
    if spec.shape.rank == 2 and value.shape.rank == 1:
      return value[:, tf.newaxis]  # an id [B] for an input [B, 1]
    if spec.shape.rank != 2 or spec.shape[1] is None or value.shape.rank != 2:
      return value
    wanted, have = spec.shape[1], value.shape[1]
    if have is None or have == wanted:
      return value
    if have > wanted:
      return value[:, have - wanted:]  # the most recent items
    pad = tf.fill([tf.shape(value)[0], wanted - have],
                  tf.constant("" if value.dtype == tf.string else 0,
                              value.dtype))
    return tf.concat([pad, value], axis=1)


def _rank_fits(spec: tf.TensorSpec, feature: tf.TensorSpec) -> bool:
  """Same rank, or an id [B] for an input [B, 1]."""
  if spec.shape.rank is None:
    return True
  return spec.shape.rank == feature.shape.rank or (
      feature.shape.rank == 1 and spec.shape.as_list()[1:] == [1])


def _describe(specs: dict) -> str:
  """{name: dtype[B, ...]} of tensor specs, for messages."""
  def shape(spec) -> str:
    if spec.shape.rank is None:
      return "[?]"
    dims = ["B"] + [str(d) if d is not None else "?"
                    for d in spec.shape.as_list()[1:]]
    return "[" + ", ".join(dims) + "]"
  return "{" + ", ".join(f"{n}: {s.dtype.name}{shape(s)}"
                         for n, s in specs.items()) + "}"


def _data_features(context_length: Optional[int], with_user: bool) -> dict:
  """What tfdistill's examples can feed a teacher: the target or candidate
  "item", the "context" history (given its length), the "user"."""
  features = {"item": tf.TensorSpec([None], tf.int32)}
  if context_length:
    features[CONTEXT] = tf.TensorSpec([None, context_length], tf.int32)
  if with_user:
    features["user"] = tf.TensorSpec([None], tf.int32)
  return features


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
        specs, _data_features(self.context_length,
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

  signal_names = ("logits", "query_embedding")

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
    self.candidates = _keys(candidates)
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
    out = {"query_embedding": query}
    if signals is None or "logits" in signals:
      logits = tf.matmul(query, self._catalog, transpose_b=True)
      logits = tf.where(self._known[tf.newaxis], logits, MASKED_LOGIT)
      if self.top_k:
        scores, ids = tf.math.top_k(logits, k=self.top_k)
        out.update(top_k_signals(ids, scores, len(self.vocabulary)))
      else:
        out["logits"] = logits
    if signals is not None:
      out = {k: v for k, v in out.items()
             if k in signals or (k == TOP_K_SIGNAL and "logits" in signals)}
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

  signal_names = ("logits", "query_embedding")

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
    self._align(_keys(identifiers), f"{type(index).__name__} index")
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
    if signals is None or "query_embedding" in signals:
      out["query_embedding"] = tf.stop_gradient(tf.cast(
          self.query_model(features, training=False), tf.float32))
    if signals is None or "logits" in signals:
      scores, ids = self.index(features, k=self.k)
      student_ids, scores = _to_student(self._table, ids, scores)
      out.update(top_k_signals(student_ids, tf.stop_gradient(scores),
                               len(self.vocabulary)))
    return out


def _index_identifiers(index) -> Optional[list]:
  """The item keys a factorized_top_k index returns: BruteForce (and ScaNN)
  keep them in `_identifiers`; Streaming reads its candidates dataset of
  (identifier, embedding) pairs at every query."""
  identifiers = getattr(index, "_identifiers", None)
  if identifiers is not None:
    return _keys(identifiers)
  candidates = getattr(index, "_candidates", None)
  if isinstance(candidates, tf.data.Dataset) and isinstance(
      candidates.element_spec, tuple):
    return [k for ids, _ in candidates for k in _keys(ids)]
  return None


def _to_student(table, ids, scores) -> tuple:
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
    self.signal_names = ("logits", "rating") if candidates else ("rating",)
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
    if self.candidates and (signals is None or "logits" in signals):
      out["logits"] = tf.stop_gradient(self._candidate_scores(inputs))
    if (signals is None or "rating" in signals) and "item" in inputs:
      out["rating"] = tf.stop_gradient(tf.reshape(self._rating(inputs),
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
                       f"returns {_describe(outputs)}.")
    if not (outputs[output].dtype.is_floating and (
        outputs[output].shape.rank == 1 or
        outputs[output].shape.as_list()[1:] == [1])):
      raise ConfigError(f"output={output!r} of {path}:{signature} is "
                        f"{_describe({output: outputs[output]})}; a chosen "
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
        f"{path}:{signature} returns {_describe(outputs)}; a teacher "
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

  signal_names = ("logits",)

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
    self._keys = (tf.constant(keys) if self._candidate_dtype == tf.string
                  else tf.constant([int(k) if k.lstrip("-").isdigit() else 0
                                    for k in keys], self._candidate_dtype))

  def __call__(self, inputs: dict, labels=None,
               signals: Optional[Sequence[str]] = None) -> dict:
    if signals is not None and "logits" not in signals:
      return {}
    features = self.mapping(inputs)
    batch = tf.shape(next(iter(features.values())))[0]
    columns = []
    for start in range(0, len(self.vocabulary), self.chunk):
      chunk = self._keys[start:start + self.chunk]
      candidates = tf.tile(chunk[tf.newaxis], [batch, 1])
      scores = self.function(dict(features, **{self._candidates: candidates}))
      columns.append(tf.cast(scores[self._scores], tf.float32))
    logits = tf.concat(columns, axis=1)
    return {"logits": tf.stop_gradient(
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

  signal_names = ("logits",)

  def __init__(self, function: _Signature, vocabulary, ids: str,
               scores: str, loaded, **kwargs):
    super().__init__(vocabulary, **kwargs)
    self.saved_model = loaded  # also keeps its variables alive
    self.function = function
    self._ids, self._scores = ids, scores
    specs, _ = input_specs(function)
    self.mapping = self._mapping(specs, function.name)
    self._keys = None
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
    if signals is not None and "logits" not in signals:
      return {}
    result = self.function(self.mapping(inputs))
    ids, scores = _to_student(self._table, result[self._ids],
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
      return [k for k in _keys(value.numpy()) if k not in _RESERVED_KEYS]
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

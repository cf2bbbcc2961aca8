"""How a teacher of the user's own meets tfdistill's data: its items and
its inputs.

A teacher of the user's numbers its items its own way (strings through a
`StringLookup`, or other integer ids) and reads its own inputs (`user_id`,
`movie_title`, a history of movie ids...). This module translates, in both
directions:

* the batch's features (`context`, `user`, `item`: indices in the student's
  vocabularies) into the teacher's inputs, by the item and user keys the
  data carries (`FeatureMapping`);
* the teacher's scores into the student's catalog (`ItemAlignment`): the
  teacher's best item for a context comes out as the same item key in the
  student's numbering; student items the teacher does not know are reported
  and masked from its signals.
"""

from typing import Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from tfdistill.data.examples import CONTEXT
from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.errors import ConfigError
from tfdistill.errors import ModelError

#: Batch features of tfdistill's examples that hold indices into the
#: student's item or user vocabulary (the rest are passed as they are).
ITEM_FEATURES = (CONTEXT, "item")
USER_FEATURES = ("user",)
_EXAMPLES = 5


def _key(value) -> str:
  """An item or user key as a string (bytes decoded, 3.0 -> "3")."""
  if isinstance(value, bytes):
    return value.decode("utf-8")
  if isinstance(value, (float, np.floating)) and float(value).is_integer():
    return str(int(value))
  if isinstance(value, np.generic):
    return str(value.item())
  return str(value)


def item_keys_of(values) -> list:
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
    student = item_keys_of(student_keys)
    teacher = item_keys_of(teacher_keys)
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
                        f"{describe_specs(teacher_specs)}.")
    self.mapping = {}
    for input_name, spec in teacher_specs.items():
      feature = inputs.get(input_name) or _guess(input_name, spec, features,
                                                 query)
      if feature is None or feature not in features:
        raise ConfigError(
            f"cannot feed {name}'s input {input_name!r} "
            f"({describe_specs({input_name: spec})}) from the data's features "
            f"{describe_specs(features)}; map it with inputs= (CLI: "
            f"--teacher_inputs=<feature>={input_name}).")
      self._check(input_name, spec, feature, features[feature], name)
      self.mapping[input_name] = feature
    self.specs = teacher_specs
    self.features = {f: features[f] for f in set(self.mapping.values())}
    self._tables = {}
    for kind, keys in (("item", item_keys), ("user", user_keys)):
      if keys is not None:
        strings = item_keys_of(keys)
        strings[0] = pad_key
        self._tables[kind] = strings
    for input_name, feature in self.mapping.items():
      kind = self._kind(feature)
      if kind and kind not in self._tables:
        raise ConfigError(f"{name}'s input {input_name!r} reads the "
                          f"{kind} feature {feature!r}; pass {kind}item_keys_of=.")
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
          f"{describe_specs({input_name: spec})}, from the data's feature "
          f"{feature!r} ({describe_specs({feature: feature_spec})}; "
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


def describe_specs(specs: dict) -> str:
  """{name: dtype[B, ...]} of tensor specs, for messages."""
  def shape(spec) -> str:
    if spec.shape.rank is None:
      return "[?]"
    dims = ["B"] + [str(d) if d is not None else "?"
                    for d in spec.shape.as_list()[1:]]
    return "[" + ", ".join(dims) + "]"
  return "{" + ", ".join(f"{n}: {s.dtype.name}{shape(s)}"
                         for n, s in specs.items()) + "}"


def data_features(context_length: Optional[int], with_user: bool) -> dict:
  """What tfdistill's examples can feed a teacher: the target or candidate
  "item", the "context" history (given its length), the "user"."""
  features = {"item": tf.TensorSpec([None], tf.int32)}
  if context_length:
    features[CONTEXT] = tf.TensorSpec([None, context_length], tf.int32)
  if with_user:
    features["user"] = tf.TensorSpec([None], tf.int32)
  return features

"""Where the teacher's knowledge comes from, as small strategy objects.

Every teacher source returns a dict of signals for a batch ("logits",
"query_embedding", "hidden", "rating"), always without training:

* `OnlineTeacher`: runs a frozen model (a TFRS teacher or a trained
  student), optionally keeping only its top-K scores;
* `TeacherEnsemble`: several teachers, with fixed or per-example
  confidence weights;
* `TaskTeachers`: one teacher per signal (multi-task distillation);
* `CachedTeacher`: reads precomputed top-K ids and scores, and/or hidden
  layers or query embeddings, from the batch (see
  `tfdistill.distill.cache`), so no teacher runs during distillation.

Reserved columns (padding, OOV) and columns outside a top-K signal are set to
`MASKED_LOGIT`.
"""

from typing import Optional, Sequence

import tensorflow as tf
import tf_keras

from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.distill.positions import at_targets
from tfdistill.distill.soft_targets import MASKED_LOGIT
from tfdistill.distill.soft_targets import scatter_top_k
from tfdistill.distill.soft_targets import teacher_mask
from tfdistill.errors import ConfigError
from tfdistill.models.io import input_signature
from tfdistill.models.io import is_functional
from tfdistill.models.io import model_card
from tfdistill.models.layers import CatalogScores
from tfdistill.models.signals import HIDDEN
from tfdistill.models.signals import LOGITS
from tfdistill.models.signals import QUERY_EMBEDDING
from tfdistill.models.signals import RATING

SIGNAL_LAYERS = (QUERY_EMBEDDING, HIDDEN)
TOP_IDS = "teacher_top_ids"
TOP_SCORES = "teacher_top_scores"
#: Signal holding a top-K teacher's (ids [B, K], scores [B, K]).
TOP_K_SIGNAL = "logits_top_k"
#: The factors of a student's "logits" when they are queries @ catalog^T.
CATALOG_QUERIES = "catalog_queries"
CATALOG_ITEMS = "catalog_items"


def _catalog_factors(model: tf_keras.Model, logits) -> Optional[tuple]:
  """(queries, catalog) when `logits` is a `CatalogScores` layer's output.

  The layer may have been called in several models (quantization-aware
  training rebuilds the model around the same layer object): the call that
  produced `logits` gives the factors."""
  try:
    layer = model.get_layer(LOGITS)
  except ValueError:  # No such layer.
    return None
  if not isinstance(layer, CatalogScores):
    return None
  for node in layer.inbound_nodes:
    if node.output_tensors is logits:
      queries, catalog = node.input_tensors
      return queries, catalog
  return None


def signal_model(model: tf_keras.Model,
                 with_catalog: bool = False) -> tf_keras.Model:
  """A functional model's outputs plus its named signal layers.

  A signal layer wrapped for pruning or quantization-aware training
  (TF-MOT wrappers, which keep the layer as `.layer`) still gives its
  signal, so that compression fine-tunes distil with the same losses.

  Shares all layers (and so all weights) with `model`; training it trains
  `model`. With `with_catalog`, a model whose "logits" come from
  `CatalogScores` also gives that layer's inputs (`CATALOG_QUERIES`
  [B, d], `CATALOG_ITEMS` [N, d]), so that losses can score a few items
  without the dense logits (`StudentScores`).
  """
  if not is_functional(model):
    raise ConfigError(f"{model.name} is not a functional Keras model; students "
                      "are built with tfdistill.models.students builders.")
  outputs = model.output if isinstance(model.output, dict) else {
      (RATING if model.output.shape[-1] == 1 else LOGITS): model.output}
  outputs = dict(outputs)
  for layer in model.layers:
    # A pruning or quantization-aware wrapper gives its layer's signal.
    name = getattr(layer, "layer", layer).name
    if name in SIGNAL_LAYERS:
      outputs[name] = layer.output
  factors = (_catalog_factors(model, outputs[LOGITS])
             if with_catalog and LOGITS in outputs else None)
  if factors:
    outputs[CATALOG_QUERIES], outputs[CATALOG_ITEMS] = factors
  return tf_keras.Model(model.inputs, outputs, name=f"{model.name}_signals")


def model_inputs(model, inputs: dict) -> dict:
  """The entries of a feature dict that a model declares as inputs."""
  return {name: inputs[name] for name in input_signature(model)}


def mask_reserved(logits: tf.Tensor) -> tf.Tensor:
  keep = tf.range(tf.shape(logits)[-1]) >= NUM_RESERVED
  return tf.where(keep[tf.newaxis], logits, MASKED_LOGIT)


def top_k_signals(ids: tf.Tensor, scores: tf.Tensor, num_items) -> dict:
  """The dense masked "logits" and the sparse (ids, scores) of a top-K.

  Losses with a sparse form read `TOP_K_SIGNAL`; inside `fit` (a
  tf.function) the dense matrix is then never computed unless another loss
  reads it.
  """
  return {LOGITS: scatter_top_k(ids, scores, num_items),
          TOP_K_SIGNAL: (tf.cast(ids, tf.int32), tf.cast(scores, tf.float32))}


class TeacherSource:
  """Interface of the teacher sources (see the module docstring)."""

  #: Signals this source can provide.
  signal_names: tuple = ()

  def models(self) -> list:
    """The Keras models behind the source (frozen by the Distiller)."""
    return []

  def prepare(self) -> None:
    """Computes what stays fixed during distillation (called by compile)."""

  def input_signature(self) -> dict:
    return {}

  def card(self) -> dict:
    """num_items / vocabulary_fingerprint, for compatibility checks."""
    return {}

  def __call__(self, inputs: dict, labels=None,
               signals: Optional[Sequence[str]] = None) -> dict:
    """The teacher's signals for a batch.

    Args:
      inputs: The batch's features.
      labels: Its labels (used by confidence-weighted ensembles).
      signals: The signals the caller reads (`Distiller` passes those of its
        losses); None for all. A source may then skip work no caller reads,
        e.g. a retrieval teacher's catalog scores and top-K when only its
        hidden layer is distilled.
    """
    raise NotImplementedError

  def at_every_position(self, inputs: dict, targets,
                        signals: Optional[Sequence[str]] = None) -> dict:
    """The teacher's signals at every position of a batch of chunks that
    has a target (`tfdistill.distill.positions`), as [M, ...] rows."""
    raise ConfigError(
        f"{type(self).__name__} cannot teach every position of a sequence "
        "in one pass: that needs tfdistill's sequential teacher trained "
        "with objective='all_positions' (causal). Distil on context windows "
        "(sequence_examples) instead.")


class OnlineTeacher(TeacherSource):
  """Runs a frozen teacher model at every step.

  For TFRS teachers, the catalog embeddings are computed once (`prepare`)
  instead of at every step: a frozen teacher's catalog does not change.

  Args:
    model: A tfdistill teacher or any functional model (e.g. a trained
      student acting as teaching assistant).
    top_k: If > 0, keep only the teacher's top-K scores (others masked); the
      cached path (`CachedTeacher`) stores exactly this.
    jit_compile: Compile the teacher's forward pass (and its top-K) with
      XLA; the student's step is not. Default: on for tfdistill's teachers,
      whose layers XLA supports, off for other models.
  """

  def __init__(self, model, top_k: int = 0,
               jit_compile: Optional[bool] = None):
    self.model = model
    self.top_k = top_k
    self._catalog = None
    if hasattr(model, "distillation_signals"):
      self._signals = model.distillation_signals
      self.signal_names = tuple(model.signal_names)
      self._num_items = model.num_items
    else:
      functional = signal_model(model)
      self._signals = functional
      self.signal_names = tuple(functional.output)
      self._num_items = (functional.output[LOGITS].shape[-1]
                         if LOGITS in functional.output else None)
    if jit_compile is None:
      jit_compile = hasattr(model, "distillation_signals")
    self.jit_compile = bool(jit_compile)
    self._forward, self._position_forward = (
        (tf.function(f, jit_compile=True) if self.jit_compile else f)
        for f in (self._teacher_signals, self._position_signals))

  def models(self) -> list:
    return [self.model]

  def prepare(self) -> None:
    if hasattr(self.model, "catalog_embeddings"):
      self._catalog = tf.constant(self.model.catalog_embeddings(training=False))

  def input_signature(self) -> dict:
    return input_signature(self.model)

  def card(self) -> dict:
    return model_card(self.model)

  def _teacher_signals(self, features: dict, catalog,
                       wanted: Optional[tuple] = None) -> dict:
    """The model's signals, the logits as (ids, scores) if top_k.

    With `wanted`, only those signals: the work that feeds no other one (the
    catalog scores and their top-K, when "logits" is not wanted) is then
    pruned from the traced function (XLA or not).
    """
    if catalog is not None:
      signals = self._signals(features, training=False, catalog=catalog)
    else:
      signals = self._signals(features, training=False)
    signals = {k: tf.stop_gradient(v) for k, v in signals.items()
               if wanted is None or k in wanted}
    if LOGITS in signals:
      signals[LOGITS] = mask_reserved(signals[LOGITS])
      if self.top_k:
        scores, ids = tf.math.top_k(signals.pop(LOGITS), k=self.top_k)
        signals[TOP_K_SIGNAL] = (ids, scores)
    return signals

  def __call__(self, inputs: dict, labels=None,
               signals: Optional[Sequence[str]] = None) -> dict:
    wanted = None if signals is None else tuple(sorted(set(signals)))
    signals = self._forward(model_inputs(self.model, inputs), self._catalog,
                            wanted)
    if TOP_K_SIGNAL in signals:
      ids, scores = signals.pop(TOP_K_SIGNAL)
      signals.update(top_k_signals(ids, scores, self._num_items))
    return signals

  def _position_signals(self, features: dict, catalog,
                        wanted: Optional[tuple] = None) -> dict:
    """`_teacher_signals` of every position: [B, L, ...] each."""
    if catalog is None:
      catalog = self.model.catalog_embeddings(training=False)
    sequence = self.model.sequence_signals(features, training=False,
                                           catalog=catalog)
    signals = {k: tf.stop_gradient(v) for k, v in sequence.items()
               if wanted is None or k in wanted}
    if wanted is None or LOGITS in wanted:
      logits = mask_reserved(tf.stop_gradient(tf.einsum(
          "bld,nd->bln", sequence[QUERY_EMBEDDING], catalog)))
      if self.top_k:
        scores, ids = tf.math.top_k(logits, k=self.top_k)
        signals[TOP_K_SIGNAL] = (ids, scores)
      else:
        signals[LOGITS] = logits
    return signals

  def at_every_position(self, inputs: dict, targets,
                        signals: Optional[Sequence[str]] = None) -> dict:
    if not (getattr(self.model, "causal", False)
            and hasattr(self.model, "sequence_signals")):
      return super().at_every_position(inputs, targets, signals)
    wanted = None if signals is None else tuple(sorted(set(signals)))
    dense = self._position_forward(model_inputs(self.model, inputs),
                                   self._catalog, wanted)
    out = {k: at_targets(v, targets) for k, v in dense.items()
           if k != TOP_K_SIGNAL}
    if TOP_K_SIGNAL in dense:
      ids, scores = dense[TOP_K_SIGNAL]
      out.update(top_k_signals(at_targets(ids, targets),
                               at_targets(scores, targets), self._num_items))
    return out


def cached_feature(signal: str) -> str:
  """The feature of a cached batch that holds a representation signal."""
  return f"teacher_{signal}"


def check_cacheable(signals) -> None:
  """Raises unless `signals` are a teacher cache's: "logits" (its top-K)
  and/or the representation signals `SIGNAL_LAYERS`."""
  if not signals or any(name != LOGITS and name not in SIGNAL_LAYERS
                        for name in signals):
    raise ConfigError(f"cannot cache the signals {list(signals)}; choose from "
                      f"logits, {', '.join(SIGNAL_LAYERS)}.")


class CachedTeacher(TeacherSource):
  """Reads the teacher's signals from the batch features.

  Use with `tfdistill.distill.cache.cached_examples`, whose batches carry
  what `cache_teacher_signal` stored: the teacher's top-K ids and scores
  ("logits") and/or representation signals ("hidden", "query_embedding")
  as features `cached_feature(signal)`.

  Args:
    num_items: Catalog size of the teacher (top-K ids index it).
    top_k: K of the cached top-K; 0 when no "logits" were cached.
    vocabulary_fingerprint: The teacher's, for compatibility checks.
    representations: {signal: width} of the cached representation signals.
  """

  def __init__(self, num_items: int, top_k: int,
               vocabulary_fingerprint: str = "",
               representations: Optional[dict] = None):
    self.num_items = num_items
    self.top_k = top_k
    self.vocabulary_fingerprint = vocabulary_fingerprint
    self.representations = dict(representations or {})
    self.signal_names = ((LOGITS,) if top_k else ()) + tuple(
        self.representations)
    if LOGITS in self.representations:
      raise ConfigError("the logits are cached as a top-K (top_k), not as a "
                        "representation.")
    if not self.signal_names:
      raise ConfigError("a CachedTeacher needs a cached top-K (top_k > 0) or "
                        "a cached representation signal.")
    check_cacheable(self.signal_names)

  def input_signature(self) -> dict:
    spec = {}
    if self.top_k:
      spec[TOP_IDS] = tf.TensorSpec([None, self.top_k], tf.int32)
      spec[TOP_SCORES] = tf.TensorSpec([None, self.top_k], tf.float32)
    for name, width in self.representations.items():
      spec[cached_feature(name)] = tf.TensorSpec([None, width], tf.float32)
    return spec

  def card(self) -> dict:
    return {"num_items": self.num_items,
            "vocabulary_fingerprint": self.vocabulary_fingerprint}

  def __call__(self, inputs: dict, labels=None,
               signals: Optional[Sequence[str]] = None) -> dict:
    wanted = [name for name in self.signal_names
              if signals is None or name in signals]
    missing = [key for key in self.input_signature() if key not in inputs]
    if missing:
      raise ConfigError(f"CachedTeacher needs the features {missing}; read "
                        "the data with tfdistill.distill.cache."
                        "cached_examples.")
    out = {}
    if LOGITS in wanted:
      out.update(top_k_signals(inputs[TOP_IDS], inputs[TOP_SCORES],
                               self.num_items))
    for name in wanted:
      if name in self.representations:
        out[name] = tf.cast(inputs[cached_feature(name)], tf.float32)
    return out


class TeacherEnsemble(TeacherSource):
  """Several teachers combined into one signal.

  Logits are combined as a weighted sum of the teachers' log-probabilities
  (a weighted geometric mean of their distributions); embeddings and hidden
  layers are concatenated; ratings are averaged with the same weights.

  Args:
    teachers: Models or `TeacherSource`s.
    weights: Fixed weights (normalised); default equal.
    weighting: "fixed", or "confidence": per example, teachers that give the
      true target a higher probability get more weight
      (softmax over teachers of -cross_entropy / confidence_temperature), as
      in confidence-aware multi-teacher distillation.
    confidence_temperature: Sharpness of the confidence weights.
  """

  def __init__(self, teachers: Sequence, weights: Optional[Sequence] = None,
               weighting: str = "fixed", confidence_temperature: float = 1.0):
    if len(teachers) < 2:
      raise ConfigError("a TeacherEnsemble needs at least two teachers.")
    if weighting not in ("fixed", "confidence"):
      raise ConfigError(f"weighting must be 'fixed' or 'confidence', got "
                        f"{weighting!r}.")
    weights = list(weights) if weights is not None else [1.0] * len(teachers)
    if len(weights) != len(teachers) or min(weights) < 0 or sum(weights) <= 0:
      raise ConfigError(f"weights {weights} must be one non-negative number "
                        "per teacher, not all zero.")
    self.teachers = [as_teacher_source(t) for t in teachers]
    self.weights = [w / sum(weights) for w in weights]
    self.weighting = weighting
    self.confidence_temperature = confidence_temperature
    common = set(self.teachers[0].signal_names)
    for teacher in self.teachers[1:]:
      common &= set(teacher.signal_names)
    self.signal_names = tuple(sorted(common))

  def models(self) -> list:
    return [m for t in self.teachers for m in t.models()]

  def prepare(self) -> None:
    for teacher in self.teachers:
      teacher.prepare()

  def input_signature(self) -> dict:
    signature = {}
    for teacher in self.teachers:
      signature.update(teacher.input_signature())
    return signature

  def card(self) -> dict:
    return self.teachers[0].card()

  def _example_weights(self, log_probs: list, labels) -> tf.Tensor:
    """[B, num_teachers] weights (rows sum to one)."""
    fixed = tf.constant(self.weights, tf.float32)[tf.newaxis]
    if self.weighting == "fixed" or labels is None:
      return fixed
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    target_log_probs = tf.stack([
        tf.gather(lp, labels, batch_dims=1) for lp in log_probs], axis=-1)
    return tf.nn.softmax(
        tf.math.log(fixed) + target_log_probs / self.confidence_temperature,
        axis=-1)

  def _wanted(self, signals: Optional[Sequence[str]]) -> set:
    """The signals to combine, and so to ask the members for."""
    wanted = set(self.signal_names)
    if signals is None:
      return wanted
    if (RATING in signals and self.weighting == "confidence"
        and LOGITS in wanted):
      signals = {*signals, LOGITS}  # The per-example weights need them.
    return wanted & set(signals)

  def __call__(self, inputs: dict, labels=None,
               signals: Optional[Sequence[str]] = None) -> dict:
    wanted = self._wanted(signals)
    outputs = [teacher(inputs, labels,
                       signals=None if signals is None else wanted)
               for teacher in self.teachers]
    signals = {}
    weights = tf.constant(self.weights, tf.float32)[tf.newaxis]
    if LOGITS in wanted:
      log_probs = [tf.nn.log_softmax(o[LOGITS], -1) for o in outputs]
      weights = self._example_weights(log_probs, labels)
      mixed = tf.add_n([weights[:, i:i + 1] * lp
                        for i, lp in enumerate(log_probs)])
      known = tf.reduce_any(tf.stack([teacher_mask(o[LOGITS])
                                      for o in outputs]), axis=0)
      signals[LOGITS] = tf.where(known, mixed, MASKED_LOGIT)
    for name in (QUERY_EMBEDDING, HIDDEN):
      if name in wanted:
        signals[name] = tf.concat([o[name] for o in outputs], axis=-1)
    if RATING in wanted:
      signals[RATING] = tf.add_n([weights[:, i:i + 1] * o[RATING]
                                    for i, o in enumerate(outputs)])
    return signals


class TaskTeachers(TeacherSource):
  """One teacher per signal, e.g. {"logits": retrieval, "rating": ranking}."""

  def __init__(self, teachers: dict):
    if not teachers:
      raise ConfigError("TaskTeachers needs at least one signal -> teacher.")
    self.teachers = {name: as_teacher_source(t) for name, t in
                     teachers.items()}
    for name, teacher in self.teachers.items():
      if name not in teacher.signal_names:
        raise ConfigError(f"the teacher for {name!r} provides only "
                          f"{teacher.signal_names}.")
    self.signal_names = tuple(self.teachers)

  def models(self) -> list:
    return [m for t in self.teachers.values() for m in t.models()]

  def prepare(self) -> None:
    for teacher in self.teachers.values():
      teacher.prepare()

  def input_signature(self) -> dict:
    signature = {}
    for teacher in self.teachers.values():
      signature.update(teacher.input_signature())
    return signature

  def card(self) -> dict:
    retrieval = self.teachers.get(LOGITS)
    return retrieval.card() if retrieval else {}

  def __call__(self, inputs: dict, labels=None,
               signals: Optional[Sequence[str]] = None) -> dict:
    combined = {}
    for name, teacher in self.teachers.items():
      if signals is not None and name not in signals:
        continue
      task_labels = labels.get(name) if isinstance(labels, dict) else labels
      outputs = teacher(inputs, task_labels, signals=(name,))
      combined[name] = outputs[name]
      if name == LOGITS and TOP_K_SIGNAL in outputs:
        combined[TOP_K_SIGNAL] = outputs[TOP_K_SIGNAL]
    return combined


def as_teacher_source(teacher) -> TeacherSource:
  """A model becomes an `OnlineTeacher`; a list an ensemble; a dict tasks."""
  if isinstance(teacher, TeacherSource):
    return teacher
  if isinstance(teacher, (list, tuple)):
    return TeacherEnsemble(teacher)
  if isinstance(teacher, dict):
    return TaskTeachers(teacher)
  if isinstance(teacher, tf_keras.Model):
    return OnlineTeacher(teacher)
  raise ConfigError(f"cannot use {type(teacher).__name__} as a teacher; pass "
                    "a Keras model, a list of models or a TeacherSource.")

"""Distillation losses on score lists: soft targets and listwise.

Each loss is a `tf_keras.losses.Loss` whose `call(teacher_logits,
student_logits)` returns one value per example, so it works standalone with
Keras reductions and inside the Distiller.

Teacher columns set to `MASKED_LOGIT` carry no teacher information (reserved
ids, or items outside a top-K teacher signal); they get zero teacher
probability and are left out of logit matching.
"""

import tensorflow as tf
import tf_keras

from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.distill.student_scores import as_student_scores
from tfdistill.errors import ConfigError
from tfdistill.models.registry import register
from tfdistill.models.signals import LOGITS

MASKED_LOGIT = -1e9


def teacher_mask(teacher_logits: tf.Tensor) -> tf.Tensor:
  """True where the teacher has a score (not MASKED_LOGIT)."""
  return teacher_logits > MASKED_LOGIT / 2


def scatter_top_k(ids: tf.Tensor, scores: tf.Tensor, num_items) -> tf.Tensor:
  """Dense [B, num_items] logits holding `scores` at `ids`, masked elsewhere."""
  ids = tf.cast(ids, tf.int32)
  rows = tf.repeat(tf.range(tf.shape(ids)[0]), tf.shape(ids)[1])
  indices = tf.stack([rows, tf.reshape(ids, [-1])], axis=1)
  base = tf.fill([tf.shape(ids)[0], num_items], MASKED_LOGIT)
  return tf.tensor_scatter_nd_update(base, indices,
                                     tf.reshape(tf.cast(scores, tf.float32),
                                                [-1]))


def check_temperature(temperature: float) -> float:
  if not temperature > 0:
    raise ConfigError(f"temperature must be > 0, got {temperature}.")
  return float(temperature)


class DistillationLoss(tf_keras.losses.Loss):
  """Base class: which signal the loss reads and whether it is tempered.

  Attributes:
    signal: Name of the teacher/student output the loss compares ("logits",
      "query_embedding", "hidden" or "rating").
    uses_distillation_temperature: Whether `Distiller.compile(temperature=)`
      sets this loss's temperature.
  """
  signal = LOGITS
  uses_distillation_temperature = False

  def build(self, teacher_shape: tf.TensorShape,
            student_shape: tf.TensorShape) -> None:
    """Creates variables once the signal shapes are known (default: none)."""
    del teacher_shape, student_shape

  @property
  def trainable_layers(self) -> list:
    return []

  def random_uniform(self, shape) -> tf.Tensor:
    """Uniform [0, 1) draws from this loss's own `tf.random.Generator`
    (seeded by its `seed`), which `tfdistill.resume.RepeatableEpochs`
    reseeds at each epoch so that a resumed training draws what the
    uninterrupted one drew."""
    return self.random_generators(create=True)[0].uniform(shape)

  def random_generators(self, create: bool = False) -> list:
    """The loss's random generator ([] if it never drew, unless create)."""
    generator = self.__dict__.get("_generator")
    if generator is None and create:
      with tf.init_scope():  # a variable, made once and outside any trace
        generator = tf.random.Generator.from_seed(getattr(self, "seed", 0))
      self.__dict__["_generator"] = generator
    return [generator] if generator is not None else []

  def call_top_k(self, top_ids: tf.Tensor, top_scores: tf.Tensor,
                 y_pred) -> tf.Tensor:
    """The loss when the teacher gives only its top-K ids and scores.

    Equals `call` on the dense teacher logits that are masked outside the
    top-K (`scatter_top_k`). The Distiller uses it when a teacher source
    provides a top-K signal (cached or online with `top_k`), so that losses
    with a sparse form (`SoftTargetKL`, `RankingDistillation`) never build
    the dense [B, num_items] teacher matrix. This default builds it.

    `y_pred` is the student's logits, or `StudentScores` (what the
    Distiller passes), which sparse forms use to score the K ids without a
    dense gradient.
    """
    logits = as_student_scores(y_pred).logits
    num_items = logits.shape[-1] or tf.shape(logits)[-1]
    return self.call(scatter_top_k(top_ids, top_scores, num_items), logits)


_NORMALIZE_OVER = ("catalog", "teacher_items")


@register
class SoftTargetKL(DistillationLoss):
  """Hinton et al.: T^2 * KL(softmax(teacher/T) || softmax(student/T)).

  The T^2 factor keeps gradient magnitudes comparable across temperatures.

  `normalize_over` says over which columns the student's softmax runs:
  "catalog" (default, the textbook loss) or "teacher_items", the columns the
  teacher scores. They differ only for a top-K teacher signal (cached, or
  `OnlineTeacher(top_k=)`): "teacher_items" then compares the two rankings
  of the teacher's K items and leaves pushing the rest of the catalog down
  to the hard-label loss. It never touches the [batch, catalog] logits
  beyond scoring K items, so its training step costs little more than the
  student's own step (`benchmarks/speed.py`). "catalog" needs the student's
  log-normaliser over the catalog at temperature T: a second full-catalog
  pass and its gradient, except at T=1, where the Distiller hands over the
  one its hard-label softmax cross-entropy has computed already. The
  cheaper form also teaches less: a teacher's top-50 scores are close
  together, and what the student learns from them is mostly which K items
  they are, which only "catalog" conveys. Prefer "catalog"; at T=1 when
  the step time matters (`benchmarks/cached_teacher.py` measures both
  forms' quality and step time).

  Args:
    temperature: T, > 0.
    normalize_over: "catalog" or "teacher_items" (see above).

  Example:
    >>> teacher = tf.constant([[0.0, 0.0, 2.0, 1.0, 0.0]])
    >>> student = tf.constant([[0.0, 0.0, 1.0, 2.0, 0.5]])
    >>> round(float(SoftTargetKL(temperature=2.0)(teacher, student)), 4)
    0.3059
  """
  uses_distillation_temperature = True

  def __init__(self, temperature: float = 2.0, normalize_over: str = "catalog",
               name: str = "soft_target_kl", **kwargs):
    super().__init__(name=name, **kwargs)
    self.temperature = check_temperature(temperature)
    if normalize_over not in _NORMALIZE_OVER:
      raise ConfigError(f"normalize_over must be one of {_NORMALIZE_OVER}, "
                        f"got {normalize_over!r}.")
    self.normalize_over = normalize_over

  def _kl(self, log_p: tf.Tensor, log_q: tf.Tensor) -> tf.Tensor:
    kl = tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)
    return self.temperature**2 * kl

  def call(self, y_true, y_pred):
    t = tf.cast(y_true, tf.float32) / self.temperature
    s = tf.cast(y_pred, tf.float32) / self.temperature
    if self.normalize_over == "teacher_items":
      s = tf.where(teacher_mask(y_true), s, MASKED_LOGIT)
    return self._kl(tf.nn.log_softmax(t, axis=-1),
                    tf.nn.log_softmax(s, axis=-1))

  def call_top_k(self, top_ids, top_scores, y_pred):
    # Teacher probability is zero outside the top-K, so the KL sums over the
    # K columns; over the catalog, the student's normaliser still runs over
    # every column (at T=1 the Distiller hands over the hard loss's).
    scores = as_student_scores(y_pred)
    t = tf.cast(top_scores, tf.float32) / self.temperature
    picked = scores.at(top_ids) / self.temperature
    if self.normalize_over == "teacher_items":
      picked = tf.where(teacher_mask(top_scores), picked, MASKED_LOGIT)
      log_q = tf.nn.log_softmax(picked, axis=-1)
    else:
      log_q = picked - scores.log_normalizer(self.temperature)
    return self._kl(tf.nn.log_softmax(t, axis=-1), log_q)

  def get_config(self):
    return dict(super().get_config(), temperature=self.temperature,
                normalize_over=self.normalize_over)


@register
class SoftTargetMSE(DistillationLoss):
  """Logit matching: mean squared error of row-centred logits / T.

  loss = mean_j ((t_j - mean(t)) / T - (s_j - mean(s)) / T)^2 over the
  columns j the teacher scores. Softmax is invariant to adding a constant
  to a row, so logits are centred before they are compared; this is the
  high-temperature limit of the soft-target loss (Hinton et al., 2015).

  Args:
    temperature: T, > 0.

  Example:
    >>> teacher = tf.constant([[0.0, 0.0, 2.0, 1.0, 0.0]])
    >>> student = tf.constant([[0.0, 0.0, 1.0, 2.0, 0.5]])
    >>> round(float(SoftTargetMSE()(teacher, student)), 4)
    0.44
  """
  uses_distillation_temperature = True

  def __init__(self, temperature: float = 1.0, name: str = "soft_target_mse",
               **kwargs):
    super().__init__(name=name, **kwargs)
    self.temperature = check_temperature(temperature)

  def call(self, y_true, y_pred):
    valid = tf.cast(teacher_mask(y_true), tf.float32)
    count = tf.maximum(tf.reduce_sum(valid, -1, keepdims=True), 1.0)

    def centred(x):
      x = tf.cast(x, tf.float32) * valid / self.temperature
      return (x - tf.reduce_sum(x, -1, keepdims=True) / count) * valid

    squared = tf.square(centred(y_true) - centred(y_pred))
    return tf.reduce_sum(squared, -1) / tf.squeeze(count, -1)

  def get_config(self):
    return dict(super().get_config(), temperature=self.temperature)


@register
class ListwiseDistillation(DistillationLoss):
  """Cross-entropy of the student's softmax against the teacher's softmax.

  loss = -sum_j softmax(t / T)_j log softmax(s / T)_j, over the full
  catalog, or over `num_candidates` columns sampled uniformly (the same
  columns for the whole batch), which approximates the full list when the
  catalog is large.

  Args:
    temperature: T, > 0.
    num_candidates: Columns sampled per batch; 0: the whole catalog.
    num_reserved: Leading columns (padding, OOV) never sampled.
    seed: Seed of the candidate sampler.

  Example:
    >>> teacher = tf.constant([[0.0, 0.0, 2.0, 1.0, 0.0]])
    >>> student = tf.constant([[0.0, 0.0, 1.0, 2.0, 0.5]])
    >>> round(float(ListwiseDistillation()(teacher, student)), 4)
    1.6048
  """
  uses_distillation_temperature = True

  def __init__(self, temperature: float = 1.0, num_candidates: int = 0,
               num_reserved: int = NUM_RESERVED, seed: int = 0,
               name: str = "listwise_distillation", **kwargs):
    super().__init__(name=name, **kwargs)
    self.temperature = check_temperature(temperature)
    if num_candidates < 0:
      raise ConfigError(f"num_candidates must be >= 0, got {num_candidates}.")
    self.num_candidates = num_candidates
    self.num_reserved = num_reserved
    self.seed = seed

  def build(self, teacher_shape, student_shape) -> None:
    if self.num_candidates:
      self.random_generators(create=True)  # eagerly, before any trace

  def _columns(self, num_items):
    """Uniform sample (without replacement) of non-reserved columns."""
    scores = self.random_uniform([num_items - self.num_reserved])
    _, picked = tf.math.top_k(
        scores, k=tf.minimum(self.num_candidates,
                             num_items - self.num_reserved))
    return picked + self.num_reserved

  def call(self, y_true, y_pred):
    t = tf.cast(y_true, tf.float32) / self.temperature
    s = tf.cast(y_pred, tf.float32) / self.temperature
    if self.num_candidates:
      columns = self._columns(tf.shape(t)[-1])
      t, s = tf.gather(t, columns, axis=-1), tf.gather(s, columns, axis=-1)
    return -tf.reduce_sum(tf.nn.softmax(t, -1) * tf.nn.log_softmax(s, -1), -1)

  def get_config(self):
    return dict(super().get_config(), temperature=self.temperature,
                num_candidates=self.num_candidates,
                num_reserved=self.num_reserved, seed=self.seed)

"""Distillation from the teacher's top-K ranking.

* `RankingDistillation`: Tang & Wang, "Ranking Distillation", KDD 2018. The
  teacher's top-K items are extra positives for the student, weighted by
  position (and optionally by how badly the student ranks them).
* `RelaxedRankingDistillation`: Kang et al., "DE-RRD", CIKM 2020. A
  Plackett-Luce likelihood that the student keeps the teacher's top-K order
  and ranks it above sampled uninteresting items; the order among the
  uninteresting items is not constrained ("relaxed").
"""

import tensorflow as tf

from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.distill.soft_targets import DistillationLoss
from tfdistill.distill.student_scores import as_student_scores
from tfdistill.errors import ConfigError
from tfdistill.models.registry import register


def _check_top_k(top_k: int) -> int:
  if top_k < 1:
    raise ConfigError(f"top_k must be >= 1, got {top_k}.")
  return int(top_k)


def _valid_columns(logits: tf.Tensor, num_reserved: int) -> tf.Tensor:
  """False for the reserved columns (padding, OOV)."""
  columns = tf.range(tf.shape(logits)[-1])
  return tf.broadcast_to(columns >= num_reserved, tf.shape(logits))


@register
class RankingDistillation(DistillationLoss):
  """Position-weighted logistic loss on the teacher's top-K items.

  loss = -sum_r w_r log sigmoid(s[pi_r]), with pi the teacher's top-K and
  w_r proportional to exp(-r / position_decay) (r = 1..K). With
  `dynamic_weight`, the hybrid scheme of Tang & Wang averages that with a
  weight that grows with the student's rank error,
  tanh(max(mu * (student_rank - r), 0)), both normalised to sum to one.

  The loss falls when every score of the student rises by the same amount,
  which changes no ranking and which the softmax losses beside it (the hard
  labels' cross-entropy, the soft-target KL) do not see: with those, it
  rewards a student for spending capacity on a common offset of its scores.
  With `centered`, s is measured from the mean of the student's scores over
  the catalog, so only the teacher's items' place against the rest of the
  catalog counts (the "ranking_centered" distillation loss of the pipeline).

  Args:
    top_k: K, the teacher's items taught.
    position_decay: How fast the weight falls with the teacher's rank.
    dynamic_weight: Also weigh by the student's rank error (hybrid).
    mu: Sharpness of the rank-error weight.
    num_reserved: Leading columns (padding, OOV) never taught.
    centered: Scores measured from the student's mean score over the
      catalog (its columns from `num_reserved` on).

  Example:
    >>> teacher = tf.constant([[0.0, 0.0, 2.0, 1.0, 0.0]])
    >>> student = tf.constant([[0.0, 0.0, 1.0, 2.0, 0.5]])
    >>> round(float(RankingDistillation(top_k=2)(teacher, student)), 4)
    0.2429
  """

  def __init__(self, top_k: int = 10, position_decay: float = 2.0,
               dynamic_weight: bool = False, mu: float = 0.1,
               num_reserved: int = NUM_RESERVED, centered: bool = False,
               name: str = "ranking_distillation", **kwargs):
    super().__init__(name=name, **kwargs)
    self.top_k = _check_top_k(top_k)
    if position_decay <= 0:
      raise ConfigError(f"position_decay must be > 0, got {position_decay}.")
    self.position_decay = float(position_decay)
    self.dynamic_weight = dynamic_weight
    self.mu = float(mu)
    self.num_reserved = num_reserved
    self.centered = bool(centered)

  def call(self, y_true, y_pred):
    teacher = tf.where(_valid_columns(y_true, self.num_reserved),
                       tf.cast(y_true, tf.float32), y_true.dtype.min)
    _, top = tf.math.top_k(teacher, k=self.top_k)
    return self._loss(top, as_student_scores(y_pred))

  def call_top_k(self, top_ids, top_scores, y_pred):
    if top_ids.shape[-1] is not None and top_ids.shape[-1] < self.top_k:
      return super().call_top_k(top_ids, top_scores, y_pred)
    # Teacher sources mask reserved ids before taking their top-K, so a
    # reserved id can only follow every real item; the best `top_k` of the
    # signal are the answer.
    _, order = tf.math.top_k(tf.cast(top_scores, tf.float32), k=self.top_k)
    top = tf.gather(tf.cast(top_ids, tf.int32), order, batch_dims=1)
    return self._loss(top, as_student_scores(y_pred))

  def _loss(self, top, scores):
    """The loss given the teacher's top-K columns [B, K] in order."""
    picked = scores.at(top)  # [B, K]
    if self.centered:
      picked -= scores.mean(self.num_reserved)
    positions = tf.range(1, self.top_k + 1, dtype=tf.float32)
    weights = tf.nn.softmax(-positions / self.position_decay)[tf.newaxis]
    if self.dynamic_weight:
      # Ranks compare columns of the same dense logits (a score computed
      # from the factors may differ from its column in the last bit).
      student = scores.logits
      own = tf.gather(student, top, batch_dims=1)
      valid = _valid_columns(student, self.num_reserved)
      # 1-based rank of each teacher item in the student's list; one
      # position at a time keeps memory at [B, N] for large catalogs.
      ranks = 1.0 + tf.stack([
          tf.reduce_sum(tf.cast(tf.logical_and(
              valid, student > own[:, k:k + 1]), tf.float32), -1)
          for k in range(self.top_k)], axis=-1)
      dynamic = tf.tanh(tf.nn.relu(self.mu * (ranks - positions)))
      dynamic = dynamic / tf.maximum(
          tf.reduce_sum(dynamic, -1, keepdims=True), 1e-12)
      weights = tf.stop_gradient((weights + dynamic) / 2.0)
    return -tf.reduce_sum(weights * tf.math.log_sigmoid(picked), axis=-1)

  def get_config(self):
    return dict(super().get_config(), top_k=self.top_k,
                position_decay=self.position_decay,
                dynamic_weight=self.dynamic_weight, mu=self.mu,
                num_reserved=self.num_reserved, centered=self.centered)


def _reverse_logcumsumexp(x: tf.Tensor) -> tf.Tensor:
  """out[..., r] = log sum_{j >= r} exp(x[..., j])."""
  return tf.reverse(tf.math.cumulative_logsumexp(tf.reverse(x, [-1]), axis=-1),
                    [-1])


@register
class RelaxedRankingDistillation(DistillationLoss):
  """DE-RRD's relaxed ranking loss (a listwise Plackett-Luce likelihood).

  loss = -sum_{r=1..K} log( exp(s[pi_r]) /
                            (sum_{j>=r} exp(s[pi_j]) + sum_{u in U} exp(s[u])) )

  where pi is the teacher's top-K in order and U the uninteresting items:
  `num_uninteresting` items sampled uniformly (shared by the batch) from
  outside each row's top-K, or all of them when `num_uninteresting` is 0.

  Args:
    top_k: K, the length of the teacher's ranking taught.
    num_uninteresting: Items sampled from outside the top-K; 0: all.
    num_reserved: Leading columns (padding, OOV) never sampled.
    seed: Seed of the sampler.

  Example:
    >>> teacher = tf.constant([[0.0, 0.0, 2.0, 1.0, 0.0]])
    >>> student = tf.constant([[0.0, 0.0, 1.0, 2.0, 0.5]])
    >>> loss = RelaxedRankingDistillation(top_k=2, num_uninteresting=0)
    >>> round(float(loss(teacher, student)), 4)
    1.6658
  """

  def __init__(self, top_k: int = 10, num_uninteresting: int = 100,
               num_reserved: int = NUM_RESERVED, seed: int = 0,
               name: str = "relaxed_ranking_distillation", **kwargs):
    super().__init__(name=name, **kwargs)
    self.top_k = _check_top_k(top_k)
    if num_uninteresting < 0:
      raise ConfigError("num_uninteresting must be >= 0, got "
                        f"{num_uninteresting}.")
    self.num_uninteresting = num_uninteresting
    self.num_reserved = num_reserved
    self.seed = seed

  def build(self, teacher_shape, student_shape) -> None:
    if self.num_uninteresting:
      self.random_generators(create=True)  # eagerly, before any trace

  def call(self, y_true, y_pred):
    valid = _valid_columns(y_true, self.num_reserved)
    teacher = tf.where(valid, tf.cast(y_true, tf.float32), y_true.dtype.min)
    student = tf.cast(y_pred, tf.float32)
    _, top = tf.math.top_k(teacher, k=self.top_k)
    ordered = tf.gather(student, top, batch_dims=1)  # [B, K]
    rows = tf.repeat(tf.range(tf.shape(top)[0]), self.top_k)
    in_top = tf.scatter_nd(
        tf.stack([rows, tf.reshape(top, [-1])], axis=1),
        tf.ones_like(rows), tf.shape(student)) > 0
    candidates = tf.logical_and(valid, tf.logical_not(in_top))
    uninteresting = tf.where(candidates, student, student.dtype.min)
    if self.num_uninteresting:
      draw = self.random_uniform([tf.shape(student)[-1]])
      _, columns = tf.math.top_k(draw, k=tf.minimum(
          self.num_uninteresting, tf.shape(student)[-1]))
      uninteresting = tf.gather(uninteresting, columns, axis=-1)
    rest = tf.reduce_logsumexp(uninteresting, axis=-1, keepdims=True)
    denominators = tf.math.reduce_logsumexp(
        tf.stack([_reverse_logcumsumexp(ordered),
                  tf.broadcast_to(rest, tf.shape(ordered))], -1), -1)
    return tf.reduce_sum(denominators - ordered, axis=-1)

  def get_config(self):
    return dict(super().get_config(), top_k=self.top_k,
                num_uninteresting=self.num_uninteresting,
                num_reserved=self.num_reserved, seed=self.seed)


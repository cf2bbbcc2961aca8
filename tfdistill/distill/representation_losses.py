"""Distillation of representations and of ranking-model scores.

* `ContrastiveAlignment`: InfoNCE between the student's query embedding
  (through a learned projection) and the teacher's, with in-batch negatives.
* `HintDistillation`: FitNets-style "encoding stage" matching of hidden
  representations through a learned projection.
* `PointwiseScoreDistillation`: the student's predicted rating/score regressed
  on the teacher's, for ranking models.

The projections belong to the loss; the Distiller builds them once the signal
sizes are known and trains them with the student.
"""

import tensorflow as tf
import tf_keras

from tfdistill.distill.soft_targets import DistillationLoss
from tfdistill.errors import ConfigError
from tfdistill.models.registry import register
from tfdistill.models.signals import HIDDEN
from tfdistill.models.signals import QUERY_EMBEDDING
from tfdistill.models.signals import RATING


class _ProjectedLoss(DistillationLoss):
  """A loss that maps student vectors into the teacher's space first."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.projection = None

  def build(self, teacher_shape, student_shape) -> None:
    del student_shape
    if self.projection is None:
      self.projection = tf_keras.layers.Dense(
          int(teacher_shape[-1]), use_bias=False,
          name=f"{self.name}_projection")

  @property
  def trainable_layers(self) -> list:
    return [self.projection] if self.projection is not None else []

  def project(self, student, teacher):
    if self.projection is None:
      self.build(teacher.shape, student.shape)
    return self.projection(tf.cast(student, tf.float32))


@register
class ContrastiveAlignment(_ProjectedLoss):
  """InfoNCE: each projected student query must pick its own teacher query.

  loss_i = -log softmax_j(cos(P s_i, t_j) / temperature)[i].

  Args:
    temperature: InfoNCE temperature (not the soft-target temperature).

  Example:
    >>> loss = ContrastiveAlignment(temperature=1.0)  # projection set by hand
    >>> teacher = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    >>> student = tf.constant([[2.0, 0.0], [0.0, 3.0]])
    >>> loss.build(teacher.shape, student.shape)
    >>> loss.projection.build(student.shape)
    >>> loss.projection.set_weights([tf.eye(2).numpy()])
    >>> round(float(loss(teacher, student)), 4)  # log(1 + e^-1)
    0.3133
  """
  signal = QUERY_EMBEDDING

  def __init__(self, temperature: float = 0.1,
               name: str = "contrastive_alignment", **kwargs):
    super().__init__(name=name, **kwargs)
    if not temperature > 0:
      raise ConfigError(f"temperature must be > 0, got {temperature}.")
    self.temperature = float(temperature)

  def call(self, y_true, y_pred):
    teacher = tf.math.l2_normalize(tf.cast(y_true, tf.float32), axis=-1)
    student = tf.math.l2_normalize(self.project(y_pred, y_true), axis=-1)
    logits = tf.matmul(student, teacher, transpose_b=True) / self.temperature
    labels = tf.range(tf.shape(logits)[0])
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)

  def get_config(self):
    return dict(super().get_config(), temperature=self.temperature)


@register
class HintDistillation(_ProjectedLoss):
  """Mean squared error between projected student and teacher hidden layers.

  loss = mean_j ((P s)_j - t_j)^2, P a linear projection from the student's
  width to the teacher's, learned with the student (built by the Distiller
  from the two signals' shapes).

  Example:
    >>> loss = HintDistillation()  # projection set by hand below
    >>> teacher = tf.constant([[1.0, 2.0, 3.0]])
    >>> student = tf.constant([[1.0, 2.0]])
    >>> loss.build(teacher.shape, student.shape)
    >>> loss.projection.build(student.shape)
    >>> loss.projection.set_weights([tf.eye(2, 3).numpy()])  # P s = [1, 2, 0]
    >>> round(float(loss(teacher, student)), 4)  # (0 + 0 + 9) / 3
    3.0
  """
  signal = HIDDEN

  def __init__(self, name: str = "hint_distillation", **kwargs):
    super().__init__(name=name, **kwargs)

  def call(self, y_true, y_pred):
    teacher = tf.cast(y_true, tf.float32)
    return tf.reduce_mean(tf.square(self.project(y_pred, y_true) - teacher),
                          axis=-1)


@register
class PointwiseScoreDistillation(DistillationLoss):
  """Regress the student's score on the teacher's (ranking models).

  loss = (t - s)^2 for "mse"; for "bce", the binary cross-entropy of
  sigmoid(s) against sigmoid(t).

  Args:
    kind: "mse" on raw scores (ratings), or "bce" on sigmoid probabilities
      (click-through style scores given as logits).

  Example:
    >>> teacher = tf.constant([[4.0], [2.0]])
    >>> student = tf.constant([[3.5], [2.5]])
    >>> round(float(PointwiseScoreDistillation()(teacher, student)), 4)
    0.25
  """
  signal = RATING

  def __init__(self, kind: str = "mse",
               name: str = "pointwise_score_distillation", **kwargs):
    super().__init__(name=name, **kwargs)
    if kind not in ("mse", "bce"):
      raise ConfigError(f"kind must be 'mse' or 'bce', got {kind!r}.")
    self.kind = kind

  def call(self, y_true, y_pred):
    teacher = tf.reshape(tf.cast(y_true, tf.float32), [tf.shape(y_true)[0], -1])
    student = tf.reshape(tf.cast(y_pred, tf.float32), [tf.shape(y_pred)[0], -1])
    if self.kind == "mse":
      return tf.reduce_mean(tf.square(student - teacher), axis=-1)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        tf.sigmoid(teacher), student), axis=-1)

  def get_config(self):
    return dict(super().get_config(), kind=self.kind)

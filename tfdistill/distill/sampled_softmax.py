"""The student's softmax over a large catalog, estimated from a few items.

A retrieval student's hard loss is the softmax cross-entropy of the label
over the catalog: `logsumexp(logits) - logits[label]`. For a catalog of a
million items the [batch, catalog] logits and their gradient dominate the
step. `SampledCatalogSoftmax` estimates the log-normaliser instead from

* the items the step knows to matter for each row: its label and, when
  distilling from a top-K teacher signal, the teacher's K items, scored
  exactly, and
* `num_negatives` items drawn uniformly from the catalog (shared by the
  batch), each standing for (N - reserved) / num_negatives items (the logQ
  correction of uniform sampling); a draw that is one of the row's exact
  items is left out.

The student is scored from its `CatalogScores` factors (`StudentScores.at`),
so neither the hard loss nor a top-K distillation loss ever forms the
[batch, catalog] matrix. The same estimate serves the soft-target KL at any
temperature. exp(log Z) is an unbiased estimate of the normaliser Z: each
uniform draw outside the exact items has expectation (sum of the others'
exp-scores) / (N - reserved).
"""

from typing import Optional

import tensorflow as tf
import tf_keras

from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.distill.student_scores import StudentScores
from tfdistill.distill.student_trainer import StudentTrainer
from tfdistill.distill.teachers import CATALOG_ITEMS
from tfdistill.distill.teachers import CATALOG_QUERIES
from tfdistill.distill.teachers import model_inputs
from tfdistill.distill.teachers import signal_model
from tfdistill.errors import ConfigError
from tfdistill.errors import ModelError
from tfdistill.models.registry import register
from tfdistill.models.signals import LOGITS


@register
class SampledCatalogSoftmax(tf_keras.losses.Loss):
  """Softmax cross-entropy of the label, its normaliser estimated by sampling.

  Given to `Distiller.compile(student_loss=...)` or `CatalogTrainer`, it
  scores only the label, the teacher's top-K items (if any) and
  `num_negatives` uniform items per step. Called on dense logits (as a plain
  Keras loss) it is the exact sparse softmax cross-entropy.

  log Z ~= logsumexp([s(label), s(top-K)..., s(u_1) + log w, ...,
  s(u_M) + log w]), w = (N - reserved) / M; loss = log Z - s(label).

  Args:
    num_negatives: M, uniform items per step (shared by the batch).
    seed: Seed of the draws; step i draws with (seed, i), so a resumed run
      draws what the uninterrupted one would have.

  Example:
    >>> loss = SampledCatalogSoftmax(num_negatives=1024)
    >>> distiller.compile(student_loss=loss, distillation_loss=SoftTargetKL())
  """

  def __init__(self, num_negatives: int = 1024, seed: int = 0,
               name: str = "sampled_catalog_softmax", **kwargs):
    super().__init__(name=name, **kwargs)
    if int(num_negatives) < 1:
      raise ConfigError(f"num_negatives must be >= 1, got {num_negatives}.")
    self.num_negatives = int(num_negatives)
    self.seed = int(seed)

  def call(self, y_true, y_pred):
    labels = tf.reshape(tf.cast(y_true, tf.int32), [-1])
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels, tf.cast(y_pred, tf.float32))

  def draw(self, num_items: int, step) -> tf.Tensor:
    """The step's M uniform item ids (never a reserved id)."""
    seed = tf.stack([tf.constant(self.seed, tf.int64),
                     tf.cast(step, tf.int64)])
    return tf.random.stateless_uniform(
        [self.num_negatives], seed, minval=NUM_RESERVED, maxval=num_items,
        dtype=tf.int32)

  def student_scores(self, scores: StudentScores, labels, step,
                     exact_ids: Optional[tf.Tensor] = None,
                     exact_valid: Optional[tf.Tensor] = None
                     ) -> StudentScores:
    """`scores` with the sampled log-normaliser.

    Args:
      scores: The student's scores with their `CatalogScores` factors.
      labels: [B] label ids (always scored exactly).
      step: The training step (seeds the draws).
      exact_ids: Optional [B, K] further ids to score exactly (a teacher's
        top-K).
      exact_valid: Optional [B, K] bool, False for padding entries of
        `exact_ids`.
    """
    if scores.catalog is None:
      raise ModelError("SampledCatalogSoftmax needs a student whose logits "
                       "come from a CatalogScores layer (queries @ item "
                       "table); this student's logits do not.")
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1, 1])
    num_items = tf.shape(scores.catalog)[0]
    if exact_ids is None:
      ids, valid = labels, tf.ones_like(labels, tf.bool)
    else:
      exact_ids = tf.cast(exact_ids, tf.int32)
      if exact_valid is None:
        exact_valid = tf.ones_like(exact_ids, tf.bool)
      # The label is counted once, in its own column.
      exact_valid = tf.logical_and(exact_valid,
                                   tf.not_equal(exact_ids, labels))
      ids = tf.concat([labels, exact_ids], 1)
      valid = tf.concat([tf.ones_like(labels, tf.bool), exact_valid], 1)
    negatives = self.draw(num_items, step)
    sampled = tf.matmul(scores.queries, tf.gather(scores.catalog, negatives),
                        transpose_b=True)  # [B, M]
    # A draw that a row scores exactly already is not counted again.
    repeated = tf.reduce_any(tf.logical_and(
        tf.equal(ids[:, :, tf.newaxis], negatives[tf.newaxis, tf.newaxis]),
        valid[:, :, tf.newaxis]), axis=1)
    weight = tf.math.log(tf.cast(num_items - NUM_RESERVED, tf.float32) /
                         float(self.num_negatives))
    exact = scores.at(ids)
    return scores.with_sampled_normalizer(
        tf.concat([exact, sampled], 1),
        tf.concat([valid, tf.logical_not(repeated)], 1),
        tf.concat([tf.zeros_like(exact), tf.fill(tf.shape(sampled), weight)],
                  1))

  def per_example(self, signals: dict, labels, step,
                  exact_ids: Optional[tf.Tensor] = None,
                  exact_valid: Optional[tf.Tensor] = None) -> tuple:
    """(per-example losses [B], the `StudentScores` with the sampled
    normaliser) from a student's signals (`signal_model(...,
    with_catalog=True)`); arguments after `signals` as `student_scores`.

    Raises:
      ModelError: if the student's logits do not come from `CatalogScores`.
    """
    if CATALOG_ITEMS not in signals:
      raise ModelError("SampledCatalogSoftmax needs a student whose logits "
                       "come from a CatalogScores layer (queries @ item "
                       "table); train this one with a dense softmax "
                       "cross-entropy instead.")
    scores = self.student_scores(
        StudentScores(signals[LOGITS], signals[CATALOG_QUERIES],
                      signals[CATALOG_ITEMS]),
        labels, step, exact_ids, exact_valid)
    return sampled_hard_loss(scores, labels), scores

  def get_config(self):
    return dict(super().get_config(), num_negatives=self.num_negatives,
                seed=self.seed)


def sampled_hard_loss(scores: StudentScores, labels) -> tf.Tensor:
  """Per-example log Z - s(label) of scores with a sampled normaliser."""
  labels = tf.reshape(tf.cast(labels, tf.int32), [-1, 1])
  return (scores.log_normalizer(1.0) - scores.at(labels))[:, 0]


@register
class CatalogTrainer(StudentTrainer):
  """Trains a retrieval student alone with `SampledCatalogSoftmax`.

  What `student.compile(loss=SparseCategoricalCrossentropy(from_logits=True))`
  trains, without the [batch, catalog] logits: the baseline twin of a
  student distilled with `SampledCatalogSoftmax`. Validation and metrics
  on full-catalog scores belong to `tfdistill.evaluation` (callbacks).

  Args:
    student: A functional student whose logits come from `CatalogScores`.
    loss: The sampled softmax.

  Example:
    >>> trainer = CatalogTrainer(student, SampledCatalogSoftmax(1024))
    >>> trainer.compile(tf_keras.optimizers.Adam(1e-3))
    >>> trainer.fit(train, epochs=5)  # trains `student` in place
  """

  def __init__(self, student: tf_keras.Model, loss: SampledCatalogSoftmax,
               **kwargs):
    kwargs.setdefault("name", "catalog_trainer")
    super().__init__(student, **kwargs)
    self.sampled_loss = loss
    self._signals = signal_model(student, with_catalog=True)
    if CATALOG_ITEMS not in self._signals.output:
      raise ModelError(f"{student.name}'s logits do not come from a "
                       "CatalogScores layer (queries @ item table); train it "
                       "with a dense softmax cross-entropy instead.")

  def _loss(self, data, training: bool):
    x, y, sample_weight = tf_keras.utils.unpack_x_y_sample_weight(data)
    signals = self._signals(model_inputs(self.student, x), training=training)
    values, _ = self.sampled_loss.per_example(signals, y,
                                              self.optimizer.iterations)
    if sample_weight is not None:
      values *= tf.cast(tf.reshape(sample_weight, [-1]), tf.float32)
    return tf.reduce_mean(values)

  def get_config(self):
    return {"name": self.name,
            "student": tf_keras.saving.serialize_keras_object(self.student),
            "loss": tf_keras.saving.serialize_keras_object(self.sampled_loss)}

  @classmethod
  def from_config(cls, config):
    return cls(tf_keras.saving.deserialize_keras_object(config["student"]),
               tf_keras.saving.deserialize_keras_object(config["loss"]),
               name=config["name"])


__all__ = ["CatalogTrainer", "SampledCatalogSoftmax", "sampled_hard_loss"]

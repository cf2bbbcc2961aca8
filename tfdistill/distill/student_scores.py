"""The student's catalog scores as the top-K forms of the losses read them.

A top-K teacher signal (cached, or `OnlineTeacher(top_k=)`) compares the
student at K columns of its [batch, catalog] logits. Read with
`tf.gather(logits, ids)`, those K columns send their gradient back as a dense
[batch, catalog] scatter, a pass over the whole logits matrix for K numbers
per row. The package's retrieval students score the catalog as
`queries @ catalog^T` (`CatalogScores`); given those two factors,
`StudentScores.at` scores the K ids from the queries and the K catalog rows
instead, so the gradient stays [batch, K, dim].

It also carries the student's log-normaliser over the catalog when the
hard-label loss has computed it already: the softmax cross-entropy of the
label is `logsumexp(logits) - logits[label]`, so at temperature 1 the
soft-target KL reuses it instead of a second pass over the catalog. With a
sampled normaliser (`SampledCatalogSoftmax`) the log-normaliser is estimated
from a few scored items at every temperature, and nothing reads the dense
logits.
"""

from typing import Optional

import tensorflow as tf


class StudentScores:
  """A student's logits [B, N], with sparse access when it can have it.

  Attributes:
    logits: The dense [B, N] scores.
    queries: [B, d] query vectors, or None.
    catalog: [N, d] item vectors with `logits == queries @ catalog^T`, or
      None.
  """

  def __init__(self, logits: tf.Tensor, queries: Optional[tf.Tensor] = None,
               catalog: Optional[tf.Tensor] = None,
               log_normalizer: Optional[tf.Tensor] = None,
               sampled: Optional[tuple] = None):
    """Args: as the attributes; `log_normalizer` is logsumexp(logits) [B, 1]
    when already computed (temperature 1); `sampled` is (scores [B, C],
    valid [B, C] bool, log-weights [B, C]) of a sampled normaliser."""
    if (queries is None) != (catalog is None):
      raise ValueError("queries and catalog go together.")
    self.logits = tf.cast(logits, tf.float32)
    self.queries = None if queries is None else tf.cast(queries, tf.float32)
    self.catalog = None if catalog is None else tf.cast(catalog, tf.float32)
    self._log_normalizer = log_normalizer
    self._sampled = sampled

  def at(self, ids: tf.Tensor) -> tf.Tensor:
    """Scores at item ids [B, K] -> [B, K] (equal to gathering the logits)."""
    ids = tf.cast(ids, tf.int32)
    if self.queries is None:
      return tf.gather(self.logits, ids, batch_dims=1)
    return tf.einsum("bd,bkd->bk", self.queries, tf.gather(self.catalog, ids))

  def mean(self, num_reserved: int = 0) -> tf.Tensor:
    """The mean score over the catalog's columns from `num_reserved` on,
    [B, 1] (from the factors, without the dense logits, when it has
    them)."""
    if self.queries is None:
      return tf.reduce_mean(self.logits[:, num_reserved:], axis=-1,
                            keepdims=True)
    return tf.matmul(self.queries, tf.reduce_mean(
        self.catalog[num_reserved:], axis=0, keepdims=True),
                     transpose_b=True)

  def log_normalizer(self, temperature: float = 1.0) -> tf.Tensor:
    """logsumexp(logits / temperature) over the catalog, [B, 1]."""
    if temperature == 1.0 and self._log_normalizer is not None:
      return self._log_normalizer
    if self._sampled is not None:
      scores, valid, log_weights = self._sampled
      terms = tf.where(valid, scores / temperature + log_weights,
                       tf.float32.min)
      return tf.reduce_logsumexp(terms, axis=-1, keepdims=True)
    return tf.reduce_logsumexp(self.logits / temperature, axis=-1,
                               keepdims=True)

  @property
  def is_sampled(self) -> bool:
    return self._sampled is not None

  def with_log_normalizer(self, log_normalizer: tf.Tensor) -> "StudentScores":
    """A copy that returns `log_normalizer` [B] (as [B, 1]) at temperature
    1."""
    return StudentScores(self.logits, self.queries, self.catalog,
                         tf.reshape(log_normalizer, [-1, 1]), self._sampled)

  def with_sampled_normalizer(self, scores: tf.Tensor, valid: tf.Tensor,
                              log_weights: tf.Tensor) -> "StudentScores":
    """A copy whose log-normaliser at any temperature is the logsumexp of
    `scores / T + log_weights` over the `valid` entries ([B, C] each)."""
    return StudentScores(self.logits, self.queries, self.catalog, None,
                         (scores, valid, log_weights))


def as_student_scores(y_pred) -> StudentScores:
  """`y_pred` as `StudentScores` (a logits tensor gets dense access)."""
  return y_pred if isinstance(y_pred, StudentScores) else StudentScores(y_pred)

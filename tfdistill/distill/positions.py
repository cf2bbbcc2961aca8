"""Distillation at every position of a user's sequence.

A batch of chunks ({"context": [B, L]}, targets [B, L]; see
`tfdistill.data.examples.chunk_examples`) holds a target at every position
with one (0 marks padding). A causal teacher scores all of them in one pass
(`OnlineTeacher.at_every_position`); the student reads, for each of them,
the window of its own context length that ends at that position, the input
a sliding-window example for the same target would give it (the chunk's
"preceding" items fill the start of the windows near its beginning).

A student whose encoder is a position-weighted mean reads every window of a
chunk in one pass instead (`tfdistill.distill.one_pass`).
"""

import tensorflow as tf

from tfdistill.data.examples import CONTEXT
from tfdistill.data.examples import PRECEDING


def is_chunk_batch(features, labels) -> bool:
  """Whether (features, labels) is a batch of chunks: labels [B, L] with
  L > 1, one per position of the [B, L] context."""
  if not isinstance(labels, tf.Tensor) or not isinstance(features, dict):
    return False
  context = features.get(CONTEXT)
  if context is None or labels.shape.rank != 2 or context.shape.rank != 2:
    return False
  length = labels.shape[1]
  return length is not None and length > 1 and length == context.shape[1]


def with_preceding(context: tf.Tensor, length: int,
                    preceding: tf.Tensor = None) -> tf.Tensor:
  """[B, L] chunks -> [B, length - 1 + L]: the `length` - 1 items before
  each chunk (the last of its `preceding` items [B, P], most recent last,
  else 0), then the chunk."""
  before = length - 1
  if preceding is None or before == 0:
    return tf.pad(context, [[0, 0], [before, 0]])
  preceding = tf.cast(preceding, context.dtype)
  have = preceding.shape[1]
  if have is None:
    raise ValueError("the preceding items need a static width.")
  preceding = (preceding[:, have - before:] if have >= before else
               tf.pad(preceding, [[0, 0], [before - have, 0]]))
  return tf.concat([preceding, context], axis=1)


def position_windows(context: tf.Tensor, length: int,
                     preceding: tf.Tensor = None) -> tf.Tensor:
  """[B, L] chunks -> [B, L, length]: at each position, the `length` items
  up to and including it; before the chunk's start, the last of its
  `preceding` items [B, P] (most recent last), else 0."""
  return tf.signal.frame(with_preceding(context, length, preceding), length,
                         1, axis=1)


def at_targets(values: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
  """The rows of [B, L, ...] `values` at positions with a target: [M, ...]."""
  return tf.boolean_mask(values, tf.not_equal(targets, 0))


def examples_at_every_position(features: dict, targets: tf.Tensor,
                               length: int) -> tuple:
  """A batch of chunks as one example per target: ({"context": the window
  of `length` items ending at the target's position [M, length]}, the
  targets [M]). Windows start in the chunk's "preceding" items when the
  batch has them."""
  windows = position_windows(tf.cast(features[CONTEXT], tf.int32), length,
                             features.get(PRECEDING))
  return {CONTEXT: at_targets(windows, targets)}, at_targets(targets, targets)


"""The teacher trained on every position of a sequence at once (SASRec's
formulation): causal, its loss by hand, and its inference path."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfdistill.data import examples
from tfdistill.errors import ConfigError
from tfdistill.models.factory import build_sequential_teacher
from tfdistill.models.factory import TeacherConfig

L = 6


def _teacher(prepared, objective="all_positions", negatives="catalog"):
  tf_keras.utils.set_random_seed(0)
  teacher = build_sequential_teacher(prepared, L, TeacherConfig(
      embedding_dim=8, num_blocks=2, num_heads=2, ffn_dim=16, dropout=0.0,
      objective=objective, negatives=negatives))
  teacher({"context": tf.zeros([1, L], tf.int32)})
  return teacher


def test_the_last_position_of_the_sequence_pass_is_the_inference_query(
    tiny_prepared):
  teacher = _teacher(tiny_prepared)
  contexts = examples.evaluation_set(tiny_prepared, "test", L).contexts[:7]
  features = {"context": tf.constant(contexts)}
  every = teacher.sequence_queries(features).numpy()
  last = teacher.query_signals(features)["query_embedding"].numpy()
  np.testing.assert_allclose(every[:, -1], last, rtol=1e-5, atol=1e-6)


def test_a_position_sees_only_the_items_up_to_it(tiny_prepared):
  teacher = _teacher(tiny_prepared)
  contexts = examples.evaluation_set(tiny_prepared, "test", L).contexts[:4]
  changed = contexts.copy()
  changed[:, 4:] = np.where(changed[:, 4:] > 0, 2, 0)  # other later items
  a = teacher.sequence_queries({"context": tf.constant(contexts)}).numpy()
  b = teacher.sequence_queries({"context": tf.constant(changed)}).numpy()
  np.testing.assert_allclose(a[:, :4], b[:, :4], rtol=1e-5, atol=1e-6)
  assert not np.allclose(a[:, 4:], b[:, 4:])


def test_the_all_positions_loss_by_hand(tiny_prepared):
  teacher = _teacher(tiny_prepared)
  contexts = np.array([[0, 0, 5, 6, 7, 8], [3, 4, 5, 6, 7, 9]], np.int32)
  targets = np.array([[0, 0, 6, 7, 8, 9], [4, 5, 6, 7, 9, 10]], np.int32)
  loss = teacher.compute_loss(({"context": tf.constant(contexts)},
                               tf.constant(targets)), training=False)
  queries = teacher.sequence_queries({"context": tf.constant(contexts)})
  catalog = teacher.catalog_embeddings().numpy()
  logits = np.einsum("bld,nd->bln", queries.numpy(), catalog)
  logits[..., :2] = -np.inf  # padding and OOV are never an answer
  log_softmax = logits - np.log(np.exp(
      logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - (
          logits.max(-1, keepdims=True))
  picked = np.take_along_axis(log_softmax, targets[..., None], -1)[..., 0]
  expected = -picked[targets > 0].mean()  # 10 targets; padding left out
  assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_sampled_negatives_and_the_wrong_objective(tiny_prepared):
  teacher = _teacher(tiny_prepared, negatives="mixed")
  contexts = np.array([[0, 0, 5, 6, 7, 8]], np.int32)
  targets = np.array([[0, 0, 6, 7, 8, 9]], np.int32)
  loss = teacher.compute_loss(({"context": tf.constant(contexts)},
                               tf.constant(targets)), training=False)
  assert np.isfinite(float(loss)) and float(loss) > 0
  last = _teacher(tiny_prepared, objective="last")
  with pytest.raises(ConfigError, match="all_positions"):
    last.compute_loss(({"context": tf.constant(contexts)},
                       tf.constant(targets)))
  with pytest.raises(ConfigError, match="teacher_objective"):
    TeacherConfig(objective="every")


def test_chunks_hold_every_training_target_once(tiny_prepared):
  features, targets = examples.sequence_chunks(tiny_prepared, L)
  windows = examples.sequence_arrays(tiny_prepared, "train", L)
  assert int((targets > 0).sum()) == len(windows)
  # The last input of each chunk row precedes its last target, as in the
  # sliding windows (same multiset of (previous item, target) pairs).
  pairs = sorted(zip(features["context"][:, -1], targets[:, -1]))
  window_pairs = set(zip(windows.contexts[:, -1], windows.targets))
  assert all(p in window_pairs for p in pairs)
  # With the items before each chunk, the window ending at every position
  # is the sliding window of the same target: the same multiset of
  # (context window, target).
  history = np.concatenate([features["preceding"], features["context"]], 1)
  rows, positions = np.nonzero(targets)
  from_chunks = sorted(
      (tuple(history[r, p:p + L]), targets[r, p])
      for r, p in zip(rows, positions))
  assert from_chunks == sorted(
      (tuple(c), t) for c, t in zip(windows.contexts, windows.targets))
  # A context of one item has no items before a chunk.
  features, targets = examples.sequence_chunks(tiny_prepared, 1)
  assert features["preceding"].shape == (len(targets), 0)

"""Distillation at every position of a user's sequence: one causal teacher
pass per chunk, one student window per target (a mean student all of them
in one pass)."""

import warnings

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfdistill.compress.pruning import prune_student
from tfdistill.compress.pruning import PruningConfig
from tfdistill.data import examples
from tfdistill.distill import Distiller
from tfdistill.distill import SoftTargetKL
from tfdistill.distill.distiller import compiled_trainer
from tfdistill.distill.distiller import reads_chunks
from tfdistill.distill.one_pass import OnePassMeanStudent
from tfdistill.distill.one_pass import OnePassGRUStudent
from tfdistill.distill.one_pass import OnePassSelfAttentionStudent
from tfdistill.distill.one_pass import OnePassStudent
from tfdistill.distill.one_pass import OnePassTrainer
from tfdistill.distill.positions import examples_at_every_position
from tfdistill.distill.positions import is_chunk_batch
from tfdistill.distill.positions import position_windows
from tfdistill.distill.teachers import signal_model
from tfdistill.errors import ConfigError
from tfdistill.errors import ModelError
from tfdistill.models.embeddings import EmbeddingConfig
from tfdistill.models.factory import build_sequential_teacher
from tfdistill.models.factory import TeacherConfig
from tfdistill.models.signals import LOGITS
from tfdistill.models.students import build_sequential_student
from tfdistill.models.students import StudentConfig

L = 6
CONTEXTS = np.array([[0, 0, 5, 6, 7, 8], [3, 4, 5, 6, 7, 9]], np.int32)
TARGETS = np.array([[0, 0, 6, 7, 8, 9], [4, 5, 6, 7, 9, 10]], np.int32)
# The items before each chunk (the first is a user's first chunk).
PRECEDING = np.array([[0, 0, 0, 0, 0], [0, 0, 11, 12, 2]], np.int32)


def _models(prepared, objective="all_positions", student_length=L):
  tf_keras.utils.set_random_seed(0)
  teacher = build_sequential_teacher(prepared, L, TeacherConfig(
      embedding_dim=8, num_blocks=1, num_heads=2, ffn_dim=16, dropout=0.0,
      objective=objective))
  teacher({"context": tf.zeros([1, L], tf.int32)})
  student = build_sequential_student(
      prepared.num_items, student_length,
      StudentConfig(embedding_dim=4, hidden_dim=8, dropout=0.0),
      prepared.items.fingerprint)
  return teacher, student


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_windows_end_at_each_position():
  windows = position_windows(tf.constant([[0, 3, 4, 5]]), 3).numpy()
  np.testing.assert_array_equal(windows[0], [[0, 0, 0], [0, 0, 3],
                                             [0, 3, 4], [3, 4, 5]])
  # With the items before the chunk, a window near its start reads them.
  windows = position_windows(tf.constant([[3, 4, 5]]), 3,
                             tf.constant([[9, 1, 2]])).numpy()
  np.testing.assert_array_equal(windows[0], [[1, 2, 3], [2, 3, 4],
                                             [3, 4, 5]])
  windows = position_windows(tf.constant([[3, 4, 5]]), 4,
                             tf.constant([[2]])).numpy()
  np.testing.assert_array_equal(windows[0], [[0, 0, 2, 3], [0, 2, 3, 4],
                                             [2, 3, 4, 5]])
  assert is_chunk_batch({"context": tf.constant(CONTEXTS)},
                        tf.constant(TARGETS))
  # One target per example, or a rating [B, 1], is not a chunk batch.
  assert not is_chunk_batch({"context": tf.constant(CONTEXTS)},
                            tf.constant(TARGETS[:, -1]))
  assert not is_chunk_batch({"context": tf.constant(CONTEXTS)},
                            tf.ones([2, 1]))


@pytest.mark.parametrize("student_length,preceding",
                         [(L, False), (3, False), (L, True), (3, True)])
def test_the_chunk_loss_is_the_kl_of_every_position_by_hand(
    tiny_prepared, student_length, preceding):
  teacher, student = _models(tiny_prepared, student_length=student_length)
  distiller = Distiller(student=student, teacher=teacher)
  temperature = 2.0
  distiller.compile(optimizer="adam", alpha=0.0,
                    distillation_loss=SoftTargetKL(temperature=temperature))
  features = {"context": tf.constant(CONTEXTS)}
  if preceding:
    features["preceding"] = tf.constant(PRECEDING)
  logs = distiller.test_step((features, tf.constant(TARGETS)))
  # By hand: the teacher's query at every position with a target (from the
  # chunk alone), against the student on the window of its own length
  # ending there, which starts in the preceding items when there are any.
  queries = teacher.sequence_queries(
      {"context": tf.constant(CONTEXTS)}).numpy()
  catalog = teacher.catalog_embeddings().numpy()
  kls = []
  for b, p in zip(*np.nonzero(TARGETS)):
    window = np.r_[np.zeros(student_length, np.int32),
                   PRECEDING[b] if preceding else [],
                   CONTEXTS[b, :p + 1]].astype(np.int32)[-student_length:]
    t = queries[b, p] @ catalog.T
    t[:2] = -1e9  # padding and OOV are never an answer
    s = student({"context": window[None]}).numpy()[0]
    log_p = _log_softmax(t / temperature)
    log_q = _log_softmax(s / temperature)
    kls.append(temperature**2 * np.sum(np.exp(log_p) * (log_p - log_q)))
  assert len(kls) == np.count_nonzero(TARGETS)
  np.testing.assert_allclose(float(logs["distillation_loss"]),
                             np.mean(kls), rtol=1e-4)


def test_fit_on_chunks_trains_the_student_and_leaves_the_teacher(
    tiny_prepared):
  teacher, student = _models(tiny_prepared)
  before = {v.name: v.numpy().copy() for v in teacher.variables}
  student_before = [w.copy() for w in student.get_weights()]
  distiller = Distiller(student=student, teacher=teacher)
  distiller.compile(optimizer=tf_keras.optimizers.Adam(1e-2), alpha=0.5)
  data = examples.chunk_examples(tiny_prepared, L, batch_size=8)
  history = distiller.fit(data, epochs=2, verbose=0)
  assert np.isfinite(history.history["loss"]).all()
  for v in teacher.variables:  # frozen: its order in get_weights changes
    np.testing.assert_array_equal(before[v.name], v.numpy())
  assert any(not np.array_equal(a, b)
             for a, b in zip(student_before, student.get_weights()))


def test_a_teacher_that_is_not_causal_is_refused(tiny_prepared):
  teacher, student = _models(tiny_prepared, objective="last")
  distiller = Distiller(student=student, teacher=teacher)
  distiller.compile(optimizer="adam")
  with pytest.raises(ConfigError, match="all_positions"):
    distiller.test_step(({"context": tf.constant(CONTEXTS)},
                         tf.constant(TARGETS)))


def _mean_student(prepared, length, embedding=None):
  tf_keras.utils.set_random_seed(1)
  config = StudentConfig(embedding_dim=4, hidden_dim=8, dropout=0.0)
  if embedding is not None:
    config = StudentConfig(embedding_dim=4, hidden_dim=8, dropout=0.0,
                           embedding=embedding)
  student = build_sequential_student(prepared.num_items, length, config,
                                     prepared.items.fingerprint)
  # Position weights that are not uniform, so that a slot read off by one
  # changes the pooled vector.
  pool = student.get_layer("pool")
  pool.position_logits.assign(tf.linspace(-1.5, 2.0, length))
  return student


@pytest.mark.parametrize("student_length,preceding,embedding", [
    (L, False, None), (3, True, None), (L, True, None),
    (L, True, EmbeddingConfig(kind="mixed", head_items=20, rank=2))])
def test_one_pass_over_a_chunk_equals_the_student_on_each_window(
    tiny_prepared, student_length, preceding, embedding):
  student = _mean_student(tiny_prepared, student_length, embedding)
  one_pass = OnePassMeanStudent.of(student)
  assert one_pass is not None
  features = {"context": tf.constant(CONTEXTS)}
  if preceding:
    features["preceding"] = tf.constant(PRECEDING)
  got = one_pass(features, tf.constant(TARGETS))
  windows, _ = examples_at_every_position(features, tf.constant(TARGETS),
                                          student_length)
  want = signal_model(student, with_catalog=True)(windows)
  assert got[LOGITS].shape == (np.count_nonzero(TARGETS),
                               tiny_prepared.num_items)
  for name in want:
    np.testing.assert_allclose(got[name].numpy(), want[name].numpy(),
                               rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_distilled_mean_student_takes_the_windows_step_in_one_pass(
    tiny_prepared):
  """One training step from the same weights: the one-pass Distiller and
  the one reading a window per target move the student alike."""
  teacher, _ = _models(tiny_prepared)
  moved = []
  for one_pass in (True, False):
    student = _mean_student(tiny_prepared, L)
    distiller = Distiller(student=student, teacher=teacher,
                          one_pass=one_pass)
    if one_pass:
      assert distiller._one_pass is not None  # pylint: disable=protected-access
    distiller.compile(optimizer=tf_keras.optimizers.SGD(1.0), alpha=0.5)
    before = [w.copy() for w in student.get_weights()]
    logs = distiller.train_step(({"context": tf.constant(CONTEXTS),
                                  "preceding": tf.constant(PRECEDING)},
                                 tf.constant(TARGETS)))
    moved.append(([a - b for a, b in zip(student.get_weights(), before)],
                  float(logs["loss"])))
  (steps, loss), (window_steps, window_loss) = moved
  assert loss == pytest.approx(window_loss, rel=1e-5)
  assert any(np.abs(s).max() > 0 for s in steps)
  for step, window_step in zip(steps, window_steps):
    np.testing.assert_allclose(step, window_step, rtol=1e-4, atol=1e-6)


def test_only_unwrapped_mean_self_attention_and_gru_students_read_one_pass(
    tiny_prepared):
  one_pass = {"self_attention": OnePassSelfAttentionStudent,
              "gru": OnePassGRUStudent}
  for encoder in ("gru", "attention", "self_attention", "cnn"):
    student = build_sequential_student(tiny_prepared.num_items, L,
                                       StudentConfig(encoder=encoder,
                                                     embedding_dim=4,
                                                     hidden_dim=8))
    assert OnePassMeanStudent.of(student) is None, encoder
    kind = type(OnePassStudent.of(student))
    assert kind is one_pass.get(encoder, type(None)), encoder
  student = _mean_student(tiny_prepared, L)
  assert type(OnePassStudent.of(student)) is OnePassMeanStudent
  pruned = prune_student(student, PruningConfig(target_sparsity=0.5))
  assert OnePassMeanStudent.of(pruned) is None
  assert OnePassStudent.of(pruned) is None
  for encoder in ("self_attention", "gru"):
    pruned = prune_student(_causal_student(tiny_prepared, L, encoder),
                           PruningConfig(target_sparsity=0.5))
    assert OnePassStudent.of(pruned) is None, encoder


def _causal_student(prepared, length, encoder="self_attention"):
  tf_keras.utils.set_random_seed(1)
  student = build_sequential_student(
      prepared.num_items, length,
      StudentConfig(encoder=encoder, embedding_dim=4, hidden_dim=8,
                    dropout=0.0), prepared.items.fingerprint)
  if encoder == "self_attention":
    # Position vectors that are not zero, so that a position read off by
    # one changes the output.
    positions = student.get_layer("positions").positions
    positions.assign(tf.random.stateless_normal(positions.shape, [3, 4]))
  return student


@pytest.mark.parametrize("encoder", ["self_attention", "gru"])
def test_a_causal_student_reads_a_chunk_in_one_pass(tiny_prepared, encoder):
  """SASRec's and GRU4Rec's formulation: at a chunk's last position the
  student's signals on its window (the chunk); at every position, the same
  values whatever items follow it (no future item leaks)."""
  student = _causal_student(tiny_prepared, L, encoder)
  one_pass = OnePassStudent.of(student)
  targets = tf.constant(TARGETS)
  got = one_pass({"context": tf.constant(CONTEXTS),
                  "preceding": tf.constant(PRECEDING)}, targets)
  assert got[LOGITS].shape == (np.count_nonzero(TARGETS),
                               tiny_prepared.num_items)
  # The last target of each chunk is the last of its rows.
  last = np.cumsum(np.count_nonzero(TARGETS, axis=1)) - 1
  want = signal_model(student, with_catalog=True)(
      {"context": tf.constant(CONTEXTS)})
  for name in (LOGITS, "hidden", "query_embedding"):
    np.testing.assert_allclose(tf.gather(got[name], last).numpy(),
                               want[name].numpy(), rtol=1e-5, atol=1e-5,
                               err_msg=name)
  # Other items after position 3: positions 0-3 are unchanged, the later
  # ones (which read them) are not.
  changed = CONTEXTS.copy()
  changed[:, 4:] = [[12, 13], [14, 15]]
  again = one_pass({"context": tf.constant(changed)}, targets)[LOGITS]
  rows = np.cumsum(TARGETS != 0).reshape(TARGETS.shape) - 1
  early = rows[:, :4][TARGETS[:, :4] != 0]
  np.testing.assert_allclose(tf.gather(again, early).numpy(),
                             tf.gather(got[LOGITS], early).numpy(),
                             rtol=1e-5, atol=1e-5)
  assert not np.allclose(tf.gather(again, rows[:, 4:].ravel()).numpy(),
                         tf.gather(got[LOGITS], rows[:, 4:].ravel()).numpy())


@pytest.mark.parametrize("encoder", ["self_attention", "gru"])
def test_a_causal_student_trains_on_chunks_in_one_pass(tiny_prepared,
                                                       encoder):
  """Alone and distilled, a step on a batch of chunks of its context length
  is the loss of the one-pass signals; chunks of another length are read
  one window per target."""
  teacher, _ = _models(tiny_prepared)
  data = ({"context": tf.constant(CONTEXTS),
           "preceding": tf.constant(PRECEDING)}, tf.constant(TARGETS))
  student = _causal_student(tiny_prepared, L, encoder)
  labels = tf.constant(TARGETS[TARGETS != 0])
  want = float(tf.reduce_mean(
      tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels, OnePassStudent.of(student)(*data)[LOGITS])))
  trainer = compiled_trainer(student, optimizer=tf_keras.optimizers.SGD(
      0.1), chunks=True, chunk_length=L)
  assert isinstance(trainer, OnePassTrainer)
  before = [w.copy() for w in student.get_weights()]
  logs = trainer.train_on_batch(*data, return_dict=True)
  assert logs["loss"] == pytest.approx(want, rel=1e-5)
  assert any(np.abs(a - b).max() > 0
             for a, b in zip(student.get_weights(), before))
  # A student of a shorter context: windows, alone and distilled.
  short = _causal_student(tiny_prepared, 3, encoder)
  assert compiled_trainer(short, chunks=True, chunk_length=L) is short
  distiller = Distiller(student=short, teacher=teacher)
  distiller.compile(optimizer=tf_keras.optimizers.SGD(0.1), alpha=1.0)
  windows = examples_at_every_position(*data, 3)
  want_short = float(tf.reduce_mean(
      tf.nn.sparse_softmax_cross_entropy_with_logits(
          windows[1], short(windows[0]))))
  assert float(distiller.test_step(data)["student_loss"]) == pytest.approx(
      want_short, rel=1e-5)
  # The distilled student of the chunks' length: the one-pass hard loss.
  distiller = Distiller(student=student, teacher=teacher)
  distiller.compile(optimizer=tf_keras.optimizers.SGD(0.1), alpha=1.0)
  want = float(tf.reduce_mean(
      tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels, OnePassStudent.of(student)(*data)[LOGITS])))
  assert float(distiller.test_step(data)["student_loss"]) == pytest.approx(
      want, rel=1e-5)


def test_the_student_alone_takes_the_windows_step_in_one_pass(tiny_prepared):
  """`OnePassTrainer` on chunks and the compiled student on one window per
  target: the same loss and the same step from the same weights."""
  data = ({"context": tf.constant(CONTEXTS),
           "preceding": tf.constant(PRECEDING)}, tf.constant(TARGETS))
  moved = []
  for one_pass in (True, False):
    student = _mean_student(tiny_prepared, L)
    trainer = compiled_trainer(student, optimizer=tf_keras.optimizers.SGD(
        1.0), chunks=one_pass)
    assert reads_chunks(trainer) == one_pass
    batch = data if one_pass else examples_at_every_position(*data, L)
    before = [w.copy() for w in student.get_weights()]
    logs = trainer.train_on_batch(*batch, return_dict=True)
    moved.append(([a - b for a, b in zip(student.get_weights(), before)],
                  logs["loss"]))
  (steps, loss), (window_steps, window_loss) = moved
  assert loss == pytest.approx(window_loss, rel=1e-5)
  assert any(np.abs(s).max() > 0 for s in steps)
  for step, window_step in zip(steps, window_steps):
    np.testing.assert_allclose(step, window_step, rtol=1e-4, atol=1e-6)
  # Called on a chunk batch's features, the trainer is the student on the
  # features it reads (no warning about the preceding items).
  trainer = OnePassTrainer(student)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    np.testing.assert_allclose(trainer(data[0]).numpy(), student(
        {"context": data[0]["context"]}).numpy())
  # Another encoder alone on chunks is the compiled student, fed windows.
  cnn = build_sequential_student(tiny_prepared.num_items, L, StudentConfig(
      encoder="cnn", embedding_dim=4, hidden_dim=8))
  assert compiled_trainer(cnn, chunks=True) is cnn
  with pytest.raises(ModelError, match="not a mean, self-attention or GRU"):
    OnePassTrainer(cnn)

"""Every distillation loss against values computed by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfdistill.distill import ContrastiveAlignment
from tfdistill.distill import HintDistillation
from tfdistill.distill import ListwiseDistillation
from tfdistill.distill import MASKED_LOGIT
from tfdistill.distill import PointwiseScoreDistillation
from tfdistill.distill import RankingDistillation
from tfdistill.distill import RelaxedRankingDistillation
from tfdistill.distill import SoftTargetKL
from tfdistill.distill import SoftTargetMSE
from tfdistill.distill.soft_targets import scatter_top_k
from tfdistill.distill.student_scores import StudentScores
from tfdistill.errors import ConfigError

M = MASKED_LOGIT


def _value(loss, teacher, student):
  return float(loss.call(tf.constant(teacher, tf.float32),
                         tf.constant(student, tf.float32)).numpy()[0])


def test_soft_target_kl_temperature_one():
  # p_t = softmax([1, 2]) = [.268941, .731059]; p_s = [.5, .5].
  assert _value(SoftTargetKL(1.0), [[1, 2]], [[0, 0]]) == pytest.approx(
      0.110943, abs=1e-5)


def test_soft_target_kl_scales_by_temperature_squared():
  # T=2: p_t = softmax([.5, 1]) against the uniform student, times T^2.
  p2 = math.exp(0.5) / (1 + math.exp(0.5))
  kl = (1 - p2) * math.log(2 * (1 - p2)) + p2 * math.log(2 * p2)
  assert kl == pytest.approx(0.030299, abs=1e-6)
  assert _value(SoftTargetKL(2.0), [[1, 2]], [[0, 0]]) == pytest.approx(
      4 * kl, abs=1e-6)


def test_soft_target_kl_masked_teacher_columns_carry_no_mass():
  # Teacher mass only on columns 1, 2; student uniform over 3 columns.
  expected = 0.268941 * math.log(0.268941 * 3) + 0.731059 * math.log(
      0.731059 * 3)
  assert _value(SoftTargetKL(1.0), [[M, 1, 2]], [[0, 0, 0]]) == pytest.approx(
      expected, abs=1e-5)


def test_soft_target_kl_over_teacher_items_ignores_other_columns():
  # The student's softmax runs over columns 1, 2 only: uniform there.
  expected = 0.268941 * math.log(0.268941 * 2) + 0.731059 * math.log(
      0.731059 * 2)
  loss = SoftTargetKL(1.0, normalize_over="teacher_items")
  assert _value(loss, [[M, 1, 2]], [[5, 0, 0]]) == pytest.approx(
      expected, abs=1e-5)
  # Over the catalog, column 0 takes most of the student's mass.
  q = 1 / (math.exp(5) + 2)
  catalog = 0.268941 * math.log(0.268941 / q) + 0.731059 * math.log(
      0.731059 / q)
  assert _value(SoftTargetKL(1.0), [[M, 1, 2]], [[5, 0, 0]]) == pytest.approx(
      catalog, abs=1e-4)
  # A teacher that scores every column: both forms are the textbook loss.
  assert _value(loss, [[1, 2, 3]], [[5, 0, 0]]) == pytest.approx(
      _value(SoftTargetKL(1.0), [[1, 2, 3]], [[5, 0, 0]]), abs=1e-6)


def test_soft_target_kl_is_zero_when_student_matches():
  assert _value(SoftTargetKL(3.0), [[1, 2, 3]], [[1, 2, 3]]) == pytest.approx(
      0.0, abs=1e-6)


def test_soft_target_mse_centres_and_ignores_masked_columns():
  # Centred teacher [-1, 1] vs centred student [0, 0].
  assert _value(SoftTargetMSE(1.0), [[1, 3]], [[0, 0]]) == pytest.approx(1.0)
  assert _value(SoftTargetMSE(1.0), [[M, 1, 3]], [[7, 0, 0]]) == pytest.approx(
      1.0)
  assert _value(SoftTargetMSE(2.0), [[1, 3]], [[0, 0]]) == pytest.approx(0.25)
  # A constant shift does not matter (softmax is shift invariant).
  assert _value(SoftTargetMSE(1.0), [[1, 3]], [[11, 13]]) == pytest.approx(0.0)


def test_listwise_full_and_sampled():
  assert _value(ListwiseDistillation(), [[1, 2]], [[0, 0]]) == pytest.approx(
      math.log(2), abs=1e-6)
  # Full list over 4 columns: the uniform student gives log 4.
  assert _value(ListwiseDistillation(num_reserved=2),
                [[M, M, 1, 2]], [[0, 0, 0, 0]]) == pytest.approx(math.log(4))
  # Sampling every non-reserved column: the list is columns 2, 3 only.
  assert _value(ListwiseDistillation(num_candidates=2, num_reserved=2),
                [[M, M, 1, 2]], [[0, 0, 0, 0]]) == pytest.approx(math.log(2))


def test_ranking_distillation_position_weights():
  # Teacher top-2: columns 2 (5.0) then 3 (3.0); w = softmax(-[1, 2]).
  loss = RankingDistillation(top_k=2, position_decay=1.0)
  value = _value(loss, [[M, M, 5, 3, 1]], [[0, 0, 0, math.log(3), 0]])
  expected = 0.731059 * -math.log(0.5) + 0.268941 * -math.log(0.75)
  assert value == pytest.approx(expected, abs=1e-5)


def test_ranking_distillation_dynamic_weights():
  # Student ranks the teacher's first item 2nd (one place too low): dynamic
  # weights [1, 0]; hybrid = average with [.731059, .268941].
  loss = RankingDistillation(top_k=2, position_decay=1.0, dynamic_weight=True,
                             mu=0.1)
  value = _value(loss, [[M, M, 5, 3, 1]], [[0, 0, 0, math.log(3), 0]])
  w = [(0.731059 + 1) / 2, 0.268941 / 2]
  expected = w[0] * -math.log(0.5) + w[1] * -math.log(0.75)
  assert value == pytest.approx(expected, abs=1e-5)


def test_centered_ranking_distillation_ignores_a_common_offset():
  # The teacher's top-2 as above; the student's scores measured from its
  # mean over columns 2-4, (0 + log 3 + 0) / 3.
  loss = RankingDistillation(top_k=2, position_decay=1.0, centered=True)
  student = [[0, 0, 0, math.log(3), 0]]
  mean = math.log(3) / 3
  expected = (0.731059 * -math.log(1 / (1 + math.exp(mean))) +
              0.268941 * -math.log(1 / (1 + math.exp(mean - math.log(3)))))
  assert _value(loss, [[M, M, 5, 3, 1]], student) == pytest.approx(
      expected, abs=1e-5)
  shifted = [[v + 4.0 for v in student[0]]]
  assert _value(loss, [[M, M, 5, 3, 1]], shifted) == pytest.approx(
      expected, abs=1e-5)
  # The uncentred loss is lowered by the same offset, no ranking changed.
  plain = RankingDistillation(top_k=2, position_decay=1.0)
  assert _value(plain, [[M, M, 5, 3, 1]], shifted) < _value(
      plain, [[M, M, 5, 3, 1]], student) / 10


def test_centered_ranking_reads_the_mean_from_the_factors():
  rng = np.random.default_rng(3)
  queries = tf.constant(rng.normal(size=(4, 3)), tf.float32)
  catalog = tf.constant(rng.normal(size=(9, 3)), tf.float32)
  logits = tf.matmul(queries, catalog, transpose_b=True)
  teacher = tf.constant(rng.normal(size=(4, 9)), tf.float32)
  loss = RankingDistillation(top_k=3, centered=True)
  np.testing.assert_allclose(
      loss.call(teacher, StudentScores(logits, queries, catalog)).numpy(),
      loss.call(teacher, logits).numpy(), rtol=1e-5)


def test_relaxed_ranking_with_all_uninteresting_items():
  loss = RelaxedRankingDistillation(top_k=2, num_uninteresting=0)
  # All scores 0: position 1 competes with 3 items, position 2 with 2.
  assert _value(loss, [[M, M, 3, 2, 1]], [[0, 0, 0, 0, 0]]) == pytest.approx(
      math.log(3) + math.log(2), abs=1e-5)
  s = [[0, 0, 2, 1, 0]]
  first = math.log(math.exp(2) + math.exp(1) + 1) - 2
  second = math.log(math.exp(1) + 1) - 1
  assert _value(loss, [[M, M, 3, 2, 1]], s) == pytest.approx(first + second,
                                                             abs=1e-5)


def test_relaxed_ranking_sampled_uninteresting_items_exclude_top_k():
  # Sampling every column: the top-K and reserved columns must not count as
  # uninteresting, so the value equals the exact one.
  exact = RelaxedRankingDistillation(top_k=2, num_uninteresting=0)
  sampled = RelaxedRankingDistillation(top_k=2, num_uninteresting=5)
  t, s = [[M, M, 3, 2, 1]], [[4, 4, 2, 1, 0]]
  assert _value(sampled, t, s) == pytest.approx(_value(exact, t, s), abs=1e-5)


def _identity_projection(loss, dim):
  loss.build([None, dim], [None, dim])
  loss.projection.build((None, dim))
  loss.projection.set_weights([np.eye(dim, dtype=np.float32)])
  return loss


def test_contrastive_alignment():
  loss = _identity_projection(ContrastiveAlignment(temperature=1.0), 2)
  eye = [[1.0, 0.0], [0.0, 1.0]]
  values = loss.call(tf.constant(eye), tf.constant(eye)).numpy()
  np.testing.assert_allclose(values, -math.log(math.e / (math.e + 1)),
                             rtol=1e-5)


def test_hint_distillation():
  loss = _identity_projection(HintDistillation(), 2)
  assert _value(loss, [[0.0, 0.0]], [[1.0, 2.0]]) == pytest.approx(2.5)


def test_hint_projection_is_trainable():
  loss = HintDistillation()
  loss.build([None, 3], [None, 2])
  loss.call(tf.zeros([1, 3]), tf.zeros([1, 2]))
  assert [v.shape for v in loss.trainable_layers[0].trainable_variables] == [
      (2, 3)]


def test_pointwise_score_distillation():
  assert _value(PointwiseScoreDistillation(), [[3.0]], [[1.0]]) == 4.0
  assert _value(PointwiseScoreDistillation("bce"), [[0.0]], [[0.0]]
               ) == pytest.approx(math.log(2))


@pytest.mark.parametrize("loss", [
    SoftTargetKL(3.0), SoftTargetKL(2.0, "teacher_items"), SoftTargetMSE(2.0),
    ListwiseDistillation(2.0, 3),
    RankingDistillation(3, 1.5, True, 0.2),
    RankingDistillation(3, centered=True), RelaxedRankingDistillation(3, 4),
    ContrastiveAlignment(0.2), HintDistillation(),
    PointwiseScoreDistillation("bce")])
def test_get_config_round_trip(loss):
  again = type(loss).from_config(loss.get_config())
  assert again.get_config() == loss.get_config()


def _top_k_signal(num_items=40, batch=6, k=8, seed=0):
  """Teacher top-K (ids sorted by score, no reserved ids) and student logits."""
  rng = np.random.default_rng(seed)
  scores = -np.sort(-rng.normal(size=(batch, k)) * 3, axis=1)
  ids = np.stack([rng.choice(np.arange(2, num_items), k, replace=False)
                  for _ in range(batch)])
  student = rng.normal(size=(batch, num_items)) * 2
  return (tf.constant(ids, tf.int32), tf.constant(scores, tf.float32),
          tf.constant(student, tf.float32))


_TOP_K_LOSSES = [
    SoftTargetKL(1.0), SoftTargetKL(3.0), SoftTargetKL(2.0, "teacher_items"),
    RankingDistillation(top_k=5), RankingDistillation(8, 1.5, True, 0.2),
    RankingDistillation(top_k=10),  # more than the signal holds: dense form
    RankingDistillation(top_k=5, centered=True),
    ListwiseDistillation(2.0), SoftTargetMSE(2.0),
    RelaxedRankingDistillation(3, num_uninteresting=0)]


@pytest.mark.parametrize("loss", _TOP_K_LOSSES)
def test_top_k_form_equals_dense_form(loss):
  ids, scores, student = _top_k_signal()
  dense = scatter_top_k(ids, scores, student.shape[-1])
  np.testing.assert_allclose(loss.call_top_k(ids, scores, student).numpy(),
                             loss.call(dense, student).numpy(), rtol=1e-5,
                             atol=1e-5)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(student)
    sparse_value = tf.reduce_sum(loss.call_top_k(ids, scores, student))
    dense_value = tf.reduce_sum(loss.call(dense, student))
  np.testing.assert_allclose(tape.gradient(sparse_value, student).numpy(),
                             tape.gradient(dense_value, student).numpy(),
                             atol=1e-5)


def _factors(num_items=40, batch=6, dim=4, seed=1):
  rng = np.random.default_rng(seed)
  return (tf.constant(rng.normal(size=(batch, dim)), tf.float32),
          tf.constant(rng.normal(size=(num_items, dim)), tf.float32))


@pytest.mark.parametrize("loss", _TOP_K_LOSSES)
@pytest.mark.parametrize("with_normalizer", [False, True])
def test_scores_from_catalog_factors_equal_the_dense_form(loss,
                                                          with_normalizer):
  # What the Distiller passes for a CatalogScores student: the K columns
  # scored from queries and catalog rows, and at T=1 the hard loss's
  # log-normaliser. Value and gradients (through the logits) as dense.
  ids, scores, _ = _top_k_signal()
  queries, catalog = _factors()
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([queries, catalog])
    logits = tf.matmul(queries, catalog, transpose_b=True)
    normalizer = (tf.reduce_logsumexp(logits, -1, keepdims=True)
                  if with_normalizer else None)
    student = StudentScores(logits, queries, catalog, normalizer)
    sparse_value = loss.call_top_k(ids, scores, student)
    dense_value = loss.call(scatter_top_k(ids, scores, 40), logits)
    sparse_sum, dense_sum = (tf.reduce_sum(sparse_value),
                             tf.reduce_sum(dense_value))
  np.testing.assert_allclose(sparse_value.numpy(), dense_value.numpy(),
                             rtol=1e-5, atol=1e-5)
  for variable in (queries, catalog):
    np.testing.assert_allclose(
        tf.convert_to_tensor(tape.gradient(sparse_sum, variable)).numpy(),
        tape.gradient(dense_sum, variable).numpy(), atol=1e-4)


def test_kl_with_a_given_normalizer_never_reads_the_dense_logits():
  # At T=1 with the factors and the hard loss's normaliser, the KL needs
  # nothing [B, N]: no gradient reaches the logits tensor itself.
  ids, scores, logits = _top_k_signal()
  queries, catalog = _factors()
  normalizer = tf.zeros([6, 1])
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([logits, queries, catalog])
    value = tf.reduce_sum(SoftTargetKL(1.0).call_top_k(
        ids, scores, StudentScores(logits, queries, catalog, normalizer)))
  assert tape.gradient(value, logits) is None
  gradient = tf.convert_to_tensor(tape.gradient(value, catalog)).numpy()
  touched = np.flatnonzero(np.abs(gradient).sum(axis=1))
  assert set(touched) <= set(ids.numpy().ravel())
  # At another temperature the normaliser is the student's own, over [B, N].
  with tf.GradientTape() as tape:
    tape.watch(logits)
    value = tf.reduce_sum(SoftTargetKL(2.0).call_top_k(
        ids, scores, StudentScores(logits, queries, catalog, normalizer)))
  assert tape.gradient(value, logits) is not None


def test_student_scores_need_both_factors():
  with pytest.raises(ValueError, match="queries and catalog"):
    StudentScores(tf.zeros([1, 3]), queries=tf.zeros([1, 2]))


def _op_types(function, *args) -> set:
  graph = tf.function(function).get_concrete_function(*args).graph
  return {op.type for op in graph.get_operations()}


def test_sparse_soft_target_kl_never_builds_the_dense_teacher():
  ids, scores, student = _top_k_signal(num_items=40)
  op_types = _op_types(SoftTargetKL(2.0).call_top_k, ids, scores, student)
  assert "TensorScatterUpdate" not in op_types
  assert "TopKV2" not in op_types


def test_kl_over_teacher_items_reads_only_the_gathered_columns():
  ids, scores, student = _top_k_signal(num_items=40)
  loss = SoftTargetKL(2.0, normalize_over="teacher_items")

  def value_and_gradient(ids, scores, student):
    with tf.GradientTape() as tape:
      tape.watch(student)
      value = tf.reduce_sum(loss.call_top_k(ids, scores, student))
    return value, tape.gradient(value, student)
  # No reduction over the catalog axis: the only op on the [B, N] logits is
  # the gather (and the division by T), and the gradient stays sparse until
  # it is densified once.
  op_types = _op_types(value_and_gradient, ids, scores, student)
  assert "Max" not in op_types
  assert "TensorScatterUpdate" not in op_types
  _, gradient = value_and_gradient(ids, scores, student)
  touched = np.flatnonzero(np.abs(gradient.numpy()).sum(axis=0))
  assert set(touched) <= set(ids.numpy().ravel())


def test_keras_reduction_when_used_standalone():
  loss = SoftTargetKL(1.0)
  per_example = loss.call(tf.constant([[1.0, 2.0], [0.0, 0.0]]),
                          tf.zeros([2, 2])).numpy()
  reduced = float(loss(tf.constant([[1.0, 2.0], [0.0, 0.0]]), tf.zeros([2, 2])))
  assert reduced == pytest.approx(per_example.mean())


@pytest.mark.parametrize("make", [lambda: SoftTargetKL(0.0),
                                  lambda: SoftTargetMSE(-1.0),
                                  lambda: ListwiseDistillation(0.0),
                                  lambda: RankingDistillation(top_k=0),
                                  lambda: ContrastiveAlignment(0.0),
                                  lambda: SoftTargetKL(1.0, "items")])
def test_bad_parameters_raise_value_error(make):
  with pytest.raises(ValueError):
    make()
  with pytest.raises(ConfigError):
    make()


@pytest.mark.parametrize("module", [
    "tfdistill.distill.soft_targets", "tfdistill.distill.ranking_losses",
    "tfdistill.distill.representation_losses"])
def test_the_losses_docstring_examples_run_as_written(module):
  import doctest  # pylint: disable=import-outside-toplevel
  import importlib  # pylint: disable=import-outside-toplevel
  result = doctest.testmod(importlib.import_module(module),
                           extraglobs={"tf": tf}, verbose=False)
  assert result.failed == 0
  assert result.attempted > 0

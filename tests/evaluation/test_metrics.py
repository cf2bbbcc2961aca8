"""Every metric against values computed by hand."""

import math

import numpy as np
import pytest

from tfdistill.data.examples import SequenceArrays
from tfdistill.evaluation.agreement import spearman
from tfdistill.evaluation.agreement import top_k_overlap
from tfdistill.evaluation.evaluate import evaluate_retrieval
from tfdistill.evaluation.ranking import RankingMetrics
from tfdistill.evaluation.ranking import relevant_ranks
from tfdistill.evaluation.rating import auc
from tfdistill.evaluation.rating import rmse
from tfdistill.errors import ConfigError

# Columns 0 and 1 are padding/OOV and never count, whatever their score.
SCORES = np.array([[9.0, 9.0, 0.9, 0.1, 0.5, 0.7]])


def _result(scores, relevant, exclude=None, ks=(1, 2, 3)):
  metrics = RankingMetrics(ks=ks, num_items=scores.shape[1])
  metrics.update(scores, relevant, exclude)
  return metrics.result()


def test_single_target_rank_two():
  # Target 4 (0.5) is beaten by 0.9 and 0.7: rank 2 (0-based).
  r = _result(SCORES, np.array([4]))
  assert r["hr@2"] == 0.0 and r["hr@3"] == 1.0
  assert r["recall@3"] == 1.0
  assert r["ndcg@3"] == pytest.approx(1 / math.log2(4))
  assert r["mrr"] == pytest.approx(1 / 3)


def test_excluding_seen_items_moves_target_up():
  r = _result(SCORES, np.array([4]), exclude=[np.array([2])])
  assert r["hr@2"] == 1.0
  assert r["ndcg@2"] == pytest.approx(1 / math.log2(3))
  assert r["mrr"] == pytest.approx(1 / 2)


def test_relevant_item_is_never_excluded():
  r = _result(SCORES, np.array([4]), exclude=[np.array([4, 2])])
  assert r["mrr"] == pytest.approx(1 / 2)


def test_ties_count_against_the_target():
  scores = np.array([[0.0, 0.0, 1.0, 1.0, 1.0, 1.0]])
  assert relevant_ranks(scores, np.array([3]))[0][0] == 3
  r = _result(scores, np.array([3]), ks=(3, 4))
  assert r["hr@3"] == 0.0 and r["hr@4"] == 1.0


def test_several_relevant_items():
  scores = np.array([[0.0, 0.0, 0.9, 0.8, 0.7, 0.6, 0.5]])
  r = _result(scores, [np.array([3, 6])], ks=(2,))
  # Ranks 1 and 4: one hit in the top 2.
  assert r["hr@2"] == 1.0
  assert r["recall@2"] == pytest.approx(0.5)
  dcg = 1 / math.log2(3)
  idcg = 1 + 1 / math.log2(3)
  assert r["ndcg@2"] == pytest.approx(dcg / idcg)
  assert r["mrr"] == pytest.approx(0.5)


def test_means_over_rows_and_coverage():
  scores = np.array([[0.0, 0.0, 0.9, 0.1, 0.5, 0.7],
                     [0.0, 0.0, 0.1, 0.9, 0.5, 0.7]])
  r = _result(scores, np.array([2, 4]), ks=(1,))
  assert r["hr@1"] == pytest.approx(0.5)  # row 0 hits, row 1 does not
  assert r["mrr"] == pytest.approx((1 + 1 / 3) / 2)
  assert r["coverage@1"] == pytest.approx(2 / 4)  # items 2 and 3 of 4
  assert r["num_examples"] == 2


def test_per_example_values_are_kept_in_order_across_batches():
  metrics = RankingMetrics(ks=(1,), num_items=6)
  metrics.update(np.array([[0.0, 0.0, 0.9, 0.1, 0.5, 0.7]]), np.array([2]))
  metrics.update(np.array([[0.0, 0.0, 0.1, 0.9, 0.5, 0.7]]), np.array([4]))
  np.testing.assert_allclose(metrics.per_example("mrr"), [1.0, 1 / 3])
  np.testing.assert_allclose(metrics.per_example("hr@1"), [1.0, 0.0])
  assert metrics.per_example("ndcg@1").mean() == pytest.approx(
      metrics.result()["ndcg@1"])
  with pytest.raises(ConfigError, match="hr@10"):
    metrics.per_example("hr@10")


def test_top_k_lists():
  metrics = RankingMetrics(ks=(1, 3, 5), num_items=6)
  metrics.update_top_k(np.array([[4, 2, 3]]), np.array([2]))
  r = metrics.result()
  assert r["hr@1"] == 0.0 and r["hr@3"] == 1.0
  assert r["ndcg@3"] == pytest.approx(1 / math.log2(3))
  assert r["mrr@3"] == pytest.approx(0.5)
  assert "hr@5" not in r  # beyond the list length


def test_scores_must_cover_the_catalog():
  metrics = RankingMetrics(ks=(1,), num_items=7)
  with pytest.raises(ConfigError, match="catalog has 7"):
    metrics.update(SCORES, np.array([2]))


def test_memory_is_bounded_by_chunks():
  rng = np.random.default_rng(0)
  scores = rng.normal(size=(64, 100_000)).astype(np.float32)
  targets = rng.integers(2, 100_000, size=64)
  ranks = relevant_ranks(scores, targets)
  expected = [(scores[i, 2:] > scores[i, t]).sum() for i, t in
              enumerate(targets)]
  np.testing.assert_array_equal(np.concatenate(ranks), expected)


def test_evaluation_memory_stays_bounded_for_a_large_catalog(monkeypatch):
  # A score function over 200,000 items: by default evaluate_retrieval
  # scores and ranks a block of rows at a time that fits MAX_CELLS, and
  # gives the metrics of one big batch.
  import tracemalloc  # pylint: disable=g-import-not-at-top
  from tfdistill.evaluation import ranking  # pylint: disable=g-import-not-at-top
  num_items, rows = 200_000, 96
  rng = np.random.default_rng(1)
  queries = rng.normal(size=(rows, 4)).astype(np.float32)
  catalog = rng.normal(size=(num_items, 4)).astype(np.float32)
  examples = SequenceArrays(
      contexts=np.arange(rows, dtype=np.int32)[:, None],
      targets=rng.integers(2, num_items, size=rows),
      users=np.arange(rows), ratings=np.ones(rows, np.float32),
      seen_starts=np.zeros(rows, np.int64), seen_ends=np.zeros(rows, np.int64),
      item_history=np.zeros(0, np.int64))
  shapes = []

  def scores(contexts):
    shapes.append(len(contexts))
    return queries[contexts[:, 0]] @ catalog.T

  monkeypatch.setattr(ranking, "MAX_CELLS", 1 << 21)  # ~10 rows of 200k
  tracemalloc.start()
  chunked = RankingMetrics(ks=(10,), num_items=num_items)
  evaluate_retrieval(scores, examples, metrics=chunked)
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  assert max(shapes) == (1 << 21) // num_items and shapes[0] == 1
  # One block of scores is 8 MB; its copies, ranks and top-K indices stay
  # within a few blocks (one batch of all 96 rows would be 77 MB each).
  assert peak < 48e6, peak
  whole = RankingMetrics(ks=(10,), num_items=num_items)
  monkeypatch.setattr(ranking, "MAX_CELLS", 1 << 30)
  evaluate_retrieval(scores, examples, batch_size=rows, metrics=whole)
  for name in ("ndcg@10", "hr@10", "mrr"):
    np.testing.assert_allclose(chunked.per_example(name),
                               whole.per_example(name))
  assert chunked.result()["coverage@10"] == whole.result()["coverage@10"]


def test_rmse():
  assert rmse([1, 2, 3], [1, 3, 5]) == pytest.approx(math.sqrt(5 / 3))


def test_auc_with_a_tie():
  # Positive/negative pairs: (0.9>0.4) (0.9>0.1) (0.4=0.4: 1/2) (0.4>0.1).
  assert auc([1, 0, 1, 0], [0.9, 0.4, 0.4, 0.1]) == pytest.approx(3.5 / 4)


def test_auc_needs_both_classes():
  with pytest.raises(ConfigError):
    auc([1, 1], [0.1, 0.2])


def test_top_k_overlap():
  a = np.array([[0, 0, 3.0, 2.0, 1.0]])
  b = np.array([[0, 0, 3.0, 1.0, 2.0]])
  assert top_k_overlap(a, b, k=2) == pytest.approx(0.5)
  assert top_k_overlap(a, a, k=2) == 1.0


def test_spearman():
  a = np.array([[0, 0, 1.0, 2.0, 3.0]])
  assert spearman(a, a) == pytest.approx(1.0)
  assert spearman(a, np.array([[9, 9, 3.0, 2.0, 1.0]])) == pytest.approx(-1.0)


def test_evaluate_retrieval_batches_and_excludes_history():
  history = np.array([2, 3, 4, 5, 2, 5])
  examples = SequenceArrays(
      contexts=np.zeros((2, 3), np.int32), targets=np.array([4, 3]),
      users=np.array([2, 3]), ratings=np.ones(2, np.float32),
      seen_starts=np.array([0, 4]), seen_ends=np.array([1, 6]),
      item_history=history)

  def scores(contexts):
    return np.tile(SCORES, (len(contexts), 1))

  filled = RankingMetrics(ks=(1,))
  r = evaluate_retrieval(scores, examples, ks=(1,), batch_size=1,
                         metrics=filled)
  np.testing.assert_allclose(filled.per_example("mrr"), [0.5, 0.5])
  # Row 0 excludes item 2: target 4 is behind item 5 (rank 1).
  # Row 1 excludes items 2 and 5: target 3 (0.1) is behind item 4 (rank 1).
  assert r["hr@1"] == 0.0
  assert r["mrr"] == pytest.approx(0.5)
  without = evaluate_retrieval(scores, examples, ks=(1,), exclude_seen=False)
  assert without["mrr"] == pytest.approx((1 / 3 + 1 / 4) / 2)


def test_precision_and_f1_at_k():
  # Relevant 3 and 6 at ranks 1 and 4: top 2 holds one of them.
  scores = np.array([[0.0, 0.0, 0.9, 0.8, 0.7, 0.6, 0.5]])
  r = _result(scores, [np.array([3, 6])], ks=(2, 5))
  assert r["precision@2"] == pytest.approx(1 / 2)
  assert r["f1@2"] == pytest.approx(2 * 0.5 * 0.5 / (0.5 + 0.5))
  # Top 5 holds both: precision 2/5, recall 1, F1 = 2 * 0.4 * 1 / 1.4.
  assert r["precision@5"] == pytest.approx(0.4)
  assert r["f1@5"] == pytest.approx(0.8 / 1.4)
  # One target (leave-last-out): precision@K = HR@K / K.
  one = _result(SCORES, np.array([4]), ks=(3,))
  assert one["precision@3"] == pytest.approx(1 / 3)
  assert one["f1@3"] == pytest.approx(2 * (1 / 3) * 1 / (1 / 3 + 1))
  missed = _result(SCORES, np.array([4]), ks=(1,))
  assert missed["precision@1"] == 0.0 and missed["f1@1"] == 0.0


def test_binary_and_rating_metrics():
  from tfdistill.evaluation.rating import binary_metrics  # pylint: disable=import-outside-toplevel
  from tfdistill.evaluation.rating import rating_metrics  # pylint: disable=import-outside-toplevel
  labels = [1, 1, 0, 0, 1]
  scores = [0.9, 0.4, 0.6, 0.1, 0.8]
  # Threshold 0.5: predicted 1, 0, 1, 0, 1 -> TP 2, FP 1, FN 1, TN 1.
  r = binary_metrics(labels, scores, 0.5)
  assert r["accuracy"] == pytest.approx(3 / 5)
  assert r["precision"] == pytest.approx(2 / 3)
  assert r["recall"] == pytest.approx(2 / 3)
  assert r["f1"] == pytest.approx(2 / 3)
  # Positive/negative pairs ordered right: (0.9,0.6) (0.9,0.1) (0.4,0.1)
  # (0.8,0.6) (0.8,0.1) of 6 -> 5/6.
  assert r["auc"] == pytest.approx(5 / 6)
  assert binary_metrics([1, 0], [0.1, 0.2], 0.5)["precision"] == 0.0
  assert "auc" not in binary_metrics([1, 1], [0.1, 0.2], 0.5)
  ratings = rating_metrics([5, 3, 4, 2], [4.5, 4.1, 3.0, 2.0])
  # rating >= 4: labels 1, 0, 1, 0; predicted 1, 1, 0, 0.
  assert ratings["accuracy"] == pytest.approx(0.5)
  assert ratings["precision"] == pytest.approx(0.5)
  assert ratings["rmse"] == pytest.approx(
      math.sqrt((0.25 + 1.21 + 1.0 + 0.0) / 4))


def test_t_interval_and_paired_bootstrap():
  from tfdistill.evaluation.statistics import paired_bootstrap  # pylint: disable=import-outside-toplevel
  from tfdistill.evaluation.statistics import t_interval  # pylint: disable=import-outside-toplevel
  assert t_interval([0.3]) == [0.3, 0.3]
  low, high = t_interval([1.0, 2.0, 3.0])
  # mean 2, sd 1, t(0.975, 2) = 4.303: 2 -/+ 4.303 / sqrt(3)
  assert low == pytest.approx(2 - 4.3027 / math.sqrt(3), abs=1e-3)
  assert high == pytest.approx(2 + 4.3027 / math.sqrt(3), abs=1e-3)
  # Every user's metric a fixed multiple of a base: every paired draw gives
  # the same ratio, so the interval is a point.
  base = np.random.default_rng(0).random(50)
  per_user = [{"a": base, "b": 0.5 * base}] * 2
  ratio = lambda means: {"b / a": means["b"] / means["a"]}
  assert paired_bootstrap(per_user, ratio, samples=30)["b / a"] == (
      pytest.approx([0.5, 0.5]))

"""Full-catalog ranking metrics: HR@K, Recall@K, NDCG@K, MRR, coverage.

Conventions (the same for every model, so numbers are comparable):

* Scores cover the whole catalog; the reserved columns (padding, OOV) are never
  recommended.
* Items the user interacted with before the target are excluded (switchable),
  except the relevant items themselves.
* Ties are counted against the relevant item (pessimistic): a model that gives
  every item the same score ranks the target last, not first.
* Ranks are 0-based: rank 0 is the top of the list.
"""

from typing import Optional, Sequence

import numpy as np

from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.errors import ConfigError

# Largest [rows, relevant, items] comparison block held in memory at once.
_MAX_BLOCK = 32_000_000
# Largest [rows, items] block that `RankingMetrics.update` copies, sorts and
# compares at once (float32 copies and int64 partition indices of it).
MAX_CELLS = 1 << 22


def rows_per_block(num_items: int, max_rows: int = 256) -> int:
  """Rows of [rows, num_items] scores that fit `MAX_CELLS`, 1 to max_rows."""
  return int(max(1, min(max_rows, MAX_CELLS // max(int(num_items), 1))))


def _as_lists(values, rows: int) -> list:
  """Relevant/excluded items as one int array per row."""
  if values is None:
    return [np.zeros(0, np.int64)] * rows
  if isinstance(values, np.ndarray) and values.ndim == 1 and (
      values.dtype != object):
    return [values[i:i + 1].astype(np.int64) for i in range(rows)]
  return [np.asarray(v, dtype=np.int64).reshape(-1) for v in values]


def _mask_columns(scores: np.ndarray, columns: list, value: float) -> None:
  rows = np.repeat(np.arange(len(columns)), [len(c) for c in columns])
  if len(rows):
    scores[rows, np.concatenate(columns)] = value


def relevant_ranks(scores: np.ndarray, relevant, exclude=None,
                   num_reserved: int = NUM_RESERVED) -> list:
  """0-based pessimistic rank of each relevant item among the candidates.

  Args:
    scores: float [B, N] scores over the catalog.
    relevant: [B] target indices, or a list of B arrays of relevant indices.
    exclude: Optional list of B arrays of item indices to exclude (history).
    num_reserved: Leading columns that are never recommended.

  Returns:
    A list of B int arrays, the ranks of each row's relevant items.
  """
  scores = np.array(scores, dtype=np.float32, copy=True)
  rows = scores.shape[0]
  relevant = _as_lists(relevant, rows)
  excluded = _as_lists(exclude, rows)
  rel_scores = [scores[i, r] for i, r in enumerate(relevant)]
  scores[:, :num_reserved] = -np.inf
  _mask_columns(scores, excluded, -np.inf)
  # Relevant items are candidates even if they also appear in the history.
  for i, (r, s) in enumerate(zip(relevant, rel_scores)):
    scores[i, r] = s
  width = max(1, max((len(r) for r in relevant), default=1))
  padded = np.full((rows, width), np.nan, dtype=np.float32)
  for i, r in enumerate(relevant):
    padded[i, :len(r)] = scores[i, r]
  chunk = max(1, _MAX_BLOCK // (width * scores.shape[1]))
  ranks = np.empty((rows, width), dtype=np.int64)
  for lo in range(0, rows, chunk):
    block = scores[lo:lo + chunk, None, :]
    target = padded[lo:lo + chunk, :, None]
    # ">=" counts the relevant item itself once; subtract it.
    ranks[lo:lo + chunk] = (block >= target).sum(-1) - 1
  return [ranks[i, :len(r)] for i, r in enumerate(relevant)]


def top_k_indices(scores: np.ndarray, k: int, exclude=None,
                  num_reserved: int = NUM_RESERVED) -> np.ndarray:
  """Indices of the k best non-excluded items per row, best first."""
  scores = np.array(scores, dtype=np.float32, copy=True)
  scores[:, :num_reserved] = -np.inf
  _mask_columns(scores, _as_lists(exclude, scores.shape[0]), -np.inf)
  k = min(k, scores.shape[1])
  part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
  order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1,
                     kind="stable")
  return np.take_along_axis(part, order, 1)


def _discount(ranks: np.ndarray) -> np.ndarray:
  return 1.0 / np.log2(ranks + 2.0)


#: The retrieval metrics at 10 reported for every stage of a run.
STAGE_METRICS = ("ndcg@10", "hr@10", "recall@10", "precision@10", "f1@10")


class RankingMetrics:
  """Accumulates ranking metrics over batches.

  Each batch of scores is ranked in blocks of `rows_per_block(catalog)`
  rows, so the working memory beyond the scores handed in stays bounded
  whatever the catalog size.

  Example:
    >>> metrics = RankingMetrics(ks=(10,), num_items=prepared.num_items)
    >>> metrics.update(scores, targets, exclude=history)
    >>> metrics.result()["ndcg@10"]
  """

  def __init__(self, ks: Sequence[int] = (10,),
               num_items: Optional[int] = None, num_reserved: int = NUM_RESERVED):
    if not ks or min(ks) < 1:
      raise ConfigError(f"ks must be positive cut-offs, got {ks}.")
    self.ks = tuple(sorted(set(int(k) for k in ks)))
    self.num_items = num_items
    self.num_reserved = num_reserved
    self.reset()

  def reset(self) -> None:
    self._count = 0
    self._sums = {}
    self._values = {}
    self._covered = {k: set() for k in self.ks}
    self._full_ranking = True

  def _add(self, name: str, values: np.ndarray) -> None:
    values = np.asarray(values, np.float64)
    self._sums[name] = self._sums.get(name, 0.0) + float(np.sum(values))
    self._values.setdefault(name, []).append(values)

  def _accumulate(self, ranks: list, cutoff: int) -> None:
    """Adds per-row metrics from the ranks of each row's relevant items."""
    for k in self.ks:
      if k > cutoff:
        continue
      hits = [r[r < k] for r in ranks]
      self._add(f"hr@{k}", [len(h) > 0 for h in hits])
      recall = [len(h) / max(len(r), 1) for h, r in zip(hits, ranks)]
      precision = [len(h) / k for h in hits]
      self._add(f"recall@{k}", recall)
      self._add(f"precision@{k}", precision)
      self._add(f"f1@{k}", [2 * p * r / (p + r) if p + r else 0.0
                            for p, r in zip(precision, recall)])
      ideal = [_discount(np.arange(min(k, len(r)))).sum() for r in ranks]
      self._add(f"ndcg@{k}", [
          _discount(h).sum() / i if i > 0 else 0.0 for h, i in zip(hits, ideal)
      ])
    first = [r.min() if len(r) else np.inf for r in ranks]
    self._add("mrr", [1.0 / (f + 1) if f < cutoff else 0.0 for f in first])
    self._count += len(ranks)

  def update(self, scores: np.ndarray, relevant, exclude=None) -> None:
    """Adds a batch of full-catalog scores.

    Args:
      scores: float [B, N].
      relevant: [B] target indices or B arrays of relevant indices.
      exclude: None or B arrays of indices to exclude (the user's history).
    """
    scores = np.asarray(scores)
    if self.num_items is not None and scores.shape[1] != self.num_items:
      raise ConfigError(f"scores have {scores.shape[1]} columns but the "
                        f"catalog has {self.num_items} items.")
    rows = scores.shape[0]
    relevant = _as_lists(relevant, rows)
    excluded = _as_lists(exclude, rows)
    step = rows_per_block(scores.shape[1], max_rows=rows)
    for lo in range(0, rows, step):
      block = slice(lo, lo + step)
      ranks = relevant_ranks(scores[block], relevant[block], excluded[block],
                             self.num_reserved)
      self._accumulate(ranks, cutoff=scores.shape[1])
      top = top_k_indices(scores[block], max(self.ks), excluded[block],
                          self.num_reserved)
      for k in self.ks:
        self._covered[k].update(np.unique(top[:, :k]).tolist())

  def update_top_k(self, top_items: np.ndarray, relevant) -> None:
    """Adds a batch of top-K lists (e.g. from a TFLite model).

    Metrics at cut-offs above K are skipped and MRR is truncated at K.
    """
    top_items = np.asarray(top_items)
    rows, cutoff = top_items.shape
    relevant = _as_lists(relevant, rows)
    ranks = []
    for items, rel in zip(top_items, relevant):
      positions = {int(item): p for p, item in enumerate(items)}
      ranks.append(np.array([positions.get(int(r), cutoff) for r in rel],
                            dtype=np.int64))
    self._full_ranking = False
    self._cutoff = cutoff
    self._accumulate(ranks, cutoff=cutoff)
    for k in self.ks:
      if k <= cutoff:
        self._covered[k].update(np.unique(top_items[:, :k]).tolist())

  def per_example(self, name: str) -> np.ndarray:
    """One metric's value for every example so far, in update order.

    For paired comparisons of two models on the same examples (e.g. a
    bootstrap confidence interval of their difference).
    """
    if name not in self._values:
      raise ConfigError(f"no per-example values of {name!r}; this object "
                        f"has {sorted(self._values)}.")
    return np.concatenate(self._values[name])

  def result(self) -> dict:
    """Means over all examples so far, plus coverage and the example count."""
    if not self._count:
      raise ConfigError("RankingMetrics.result() called before update().")
    out = {name: total / self._count for name, total in self._sums.items()}
    if not self._full_ranking:
      out[f"mrr@{self._cutoff}"] = out.pop("mrr")
    if self.num_items is not None:
      catalog = self.num_items - self.num_reserved
      for k in self.ks:
        if f"hr@{k}" in out:
          out[f"coverage@{k}"] = len(self._covered[k]) / catalog
    out["num_examples"] = self._count
    return out

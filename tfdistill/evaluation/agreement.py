"""Agreement between two models' rankings: top-K overlap and rank correlation."""

import numpy as np

from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.evaluation.ranking import top_k_indices
from tfdistill.evaluation.rating import average_ranks
from tfdistill.errors import ConfigError


def top_k_overlap(scores_a, scores_b, k: int = 10, exclude=None,
                  num_reserved: int = NUM_RESERVED) -> float:
  """Mean |top-K(a) intersect top-K(b)| / K over rows."""
  scores_a, scores_b = np.asarray(scores_a), np.asarray(scores_b)
  if scores_a.shape != scores_b.shape:
    raise ConfigError(f"score shapes differ: {scores_a.shape} vs "
                      f"{scores_b.shape}.")
  top_a = top_k_indices(scores_a, k, exclude, num_reserved)
  top_b = top_k_indices(scores_b, k, exclude, num_reserved)
  return float(np.mean([len(np.intersect1d(a, b)) / k
                        for a, b in zip(top_a, top_b)]))


def spearman(scores_a, scores_b, num_reserved: int = NUM_RESERVED) -> float:
  """Mean per-row Spearman rank correlation over the catalog items."""
  scores_a = np.asarray(scores_a)[:, num_reserved:]
  scores_b = np.asarray(scores_b)[:, num_reserved:]
  values = []
  for a, b in zip(scores_a, scores_b):
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra**2).sum() * (rb**2).sum())
    values.append((ra * rb).sum() / denominator if denominator > 0 else 0.0)
  return float(np.mean(values))

"""Intervals for benchmark figures: over seeds, and over test users."""

from typing import Callable, Sequence

import numpy as np


def t_interval(values: Sequence[float], level: float = 0.95) -> list:
  """[low, high]: Student's t interval of the mean of `values` (e.g. one
  figure per seed); the mean twice for a single value."""
  values = np.asarray(values, float)
  if len(values) < 2:
    return [float(values.mean())] * 2
  from scipy import stats  # pylint: disable=import-outside-toplevel
  half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(
      ddof=1) / np.sqrt(len(values))
  return [float(values.mean() - half), float(values.mean() + half)]


def paired_bootstrap(per_user: Sequence[dict],
                     statistics: Callable[[dict], dict],
                     samples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> dict:
  """Percentile intervals of statistics of mean per-user metrics.

  Each sample redraws every seed's test users with replacement, the same
  draw for all models (the comparisons are paired), averages the metric
  over users and then over seeds, and computes `statistics` of those means.

  Args:
    per_user: One {model: [metric per test user]} per seed.
    statistics: {model: mean metric} -> {name: value}, e.g. ratios of two
      models' means.
    samples: Bootstrap samples.
    seed: Seed of the draws.
    level: Coverage of the intervals.

  Returns:
    {name: [low, high]}.
  """
  rng = np.random.default_rng(seed)
  models = list(per_user[0])
  arrays = [{k: np.asarray(v) for k, v in seed_values.items()}
            for seed_values in per_user]
  draws = {name: [] for name in statistics({k: 1.0 for k in models})}
  for _ in range(samples):
    picks = [rng.integers(0, len(a[models[0]]), len(a[models[0]]))
             for a in arrays]
    means = {k: np.mean([a[k][p].mean() for a, p in zip(arrays, picks)])
             for k in models}
    for name, value in statistics(means).items():
      draws[name].append(value)
  tail = 100 * (1 - level) / 2
  return {name: [float(np.percentile(v, tail)),
                 float(np.percentile(v, 100 - tail))]
          for name, v in draws.items()}

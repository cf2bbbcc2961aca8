"""Rating-prediction metrics for ranking models: RMSE and AUC."""

import numpy as np

from tfdistill.errors import ConfigError


def rmse(y_true, y_pred) -> float:
  """Root mean squared error."""
  y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred,
                                                              np.float64)
  if y_true.shape != y_pred.shape or y_true.size == 0:
    raise ConfigError(f"rmse needs two non-empty arrays of one shape, got "
                      f"{y_true.shape} and {y_pred.shape}.")
  return float(np.sqrt(np.mean((y_true - y_pred)**2)))


def average_ranks(values) -> np.ndarray:
  """1-based ranks; tied values share the mean of their ranks."""
  values = np.asarray(values, np.float64)
  order = np.argsort(values, kind="mergesort")
  sorted_values = values[order]
  starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
  ends = np.r_[starts[1:], len(values)]
  group_rank = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
  ranks = np.empty(len(values))
  ranks[order] = np.repeat(group_rank, ends - starts)
  return ranks


def auc(labels, scores) -> float:
  """Area under the ROC curve (Mann-Whitney U; ties count one half).

  Args:
    labels: Binary relevance (e.g. rating >= 4).
    scores: Predicted scores or ratings.
  """
  labels = np.asarray(labels).astype(bool)
  positives, negatives = labels.sum(), (~labels).sum()
  if positives == 0 or negatives == 0:
    raise ConfigError("auc needs both positive and negative labels.")
  ranks = average_ranks(scores)
  u = ranks[labels].sum() - positives * (positives + 1) / 2.0
  return float(u / (positives * negatives))


def binary_metrics(labels, scores, threshold: float) -> dict:
  """Accuracy, precision, recall, F1 and AUC of scores against binary
  labels, a score >= `threshold` predicting positive.

  Args:
    labels: Binary relevance (e.g. rating >= 4, or a click).
    scores: Predicted scores (ratings or click probabilities).
    threshold: The score from which a prediction is positive.

  Returns:
    {"accuracy", "precision", "recall", "f1", "auc"}; precision is 0 when
    nothing is predicted positive, and AUC is left out when the labels have
    one class only.
  """
  labels = np.asarray(labels).astype(bool).reshape(-1)
  predicted = np.asarray(scores, np.float64).reshape(-1) >= threshold
  if labels.shape != predicted.shape or not labels.size:
    raise ConfigError(f"binary_metrics needs labels and scores of one "
                      f"non-empty shape, got {labels.shape} and "
                      f"{predicted.shape}.")
  true_positives = float(np.sum(labels & predicted))
  precision = true_positives / max(float(predicted.sum()), 1.0)
  recall = true_positives / max(float(labels.sum()), 1.0)
  out = {"accuracy": float(np.mean(labels == predicted)),
         "precision": precision, "recall": recall,
         "f1": (2 * precision * recall / (precision + recall)
                if precision + recall else 0.0)}
  if 0 < labels.sum() < labels.size:
    out["auc"] = auc(labels, np.asarray(scores).reshape(-1))
  return out


def rating_metrics(ratings, predictions, positive_rating: float = 4.0
                  ) -> dict:
  """RMSE of predicted ratings, and `binary_metrics` of "rating >=
  positive_rating" (the same threshold on the predictions)."""
  ratings = np.asarray(ratings, np.float64).reshape(-1)
  predictions = np.asarray(predictions, np.float64).reshape(-1)
  return dict(binary_metrics(ratings >= positive_rating, predictions,
                             positive_rating),
              rmse=rmse(ratings, predictions))

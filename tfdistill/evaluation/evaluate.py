"""Evaluate a retrieval model (or any score function) on held-out examples."""

from typing import Callable, Optional, Sequence, Union

import numpy as np

from tfdistill.data.examples import CONTEXT
from tfdistill.data.examples import SequenceArrays
from tfdistill.evaluation.ranking import RankingMetrics
from tfdistill.evaluation.ranking import rows_per_block

ScoreFn = Callable[[np.ndarray], np.ndarray]


def score_function(model) -> ScoreFn:
  """Wraps a Keras retrieval model as contexts [B, L] -> scores [B, N].

  Models may return the logits directly or a dict with a "logits" entry.
  """
  def scores(contexts: np.ndarray) -> np.ndarray:
    outputs = model.predict_on_batch({CONTEXT: contexts})
    if isinstance(outputs, dict):
      outputs = outputs["logits"]
    return np.asarray(outputs)
  return scores


def teacher_score_function(teacher) -> Callable:
  """Wraps a `TeacherSource` as a batch of `SequenceArrays` -> scores: its
  "logits" (a top-K teacher's scores outside its top-K are masked)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  teacher.prepare()

  def scores(batch: SequenceArrays) -> np.ndarray:
    features = {CONTEXT: tf.constant(batch.contexts),
                "user": tf.constant(batch.users),
                "item": tf.constant(batch.targets)}
    return np.asarray(teacher(features, signals=("logits",))["logits"])
  return scores


def _catalog_size(model) -> Optional[int]:
  """The catalog size a Keras model scores, if its output says it."""
  if not hasattr(model, "predict_on_batch"):
    return None
  model = getattr(model, "student", model)  # a Distiller scores its student's
  try:
    output = model.output
  except (AttributeError, ValueError):  # a subclassed model: no static output
    return None
  if isinstance(output, dict):
    output = output.get("logits")
  size = getattr(output, "shape", [None])[-1] if output is not None else None
  return int(size) if size else None


def evaluate_retrieval(model: Union[ScoreFn, object],
                       examples: SequenceArrays,
                       ks: Sequence[int] = (10,),
                       batch_size: Optional[int] = None,
                       exclude_seen: bool = True,
                       metrics: Optional[RankingMetrics] = None) -> dict:
  """Full-catalog ranking metrics of a model on held-out examples.

  Args:
    model: A Keras model taking {"context": [B, L]} and returning logits over
      the catalog, a function from contexts to scores, or a teacher source
      (`tfdistill.distill.TeacherSource`, e.g. a user's TFRS model).
    examples: `evaluation_set(prepared, "test")` or "validation".
    ks: Cut-offs for HR, Recall, NDCG and coverage.
    batch_size: Rows scored at once (memory is O(batch_size x catalog)).
      Default: after a first row shows the catalog size, as many rows as
      `tfdistill.evaluation.ranking.rows_per_block` allows (at most 256),
      so that memory stays bounded for any catalog.
    exclude_seen: Exclude each user's earlier items from the ranking.
    metrics: A fresh `RankingMetrics` to fill (with the same `ks`), to read
      `metrics.per_example("ndcg@10")` afterwards; default: a new one.

  Returns:
    {"hr@10": ..., "recall@10": ..., "ndcg@10": ..., "mrr": ...,
     "coverage@10": ..., "num_examples": ...}.

  Example:
    >>> evaluate_retrieval(student, evaluation_set(prepared, "test"))["ndcg@10"]
  """
  from tfdistill.distill.teachers import TeacherSource  # pylint: disable=import-outside-toplevel
  source = isinstance(model, TeacherSource)  # it reads the users too
  if source:
    score = teacher_score_function(model)
  else:
    score = model if not hasattr(model, "predict_on_batch") else (
        score_function(model))
  known = _catalog_size(model)
  lo, rows = 0, batch_size or (rows_per_block(known) if known else 1)
  while lo < len(examples):
    batch = examples.take(slice(lo, lo + rows))
    scores = score(batch) if source else score(batch.contexts)
    if metrics is None:
      metrics = RankingMetrics(ks, num_items=scores.shape[1])
    exclude = ([batch.seen(i) for i in range(len(batch))]
               if exclude_seen else None)
    metrics.update(scores, batch.targets, exclude)
    lo += len(batch)
    rows = batch_size or rows_per_block(scores.shape[1])
  return metrics.result()


def evaluate_top_k(recommend: Callable[[np.ndarray], np.ndarray],
                   examples: SequenceArrays, k: int = 10,
                   exclude_seen: bool = True,
                   metrics: Optional[RankingMetrics] = None) -> dict:
  """Ranking metrics of a model that only returns a top list per context.

  `recommend(context [L]) -> item indices [P]` (best first, P >= k, e.g. a
  TFLite model exported with a larger top-K); each user's earlier items are
  dropped from the list before cutting it to k, as `evaluate_retrieval`
  does with full scores. `metrics`: as in `evaluate_retrieval`.
  """
  metrics = metrics if metrics is not None else RankingMetrics((k,))
  tops = []
  for i in range(len(examples)):
    items = np.asarray(recommend(examples.contexts[i]))
    if exclude_seen:
      items = items[~np.isin(items, examples.seen(i))]
    top = np.full(k, -1, np.int64)
    top[:min(k, len(items))] = items[:k]
    tops.append(top)
  metrics.update_top_k(np.stack(tops), examples.targets)
  return metrics.result()


def evaluate_tflite(tflite_model, examples: SequenceArrays, k: int = 10,
                    exclude_seen: bool = True,
                    metrics: Optional[RankingMetrics] = None) -> dict:
  """`evaluate_top_k` of a .tflite recommender run with LiteRT.

  Args:
    tflite_model: Path or bytes of a model with the "recommend" signature
      whose top-K is well above k (so that seen items can be dropped).
  """
  from tfdistill.export.tflite import LiteRTRecommender  # pylint: disable=import-outside-toplevel
  model = LiteRTRecommender(tflite_model)
  return evaluate_top_k(lambda context: model(context)[0], examples, k,
                        exclude_seen, metrics)


def evaluate_saved_model(model_dir: str, prepared, split: str = "test",
                         context_length: Optional[int] = None,
                         positive_rating: float = 4.0) -> dict:
  """Evaluates a saved tfdistill model on a prepared data set's split.

  A retrieval model by its full-catalog ranking metrics; a ranking model
  (inputs "user" and "item") by RMSE and, for rating >= `positive_rating`,
  accuracy, precision, recall, F1 and AUC.

  Raises:
    ConfigError: if the model was trained on another item vocabulary.
  """
  from tfdistill.data import examples  # pylint: disable=import-outside-toplevel
  from tfdistill.errors import ConfigError  # pylint: disable=import-outside-toplevel
  from tfdistill.models.io import load_model  # pylint: disable=import-outside-toplevel
  from tfdistill.models.io import read_model_card  # pylint: disable=import-outside-toplevel
  card = read_model_card(model_dir)
  model = load_model(model_dir)
  if card.get("vocabulary_fingerprint") not in (
      None, "", prepared.items.fingerprint):
    raise ConfigError(f"{model_dir} was trained on another item vocabulary "
                      "than this data set's; pass the same --dataset flags "
                      "as for training.")
  length = context_length or card.get("context_length") or 20
  inputs = set(card.get("inputs") or {})
  if {"user", "item"} <= inputs and CONTEXT not in inputs:
    from tfdistill.evaluation.rating import rating_metrics  # pylint: disable=import-outside-toplevel
    pairs = examples.pair_arrays(prepared, split, length)
    predicted = model.predict({"user": pairs["user"], "item": pairs["item"]},
                              batch_size=1024, verbose=0)
    return dict(rating_metrics(pairs["rating"], predicted, positive_rating),
                positive_rating=positive_rating,
                num_examples=len(pairs["rating"]))
  return evaluate_retrieval(model, examples.evaluation_set(prepared, split,
                                                           length))

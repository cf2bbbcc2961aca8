"""Keras callbacks that put full-catalog ranking metrics into the logs."""

from typing import Sequence

import tf_keras

from tfdistill.data.examples import SequenceArrays
from tfdistill.evaluation.evaluate import evaluate_retrieval


class RankingEvaluation(tf_keras.callbacks.Callback):
  """Adds val_ndcg@K, val_hr@K, ... to the epoch logs.

  Put it before EarlyStopping / ModelCheckpoint in the callback list so they
  can monitor e.g. "val_ndcg@10" (mode="max").

  Args:
    examples: `evaluation_set(prepared, "validation")`.
    ks: Cut-offs.
    prefix: Prefix of the log keys.
    model_attribute: Evaluate `self.model.<attribute>` instead of the model
      (e.g. "student" for a Distiller; the Distiller's call is the student's
      anyway).
    every: Evaluate every `every` epochs.
  """

  def __init__(self, examples: SequenceArrays, ks: Sequence[int] = (10,),
               prefix: str = "val_", model_attribute: str = "",
               every: int = 1):
    super().__init__()
    self.examples = examples
    self.ks = tuple(ks)
    self.prefix = prefix
    self.model_attribute = model_attribute
    self.every = max(1, every)
    self.history = []

  def on_epoch_end(self, epoch, logs=None):
    if (epoch + 1) % self.every:
      return
    model = (getattr(self.model, self.model_attribute)
             if self.model_attribute else self.model)
    results = evaluate_retrieval(model, self.examples, self.ks)
    results.pop("num_examples")
    self.history.append(results)
    if logs is not None:
      logs.update({self.prefix + k: v for k, v in results.items()})

"""Pruning of a student: TF Model Optimization, and Fisher saliency for tables.

    config = PruningConfig(target_sparsity=0.5, end_step=2000)
    pruned = prune_student(student, config)
    pruned.compile(...)  # or Distiller(student=pruned, teacher=...)
    pruned.fit(data, callbacks=pruning_callbacks(log_dir))
    small = strip_pruning(pruned)

Every layer with prunable weights (Dense, Conv1D, Embedding, GRU and the
tfdistill compressed embeddings) is wrapped for TF-MOT's gradual magnitude
pruning; `layer_sparsity` sets targets per layer type or name, and
`structured="2:4"` prunes Dense kernels in the 2-out-of-4 pattern that
sparse kernels accelerate.

Item tables are a poor fit for magnitude: how much an entry matters depends
on how often its item is scored and read, not only on its size. With
`table_pruning="fisher"`, `prune_student(..., data=train)` prunes the
tables once, before the fine-tune, keeping the entries of largest saliency
w^2 * F (F: the mean squared gradient of the hard-label loss over training
batches, a diagonal Fisher estimate; Optimal Brain Damage's estimate of
what zeroing a weight costs), and `pruning_callbacks` holds their zeros
while the other layers are pruned gradually.
"""

import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from tfdistill.data.examples import CONTEXT
from tfdistill.distill.positions import examples_at_every_position
from tfdistill.distill.positions import is_chunk_batch
from tfdistill.compress.config import check_sparsity
from tfdistill.compress.config import check_table_pruning
from tfdistill.errors import ConfigError
from tfdistill.errors import ModelError
from tfdistill.models.embeddings import ITEM_TABLES
from tfdistill.models.io import input_signature

SCHEDULES = ("polynomial", "constant")
_sparsity = tfmot.sparsity.keras


@dataclasses.dataclass(frozen=True)
class PruningConfig:
  """How much and how fast to prune.

  Attributes:
    target_sparsity: Final fraction of zero weights in every pruned layer.
    schedule: "polynomial" (PolynomialDecay from `initial_sparsity` to the
      target between `begin_step` and `end_step`) or "constant"
      (ConstantSparsity from `begin_step`).
    initial_sparsity: Start of the polynomial schedule.
    begin_step, end_step, frequency: Pruning steps (optimizer steps).
    layer_sparsity: Targets per layer class name ("Dense", "Embedding", ...)
      or per layer name; they override `target_sparsity`.
    structured: "" or "2:4" (2 of every 4 consecutive weights in Dense
      kernels; other layers keep unstructured pruning).
    table_pruning: "magnitude" (item tables pruned by TF-MOT like the other
      layers) or "fisher" (pruned once by saliency before training; needs
      training data, see `prune_student`).
    fisher_batches: Training batches over which "fisher" averages squared
      gradients.
  """
  target_sparsity: float = 0.5
  schedule: str = "polynomial"
  initial_sparsity: float = 0.0
  begin_step: int = 0
  end_step: int = 1000
  frequency: int = 25
  layer_sparsity: dict = dataclasses.field(default_factory=dict)
  structured: str = ""
  table_pruning: str = "magnitude"
  fisher_batches: int = 200

  def __post_init__(self):
    check_sparsity(self.target_sparsity)
    check_sparsity(self.initial_sparsity, "initial sparsity")
    for key, value in self.layer_sparsity.items():
      check_sparsity(value, f"sparsity of {key!r}")
    if self.schedule not in SCHEDULES:
      raise ConfigError(f"unknown pruning schedule {self.schedule!r}; choose "
                        f"one of {SCHEDULES}.")
    if self.structured not in ("", "2:4"):
      raise ConfigError(f"structured must be '' or '2:4', got "
                        f"{self.structured!r}.")
    check_table_pruning(self.table_pruning)
    if self.fisher_batches < 1:
      raise ConfigError(f"fisher_batches must be >= 1, got "
                        f"{self.fisher_batches}.")
    if self.end_step <= self.begin_step:
      raise ConfigError(f"end_step ({self.end_step}) must be after "
                        f"begin_step ({self.begin_step}).")

  def target_for(self, layer) -> float:
    for key in (layer.name, type(layer).__name__):
      if key in self.layer_sparsity:
        return float(self.layer_sparsity[key])
    return self.target_sparsity

  def schedule_for(self, target: float):
    if self.schedule == "constant":
      return _sparsity.ConstantSparsity(target, self.begin_step,
                                        frequency=self.frequency)
    return _sparsity.PolynomialDecay(
        initial_sparsity=min(self.initial_sparsity, target),
        final_sparsity=target, begin_step=self.begin_step,
        end_step=self.end_step, frequency=self.frequency)


def _prunable(layer) -> bool:
  if not layer.weights:
    return False
  if isinstance(layer, _sparsity.PrunableLayer):
    return True
  return isinstance(layer, (tf_keras.layers.Dense, tf_keras.layers.Conv1D,
                            tf_keras.layers.Embedding, tf_keras.layers.GRU))


def _check_student(model) -> None:
  if not (isinstance(model, tf_keras.Model)
          and getattr(model, "_is_graph_network", False)):
    raise ModelError(f"{type(model).__name__} is not a tfdistill student: "
                     "compression works on functional students (load one "
                     "with tfdistill.models.io.load_model).")


def prune_student(model: tf_keras.Model,
                  config: PruningConfig = PruningConfig(),
                  data=None) -> tf_keras.Model:
  """Wraps every prunable layer of a functional student for pruning.

  Layers whose target is 0 stay as they are. Weights are kept, except that
  with `config.table_pruning == "fisher"` the item tables come back already
  pruned to their target (by saliency, see `fisher_saliency`) and unwrapped.

  Args:
    model: A functional student.
    config: `PruningConfig`.
    data: Batched training `tf.data` of (context, label, ...) elements;
      required by "fisher" table pruning.
  """
  _check_student(model)
  by_fisher = config.table_pruning == "fisher"
  if by_fisher and data is None:
    raise ConfigError("table_pruning='fisher' estimates each table entry's "
                      "saliency from training batches: pass data= to "
                      "prune_student, or use table_pruning='magnitude'.")
  tables = []

  def wrap(layer):
    clone = layer.__class__.from_config(layer.get_config())
    target = config.target_for(layer)
    if not _prunable(layer) or target == 0.0:
      return clone
    if by_fisher and isinstance(layer, ITEM_TABLES):
      tables.append((clone, target))
      return clone
    kwargs = {}
    if config.structured == "2:4" and isinstance(layer,
                                                 tf_keras.layers.Dense):
      kwargs["sparsity_m_by_n"] = (2, 4)
    return _sparsity.prune_low_magnitude(
        clone, pruning_schedule=config.schedule_for(target), **kwargs)

  pruned = tf_keras.models.clone_model(model, clone_function=wrap)
  pruned.set_weights(_weights_for(pruned, model))
  if tables:
    variables, targets = [], []
    for layer, target in tables:
      weights = _table_weights(layer)
      variables += weights
      targets += [target] * len(weights)
    saliency = fisher_saliency(pruned, variables, data, config.fisher_batches)
    for variable, target, scores in zip(variables, targets, saliency):
      variable.assign(variable * prune_mask(scores, target))
  return pruned


def _table_weights(layer) -> list:
  if isinstance(layer, _sparsity.PrunableLayer):
    return list(layer.get_prunable_weights())
  return [layer.embeddings]


def fisher_saliency(model: tf_keras.Model, variables: list, data,
                    batches: int) -> list:
  """Per variable, w^2 * F: what zeroing each entry costs the loss.

  F is the squared gradient of the hard-label loss (sparse categorical
  cross-entropy of `model`'s logits) averaged over the first `batches`
  batches of `data`: a diagonal estimate of the Fisher information, which
  for an item table grows with how often the item is read and scored.
  """
  # Chunks become batches of as many examples as they hold targets: one
  # trace for every batch size, not one per batch.
  @tf.function(reduce_retracing=True)
  def squared_gradients(inputs, labels):
    with tf.GradientTape() as tape:
      # The batch mean by hand: a Keras loss object with its default
      # reduction refuses to run inside a tf.distribute strategy's scope.
      value = tf.reduce_mean(tf_keras.losses.sparse_categorical_crossentropy(
          labels, model(inputs, training=False), from_logits=True))
    return [tf.zeros_like(v) if g is None else tf.square(
        tf.convert_to_tensor(g)) for v, g in zip(
            variables, tape.gradient(value, variables))]

  def local_squared_gradients(inputs, labels):
    # Under a tf.distribute strategy the gradient of distributed variables
    # is taken in a replica: each computes the same batch; one is read.
    if not tf.distribute.has_strategy():
      return squared_gradients(inputs, labels)
    strategy = tf.distribute.get_strategy()
    per_replica = strategy.run(squared_gradients, args=(inputs, labels))
    return [strategy.experimental_local_results(g)[0] for g in per_replica]

  totals = [np.zeros(v.shape, np.float64) for v in variables]
  count = 0
  for batch in data.take(batches):
    inputs, labels = batch[0], batch[1]
    if is_chunk_batch(inputs, labels):  # one example per target
      inputs, labels = examples_at_every_position(
          inputs, labels, input_signature(model)[CONTEXT].shape[1])
    for total, square in zip(totals, local_squared_gradients(inputs,
                                                             labels)):
      total += square.numpy()
    count += 1
  if not count:
    raise ConfigError("the training data has no batches to estimate the "
                      "tables' Fisher saliency from.")
  return [np.square(v.numpy()) * total / count
          for v, total in zip(variables, totals)]


def prune_mask(scores: np.ndarray, sparsity: float) -> np.ndarray:
  """1 for the entries kept, 0 for the round(sparsity * size) lowest scores
  (ties: the first in row-major order go first)."""
  pruned = int(round(sparsity * scores.size))
  mask = np.ones(scores.size, np.float32)
  mask[np.argsort(scores.ravel(), kind="stable")[:pruned]] = 0.0
  return mask.reshape(scores.shape)


def _weights_for(pruned, original) -> list:
  """Original weights in the order of the wrapped model (masks etc. kept)."""
  values = []
  for new_layer, old_layer in zip(pruned.layers, original.layers):
    new_weights = new_layer.weights
    if _is_prune_wrapper(new_layer):
      old = {w.name.split("/")[-1]: w.numpy() for w in old_layer.weights}
      for weight in new_weights:
        short = weight.name.split("/")[-1]
        values.append(old.get(short, weight.numpy()))
    else:
      values.extend(w.numpy() for w in old_layer.weights)
  return values


def _is_prune_wrapper(layer) -> bool:
  # The wrapper class is not part of TF-MOT's public API.
  return type(layer).__name__ == "PruneLowMagnitude"


def pruning_callbacks(log_dir: Optional[str] = None) -> list:
  """`UpdatePruningStep` (required), `KeepSparsity` (holds the zeros of the
  matrices already sparse when training starts: the tables pruned by Fisher
  saliency) and, with a log dir, `PruningSummaries`."""
  callbacks = [_sparsity.UpdatePruningStep(), KeepSparsity()]
  if log_dir:
    callbacks.append(_sparsity.PruningSummaries(log_dir=log_dir))
  return callbacks


class KeepSparsity(tf_keras.callbacks.Callback):
  """Keeps pruned zeros at zero while a stripped model trains further.

  Pruning-preserving QAT and sparsity-preserving clustering protect the
  layers they wrap; this protects the others (e.g. embedding tables, which
  QAT leaves alone) by re-applying each matrix's zero mask after every batch.

  Args:
    variables: The variables to protect (default: the trained model's
      trainable matrices, taken at the start of training).
    min_sparsity: Only matrices at least this sparse are protected.
  """

  def __init__(self, variables=None, min_sparsity: float = 0.05):
    super().__init__()
    self._variables, self.min_sparsity = variables, min_sparsity
    self._masks = []

  def on_train_begin(self, logs=None):
    variables = self._variables or [v for v in self.model.trainable_variables
                                    if len(v.shape) >= 2]
    self._masks = []
    for variable in variables:
      mask = variable.numpy() != 0
      if 1.0 - mask.mean() >= self.min_sparsity:
        self._masks.append((variable, mask.astype(variable.dtype.as_numpy_dtype)))

  def on_train_batch_end(self, batch, logs=None):
    for variable, mask in self._masks:
      variable.assign(variable * mask)


def strip_pruning(model: tf_keras.Model) -> tf_keras.Model:
  """Removes the pruning wrappers (the zeros stay)."""
  return _sparsity.strip_pruning(model)


def is_pruned(model) -> bool:
  return any(_is_prune_wrapper(layer)
             for layer in getattr(model, "layers", []))


def layer_sparsity(model) -> list:
  """Per layer: parameters, non-zeros and sparsity of its kernels/tables.

  Biases and normalization weights are counted in `parameters` but
  sparsity is over the weight matrices (what pruning targets).
  """
  rows = []
  for layer in model.layers:
    weights = [w for w in layer.weights if w.trainable or "kernel" in w.name
               or "embeddings" in w.name]
    if not weights:
      continue
    matrices = [w.numpy() for w in weights if len(w.shape) >= 2]
    size = int(sum(m.size for m in matrices))
    nonzero = int(sum(np.count_nonzero(m) for m in matrices))
    rows.append({"layer": layer.name, "type": type(layer).__name__,
                 "parameters": int(sum(np.prod(w.shape) for w in weights)),
                 "matrix_parameters": size, "nonzeros": nonzero,
                 "sparsity": 1.0 - nonzero / size if size else 0.0})
  return rows


def overall_sparsity(model) -> float:
  rows = layer_sparsity(model)
  size = sum(r["matrix_parameters"] for r in rows)
  return 1.0 - sum(r["nonzeros"] for r in rows) / size if size else 0.0

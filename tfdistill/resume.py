"""Trainings that resume to the result they would have had uninterrupted.

`tf_keras.callbacks.BackupAndRestore` restores the weights and the optimizer
of an interrupted `fit` and continues at the next epoch, but two sources of
randomness are not in its checkpoint: the order of a shuffled `tf.data`
(`reshuffle_each_iteration` starts its sequence of orders again in a new
process) and the state of the layers' random generators (dropout; Keras
leaves them out of checkpoints on purpose). `RepeatableEpochs` makes both a
function of (seed, epoch) instead of the history of the process, so that
epoch k is the same whether the process ran epochs 0..k-1 or restored them:

    tf_keras.backend.experimental.enable_tf_random_generator()  # first
    order = RepeatableEpochs(seed=7)
    model = build_model()
    data = examples.sequence_examples(prepared, "train", 20, batch_size=256,
                                      shuffle=True, seed=7,
                                      epoch=order.epoch)
    model.fit(data, epochs=5, callbacks=[
        tf_keras.callbacks.BackupAndRestore("ckpt"), order])

It must come after `BackupAndRestore` in the callbacks (it reads the epoch
that was restored), and the random generators must be enabled before the
model's layers are built (`enable_repeatable_randomness`).
"""

import json
import os
import time
from typing import Optional

import tensorflow as tf
import tf_keras

#: Seeds mix the run's seed, the epoch and a generator's index with these.
_EPOCH_STRIDE = 1_000_003


def enable_repeatable_randomness() -> None:
  """Makes Keras layers draw from `tf.random.Generator`s (which
  `RepeatableEpochs` can reseed) instead of legacy stateful random ops.

  Affects layers built afterwards, in this process.
  """
  tf_keras.backend.experimental.enable_tf_random_generator()


def random_generators(model) -> list:
  """The `tf.random.Generator`s of a model's layers (dropout and other
  random layers) and, for a `Distiller`, of its losses (samplers), in a
  fixed order; nested models and wrappers included."""
  generators, seen = [], set()
  owners = list(getattr(model, "distillation_losses", ())) + list(
      model._flatten_layers(include_self=True))  # pylint: disable=protected-access
  for owner in owners:
    # tfdistill's losses and teachers list their own; Keras's random layers
    # keep one in `_random_generator` (None with legacy random ops).
    own = getattr(owner, "random_generators", None)
    if callable(own):
      found = own()
    else:
      random = getattr(owner, "_random_generator", None)
      if random is None:
        continue
      random._maybe_init()  # pylint: disable=protected-access
      found = [getattr(random, "_generator", None)]
    for generator in found:
      if generator is not None and id(generator) not in seen:
        seen.add(id(generator))
        generators.append(generator)
  return generators


class RepeatableEpochs(tf_keras.callbacks.Callback):
  """Makes each epoch's data order and dropout a function of (seed, epoch).

  Args:
    seed: The run's seed.
    models: The models whose random layers to reseed (default: the model
      being fitted; a `Distiller` passes its student).

  Attributes:
    epoch: int64 variable holding the epoch whose data the next iterator of
      an `epoch=`-keyed data set yields (see `examples.sequence_examples`).
  """

  def __init__(self, seed: int, models=None):
    super().__init__()
    self.seed = int(seed)
    self._models = models
    self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False,
                             name="data_epoch")

  def _initial_epoch(self) -> int:
    """The epoch `fit` starts at: after BackupAndRestore, the restored one."""
    load = getattr(self.model, "_maybe_load_initial_counters_from_ckpt",
                   None)
    if load is None:
      return 0
    return int(load(self.params.get("steps") or 1, 0)[0])

  def on_train_begin(self, logs=None):
    # Runs before fit creates the first epoch's iterator.
    self.epoch.assign(self._initial_epoch())

  def on_epoch_begin(self, epoch, logs=None):
    models = self._models or [self.model]
    generators = [g for model in models for g in random_generators(model)]
    for index, generator in enumerate(generators):
      generator.reset_from_seed(
          (self.seed * _EPOCH_STRIDE + epoch) * _EPOCH_STRIDE + index)

  def on_epoch_end(self, epoch, logs=None):
    # fit creates the next epoch's iterator before on_epoch_begin.
    self.epoch.assign(epoch + 1)


class BestEpoch(tf_keras.callbacks.Callback):
  """Early stopping on a validation metric that restores the best epoch,
  and resumes exactly.

  The state is the monitored value of every finished epoch, written to
  `directory`/state.json after each epoch (best epoch and patience follow
  from it), and the best epoch's weights, saved when it is reached. A fit
  resumed by `BackupAndRestore` reads both back, so that it stops where,
  and restores what, the uninterrupted fit would have; an epoch trained
  again after an interrupt replaces its own entry.

  Args:
    directory: Where the state and the best weights live (the caller's).
    monitor: A key of the epoch logs (e.g. "val_ndcg@10" of
      `RankingEvaluation`), higher is better.
    patience: Stop after this many epochs without improvement (0: never
      stop early; the best epoch is still restored).
    model_attribute: Which model to keep (e.g. "student" of a Distiller);
      default the model being fitted.

  Attributes:
    best_epoch: 0-based epoch whose weights the model holds after `fit`.
    epochs_trained: Epochs trained in all (stopping included).
    training_seconds: Wall time of those epochs (training and the epoch-end
      work before this callback, such as validation), summed over every
      process that trained them: the time of a fit, resumed or not, without
      the epochs an interrupt cut short; None if a state written before
      epoch times were kept holds some of the epochs.
  """

  def __init__(self, directory: str, monitor: str = "val_ndcg@10",
               patience: int = 2, model_attribute: str = ""):
    super().__init__()
    if patience < 0:
      raise ValueError(f"patience must be >= 0, got {patience}.")
    self.directory = directory
    self.monitor = monitor
    self.patience = patience
    self.model_attribute = model_attribute
    self.history = {}
    self.seconds = {}
    self.best_epoch = None
    self.epochs_trained = 0
    self._epoch_start = None

  @property
  def _state_path(self) -> str:
    return os.path.join(self.directory, "state.json")

  @property
  def _weights_path(self) -> str:
    return os.path.join(self.directory, "best", "weights")

  def _target(self):
    return (getattr(self.model, self.model_attribute)
            if self.model_attribute else self.model)

  def _best(self, history: dict):
    """(epoch, value) of the best epoch; the earliest of equals."""
    if not history:
      return None, None
    epoch = max(sorted(history), key=lambda e: history[e])
    return epoch, history[epoch]

  @property
  def training_seconds(self) -> Optional[float]:
    """None when an epoch's time is unknown (its state predates them)."""
    if any(e not in self.seconds for e in self.history):
      return None
    return float(sum(self.seconds[e] for e in self.history))

  def on_train_begin(self, logs=None):
    self.history, self.seconds = {}, {}
    if os.path.isfile(self._state_path):
      with open(self._state_path) as f:
        state = json.load(f)
      self.history = {int(e): v for e, v in state["history"].items()}
      # States written before epoch times were kept have none.
      self.seconds = {int(e): v for e, v in state.get("seconds", {}).items()}
    self.best_epoch, _ = self._best(self.history)
    self.epochs_trained = len(self.history)

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch_start = time.monotonic()

  def on_epoch_end(self, epoch, logs=None):
    if self.monitor not in (logs or {}):
      raise ValueError(f"BestEpoch monitors {self.monitor!r}, which the "
                       f"epoch logs lack ({sorted(logs or {})}).")
    self.history = {e: v for e, v in self.history.items() if e < epoch}
    self.history[epoch] = float(logs[self.monitor])
    if self._epoch_start is not None:
      self.seconds[epoch] = time.monotonic() - self._epoch_start
    best, _ = self._best(self.history)
    if best == epoch:
      self._target().save_weights(self._weights_path)
    os.makedirs(self.directory, exist_ok=True)
    partial = self._state_path + ".partial"
    with open(partial, "w") as f:
      json.dump({"monitor": self.monitor, "history": self.history,
                 "seconds": {e: v for e, v in self.seconds.items()
                             if e in self.history}}, f)
    os.replace(partial, self._state_path)
    self.best_epoch, self.epochs_trained = best, epoch + 1
    if self.patience and epoch - best >= self.patience:
      self.model.stop_training = True

  def on_train_end(self, logs=None):
    if self.best_epoch is not None and self.best_epoch + 1 != (
        self.epochs_trained):
      self._target().load_weights(self._weights_path).expect_partial()

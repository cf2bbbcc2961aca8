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

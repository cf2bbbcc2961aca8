"""Early stopping that restores the best epoch, across an interrupt."""

import json

import numpy as np
import pytest
import tf_keras

from tfdistill.resume import BestEpoch

SCORES = [0.1, 0.3, 0.2, 0.25, 0.4, 0.5]  # best at epoch 1 for patience 2


class _Scripted(tf_keras.callbacks.Callback):
  """Puts the scripted validation score of each epoch into the logs and
  remembers the weights each epoch ended with."""

  def __init__(self, interrupt_after=None):
    super().__init__()
    self.weights = {}
    self.interrupt_after = interrupt_after

  def on_epoch_end(self, epoch, logs=None):
    logs["val_ndcg@10"] = SCORES[epoch]
    self.weights[epoch] = [w.copy() for w in self.model.get_weights()]


class _Interrupt(tf_keras.callbacks.Callback):

  def __init__(self, after):
    super().__init__()
    self.after = after

  def on_epoch_end(self, epoch, logs=None):
    if epoch == self.after:
      raise KeyboardInterrupt


def _fit(tmp_path, callbacks_after=()):
  tf_keras.utils.set_random_seed(0)
  model = tf_keras.Sequential([tf_keras.layers.Dense(1)])
  model.compile(tf_keras.optimizers.SGD(0.1), loss="mse")
  x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
  y = x.sum(1, keepdims=True)
  scripted = _Scripted()
  best = BestEpoch(str(tmp_path / "best"), patience=2)
  callbacks = [scripted, best,
               tf_keras.callbacks.BackupAndRestore(str(tmp_path / "ckpt")),
               *callbacks_after]
  model.fit(x, y, epochs=len(SCORES), batch_size=8, shuffle=False,
            callbacks=callbacks, verbose=0)
  return model, scripted, best


def test_stops_after_patience_and_restores_the_best_epoch(tmp_path):
  model, scripted, best = _fit(tmp_path)
  assert best.best_epoch == 1 and best.epochs_trained == 4  # 2, 3 worse
  for kept, at_best in zip(model.get_weights(), scripted.weights[1]):
    np.testing.assert_array_equal(kept, at_best)


def test_an_interrupted_fit_stops_and_restores_as_the_whole_one(tmp_path):
  whole, _, _ = _fit(tmp_path / "a")
  with pytest.raises(KeyboardInterrupt):
    _fit(tmp_path / "b", [_Interrupt(2)])
  resumed, _, best = _fit(tmp_path / "b")
  assert best.best_epoch == 1 and best.epochs_trained == 4
  # The wall time of the four epochs trained, the first three timed by the
  # interrupted process (kept in the state it wrote).
  assert sorted(best.seconds) == [0, 1, 2, 3]
  assert all(s > 0 for s in best.seconds.values())
  assert best.training_seconds == pytest.approx(sum(best.seconds.values()))
  for a, b in zip(whole.get_weights(), resumed.get_weights()):
    np.testing.assert_array_equal(a, b)


def test_a_missing_metric_is_named(tmp_path):
  model = tf_keras.Sequential([tf_keras.layers.Dense(1)])
  model.compile("sgd", loss="mse")
  with pytest.raises(ValueError, match="val_ndcg@10"):
    model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=1, verbose=0,
              callbacks=[BestEpoch(str(tmp_path / "b"))])


def test_training_time_is_unknown_when_an_epoch_was_not_timed(tmp_path):
  """A state written before epoch times were kept: the sum of the timed
  epochs would undercount the training, so there is no total."""
  _fit(tmp_path / "a")
  path = str(tmp_path / "a" / "best" / "state.json")
  with open(path) as f:
    state = json.load(f)
  del state["seconds"]["0"]
  with open(path, "w") as f:
    json.dump(state, f)
  best = BestEpoch(str(tmp_path / "a" / "best"))
  best.on_train_begin()
  assert best.epochs_trained == 4 and best.training_seconds is None

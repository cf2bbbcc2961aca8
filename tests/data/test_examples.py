"""Sequence and pair example views."""

import numpy as np

from tfdistill.data import examples
from tfdistill.data.prepare import TRAIN


def test_context_windows_are_left_padded_per_user():
  items = np.array([5, 6, 7, 8, 9, 3, 4])
  starts = np.array([0, 0, 0, 5, 5])
  positions = np.array([1, 3, 4, 5, 6])
  got = examples.context_windows(items, starts, positions, 3)
  np.testing.assert_array_equal(got, [[0, 0, 5], [5, 6, 7], [6, 7, 8],
                                      [0, 0, 0], [0, 0, 3]])


def test_train_examples_cover_every_non_first_training_item(tiny_prepared):
  p = tiny_prepared
  arrays = examples.sequence_arrays(p, "train", 4)
  train = p.split == TRAIN
  users_with_train = len(np.unique(p.user[train]))
  assert len(arrays) == train.sum() - users_with_train
  # The last context item is the interaction right before the target.
  assert (arrays.contexts[:, -1] > 0).all()


def test_test_context_ends_with_validation_item(tiny_prepared):
  p = tiny_prepared
  test = examples.evaluation_set(p, "test", 4)
  validation = examples.evaluation_set(p, "validation", 4)
  np.testing.assert_array_equal(test.contexts[:, -1], validation.targets)
  # The history excluded at test time is everything before the target.
  first = test.seen(0)
  assert len(first) == np.count_nonzero(p.user == test.users[0]) - 1
  assert test.targets[0] not in validation.seen(0)


def test_sequence_dataset_batches(tiny_prepared):
  ds = examples.sequence_examples(tiny_prepared, "validation", 6,
                                  batch_size=8)
  features, labels = next(iter(ds))
  assert features["context"].shape == (8, 6)
  assert labels.shape == (8,)
  assert features["context"].dtype.name == "int32"


def test_pair_examples_carry_item_features(tiny_prepared):
  p = tiny_prepared
  ds = examples.pair_examples(p, "train", 3, batch_size=4, label="rating")
  features, rating = next(iter(ds))
  item = features["item"].numpy()
  np.testing.assert_array_equal(features["item_genres"].numpy(),
                                p.item_genres[item])
  np.testing.assert_array_equal(rating.numpy(), features["rating"].numpy())
  assert set(features) == {"user", "item", "rating", "timestamp",
                           "item_genres", "item_title", "context"}


def test_calibration_contexts_sample_every_user_alike(tiny_prepared):
  train = examples.sequence_arrays(tiny_prepared, "train", 4)
  sample = examples.calibration_contexts(tiny_prepared, 4, size=60, seed=1)
  # Rows of the training contexts (a context may occur more than once).
  lookup = {row.tobytes(): i for i, row in enumerate(train.contexts)}
  rows = [lookup[row.tobytes()] for row in sample]
  assert len(sample) == 60
  np.testing.assert_array_equal(
      sample, examples.calibration_contexts(tiny_prepared, 4, 60, seed=1))
  assert not np.array_equal(
      sample, examples.calibration_contexts(tiny_prepared, 4, 60, seed=2))
  # Drawn from the whole training set: about half from the first half of
  # its rows' users (the last 60 rows come from the last users only).
  early = train.users[rows] < np.median(train.users)
  assert 0.25 < early.mean() < 0.75
  assert not (train.users[-60:] < np.median(train.users)).any()
  everything = examples.calibration_contexts(tiny_prepared, 4, size=10**6)
  assert len(everything) == len(train)


def test_an_epoch_keyed_order_is_a_permutation_fixed_by_seed_and_epoch():
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  epoch = tf.Variable(0, dtype=tf.int64)
  data = examples.epoch_keyed_dataset((np.arange(50),), 8, 3, epoch)
  order = lambda: np.concatenate([b[0].numpy() for b in data])
  first = order()
  assert sorted(first) == list(range(50)) and list(first) != list(range(50))
  assert int(data.cardinality()) == 7
  epoch.assign(1)
  second = order()
  assert sorted(second) == list(range(50)) and list(second) != list(first)
  epoch.assign(0)
  np.testing.assert_array_equal(order(), first)  # epoch 0 again, as resumed

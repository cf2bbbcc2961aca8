"""Model-ready views of `PreparedData`: numpy arrays and `tf.data` pipelines.

Two views:

* sequence examples: the last `context_length` items before a target item
  (left-padded with 0) and the target, for next-item retrieval;
* pair examples: (user, item, rating, item features, recent context), for
  two-tower retrieval and ranking models.
"""

import dataclasses

import numpy as np

from tfdistill.data.prepare import PreparedData
from tfdistill.data.prepare import SPLIT_NAMES
from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.errors import ConfigError

CONTEXT = "context"
#: In a chunk of a user's sequence, the items before the chunk: the windows
#: of a student that distils at every position start in them.
PRECEDING = "preceding"
DEFAULT_CONTEXT_LENGTH = 20


def _split_code(split: str) -> int:
  if split not in SPLIT_NAMES:
    raise ConfigError(f"unknown split {split!r}; choose one of "
                      f"{sorted(SPLIT_NAMES)}.")
  return SPLIT_NAMES[split]


def _target_positions(prepared: PreparedData, split: str) -> np.ndarray:
  """Positions of the targets of a split in the sorted interaction arrays."""
  positions = np.flatnonzero(prepared.split == _split_code(split))
  if split == "train":
    # A training target needs at least one earlier item as context.
    positions = positions[positions > prepared.user_starts[positions]]
  return positions


def context_windows(items: np.ndarray, starts: np.ndarray,
                    positions: np.ndarray, length: int) -> np.ndarray:
  """The `length` items before each position (same user), left-padded with 0.

  Args:
    items: Item index per interaction, sorted by user then time.
    starts: Position of the first interaction of each target's user.
    positions: Target positions.
    length: Context length L.

  Returns:
    int32 [len(positions), L]; the most recent item is in the last column.
  """
  if length < 1:
    raise ConfigError(f"context_length must be >= 1, got {length}.")
  window = positions[:, None] + np.arange(-length, 0)[None, :]
  valid = window >= starts[:, None]
  return np.where(valid, items[np.maximum(window, 0)], 0).astype(np.int32)


@dataclasses.dataclass(frozen=True)
class SequenceArrays:
  """Sequence examples as arrays, with what each user had seen before.

  Attributes:
    contexts: int32 [n, L] recent items, left-padded with 0.
    targets: int32 [n] next item.
    users: int32 [n] user index.
    ratings: float32 [n] the user's rating of the target.
    seen_starts, seen_ends: the user's earlier items are
      `item_history[seen_starts[i]:seen_ends[i]]`; ranking metrics exclude them.
    item_history: item index per interaction (shared, not copied).
  """
  contexts: np.ndarray
  targets: np.ndarray
  users: np.ndarray
  ratings: np.ndarray
  seen_starts: np.ndarray
  seen_ends: np.ndarray
  item_history: np.ndarray

  def __len__(self) -> int:
    return len(self.targets)

  def seen(self, i: int) -> np.ndarray:
    return self.item_history[self.seen_starts[i]:self.seen_ends[i]]

  def take(self, index) -> "SequenceArrays":
    """A subset of the examples (index: slice, int array or boolean mask)."""
    return dataclasses.replace(
        self, contexts=self.contexts[index], targets=self.targets[index],
        users=self.users[index], ratings=self.ratings[index],
        seen_starts=self.seen_starts[index], seen_ends=self.seen_ends[index])


def sequence_arrays(prepared: PreparedData, split: str = "train",
                    context_length: int = DEFAULT_CONTEXT_LENGTH
                   ) -> SequenceArrays:
  """Builds sequence examples of one split as numpy arrays.

  For "train", every training interaction after a user's first is a target;
  for "validation" and "test", each user's held-out item is the target and the
  context ends right before it (for "test" it includes the validation item).
  """
  positions = _target_positions(prepared, split)
  starts = prepared.user_starts[positions]
  return SequenceArrays(
      contexts=context_windows(prepared.item, starts, positions,
                               context_length),
      targets=prepared.item[positions].astype(np.int32),
      users=prepared.user[positions].astype(np.int32),
      ratings=prepared.rating[positions].astype(np.float32),
      seen_starts=starts, seen_ends=positions, item_history=prepared.item)


def evaluation_set(prepared: PreparedData, split: str = "test",
                   context_length: int = DEFAULT_CONTEXT_LENGTH
                  ) -> SequenceArrays:
  """The held-out examples of a split, for `evaluate_retrieval`."""
  if split == "train":
    raise ConfigError("evaluation_set takes 'validation' or 'test'.")
  return sequence_arrays(prepared, split, context_length)


def calibration_contexts(prepared: PreparedData,
                         context_length: int = DEFAULT_CONTEXT_LENGTH,
                         size: int = 256, seed: int = 0) -> np.ndarray:
  """A uniform sample (seeded, in training order) of the training contexts.

  The int8 calibration data of `tflite.convert` and `compress_student`
  (`representative`). Not the first or last rows: they come from the first
  or last few users, whose padding differs from the rest, and calibrate
  int8 ranges for their histories only.
  """
  contexts = sequence_arrays(prepared, "train", context_length).contexts
  rows = np.random.default_rng(seed).choice(
      len(contexts), min(size, len(contexts)), replace=False)
  return contexts[np.sort(rows)]


def finish_dataset(dataset, batch_size: int = 0, shuffle: bool = False,
                   seed: int = 0, repeat: bool = False,
                   shuffle_buffer: int = 0):
  """Shuffle (seeded), repeat, batch and prefetch a tf.data of examples.

  The shuffle buffer defaults to the whole data set (at most 200k examples)
  when its size is known, else 100k.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if shuffle:
    size = int(dataset.cardinality())
    buffer = shuffle_buffer or (min(size, 200_000) if size > 0 else 100_000)
    dataset = dataset.shuffle(max(1, buffer), seed=seed,
                              reshuffle_each_iteration=True)
  if repeat:
    dataset = dataset.repeat()
  if batch_size:
    dataset = dataset.batch(batch_size)
  return dataset.prefetch(tf.data.AUTOTUNE)


def epoch_keyed_dataset(tensors, batch_size: int, seed: int, epoch):
  """Batches of `tensors` in an order that is a function of (seed, epoch).

  Each iterator reads `epoch` (an int64 variable, see
  `tfdistill.resume.RepeatableEpochs`) when it starts, and yields that
  epoch's permutation of the examples (`tf.random.experimental.
  index_shuffle`, stateless): epoch k has the same order in a training
  resumed at k as in one that ran from epoch 0.

  Args:
    tensors: A nested structure of arrays with the same first dimension.
    batch_size: Examples per batch (the last batch may be smaller).
    seed: The run's seed.
    epoch: int64 `tf.Variable`.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  size = len(tf.nest.flatten(tensors)[0])
  if size == 0:
    raise ConfigError("no training examples to shuffle.")
  batch_size = batch_size or size
  tensors = tf.nest.map_structure(tf.convert_to_tensor, tensors)

  # Plain TensorFlow ops, nothing for AutoGraph to convert.
  @tf.autograph.experimental.do_not_convert
  def one_epoch(current):
    key = tf.stack([tf.constant(seed, tf.int64), current])

    @tf.autograph.experimental.do_not_convert
    def take(positions):
      rows = tf.random.experimental.index_shuffle(positions, key, size - 1)
      return tf.nest.map_structure(lambda t: tf.gather(t, rows), tensors)

    return tf.data.Dataset.range(size).batch(batch_size).map(take)

  batches = -(-size // batch_size)
  dataset = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).map(
      lambda _: epoch.read_value()).flat_map(one_epoch)
  return dataset.apply(tf.data.experimental.assert_cardinality(
      batches)).prefetch(tf.data.AUTOTUNE)


def sequence_dataset(arrays: SequenceArrays, batch_size: int = 0,
                     shuffle: bool = False, seed: int = 0,
                     repeat: bool = False, with_ratings: bool = False,
                     epoch=None, with_users: bool = False):
  """`tf.data` of ({"context": [L]}, target) from `SequenceArrays`.

  With `with_ratings`, labels are {"item": target, "rating": rating} (for
  models that retrieve and rate). With `shuffle` and `epoch` (a
  `RepeatableEpochs.epoch`), each epoch's order is a function of (seed,
  epoch), so that a resumed training sees the uninterrupted one's data.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  labels = ({"item": arrays.targets, "rating": arrays.ratings}
            if with_ratings else arrays.targets)
  features = {CONTEXT: arrays.contexts}
  if with_users:
    features["user"] = arrays.users
  if shuffle and epoch is not None:
    if repeat:
      raise ConfigError("an epoch-keyed data set is not repeated; fit "
                        "iterates it once per epoch.")
    return epoch_keyed_dataset((features, labels), batch_size, seed, epoch)
  dataset = tf.data.Dataset.from_tensor_slices((features, labels))
  return finish_dataset(dataset, batch_size, shuffle, seed, repeat)


def sequence_examples(prepared: PreparedData, split: str = "train",
                      context_length: int = DEFAULT_CONTEXT_LENGTH,
                      batch_size: int = 0, shuffle: bool = False,
                      seed: int = 0, repeat: bool = False,
                      with_ratings: bool = False, epoch=None,
                      with_users: bool = False):
  """`tf.data` of next-item examples ({"context": int32 [L]}, target int32).

  Args:
    prepared: Prepared data.
    split: "train", "validation" or "test".
    context_length: L, the number of recent items (left-padded with 0).
    batch_size: Batch the examples if > 0.
    shuffle: Shuffle (seeded, reshuffled each epoch).
    seed: Shuffle seed.
    repeat: Repeat forever.
    with_ratings: Labels become {"item": target, "rating": rating}.
    with_users: Features also hold "user" (int32 user index), for teachers
      that read the user (e.g. a TFRS two-tower model on user ids).
    epoch: With `shuffle`, an int64 variable (`tfdistill.resume.
      RepeatableEpochs.epoch`) that makes each epoch's order a function of
      (seed, epoch), repeatable across an interrupted and resumed `fit`.

  Returns:
    A `tf.data.Dataset` ready for `Model.fit`.

  Example:
    >>> ds = sequence_examples(prepared, "train", context_length=20,
    ...                        batch_size=256, shuffle=True)
  """
  return sequence_dataset(
      sequence_arrays(prepared, split, context_length), batch_size, shuffle,
      seed, repeat, with_ratings, epoch, with_users)


def pair_arrays(prepared: PreparedData, split: str = "train",
                context_length: int = DEFAULT_CONTEXT_LENGTH) -> dict:
  """Pair examples of one split as a dict of numpy arrays."""
  positions = np.flatnonzero(prepared.split == _split_code(split))
  starts = prepared.user_starts[positions]
  item = prepared.item[positions].astype(np.int32)
  return {
      "user": prepared.user[positions].astype(np.int32),
      "item": item,
      "rating": prepared.rating[positions].astype(np.float32),
      "timestamp": prepared.timestamp[positions],
      "item_genres": prepared.item_genres[item],
      "item_title": prepared.item_title[item],
      CONTEXT: context_windows(prepared.item, starts, positions,
                               context_length),
  }


def pair_examples(prepared: PreparedData, split: str = "train",
                  context_length: int = DEFAULT_CONTEXT_LENGTH,
                  batch_size: int = 0, shuffle: bool = False, seed: int = 0,
                  repeat: bool = False, label: str = ""):
  """`tf.data` of (user, item, rating, features) examples.

  Features: "user", "item", "rating", "timestamp", "item_genres",
  "item_title" and "context" (the user's items before this one). TFRS models
  take the feature dict; pass `label="rating"` for (features, rating) pairs.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  features = pair_arrays(prepared, split, context_length)
  if label:
    if label not in features:
      raise ConfigError(f"label {label!r} is not a pair feature; choose one of "
                        f"{sorted(features)}.")
    dataset = tf.data.Dataset.from_tensor_slices((features, features[label]))
  else:
    dataset = tf.data.Dataset.from_tensor_slices(features)
  return finish_dataset(dataset, batch_size, shuffle, seed, repeat)



CANDIDATES = "candidates"


def candidate_arrays(prepared: PreparedData, split: str = "train",
                     num_candidates: int = 20, seed: int = 0) -> tuple:
  """Listwise ranking examples: each interaction's item among
  `num_candidates - 1` other items drawn uniformly from the catalog.

  Returns:
    ({"user": int32 [n], "candidates": int32 [n, C]}, label int32 [n]): the
    position of the interaction's item in its candidate list.
  """
  if num_candidates < 2:
    raise ConfigError(f"num_candidates must be >= 2, got {num_candidates}.")
  if num_candidates > prepared.num_items - NUM_RESERVED:
    raise ConfigError(f"num_candidates={num_candidates} is larger than the "
                      f"catalog ({prepared.num_items - NUM_RESERVED} items).")
  positions = np.flatnonzero(prepared.split == _split_code(split))
  items = prepared.item[positions].astype(np.int32)
  rng = np.random.default_rng(seed)
  # Others: uniform over the catalog without the interaction's own item.
  others = rng.integers(NUM_RESERVED, prepared.num_items - 1,
                        size=(len(items), num_candidates - 1)).astype(np.int32)
  others += others >= items[:, None]
  labels = rng.integers(0, num_candidates, size=len(items)).astype(np.int32)
  candidates = np.insert(others, 0, items, axis=1)
  order = np.argsort(rng.random((len(items), num_candidates)), axis=1)
  candidates = np.take_along_axis(candidates, order, axis=1)
  labels = np.argmax(order == 0, axis=1).astype(np.int32)
  return ({"user": prepared.user[positions].astype(np.int32),
           CANDIDATES: candidates}, labels)


def candidate_examples(prepared: PreparedData, split: str = "train",
                       num_candidates: int = 20, batch_size: int = 0,
                       shuffle: bool = False, seed: int = 0):
  """`tf.data` of `candidate_arrays`: ({"user", "candidates"}, position),
  for listwise ranking students and teachers that score each candidate."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  features, labels = candidate_arrays(prepared, split, num_candidates, seed)
  return finish_dataset(tf.data.Dataset.from_tensor_slices(
      (features, labels)), batch_size, shuffle, seed)


def sequence_chunks(prepared: PreparedData, length: int,
                    split: str = "train") -> tuple:
  """Every user's training sequence as chunks for all-position training.

  Each chunk holds `length` consecutive items as input and, shifted by one,
  the `length` items that follow each of them as targets (left-padded with
  0, the most recent last). Chunks are cut from the end of the sequence
  backwards, so that every training target of `sequence_arrays(prepared,
  "train")` appears exactly once. A chunk also carries the `length - 1`
  items of the user's sequence before its first input ("preceding",
  left-padded with 0): with them, the window of `length` items that ends at
  any position of the chunk is the context window that `sequence_arrays`
  gives the same target.

  Returns:
    ({"context": int32 [n, L], "preceding": int32 [n, L - 1]},
     targets int32 [n, L]).
  """
  if length < 1:
    raise ConfigError(f"context_length must be >= 1, got {length}.")
  code = _split_code(split)
  keep = prepared.split <= code if split != "train" else (
      prepared.split == code)
  items, users = prepared.item[keep], prepared.user[keep]
  starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
  ends = np.r_[starts[1:], len(users)]
  inputs, preceding, targets = [], [], []

  def left_padded(values, size):
    return np.r_[np.zeros(size - len(values), np.int32), values]

  for start, end in zip(starts, ends):
    sequence = items[start:end]
    # Targets are sequence[1:]; cut them into chunks from the end.
    for stop in range(len(sequence), 1, -length):
      first = max(1, stop - length)
      inputs.append(left_padded(sequence[first - 1:stop - 1], length))
      targets.append(left_padded(sequence[first:stop], length))
      preceding.append(left_padded(
          sequence[max(0, first - length):first - 1], length - 1))
  rows = len(inputs)  # explicit: -1 cannot be inferred for width 0
  return ({CONTEXT: np.asarray(inputs, np.int32).reshape(rows, length),
           PRECEDING: np.asarray(preceding, np.int32).reshape(
               rows, length - 1)},
          np.asarray(targets, np.int32).reshape(rows, length))


def chunk_examples(prepared: PreparedData, length: int, batch_size: int = 0,
                   shuffle: bool = False, seed: int = 0, epoch=None):
  """`tf.data` of `sequence_chunks`: ({"context": [L], "preceding":
  [L - 1]}, targets [L]), for
  a teacher trained on every position at once (`objective="all_positions"`);
  `epoch` as in `sequence_examples`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  features, targets = sequence_chunks(prepared, length)
  if shuffle and epoch is not None:
    return epoch_keyed_dataset((features, targets), batch_size, seed, epoch)
  return finish_dataset(tf.data.Dataset.from_tensor_slices(
      (features, targets)), batch_size, shuffle, seed)

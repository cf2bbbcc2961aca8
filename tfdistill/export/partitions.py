"""Approximate top-K for large catalogs: a partitioned item index in the graph.

At export time the student's item vectors are clustered with k-means into
`P` partitions of at most `S` items each (a capacity keeps the partitions
balanced, so the padded [P, S] layout wastes little). Per request the model
scores the `P` centroids, keeps the `probe` best partitions, and scores only
their items: `P + probe * S` dot products instead of `N`. Everything is
builtin TFLite ops (FULLY_CONNECTED, TOPK_V2, GATHER, BATCH_MATMUL): no
custom ops and no ScaNN on the device.

Empty slots hold the padding id, which the top-K excludes like the context's
own items.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.data.vocab import PAD_INDEX
from tfdistill.errors import ExportError

#: How much larger than the mean a partition may grow (the padded slots of
#: the [P, S] layout cost memory and dot products).
CAPACITY_FACTOR = 1.25
#: Nearest centroids each item may fall back to when its first is full.
FALLBACK_CHOICES = 8
#: k-means (Lloyd) iterations, and items sampled to fit the centroids.
KMEANS_ITERATIONS = 12
KMEANS_SAMPLE = 200_000
#: Least number of partitions probed by default.
MIN_PROBE = 8


@dataclasses.dataclass(frozen=True)
class PartitionConfig:
  """Approximate top-K inside the exported model.

  Attributes:
    partitions: Number of partitions P (0: exact search over the catalog;
      -1: about the square root of the catalog size).
    probe: Partitions whose items are scored per request (default: a
      twentieth of the partitions, at least `MIN_PROBE`).
    seed: Seed of the k-means initialisation.
  """
  partitions: int = 0
  probe: int = 0
  seed: int = 0

  @property
  def enabled(self) -> bool:
    return self.partitions != 0

  def resolved(self, num_items: int) -> "PartitionConfig":
    """The configuration with automatic values filled in for a catalog."""
    real = num_items - NUM_RESERVED
    partitions = (max(2, round(math.sqrt(real))) if self.partitions == -1
                  else self.partitions)
    if not 2 <= partitions <= real:
      raise ExportError(f"--partitions={self.partitions} must be 0 (exact), "
                        f"-1 (automatic) or in [2, {real}] for a catalog of "
                        f"{real} items.")
    probe = self.probe or min(partitions, max(MIN_PROBE,
                                               math.ceil(partitions / 20)))
    if not 1 <= probe <= partitions:
      raise ExportError(f"--probe={self.probe} must be in [1, {partitions}] "
                        f"(the number of partitions).")
    return dataclasses.replace(self, partitions=partitions, probe=probe)


@dataclasses.dataclass(frozen=True)
class PartitionIndex:
  """Centroids [P, d] and the item index in each slot [P, S] (PAD if empty)."""
  centroids: np.ndarray
  slots: np.ndarray
  probe: int

  @property
  def slot_of_item(self) -> np.ndarray:
    """int32 [N]: each item's position in `slots.ravel()` (reserved ids: 0)."""
    flat = self.slots.ravel()
    where = np.zeros(max(int(flat.max()) + 1, NUM_RESERVED), np.int32)
    filled = np.flatnonzero(flat != PAD_INDEX)
    where[flat[filled]] = filled
    return where


def _squared_distances(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
  return ((x * x).sum(1, keepdims=True) - 2.0 * x @ centroids.T
          + (centroids * centroids).sum(1)[None])


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
  sample = x[rng.choice(len(x), min(len(x), KMEANS_SAMPLE), replace=False)]
  centroids = sample[rng.choice(len(sample), k, replace=False)].copy()
  for _ in range(KMEANS_ITERATIONS):
    nearest = np.concatenate([
        _squared_distances(chunk, centroids).argmin(1)
        for chunk in np.array_split(sample, max(1, len(sample) // 20_000))])
    sums = np.zeros_like(centroids)
    np.add.at(sums, nearest, sample)
    counts = np.bincount(nearest, minlength=k)
    empty = counts == 0
    centroids[~empty] = sums[~empty] / counts[~empty, None]
    # An empty cluster restarts at a random sample point.
    centroids[empty] = sample[rng.choice(len(sample), int(empty.sum()))]
  return centroids


def _balanced_assignment(x: np.ndarray, centroids: np.ndarray,
                         capacity: int) -> np.ndarray:
  """Each row's partition: its nearest centroid with room left.

  Rows claim partitions in rounds (first choice, then second, ...); within a
  partition the closest rows win, so a full partition pushes out the rows
  that fit it least.
  """
  choices = min(FALLBACK_CHOICES, len(centroids))
  ranked, distance = [], []
  for chunk in np.array_split(x, max(1, len(x) // 20_000)):
    d = _squared_distances(chunk, centroids)
    order = np.argpartition(d, choices - 1, axis=1)[:, :choices]
    part = np.take_along_axis(d, order, 1)
    sort = np.argsort(part, axis=1)
    ranked.append(np.take_along_axis(order, sort, 1))
    distance.append(np.take_along_axis(part, sort, 1))
  ranked, distance = np.concatenate(ranked), np.concatenate(distance)
  assigned = np.full(len(x), -1)
  room = np.full(len(centroids), capacity)
  for choice in range(choices):
    rows = np.flatnonzero(assigned < 0)
    if len(rows) == 0:
      break
    wanted = ranked[rows, choice]
    order = np.lexsort((distance[rows, choice], wanted))
    rows, wanted = rows[order], wanted[order]
    # Rank of each row among the rows wanting the same partition.
    starts = np.searchsorted(wanted, wanted, side="left")
    rank = np.arange(len(rows)) - starts
    take = rank < room[wanted]
    assigned[rows[take]] = wanted[take]
    room -= np.bincount(wanted[take], minlength=len(centroids))
  for row in np.flatnonzero(assigned < 0):  # rare: all choices were full
    partition = int(np.argmax(room))
    assigned[row] = partition
    room[partition] -= 1
  return assigned


def build_index(vectors: np.ndarray, config: PartitionConfig) -> PartitionIndex:
  """Partitions the catalog's item vectors [N, d] (rows below NUM_RESERVED
  are padding/OOV and stay out of the index)."""
  config = config.resolved(len(vectors))
  items = np.asarray(vectors, np.float32)[NUM_RESERVED:]
  rng = np.random.default_rng(config.seed)
  centroids = _kmeans(items, config.partitions, rng)
  capacity = math.ceil(CAPACITY_FACTOR * len(items) / config.partitions)
  assigned = _balanced_assignment(items, centroids, capacity)
  counts = np.bincount(assigned, minlength=config.partitions)
  # Centroids of the final (balanced) partitions.
  sums = np.zeros_like(centroids)
  np.add.at(sums, assigned, items)
  centroids = np.where(counts[:, None] > 0,
                       sums / np.maximum(counts, 1)[:, None], centroids)
  slots = np.full((config.partitions, int(counts.max())), PAD_INDEX, np.int32)
  order = np.argsort(assigned, kind="stable")
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  position = np.arange(len(items)) - starts[assigned[order]]
  slots[assigned[order], position] = order + NUM_RESERVED
  return PartitionIndex(centroids.astype(np.float32), slots, config.probe)


class PartitionedCatalog(tf.Module):
  """The index as graph state: scores the items of the best partitions."""

  def __init__(self, vectors: np.ndarray, index: PartitionIndex):
    super().__init__(name="partitioned_catalog")
    vectors = np.asarray(vectors, np.float32)
    flat = index.slots.ravel()
    self.num_partitions, self.size = index.slots.shape
    self.probe = index.probe
    self.centroids = tf.Variable(index.centroids, trainable=False,
                                 name="centroids")
    # Item vectors in slot order (a partition's items are contiguous), then
    # the reserved rows (padding, OOV) that contexts may hold. One table
    # serves both the context lookup and the scoring.
    where = index.slot_of_item
    where[:NUM_RESERVED] = len(flat) + np.arange(NUM_RESERVED)
    self.table = tf.Variable(np.concatenate([
        vectors[flat] * (flat != PAD_INDEX)[:, None],
        vectors[:NUM_RESERVED]]), trainable=False, name="table")
    self.slots = tf.Variable(flat, trainable=False, name="slots")
    self.slot_of_item = tf.Variable(where, trainable=False,
                                    name="slot_of_item")

  def item_vectors(self, ids):
    """Vectors of item ids [...] -> [..., d]."""
    return tf.gather(self.table, tf.gather(self.slot_of_item, ids))

  def candidates(self, queries):
    """queries [B, d] -> (scores [B, C], item ids [B, C]), C = probe * S.

    Empty slots score below every real candidate of the row (no large
    constant: those break int8 graphs).
    """
    near = tf.matmul(queries, self.centroids, transpose_b=True)
    _, best = tf.math.top_k(near, k=self.probe)
    rows = tf.reshape(best[:, :, tf.newaxis] * self.size
                      + tf.range(self.size)[tf.newaxis, tf.newaxis],
                      [-1, self.probe * self.size])
    vectors = tf.gather(self.table, rows)           # [B, C, d]
    ids = tf.gather(self.slots, rows)
    scores = tf.squeeze(tf.matmul(vectors, queries[:, :, tf.newaxis]), -1)
    empty = tf.equal(ids, PAD_INDEX)
    floor = tf.reduce_min(scores, axis=-1, keepdims=True) - 1.0
    return tf.where(empty, floor, scores), ids


def recall_at_k(approximate_ids: np.ndarray, exact_ids: np.ndarray) -> float:
  """Mean share of each row's exact top-K found by the approximate top-K."""
  k = exact_ids.shape[1]
  return float(np.mean([len(set(a) & set(e)) / k
                        for a, e in zip(approximate_ids, exact_ids)]))

"""Approximate top-K for large catalogs: a partitioned item index in the graph.

At export time the student's item vectors are clustered with k-means, and
each cluster is cut into blocks of equal size `S` along its principal
direction: the partitions. Each partition is scored by the mean of its items.
Per request the model scores the `P` partition means, keeps the `probe` best
partitions, and scores only their items: `P + probe * S` dot products
instead of `N`. Clusters follow the data (no capacity pushes an item out of
its nearest cluster) while the equal blocks keep the [P, S] layout dense;
the finer blocks also sharpen the partition scores. Everything is builtin
TFLite ops (FULLY_CONNECTED, TOPK_V2, GATHER, BATCH_MATMUL): no custom ops
and no ScaNN on the device.

Empty slots hold the padding id, which the top-K excludes like the context's
own items.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.data.vocab import PAD_INDEX
from tfdistill.export.config import PartitionConfig  # pylint: disable=unused-import  # re-exported

#: Partitions per k-means cluster (each cluster is cut into about this many
#: equal blocks).
BLOCKS_PER_CLUSTER = 4
#: k-means (Lloyd) iterations, and items sampled to fit the centroids.
KMEANS_ITERATIONS = 12
KMEANS_SAMPLE = 200_000


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
    nearest = nearest_centroids(sample, centroids)
    sums = np.zeros_like(centroids)
    np.add.at(sums, nearest, sample)
    counts = np.bincount(nearest, minlength=k)
    empty = counts == 0
    centroids[~empty] = sums[~empty] / counts[~empty, None]
    # An empty cluster restarts at a random sample point.
    centroids[empty] = sample[rng.choice(len(sample), int(empty.sum()))]
  return centroids


def nearest_centroids(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
  """The index of each row of `x`'s nearest centroid (squared Euclidean),
  computed in chunks of rows."""
  return np.concatenate([
      _squared_distances(chunk, centroids).argmin(1)
      for chunk in np.array_split(x, max(1, len(x) // 20_000))])


def _blocks(members: np.ndarray, items: np.ndarray, size: int) -> list:
  """A cluster's members cut into blocks of `size`, in the order of their
  projection on the cluster's principal direction."""
  if len(members) > size:
    centered = items[members] - items[members].mean(0)
    direction = np.linalg.svd(centered, full_matrices=False)[2][0]
    members = members[np.argsort(centered @ direction, kind="stable")]
  return [members[start:start + size]
          for start in range(0, len(members), size)]


def build_index(vectors: np.ndarray, config: PartitionConfig) -> PartitionIndex:
  """Partitions the catalog's item vectors [N, d] (rows below NUM_RESERVED
  are padding/OOV and stay out of the index)."""
  config = config.resolved(len(vectors))
  items = np.asarray(vectors, np.float32)[NUM_RESERVED:]
  rng = np.random.default_rng(config.seed)
  size = math.ceil(len(items) / config.partitions)
  clusters = max(1, config.partitions // BLOCKS_PER_CLUSTER)
  assigned = nearest_centroids(items, _kmeans(items, clusters, rng))
  order = np.argsort(assigned, kind="stable")
  bounds = np.cumsum(np.bincount(assigned, minlength=clusters))[:-1]
  blocks = [block for members in np.split(order, bounds) if len(members)
            for block in _blocks(members, items, size)]
  slots = np.full((len(blocks), size), PAD_INDEX, np.int32)
  for row, block in enumerate(blocks):
    slots[row, :len(block)] = block + NUM_RESERVED
  centroids = np.stack([items[block].mean(0) for block in blocks])
  probe = (len(blocks) if config.probe >= config.partitions
           else min(config.probe, len(blocks)))
  return PartitionIndex(centroids.astype(np.float32), slots, probe)


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

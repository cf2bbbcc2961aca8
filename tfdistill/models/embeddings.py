"""Item embedding tables: full, low-rank factorized, hashing, quotient-remainder.

All map integer ids [...] to vectors [..., dim] and are prunable with TF Model
Optimization (they declare their prunable weights).
"""

import dataclasses
import math

import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from tfdistill.errors import ConfigError
from tfdistill.models.registry import register

_PrunableLayer = tfmot.sparsity.keras.PrunableLayer
EMBEDDING_KINDS = ("full", "low_rank", "hash", "quotient_remainder")


@register
class LowRankEmbedding(tf_keras.layers.Layer, _PrunableLayer):
  """E = A @ B with A [num_items, rank] and B [rank, dim]."""

  def __init__(self, num_items: int, dim: int, rank: int, **kwargs):
    super().__init__(**kwargs)
    if not 1 <= rank <= dim:
      raise ConfigError(f"low-rank embedding rank must be in [1, {dim}], got "
                        f"{rank}.")
    self.num_items, self.dim, self.rank = num_items, dim, rank

  def build(self, input_shape):
    self.factors = self.add_weight(
        name="factors", shape=(self.num_items, self.rank),
        initializer=tf_keras.initializers.RandomUniform(-0.05, 0.05))
    self.projection = self.add_weight(
        name="projection", shape=(self.rank, self.dim),
        initializer="glorot_uniform")
    super().build(input_shape)

  def call(self, ids):
    return tf.matmul(tf.gather(self.factors, ids), self.projection)

  def get_prunable_weights(self):
    return [self.factors, self.projection]

  def get_config(self):
    return dict(super().get_config(), num_items=self.num_items, dim=self.dim,
                rank=self.rank)


@register
class HashEmbedding(tf_keras.layers.Layer, _PrunableLayer):
  """Hashing trick with two hash functions: E[i] = T[h1(i)] + T[h2(i)].

  Two hashes make it unlikely that two items share both buckets. The hashes
  are multiplicative int32 hashes, exact in TFLite.
  """

  # (a, b) pairs; a * id + b stays below 2**31 for ids below 2**31 / a.
  _HASHES = ((9973, 7), (7919, 104729))

  def __init__(self, num_items: int, dim: int, num_buckets: int, **kwargs):
    super().__init__(**kwargs)
    if num_buckets < 2:
      raise ConfigError(f"hash embedding needs >= 2 buckets, got {num_buckets}.")
    limit = (2**31 - 1 - 104729) // 9973
    if num_items > limit:
      raise ConfigError(f"hash embedding supports at most {limit} items, got "
                        f"{num_items}.")
    self.num_items, self.dim, self.num_buckets = num_items, dim, num_buckets

  def build(self, input_shape):
    self.table = self.add_weight(
        name="table", shape=(self.num_buckets, self.dim),
        initializer=tf_keras.initializers.RandomUniform(-0.05, 0.05))
    super().build(input_shape)

  def call(self, ids):
    ids = tf.cast(ids, tf.int32)
    vectors = 0.0
    for a, b in self._HASHES:
      vectors += tf.gather(self.table, tf.math.floormod(a * ids + b,
                                                        self.num_buckets))
    return vectors

  def get_prunable_weights(self):
    return [self.table]

  def get_config(self):
    return dict(super().get_config(), num_items=self.num_items, dim=self.dim,
                num_buckets=self.num_buckets)


@register
class QuotientRemainderEmbedding(tf_keras.layers.Layer, _PrunableLayer):
  """E[i] = Q[i // m] * R[i % m] (Shi et al., 2020), unique per item."""

  def __init__(self, num_items: int, dim: int, num_remainders: int = 0,
               **kwargs):
    super().__init__(**kwargs)
    self.num_items, self.dim = num_items, dim
    self.num_remainders = num_remainders or max(2, math.isqrt(num_items - 1) + 1)
    self.num_quotients = -(-num_items // self.num_remainders)

  def build(self, input_shape):
    self.quotients = self.add_weight(
        name="quotients", shape=(self.num_quotients, self.dim),
        initializer=tf_keras.initializers.RandomUniform(-0.5, 0.5))
    self.remainders = self.add_weight(
        name="remainders", shape=(self.num_remainders, self.dim),
        initializer=tf_keras.initializers.RandomUniform(-0.5, 0.5))
    super().build(input_shape)

  def call(self, ids):
    ids = tf.cast(ids, tf.int32)
    return (tf.gather(self.quotients, ids // self.num_remainders) *
            tf.gather(self.remainders, tf.math.floormod(ids,
                                                        self.num_remainders)))

  def get_prunable_weights(self):
    return [self.quotients, self.remainders]

  def get_config(self):
    return dict(super().get_config(), num_items=self.num_items, dim=self.dim,
                num_remainders=self.num_remainders)


@dataclasses.dataclass(frozen=True)
class EmbeddingConfig:
  """Which item table a student uses.

  Attributes:
    kind: "full", "low_rank", "hash" or "quotient_remainder".
    rank: Inner rank of "low_rank".
    num_buckets: Buckets of "hash" (default: a quarter of the catalog).
  """
  kind: str = "full"
  rank: int = 8
  num_buckets: int = 0

  def __post_init__(self):
    if self.kind not in EMBEDDING_KINDS:
      raise ConfigError(f"unknown embedding kind {self.kind!r}; choose one of "
                        f"{EMBEDDING_KINDS}.")


def item_embedding(config: EmbeddingConfig, num_items: int, dim: int,
                   name: str = "item_embedding") -> tf_keras.layers.Layer:
  """Builds the item table described by `config`."""
  if config.kind == "full":
    return tf_keras.layers.Embedding(
        num_items, dim, name=name,
        embeddings_initializer=tf_keras.initializers.RandomUniform(-0.05,
                                                                   0.05))
  if config.kind == "low_rank":
    return LowRankEmbedding(num_items, dim, config.rank, name=name)
  if config.kind == "hash":
    return HashEmbedding(num_items, dim,
                         config.num_buckets or max(2, num_items // 4),
                         name=name)
  return QuotientRemainderEmbedding(num_items, dim, name=name)

"""Item embedding tables: full, low-rank factorized, hashing, quotient-remainder,
mixed-dimension and product-quantized.

All map integer ids [...] to vectors [..., dim] and are prunable with TF Model
Optimization (they declare their prunable weights).
"""

import math

import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from tfdistill.errors import ConfigError
from tfdistill.models.configs import EmbeddingConfig  # pylint: disable=unused-import  # re-exported
from tfdistill.models.registry import register

_PrunableLayer = tfmot.sparsity.keras.PrunableLayer


def _table(layer, name: str, rows: int, width: int):
  """A [rows, width] table of `layer`, initialised like Keras Embedding's."""
  return layer.add_weight(
      name=name, shape=(rows, width),
      initializer=tf_keras.initializers.RandomUniform(-0.05, 0.05))


def _projection(layer, rank: int, dim: int):
  """The [rank, dim] projection of a factored table of `layer`."""
  return layer.add_weight(name="projection", shape=(rank, dim),
                          initializer="glorot_uniform")


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
    self.factors = _table(self, "factors", self.num_items, self.rank)
    self.projection = _projection(self, self.rank, self.dim)
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
    self.table = _table(self, "table", self.num_buckets, self.dim)
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


@register
class MixedDimensionEmbedding(tf_keras.layers.Layer, _PrunableLayer):
  """Full-width rows for the first items, narrow projected rows for the rest.

  E[i] = H[i] for i < head_items, else T[i - head_items] @ P, with H
  [head_items, dim], T [num_items - head_items, rank] and P [rank, dim]
  (mixed-dimension embeddings, Ginart et al., ISIT 2021). tfdistill's
  vocabularies order items by decreasing training count, so the head is
  the most popular items, which most targets are: at the parameters of a
  narrow full table, they are scored in `dim` dimensions.

  Example:
    >>> table = MixedDimensionEmbedding(num_items=1000, dim=32,
    ...                                 head_items=100, rank=4)
    >>> table(tf.constant([3, 500])).shape
    TensorShape([2, 32])
  """

  def __init__(self, num_items: int, dim: int, head_items: int, rank: int,
               **kwargs):
    super().__init__(**kwargs)
    if not 1 <= head_items < num_items:
      raise ConfigError(f"mixed embedding head_items must be in [1, "
                        f"{num_items - 1}], got {head_items}.")
    if not 1 <= rank <= dim:
      raise ConfigError(f"mixed embedding rank must be in [1, {dim}], got "
                        f"{rank}.")
    self.num_items, self.dim = num_items, dim
    self.head_items, self.rank = head_items, rank

  def build(self, input_shape):
    self.head = _table(self, "head", self.head_items, self.dim)
    self.tail = _table(self, "tail", self.num_items - self.head_items,
                       self.rank)
    self.projection = _projection(self, self.rank, self.dim)
    super().build(input_shape)

  def call(self, ids):
    # The student looks up the whole catalog with its context (to score
    # it), so the table is built once and read once.
    table = tf.concat([self.head, tf.matmul(self.tail, self.projection)], 0)
    return tf.gather(table, tf.cast(ids, tf.int32))

  def get_prunable_weights(self):
    return [self.head, self.tail, self.projection]

  def get_config(self):
    return dict(super().get_config(), num_items=self.num_items, dim=self.dim,
                head_items=self.head_items, rank=self.rank)


@register
class ProductQuantizedEmbedding(tf_keras.layers.Layer, _PrunableLayer):
  """Each item a concatenation of codewords: E[i] = [C_1[c_i1], ..., C_M[c_iM]].

  Product quantization of an item table (Jegou et al., TPAMI 2011; for
  recommenders' tables, LightRec, Lian et al., WWW 2020): M codebooks C_m
  [codewords, dim / M] are trained, and each item stores M integer codes
  c_i [M], a non-trainable int32 table. At the parameters of a narrow full
  table, the items are scored in `dim` dimensions. The codes start random
  (every item a distinct, random combination of codewords);
  `tfdistill.distill.transfer_item_embeddings` sets them to the nearest
  codewords of the teacher's items (k-means in each of the M slices).
  `count_parameters` counts the codes with the trainable weights.

  Example:
    >>> table = ProductQuantizedEmbedding(num_items=1000, dim=32,
    ...                                   num_codebooks=4, codewords=64)
    >>> table(tf.constant([3, 500])).shape
    TensorShape([2, 32])
  """

  def __init__(self, num_items: int, dim: int, num_codebooks: int,
               codewords: int, **kwargs):
    super().__init__(**kwargs)
    if num_codebooks < 1 or dim % num_codebooks:
      raise ConfigError(f"product-quantized embedding: num_codebooks "
                        f"({num_codebooks}) must divide the width ({dim}).")
    if codewords < 2:
      raise ConfigError(f"product-quantized embedding needs >= 2 codewords "
                        f"per codebook, got {codewords}.")
    self.num_items, self.dim = num_items, dim
    self.num_codebooks, self.codewords = num_codebooks, codewords

  def build(self, input_shape):
    self.codes = self.add_weight(
        name="codes", shape=(self.num_items, self.num_codebooks),
        dtype=tf.int32, trainable=False,
        initializer=tf_keras.initializers.RandomUniform(0, self.codewords))
    self.codebooks = self.add_weight(
        name="codebooks", shape=(self.num_codebooks, self.codewords,
                                 self.dim // self.num_codebooks),
        initializer=tf_keras.initializers.RandomUniform(-0.05, 0.05))
    super().build(input_shape)

  def table(self):
    """The whole table [num_items, dim]."""
    flat = tf.reshape(self.codebooks, (self.num_codebooks * self.codewords,
                                       self.dim // self.num_codebooks))
    offsets = tf.range(self.num_codebooks, dtype=tf.int32) * self.codewords
    return tf.reshape(tf.gather(flat, self.codes + offsets),
                      (self.num_items, self.dim))

  def call(self, ids):
    # As MixedDimensionEmbedding: the student reads the whole catalog with
    # its context, so the table is built once per call.
    return tf.gather(self.table(), tf.cast(ids, tf.int32))

  def stored_parameters(self) -> int:
    """The codes, stored with the model though not trained by gradients."""
    return self.num_items * self.num_codebooks

  def get_prunable_weights(self):
    return [self.codebooks]

  def get_config(self):
    return dict(super().get_config(), num_items=self.num_items, dim=self.dim,
                num_codebooks=self.num_codebooks, codewords=self.codewords)


#: The item-table layers a student may use (pruned as tables).
ITEM_TABLES = (tf_keras.layers.Embedding, LowRankEmbedding, HashEmbedding,
               QuotientRemainderEmbedding, MixedDimensionEmbedding,
               ProductQuantizedEmbedding)


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
  if config.kind == "mixed":
    return MixedDimensionEmbedding(
        num_items, dim, config.head_items or max(1, num_items // 8),
        config.rank, name=name)
  if config.kind == "product_quantized":
    return ProductQuantizedEmbedding(num_items, dim, config.num_codebooks,
                                     config.codewords, name=name)
  return QuotientRemainderEmbedding(num_items, dim, name=name)

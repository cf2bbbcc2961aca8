"""Keras layers shared by teachers and students.

Every layer is registered with Keras under the "tfdistill" package and
implements `get_config`, so models that use them save and load.
"""

import tensorflow as tf
import tf_keras

from tfdistill.models.registry import register


@register
class MaskedMean(tf_keras.layers.Layer):
  """Mean of embeddings over positions whose id is not padding (0).

  Call with `[embeddings [B, L, d], ids [B, L]]`; returns [B, d]. Rows with
  only padding give zeros.
  """

  def call(self, inputs):
    embeddings, ids = inputs
    mask = tf.cast(tf.not_equal(ids, 0), embeddings.dtype)[..., tf.newaxis]
    total = tf.reduce_sum(embeddings * mask, axis=-2)
    return total / tf.maximum(tf.reduce_sum(mask, axis=-2), 1.0)


def masked_softmax_pool(scores, values, ids):
  """Sum of `values` [B, L, e] weighted by a softmax of `scores` ([B, L] or
  [1, L]) over the non-padding positions of `ids` [B, L].

  Written as exp * mask / sum rather than with a large negative score at
  padding: such a sentinel stretches the int8 range of the whole tensor and
  ruins full-integer TFLite models. An all-padding row pools to zeros.
  """
  scores = tf.exp(scores - tf.reduce_max(scores, -1, keepdims=True))
  scores = scores * tf.cast(tf.not_equal(ids, 0), scores.dtype)
  weights = scores / tf.maximum(tf.reduce_sum(scores, -1, keepdims=True),
                                1e-9)
  return tf.reduce_sum(values * weights[..., tf.newaxis], axis=-2)


def causal_weighted_mean(position_logits: tf.Tensor, vectors: tf.Tensor,
                         ids: tf.Tensor, outputs: int) -> tf.Tensor:
  """`masked_softmax_pool` of every window of a sequence, in one pass.

  `vectors` [B, S, d] and `ids` [B, S] hold a sequence whose last `outputs`
  positions each end a window of W = len(`position_logits`) items (S = W -
  1 + `outputs`). Returns [B, outputs, d]: for each window, its vectors
  weighted by the softmax of `position_logits` (slot W - 1 the most
  recent) over its non-padding slots, a window of padding giving zeros.
  """
  width = position_logits.shape[0]
  span = tf.shape(ids)[1]
  weights = tf.exp(position_logits - tf.reduce_max(position_logits))
  # [outputs, S]: the weight of sequence position s in the window that
  # position t of the output ends (slot s - t), 0 outside the window.
  slot = tf.range(span)[tf.newaxis] - tf.range(outputs)[:, tf.newaxis]
  inside = tf.logical_and(slot >= 0, slot < width)
  band = tf.where(inside, tf.gather(weights, tf.clip_by_value(
      slot, 0, width - 1)), tf.zeros([], weights.dtype))
  mask = tf.cast(tf.not_equal(ids, 0), vectors.dtype)
  total = tf.einsum("ts,bs->bt", band, mask)
  pooled = tf.einsum("ts,bsd->btd", band, vectors * mask[..., tf.newaxis])
  return pooled / tf.maximum(total, 1e-9)[..., tf.newaxis]


@register
class PositionWeightedMean(tf_keras.layers.Layer):
  """Order-aware bag of items: a learned softmax weight per position.

  A plain mean forgets which item came last; one weight per position (L
  parameters) lets the model lean on the most recent items.
  """

  def build(self, input_shape):
    length = input_shape[0][-2]
    self.position_logits = self.add_weight(
        name="position_logits", shape=(length,), initializer="zeros")
    super().build(input_shape)

  def call(self, inputs):
    embeddings, ids = inputs
    return masked_softmax_pool(self.position_logits[tf.newaxis], embeddings,
                               ids)


@register
class LastPosition(tf_keras.layers.Layer):
  """The vector at the last position of [B, L, d]: the most recent item of
  a left-padded context."""

  def call(self, inputs):
    return inputs[:, -1]


@register
class QueriedPooling(tf_keras.layers.Layer):
  """Attention pooling of a context with one query per row.

  Call with `[query [B, d], keys [B, L, d], values [B, L, e], ids [B, L]]`;
  returns [B, e], the values weighted by a softmax over the non-padding
  positions of `query . key / sqrt(d) + b`, with one learned bias `b` per
  position (the recency prior of `PositionWeightedMean`), through
  `masked_softmax_pool`.
  """

  def build(self, input_shape):
    self.position_logits = self.add_weight(
        name="position_logits", shape=(input_shape[1][-2],),
        initializer="zeros")
    super().build(input_shape)

  def call(self, inputs):
    query, keys, values, ids = inputs
    scale = tf.math.rsqrt(tf.cast(tf.shape(keys)[-1], keys.dtype))
    scores = (tf.einsum("bd,bld->bl", query, keys) * scale
              + self.position_logits[tf.newaxis])
    return masked_softmax_pool(scores, values, ids)


@register
class PositionEmbedding(tf_keras.layers.Layer):
  """Adds a learned embedding per position to [B, L, d] inputs."""

  def build(self, input_shape):
    self.positions = self.add_weight(
        name="positions", shape=input_shape[-2:],
        initializer=tf_keras.initializers.RandomNormal(stddev=0.02))
    super().build(input_shape)

  def call(self, inputs):
    return inputs + self.positions[tf.newaxis]


@register
class TransformerBlock(tf_keras.layers.Layer):
  """Pre-norm self-attention block over a padded item sequence."""

  def __init__(self, num_heads: int, ffn_dim: int, dropout: float = 0.1,
               **kwargs):
    super().__init__(**kwargs)
    self.num_heads = num_heads
    self.ffn_dim = ffn_dim
    self.dropout = dropout

  def build(self, input_shape):
    dim = input_shape[0][-1]
    self.attention = tf_keras.layers.MultiHeadAttention(
        self.num_heads, key_dim=dim // self.num_heads, dropout=self.dropout)
    self.norm_attention = tf_keras.layers.LayerNormalization(epsilon=1e-6)
    self.norm_ffn = tf_keras.layers.LayerNormalization(epsilon=1e-6)
    self.ffn_in = tf_keras.layers.Dense(self.ffn_dim, activation="gelu")
    self.ffn_out = tf_keras.layers.Dense(dim)
    self.drop = tf_keras.layers.Dropout(self.dropout)
    super().build(input_shape)

  def call(self, inputs, training=False, last_only=False, causal=False):
    """[B, L, d] -> [B, L, d], or [B, 1, d] for the last position only.

    `last_only` is for a final block whose other positions are discarded:
    the last position still attends to all of them, but their queries,
    outputs and feed-forward passes are not computed. With `causal`, each
    position attends only to itself and earlier positions (a model trained
    on every position of a sequence at once); the last position sees all
    of them either way.
    """
    x, ids = inputs
    keep = tf.not_equal(ids, 0)
    h = self.norm_attention(x)
    query, query_keep = h, keep
    if last_only:
      x, query, query_keep = x[:, -1:], h[:, -1:], keep[:, -1:]
    mask = tf.logical_and(keep[:, tf.newaxis, :], query_keep[:, :, tf.newaxis])
    if causal and not last_only:
      length = tf.shape(ids)[1]
      earlier = tf.linalg.band_part(tf.ones([length, length], tf.bool), -1, 0)
      mask = tf.logical_and(mask, earlier[tf.newaxis])
    x = x + self.drop(self.attention(query, h, attention_mask=mask,
                                     training=training), training=training)
    h = self.norm_ffn(x)
    return x + self.drop(self.ffn_out(self.ffn_in(h)), training=training)

  def get_config(self):
    return dict(super().get_config(), num_heads=self.num_heads,
                ffn_dim=self.ffn_dim, dropout=self.dropout)


@register
class ContextAndCatalogIds(tf_keras.layers.Layer):
  """Context ids [B, L] -> one id vector: the context, then the whole catalog.

  The item embedding is then looked up once for both the context and the
  catalog, so a tied table is stored once even in quantized TFLite models
  (two separate lookups get two differently quantized copies).
  """

  def __init__(self, num_items: int, **kwargs):
    super().__init__(**kwargs)
    self.num_items = num_items

  def call(self, context):
    ids = tf.reshape(context, [-1])
    # The catalog ids 0..N-1 as a cumulative sum of a step that is 1 for
    # any valid (non-negative) context but depends on the input: TFLite then
    # computes them at run time instead of storing an int32 constant (4 bytes
    # per item, a quarter of an int8 table with 16 dimensions), and the
    # shape stays static (tf.range with a run-time start would make it
    # dynamic, which is ten times slower in LiteRT).
    step = 1 - tf.minimum(tf.reduce_min(ids), 0)
    catalog = tf.cumsum(tf.fill([self.num_items], step)) - step
    return tf.concat([ids, catalog], axis=0)

  def get_config(self):
    return dict(super().get_config(), num_items=self.num_items)


@register
class SplitContextAndCatalog(tf_keras.layers.Layer):
  """Splits looked-up rows back into context [B, L, d] and catalog [N, d]."""

  def __init__(self, num_items: int, **kwargs):
    super().__init__(**kwargs)
    self.num_items = num_items

  def call(self, inputs):
    rows, context = inputs
    split = tf.shape(rows)[0] - self.num_items
    shape = tf.concat([tf.shape(context), tf.shape(rows)[-1:]], axis=0)
    return tf.reshape(rows[:split], shape), rows[split:]

  def get_config(self):
    return dict(super().get_config(), num_items=self.num_items)


@register
class CatalogScores(tf_keras.layers.Layer):
  """Dot-product scores of queries [B, d] against the catalog [N, d].

  Also carries the identity of the item vocabulary (`vocabulary_fingerprint`)
  so that a teacher and a student built for different vocabularies are caught
  before distillation starts.
  """

  def __init__(self, num_items: int, vocabulary_fingerprint: str = "",
               **kwargs):
    super().__init__(**kwargs)
    self.num_items = num_items
    self.vocabulary_fingerprint = vocabulary_fingerprint

  def call(self, inputs):
    queries, catalog = inputs
    return tf.matmul(queries, catalog, transpose_b=True)

  def get_config(self):
    return dict(super().get_config(), num_items=self.num_items,
                vocabulary_fingerprint=self.vocabulary_fingerprint)


@register
class MaskedBag(tf_keras.layers.Layer):
  """Embeds padded id lists [..., M] and averages the non-padding entries."""

  def __init__(self, vocabulary_size: int, embedding_dim: int, **kwargs):
    super().__init__(**kwargs)
    self.vocabulary_size = vocabulary_size
    self.embedding_dim = embedding_dim
    self.embedding = tf_keras.layers.Embedding(vocabulary_size, embedding_dim)

  def call(self, ids):
    vectors = self.embedding(ids)
    mask = tf.cast(tf.not_equal(ids, 0), vectors.dtype)[..., tf.newaxis]
    return tf.reduce_sum(vectors * mask, axis=-2) / tf.maximum(
        tf.reduce_sum(mask, axis=-2), 1.0)

  def get_config(self):
    return dict(super().get_config(), vocabulary_size=self.vocabulary_size,
                embedding_dim=self.embedding_dim)


@register
class PairWithEach(tf_keras.layers.Layer):
  """[query [B, d], items [B, C, e]] -> [B, C, d + e]: the query beside each
  item (a listwise ranking model scores every pair)."""

  def call(self, inputs):
    query, items = inputs
    tiled = tf.repeat(query[:, tf.newaxis], tf.shape(items)[1], axis=1)
    return tf.concat([tiled, tf.cast(items, tiled.dtype)], axis=-1)

"""Small, on-device shaped students as functional Keras models.

Students are functional (not subclassed) so that TF Model Optimization can
clone them layer by layer for pruning and quantization-aware training, and so
that they save, load and convert to TFLite without custom code.

Layer names are part of the contract with the Distiller:

* "hidden": the encoder's hidden representation (hint distillation);
* "query_embedding": the query vector scored against the catalog
  (contrastive alignment);
* "logits": scores over the whole catalog (retrieval students);
* "rating": predicted rating (ranking students).
"""

import tensorflow as tf
import tf_keras

from tfdistill.data.examples import CONTEXT
from tfdistill.models.configs import ENCODERS  # pylint: disable=unused-import  # re-exported
from tfdistill.models.configs import EmbeddingConfig  # pylint: disable=unused-import  # re-exported
from tfdistill.models.configs import StudentConfig
from tfdistill.models.embeddings import item_embedding
from tfdistill.models.layers import CatalogScores
from tfdistill.models.layers import ContextAndCatalogIds
from tfdistill.models.layers import LastPosition
from tfdistill.models.layers import PairWithEach
from tfdistill.models.layers import PositionEmbedding
from tfdistill.models.layers import PositionWeightedMean
from tfdistill.models.layers import QueriedPooling
from tfdistill.models.layers import SplitContextAndCatalog
from tfdistill.models.layers import TransformerBlock
from tfdistill.models.registry import register
from tfdistill.models.signals import HIDDEN
from tfdistill.models.signals import LOGITS
from tfdistill.models.signals import QUERY_EMBEDDING
from tfdistill.models.signals import RATING



@register
class ZeroPadding(tf_keras.layers.Layer):
  """Zeroes the vectors at padding positions (id 0) of [B, L, d]."""

  def call(self, inputs):
    vectors, ids = inputs
    return vectors * tf.cast(tf.not_equal(ids, 0), vectors.dtype)[..., None]


def _encode_context(config: StudentConfig, context_vectors, context):
  """The sequence encoder; returns the "hidden" layer's output [B, h]."""
  if config.encoder == "mean":
    pooled = PositionWeightedMean(name="pool")([context_vectors, context])
  else:
    vectors = ZeroPadding(name="zero_padding")([context_vectors, context])
    if config.encoder == "attention":
      last = LastPosition(name="last_item")(vectors)
      query = tf_keras.layers.Dense(config.embedding_dim, use_bias=False,
                                    name="attention_query")(last)
      keys = tf_keras.layers.Dense(config.embedding_dim, use_bias=False,
                                   name="attention_key")(vectors)
      attended = QueriedPooling(name="pool")([query, keys, vectors, context])
      pooled = tf_keras.layers.Concatenate(name="pool_and_last")(
          [attended, last])
    elif config.encoder == "self_attention":
      # The most recent item's query attends to the whole context: only
      # that position is computed through the block.
      positioned = PositionEmbedding(name="positions")(vectors)
      attended = TransformerBlock(1, config.hidden_dim, config.dropout,
                                  name="block")([positioned, context],
                                                last_only=True)
      pooled = LastPosition(name="last_position")(attended)
    elif config.encoder == "cnn":
      conv = tf_keras.layers.Conv1D(config.hidden_dim, 3, padding="same",
                                    activation="relu", name="conv")(vectors)
      pooled = tf_keras.layers.GlobalMaxPooling1D(name="pool")(conv)
    else:
      # Unrolled so that TFLite gets a static graph (no while loop).
      pooled = tf_keras.layers.GRU(config.hidden_dim, unroll=True,
                                   name="gru")(vectors)
  return tf_keras.layers.Dense(config.hidden_dim, activation="relu",
                               name=HIDDEN)(pooled)


def _query(config: StudentConfig, hidden):
  dropped = tf_keras.layers.Dropout(config.dropout, name="dropout")(hidden)
  return tf_keras.layers.Dense(config.embedding_dim,
                               name=QUERY_EMBEDDING)(dropped)


def build_sequential_student(num_items: int, context_length: int,
                             config: StudentConfig = StudentConfig(),
                             vocabulary_fingerprint: str = "",
                             name: str = "student") -> tf_keras.Model:
  """Builds a next-item student: recent items [B, L] -> logits [B, N].

  The item table is tied: the same vectors embed the context and score the
  catalog, which halves the parameters of an on-device model.

  Args:
    num_items: Catalog size including padding and OOV (score columns).
    context_length: L, number of recent items.
    config: Architecture.
    vocabulary_fingerprint: `PreparedData.items.fingerprint`, checked against
      the teacher's before distillation.
    name: Model name.

  Returns:
    A functional `tf_keras.Model` taking {"context": int32 [B, L]}.

  Example:
    >>> student = build_sequential_student(prepared.num_items, 20,
    ...                                    StudentConfig(encoder="gru"))
    >>> student.count_params()
  """
  context = tf_keras.Input((context_length,), dtype=tf.int32, name=CONTEXT)
  ids = ContextAndCatalogIds(num_items, name="context_and_catalog")(context)
  rows = item_embedding(config.embedding, num_items, config.embedding_dim)(ids)
  context_vectors, catalog = SplitContextAndCatalog(
      num_items, name="split_context_and_catalog")([rows, context])
  hidden = _encode_context(config, context_vectors, context)
  logits = CatalogScores(num_items, vocabulary_fingerprint, name=LOGITS)(
      [_query(config, hidden), catalog])
  return tf_keras.Model({CONTEXT: context}, logits, name=name)


def build_two_tower_student(num_items: int, num_users: int,
                            context_length: int,
                            config: StudentConfig = StudentConfig(),
                            vocabulary_fingerprint: str = "",
                            name: str = "two_tower_student") -> tf_keras.Model:
  """A small two-tower: (user id, recent items) -> logits over the catalog."""
  user = tf_keras.Input((), dtype=tf.int32, name="user")
  context = tf_keras.Input((context_length,), dtype=tf.int32, name=CONTEXT)
  ids = ContextAndCatalogIds(num_items, name="context_and_catalog")(context)
  rows = item_embedding(config.embedding, num_items, config.embedding_dim)(ids)
  context_vectors, catalog = SplitContextAndCatalog(
      num_items, name="split_context_and_catalog")([rows, context])
  user_vector = tf_keras.layers.Embedding(
      num_users, config.embedding_dim, name="user_embedding")(user)
  pooled = PositionWeightedMean(name="pool")([context_vectors, context])
  hidden = tf_keras.layers.Dense(config.hidden_dim, activation="relu",
                                 name=HIDDEN)(
                                     tf_keras.layers.Concatenate()(
                                         [user_vector, pooled]))
  logits = CatalogScores(num_items, vocabulary_fingerprint, name=LOGITS)(
      [_query(config, hidden), catalog])
  return tf_keras.Model({"user": user, CONTEXT: context}, logits, name=name)


def build_ranking_student(num_users: int, num_items: int,
                          embedding_dim: int = 16, hidden_dim: int = 32,
                          name: str = "ranking_student") -> tf_keras.Model:
  """A small ranking MLP: (user id, item id) -> predicted rating [B, 1]."""
  user = tf_keras.Input((), dtype=tf.int32, name="user")
  item = tf_keras.Input((), dtype=tf.int32, name="item")
  vectors = tf_keras.layers.Concatenate()([
      tf_keras.layers.Embedding(num_users, embedding_dim,
                                name="user_embedding")(user),
      tf_keras.layers.Embedding(num_items, embedding_dim,
                                name="item_embedding")(item)])
  hidden = tf_keras.layers.Dense(hidden_dim, activation="relu",
                                 name=HIDDEN)(vectors)
  rating = tf_keras.layers.Dense(1, name=RATING)(hidden)
  return tf_keras.Model({"user": user, "item": item}, rating, name=name)


def build_listwise_ranking_student(num_users: int, num_items: int,
                                   embedding_dim: int = 16,
                                   hidden_dim: int = 32,
                                   name: str = "listwise_ranking_student"
                                  ) -> tf_keras.Model:
  """A ranking MLP scoring each of an example's candidates.

  Inputs {"user": [B], "candidates": [B, C]} (item indices); output
  "logits" [B, C], the score of each candidate (C may vary by batch), to
  train with softmax cross-entropy on the position of the true item and to
  distil with the listwise and ranking losses over the candidates.
  """
  user = tf_keras.Input((), dtype=tf.int32, name="user")
  candidates = tf_keras.Input((None,), dtype=tf.int32, name="candidates")
  user_vector = tf_keras.layers.Embedding(num_users, embedding_dim,
                                          name="user_embedding")(user)
  item_vectors = tf_keras.layers.Embedding(num_items, embedding_dim,
                                           name="item_embedding")(candidates)
  pairs = PairWithEach(name="user_and_candidate")([user_vector, item_vectors])
  hidden = tf_keras.layers.Dense(hidden_dim, activation="relu",
                                 name=HIDDEN)(pairs)
  scores = tf_keras.layers.Dense(1, name="score")(hidden)
  logits = tf_keras.layers.Reshape((-1,), name=LOGITS)(scores)
  return tf_keras.Model({"user": user, "candidates": candidates}, logits,
                        name=name)


def build_multitask_student(num_items: int, context_length: int,
                            config: StudentConfig = StudentConfig(),
                            vocabulary_fingerprint: str = "",
                            name: str = "multitask_student") -> tf_keras.Model:
  """One student for two tasks: next-item logits and the rating of an item.

  Inputs {"context": [B, L], "item": [B]}; outputs {"logits": [B, N],
  "rating": [B, 1]}. Both heads share the item table and the sequence encoder.
  """
  context = tf_keras.Input((context_length,), dtype=tf.int32, name=CONTEXT)
  item = tf_keras.Input((), dtype=tf.int32, name="item")
  table = item_embedding(config.embedding, num_items, config.embedding_dim)
  rows = table(ContextAndCatalogIds(num_items, name="context_and_catalog")(
      context))
  context_vectors, catalog = SplitContextAndCatalog(
      num_items, name="split_context_and_catalog")([rows, context])
  hidden = _encode_context(config, context_vectors, context)
  query = _query(config, hidden)
  logits = CatalogScores(num_items, vocabulary_fingerprint, name=LOGITS)(
      [query, catalog])
  pair = tf_keras.layers.Concatenate(name="query_and_item")([query,
                                                             table(item)])
  rating_hidden = tf_keras.layers.Dense(config.hidden_dim, activation="relu",
                                        name="rating_hidden")(pair)
  rating = tf_keras.layers.Dense(1, name=RATING)(rating_hidden)
  return tf_keras.Model({CONTEXT: context, "item": item},
                        {LOGITS: logits, RATING: rating}, name=name)

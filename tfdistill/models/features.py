"""Item content features inside a model: genre and title-token tables.

The tables are non-trainable weights, so they travel with the model's
checkpoint and the model can score the whole catalog from item ids alone.
"""

import numpy as np
import tensorflow as tf
import tf_keras

from tfdistill.errors import ModelError
from tfdistill.models.layers import MaskedBag
from tfdistill.models.registry import register


@register
class ItemContentEncoder(tf_keras.layers.Layer):
  """Item id -> vector from its id, genres and title tokens.

  vector = Dense([id embedding, mean genre embedding, mean title embedding]).
  Call `set_features` with the `PreparedData` tables before training.
  """

  def __init__(self, num_items: int, embedding_dim: int, num_genres: int = 2,
               num_title_tokens: int = 2, max_genres: int = 4,
               max_title_tokens: int = 8, **kwargs):
    super().__init__(**kwargs)
    self.num_items = num_items
    self.embedding_dim = embedding_dim
    self.num_genres = max(num_genres, 2)
    self.num_title_tokens = max(num_title_tokens, 2)
    self.max_genres = max_genres
    self.max_title_tokens = max_title_tokens
    self.ids = tf_keras.layers.Embedding(num_items, embedding_dim,
                                         name="id_embedding")
    self.genres = MaskedBag(self.num_genres, embedding_dim, name="genre_bag")
    self.titles = MaskedBag(self.num_title_tokens, embedding_dim,
                            name="title_bag")
    self.mix = tf_keras.layers.Dense(embedding_dim, name="mix")

  def build(self, input_shape):
    self.genre_table = self.add_weight(
        name="genre_table", shape=(self.num_items, self.max_genres),
        dtype=tf.int32, initializer="zeros", trainable=False)
    self.title_table = self.add_weight(
        name="title_table", shape=(self.num_items, self.max_title_tokens),
        dtype=tf.int32, initializer="zeros", trainable=False)
    super().build(input_shape)

  def set_features(self, item_genres: np.ndarray,
                   item_title: np.ndarray) -> None:
    """Loads [num_items, max_genres] and [num_items, max_title_tokens]."""
    if not self.built:
      self.build(None)
    for table, values in ((self.genre_table, item_genres),
                          (self.title_table, item_title)):
      if tuple(values.shape) != tuple(table.shape):
        raise ModelError(f"item feature table {table.name} expects shape "
                         f"{tuple(table.shape)}, got {values.shape}; build the "
                         "model from the same PreparedData.")
      table.assign(values.astype(np.int32))

  def call(self, ids):
    return self.mix(tf.concat([
        self.ids(ids),
        self.genres(tf.gather(self.genre_table, ids)),
        self.titles(tf.gather(self.title_table, ids)),
    ], axis=-1))

  def get_config(self):
    return dict(super().get_config(), num_items=self.num_items,
                embedding_dim=self.embedding_dim, num_genres=self.num_genres,
                num_title_tokens=self.num_title_tokens,
                max_genres=self.max_genres,
                max_title_tokens=self.max_title_tokens)

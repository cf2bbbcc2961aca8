"""Ranking teachers: DCN-v2 rating model and a retrieval + rating multi-task.

Both predict a rating for (user, item) and expose {"rating", "hidden"}
signals for pointwise score distillation.
"""

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from tfdistill.models.registry import register
from tfdistill.models.teachers import ContentTeacher
from tfdistill.models.teachers import features_and_labels
from tfdistill.models.teachers import TwoTowerRetrievalTeacher


def _rating_task():
  return tfrs.tasks.Ranking(
      loss=tf_keras.losses.MeanSquaredError(
          reduction=tf_keras.losses.Reduction.NONE),
      metrics=[tf_keras.metrics.RootMeanSquaredError(name="rmse")],
      name="ranking")


@register
class DCNRankingTeacher(ContentTeacher):
  """Deep & Cross Network v2: (user, item with content) -> rating.

  Inputs {"user": int32 [B], "item": int32 [B]}; trained on
  `pair_examples` (label: the "rating" feature) with `tfrs.tasks.Ranking`.

  Args:
    num_users, num_items: Vocabulary sizes (including padding and OOV).
    embedding_dim: Size of user and item embeddings.
    num_cross_layers: Stacked `tfrs.layers.dcn.Cross` layers.
    projection_dim: Low-rank projection of the cross layers (0: full rank).
    deep_layers: Units of the deep tower after the cross layers.
    num_genres, num_title_tokens, max_genres, max_title_tokens: Item content
      feature sizes (see `PreparedData`).
    vocabulary_fingerprint: Identity of the item vocabulary.
  """
  signal_names = ("hidden", "rating")

  def __init__(self, num_users: int, num_items: int, embedding_dim: int = 64,
               num_cross_layers: int = 2, projection_dim: int = 32,
               deep_layers: tuple = (256, 128), num_genres: int = 2,
               num_title_tokens: int = 2, max_genres: int = 4,
               max_title_tokens: int = 8, vocabulary_fingerprint: str = "",
               **kwargs):
    super().__init__(num_items, embedding_dim, num_genres=num_genres,
                     num_title_tokens=num_title_tokens, max_genres=max_genres,
                     max_title_tokens=max_title_tokens,
                     vocabulary_fingerprint=vocabulary_fingerprint, **kwargs)
    self.num_users = num_users
    self.num_cross_layers = num_cross_layers
    self.projection_dim = projection_dim
    self.deep_layers = tuple(deep_layers)
    self.user_embedding = tf_keras.layers.Embedding(num_users, embedding_dim,
                                                    name="user_embedding")
    self.cross = [tfrs.layers.dcn.Cross(projection_dim=projection_dim or None,
                                        name=f"cross_{i}")
                  for i in range(num_cross_layers)]
    self.deep = [tf_keras.layers.Dense(units, activation="relu",
                                       name=f"deep_{i}")
                 for i, units in enumerate(self.deep_layers)]
    self.rating_head = tf_keras.layers.Dense(1, name="rating")
    self.task = _rating_task()

  @property
  def input_signature(self) -> dict:
    return {"user": tf.TensorSpec([None], tf.int32),
            "item": tf.TensorSpec([None], tf.int32)}

  def set_item_data(self, item_genres, item_title, item_counts=None) -> None:
    del item_counts  # Ranking needs no popularity correction.
    self.item_encoder.set_features(item_genres, item_title)

  def distillation_signals(self, inputs, training: bool = False) -> dict:
    x0 = tf.concat([
        self.user_embedding(tf.cast(inputs["user"], tf.int32)),
        self.item_encoder(tf.cast(inputs["item"], tf.int32),
                          training=training)], axis=-1)
    x = x0
    for layer in self.cross:
      x = layer(x0, x)
    for layer in self.deep:
      x = layer(x)
    return {"hidden": x, "rating": self.rating_head(x)}

  def call(self, inputs, training=False):
    return self.distillation_signals(inputs, training=training)["rating"]

  def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
    features, ratings = features_and_labels(inputs, "rating")
    predictions = self(features, training=training)
    return tf.nn.compute_average_loss(self.task(
        labels=tf.reshape(ratings, [-1, 1]), predictions=predictions))

  def get_config(self):
    return dict(super().get_config(), num_users=self.num_users,
                num_cross_layers=self.num_cross_layers,
                projection_dim=self.projection_dim,
                deep_layers=list(self.deep_layers))


@register
class MultiTaskTeacher(TwoTowerRetrievalTeacher):
  """Retrieval and rating on shared towers (TFRS's multitask design).

  Inputs {"user", "context", "item"}; outputs {"logits": [B, N], "rating":
  [B, 1]}. The loss is `retrieval_weight * retrieval + rating_weight *
  rating`, trained on `pair_examples`.
  """
  signal_names = ("logits", "query_embedding", "hidden", "rating")

  def __init__(self, num_items: int, num_users: int, context_length: int,
               retrieval_weight: float = 1.0, rating_weight: float = 1.0,
               **kwargs):
    super().__init__(num_items, num_users, context_length, **kwargs)
    self.retrieval_weight = retrieval_weight
    self.rating_weight = rating_weight
    self.rating_hidden = tf_keras.layers.Dense(self.hidden_dim,
                                               activation="relu",
                                               name="rating_hidden")
    self.rating_head = tf_keras.layers.Dense(1, name="rating")
    self.ranking = _rating_task()

  @property
  def input_signature(self) -> dict:
    return dict(super().input_signature,
                item=tf.TensorSpec([None], tf.int32))

  def _rating(self, query, item, training):
    pair = tf.concat([query, self.item_encoder(tf.cast(item, tf.int32),
                                               training=training)], axis=-1)
    return self.rating_head(self.rating_hidden(pair))

  def distillation_signals(self, inputs, training: bool = False,
                           catalog=None) -> dict:
    signals = super().distillation_signals(inputs, training, catalog)
    signals["rating"] = self._rating(signals["query_embedding"],
                                     inputs["item"], training)
    return signals

  def call(self, inputs, training=False):
    signals = self.distillation_signals(inputs, training=training)
    return {"logits": signals["logits"], "rating": signals["rating"]}

  def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
    features, _ = features_and_labels(inputs, "item")
    queries = self.query_signals(features, training)["query_embedding"]
    retrieval = self.retrieval_loss(queries, features["item"], training)
    rating = tf.nn.compute_average_loss(self.ranking(
        labels=tf.reshape(features["rating"], [-1, 1]),
        predictions=self._rating(queries, features["item"], training)))
    return self.retrieval_weight * retrieval + self.rating_weight * rating

  def get_config(self):
    return dict(super().get_config(), retrieval_weight=self.retrieval_weight,
                rating_weight=self.rating_weight)

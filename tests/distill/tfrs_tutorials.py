"""The models of the TFRS tutorials, written as a user writes them (with
`tf.keras`, which tfdistill routes to Keras 2), and their training data from
tfdistill's tiny synthetic set, keyed by string ids as TFDS's MovieLens is.

These models know nothing of tfdistill: the tests distil them as a user's
own teachers.
"""

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfdistill.data import examples

DIM = 16


def keys(vocabulary, indices) -> np.ndarray:
  """Student indices -> the string keys a user's model reads ("" for pad)."""
  out = np.asarray(vocabulary.tokens, dtype=object)[np.asarray(indices)]
  out[np.asarray(indices) == 0] = ""
  return out.astype(str)


def lookup_tower(vocabulary, extra=()):
  return tf.keras.Sequential([
      tf.keras.layers.StringLookup(vocabulary=vocabulary, mask_token=None),
      tf.keras.layers.Embedding(len(vocabulary) + 1, DIM), *extra])


class BasicRetrieval(tfrs.Model):
  """Tutorial "basic retrieval": user id -> movie title."""

  def __init__(self, user_ids, movie_titles):
    super().__init__()
    self.user_model = lookup_tower(user_ids)
    self.movie_model = lookup_tower(movie_titles)
    self.task = tfrs.tasks.Retrieval()

  def compute_loss(self, features, training=False):
    return self.task(self.user_model(features["user_id"]),
                     self.movie_model(features["movie_title"]),
                     compute_metrics=False)


class SequentialRetrieval(tfrs.Model):
  """Tutorial "sequential retrieval": a GRU over the previous movie ids."""

  def __init__(self, movie_ids):
    super().__init__()
    self.query_model = lookup_tower(movie_ids, [tf.keras.layers.GRU(DIM)])
    self.candidate_model = lookup_tower(movie_ids)
    self.task = tfrs.tasks.Retrieval()

  def compute_loss(self, features, training=False):
    return self.task(self.query_model(features["context_movie_id"]),
                     self.candidate_model(features["label_movie_id"]),
                     compute_metrics=False)


class DCN(tfrs.Model):
  """Tutorial "deep & cross network": (user id, movie id) -> rating."""

  def __init__(self, vocabularies, deep_layer_sizes=(32,)):
    super().__init__()
    self._features = sorted(vocabularies)
    self._embeddings = {name: lookup_tower(vocabularies[name])
                        for name in self._features}
    self._cross_layer = tfrs.layers.dcn.Cross(
        kernel_initializer="glorot_uniform")
    self._deep_layers = [tf.keras.layers.Dense(size, activation="relu")
                         for size in deep_layer_sizes]
    self._logit_layer = tf.keras.layers.Dense(1)
    self.task = tfrs.tasks.Ranking(loss=tf.keras.losses.MeanSquaredError())

  def call(self, features):
    x = tf.concat([self._embeddings[name](features[name])
                   for name in self._features], axis=1)
    x = self._cross_layer(x)
    for layer in self._deep_layers:
      x = layer(x)
    return self._logit_layer(x)

  def compute_loss(self, features, training=False):
    features = dict(features)
    labels = features.pop("user_rating")
    return self.task(labels=labels, predictions=self(features))


class MultiTask(tfrs.Model):
  """Tutorial "multitask": retrieval and rating on shared towers."""

  def __init__(self, user_ids, movie_ids):
    super().__init__()
    self.user_model = lookup_tower(user_ids)
    self.movie_model = lookup_tower(movie_ids)
    self.rating_model = tf.keras.Sequential([
        tf.keras.layers.Dense(32, activation="relu"),
        tf.keras.layers.Dense(1)])
    self.rating_task = tfrs.tasks.Ranking(
        loss=tf.keras.losses.MeanSquaredError())
    self.retrieval_task = tfrs.tasks.Retrieval()

  def call(self, features):
    user = self.user_model(features["user_id"])
    movie = self.movie_model(features["movie_id"])
    return user, movie, self.rating_model(tf.concat([user, movie], axis=1))

  def compute_loss(self, features, training=False):
    features = dict(features)
    ratings = features.pop("user_rating")
    user, movie, predictions = self(features)
    return (self.rating_task(labels=ratings, predictions=predictions)
            + self.retrieval_task(user, movie, compute_metrics=False))


def pairs(prepared, columns=("user_id", "movie_id", "user_rating")) -> dict:
  """The training interactions as the tutorials' feature dicts (only the
  columns a model reads: Keras records a model's inputs from its first
  call)."""
  arrays = examples.pair_arrays(prepared, "train")
  every = {"user_id": keys(prepared.users, arrays["user"]),
           "movie_id": keys(prepared.items, arrays["item"]),
           "movie_title": prepared.item_titles[arrays["item"]].astype(str),
           "user_rating": arrays["rating"]}
  return {name: every[name] for name in columns}


def sequences(prepared, length: int) -> dict:
  arrays = examples.sequence_arrays(prepared, "train", length)
  return {"context_movie_id": keys(prepared.items, arrays.contexts),
          "label_movie_id": keys(prepared.items, arrays.targets)}


def ids(vocabulary) -> list:
  return list(vocabulary.tokens[2:])


def train(model, features: dict, epochs: int = 3, learning_rate=0.1):
  tf.keras.utils.set_random_seed(0)
  model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate))
  data = tf.data.Dataset.from_tensor_slices(features).shuffle(
      10_000, seed=0).batch(64)
  model.fit(data, epochs=epochs, verbose=0)
  return model


def brute_force(query_model, candidate_model, movie_ids, k: int = 20):
  """The tutorial's serving index: BruteForce over every movie."""
  index = tfrs.layers.factorized_top_k.BruteForce(query_model, k=k)
  movies = tf.data.Dataset.from_tensor_slices(movie_ids).batch(100)
  index.index_from_dataset(movies.map(lambda m: (m, candidate_model(m))))
  return index

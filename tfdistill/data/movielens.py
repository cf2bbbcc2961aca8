"""MovieLens through TensorFlow Datasets (`movielens/*-ratings` configs)."""

import os
from typing import Optional

from absl import logging
import numpy as np
import pandas as pd

from tfdistill.data.interactions import InteractionData
from tfdistill.data.interactions import make_interaction_data
from tfdistill.errors import DataError

TFDS_CONFIGS = ("latest-small", "25m", "20m", "100k", "1m")
_BATCH = 8192


def tfds_names() -> list:
  return [f"movielens/{c}-ratings" for c in TFDS_CONFIGS]


def _tfds_load(tfds, name: str, data_dir: Optional[str], kwargs: dict):
  """tfds.load of the train split, once more if another process (e.g. a
  second seed started at the same time) finished building the same data set
  first: TFDS then cannot rename its own copy into place, and the finished
  one is there to read."""
  def load():
    return tfds.load(name, split="train", data_dir=data_dir, with_info=True,
                     **kwargs)
  try:
    return load()
  except FileExistsError:
    logging.info("%s was prepared by another process; loading it", name)
    return load()


def _load_split(name: str, data_dir: Optional[str],
                manual_dir: Optional[str]):
  """tfds.load of one config's train split, offline when manual_dir is set."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  kwargs = {}
  if manual_dir:
    kwargs["download_and_prepare_kwargs"] = {
        "download_config": tfds.download.DownloadConfig(manual_dir=manual_dir)
    }
  try:
    dataset, info = _tfds_load(tfds, name, data_dir, kwargs)
  except Exception as error:  # TFDS raises many types for a missing archive.
    hint = (f" Looked for the archive in --manual_dir={manual_dir}."
            if manual_dir else
            " Without internet, pass --manual_dir=<folder with the GroupLens"
            " zip> (e.g. ../shared/data/movielens).")
    raise DataError(f"could not load TFDS data set {name!r}: "
                    f"{type(error).__name__}: {error}.{hint}") from error
  return dataset, info


def _decode(values: np.ndarray) -> np.ndarray:
  """bytes -> str; MovieLens titles contain UTF-8 (e.g. accented letters)."""
  return np.char.decode(values.astype(bytes), "utf-8")


def _genre_names(info) -> list:
  return list(info.features["movie_genres"].feature.names)


def _genre_tuples(ragged_genres, names: list) -> list:
  rows = (ragged_genres.to_list() if hasattr(ragged_genres, "to_list") else
          ragged_genres)
  return [tuple(names[int(g)] for g in row) for row in rows]


def load_movielens(name: str = "movielens/latest-small-ratings",
                   data_dir: Optional[str] = None,
                   manual_dir: Optional[str] = None) -> InteractionData:
  """Loads a TFDS `movielens/<config>-ratings` data set and its movie table.

  Args:
    name: TFDS name, one of `tfds_names()`.
    data_dir: TFDS cache directory (default: TFDS's own, ~/tensorflow_datasets).
    manual_dir: Folder holding the GroupLens zip for offline preparation.

  Returns:
    `InteractionData` whose item table is the full movie catalog of the
    config's `-movies` companion (so `num_items` counts unrated movies too).

  Example:
    >>> data = load_movielens("movielens/latest-small-ratings",
    ...                       manual_dir="../shared/data/movielens")
    >>> data.num_interactions, data.num_users, data.num_items
    (100836, 610, 9742)
  """
  if name not in tfds_names():
    raise DataError(f"unknown MovieLens data set {name!r}; choose one of "
                    f"{tfds_names()}.")
  if manual_dir and not os.path.isdir(manual_dir):
    raise DataError(f"--manual_dir={manual_dir} is not a directory.")
  ratings, info = _load_split(name, data_dir, manual_dir)
  names = _genre_names(info)
  columns = {"user_id": [], "movie_id": [], "timestamp": [], "user_rating": []}
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  ratings = ratings.map(lambda x: {k: x[k] for k in columns},
                        num_parallel_calls=tf.data.AUTOTUNE)
  for batch in ratings.batch(_BATCH).prefetch(2).as_numpy_iterator():
    for key in columns:
      columns[key].append(batch[key])
  interactions = pd.DataFrame({
      "user_id": _decode(np.concatenate(columns["user_id"])),
      "item_id": _decode(np.concatenate(columns["movie_id"])),
      "timestamp": np.concatenate(columns["timestamp"]),
      "rating": np.concatenate(columns["user_rating"]),
  })

  movies, _ = _load_split(name.replace("-ratings", "-movies"), data_dir,
                          manual_dir)
  ids, titles, genres = [], [], []
  for batch in movies.ragged_batch(_BATCH).as_numpy_iterator():
    ids.append(_decode(batch["movie_id"]))
    titles.append(_decode(batch["movie_title"]))
    genres.extend(_genre_tuples(batch["movie_genres"], names))
  items = pd.DataFrame({"item_id": np.concatenate(ids),
                        "title": np.concatenate(titles), "genres": genres})
  logging.info("%s: %d ratings, %d movies", name, len(interactions),
               len(items))
  return make_interaction_data(name, interactions, items)

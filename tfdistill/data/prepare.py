"""Vocabularies, min-interaction filtering and the leave-last-out split."""

import dataclasses
import json
import os
import re
from typing import Optional

from absl import logging
import numpy as np
import pandas as pd

from tfdistill.data.interactions import InteractionData
from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.data.vocab import Vocabulary
from tfdistill.errors import ConfigError
from tfdistill.errors import DataError
from tfdistill.fileio import atomic_directory
from tfdistill.fileio import Marker

TRAIN, VALIDATION, TEST = 0, 1, 2
SPLIT_NAMES = {"train": TRAIN, "validation": VALIDATION, "test": TEST}
_FORMAT_VERSION = 1
#: What identifies a prepared-data folder that tfdistill wrote.
PREPARED_MARKER = Marker("meta.json", ("format_version", "name",
                                       "item_vocabulary_fingerprint"))
_TOKEN = re.compile(r"[a-z0-9]+")


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
  """How raw interactions become model-ready data.

  Attributes:
    min_user_interactions: Users with fewer interactions are dropped (>= 3,
      so every user has train, validation and test interactions).
    min_item_interactions: Items with fewer interactions are dropped.
      Filtering repeats until both conditions hold (k-core). 0 keeps every
      item of the data set's item table, with or without interactions (a
      catalog with cold items, as TFRS builds candidates from the item
      table).
    max_genres: Genres kept per item (content feature).
    max_title_tokens: Title tokens kept per item (content feature).
    min_title_token_count: Title tokens rarer than this map to OOV.
  """
  min_user_interactions: int = 5
  min_item_interactions: int = 1
  max_genres: int = 4
  max_title_tokens: int = 8
  min_title_token_count: int = 2

  def __post_init__(self):
    if self.min_user_interactions < 3:
      raise ConfigError(
          "min_user_interactions must be >= 3 (leave-last-out needs train, "
          f"validation and test items), got {self.min_user_interactions}.")
    if self.min_item_interactions < 0:
      raise ConfigError("min_item_interactions must be >= 0 (0: every item "
                        "of the item table), got "
                        f"{self.min_item_interactions}.")
    if self.max_genres < 1 or self.max_title_tokens < 1:
      raise ConfigError("max_genres and max_title_tokens must be >= 1.")


@dataclasses.dataclass(frozen=True, eq=False)
class PreparedData:
  """Interactions as integer indices, sorted by user then time, and split.

  Item index 0 is padding and 1 is out-of-vocabulary, so `num_items` (the
  number of score columns of a retrieval model) is the catalog size + 2.

  Attributes:
    name: Name of the source.
    config: The `PrepareConfig` used.
    items, users, genres, title_tokens: Vocabularies.
    item_genres: [num_items, max_genres] genre indices per item (0 = pad).
    item_title: [num_items, max_title_tokens] title token indices per item.
    item_titles: Display title per item index ("" for reserved rows).
    user, item, timestamp, rating, split: One entry per interaction, sorted by
      user then time; `split` is TRAIN, VALIDATION or TEST.
    stats: Counts before and after filtering.
  """
  name: str
  config: PrepareConfig
  items: Vocabulary
  users: Vocabulary
  genres: Vocabulary
  title_tokens: Vocabulary
  item_genres: np.ndarray
  item_title: np.ndarray
  item_titles: np.ndarray
  user: np.ndarray
  item: np.ndarray
  timestamp: np.ndarray
  rating: np.ndarray
  split: np.ndarray
  stats: dict

  @property
  def num_items(self) -> int:
    return len(self.items)

  @property
  def num_users(self) -> int:
    return len(self.users)

  @property
  def user_starts(self) -> np.ndarray:
    """Position of each interaction's user's first interaction."""
    first = np.flatnonzero(np.r_[True, self.user[1:] != self.user[:-1]])
    counts = np.diff(np.r_[first, len(self.user)])
    return np.repeat(first, counts)

  def split_sizes(self) -> dict:
    return {name: int(np.count_nonzero(self.split == code))
            for name, code in SPLIT_NAMES.items()}

  def item_popularity(self) -> np.ndarray:
    """Training interactions per item index, float32 [num_items]."""
    train = self.item[self.split == TRAIN]
    return np.bincount(train, minlength=self.num_items).astype(np.float32)

  def summary(self) -> dict:
    return dict(self.stats, splits=self.split_sizes())

  def save(self, directory: str, overwrite: bool = False) -> None:
    """Writes the data atomically: to a temporary folder, then renamed.

    Raises:
      DataError: if `directory` exists and `overwrite` is False.
    """
    with atomic_directory(
        directory, overwrite, DataError,
        f"{directory} already exists; choose another folder or pass "
        "overwrite=True (--overwrite).", markers=[PREPARED_MARKER],
        prefix=".prepared-") as staging:
      self.items.save(os.path.join(staging, "items.txt"))
      self.users.save(os.path.join(staging, "users.txt"))
      self.genres.save(os.path.join(staging, "genres.txt"))
      self.title_tokens.save(os.path.join(staging, "title_tokens.txt"))
      np.savez(os.path.join(staging, "arrays.npz"),
               item_genres=self.item_genres, item_title=self.item_title,
               item_titles=self.item_titles.astype(str), user=self.user,
               item=self.item, timestamp=self.timestamp, rating=self.rating,
               split=self.split)
      meta = {"format_version": _FORMAT_VERSION, "name": self.name,
              "config": dataclasses.asdict(self.config), "stats": self.stats,
              "splits": self.split_sizes(),
              "item_vocabulary_fingerprint": self.items.fingerprint}
      with open(os.path.join(staging, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)

  @classmethod
  def load(cls, directory: str) -> "PreparedData":
    meta_path = os.path.join(directory, "meta.json")
    if not os.path.isfile(meta_path):
      raise DataError(f"{directory}: not a prepared data folder (no "
                      "meta.json); create one with `tfdistill data --out=`.")
    with open(meta_path) as f:
      meta = json.load(f)
    arrays = np.load(os.path.join(directory, "arrays.npz"))
    return cls(
        name=meta["name"], config=PrepareConfig(**meta["config"]),
        items=Vocabulary.load(os.path.join(directory, "items.txt")),
        users=Vocabulary.load(os.path.join(directory, "users.txt")),
        genres=Vocabulary.load(os.path.join(directory, "genres.txt")),
        title_tokens=Vocabulary.load(
            os.path.join(directory, "title_tokens.txt")),
        item_titles=arrays["item_titles"].astype(object),
        stats=meta["stats"], **{k: arrays[k] for k in (
            "item_genres", "item_title", "user", "item", "timestamp",
            "rating", "split")})


def filter_min_interactions(frame: pd.DataFrame,
                            config: PrepareConfig) -> pd.DataFrame:
  """Drops rare users and items until both thresholds hold (k-core)."""
  for round_ in range(1, 101):
    item_counts = frame["item_id"].map(frame["item_id"].value_counts())
    user_counts = frame["user_id"].map(frame["user_id"].value_counts())
    keep = ((item_counts >= config.min_item_interactions) &
            (user_counts >= config.min_user_interactions)).to_numpy()
    logging.info("filter round %d: keeping %d of %d interactions", round_,
                 int(keep.sum()), len(frame))
    if keep.all():
      return frame
    frame = frame[keep]
  return frame


def _split_codes(user: np.ndarray) -> np.ndarray:
  """Last interaction of each user -> TEST, the one before -> VALIDATION."""
  split = np.full(len(user), TRAIN, dtype=np.int8)
  last = np.flatnonzero(np.r_[user[1:] != user[:-1], True])
  split[last] = TEST
  split[last - 1] = VALIDATION
  return split


def _tokenize(title: str) -> list:
  return _TOKEN.findall(title.lower())


def _padded(rows: list, width: int) -> np.ndarray:
  out = np.zeros((len(rows), width), dtype=np.int32)
  for i, row in enumerate(rows):
    row = row[:width]
    out[i, :len(row)] = row
  return out


def _content_features(data: InteractionData, items: Vocabulary,
                      config: PrepareConfig):
  """Genre and title-token index matrices aligned with the item vocabulary."""
  catalog = data.items.set_index("item_id").reindex(items.tokens[NUM_RESERVED:])
  genres_per_item = [g if isinstance(g, tuple) else () for g in
                     catalog["genres"]]
  titles = catalog["title"].fillna("").astype(str).to_numpy()
  genre_counts = pd.Series([g for gs in genres_per_item for g in gs],
                           dtype=object).value_counts()
  genres = Vocabulary.from_counts(genre_counts.index, genre_counts.to_numpy())
  tokens_per_item = [_tokenize(t) for t in titles]
  token_counts = pd.Series([t for ts in tokens_per_item for t in ts],
                           dtype=object).value_counts()
  token_counts = token_counts[token_counts >= config.min_title_token_count]
  tokens = Vocabulary.from_counts(token_counts.index, token_counts.to_numpy())
  reserved = [[]] * NUM_RESERVED
  item_genres = _padded(
      reserved + [list(genres.lookup(list(g))) if g else []
                  for g in genres_per_item], config.max_genres)
  item_title = _padded(
      reserved + [list(tokens.lookup(t)) if t else [] for t in
                  tokens_per_item], config.max_title_tokens)
  item_titles = np.concatenate([["", ""], titles]).astype(object)
  return genres, tokens, item_genres, item_title, item_titles


def prepare(data: InteractionData,
            config: PrepareConfig = PrepareConfig()) -> PreparedData:
  """Filters, indexes and splits interactions (per-user leave-last-out).

  Exact duplicates (the same user, item, timestamp and rating as an earlier
  row) are dropped first, with their count in the log and in `stats`.
  Each user's interactions are ordered by time (ties keep source order); the
  last one is the test target, the one before it the validation target and
  the rest are training data, so no test interaction is earlier than that
  user's training interactions.

  Args:
    data: Canonical interactions from `load_dataset`.
    config: Filtering and feature settings.

  Returns:
    The `PreparedData`.

  Raises:
    DataError: if nothing is left after filtering.

  Example:
    >>> prepared = prepare(load_dataset("synthetic"))
    >>> prepared.split_sizes()["test"] == prepared.stats["num_users_kept"]
    True
  """
  frame = data.interactions.assign(source_order=np.arange(data.num_interactions))
  # The same (user, item, timestamp, rating) twice is one interaction
  # recorded twice: kept, it could be a user's validation and test target.
  duplicates = data.interactions.duplicated(keep="first").to_numpy()
  if duplicates.any():
    logging.warning("%s: dropped %d exact duplicate interaction(s) (same "
                    "user, item, timestamp and rating as an earlier row)",
                    data.name, int(duplicates.sum()))
    frame = frame[~duplicates]
  kept = filter_min_interactions(frame, config)
  if kept.empty:
    raise DataError(
        f"{data.name}: no interactions left after filtering with "
        f"min_user_interactions={config.min_user_interactions} and "
        f"min_item_interactions={config.min_item_interactions}; lower them.")
  item_counts = kept["item_id"].value_counts()
  if config.min_item_interactions == 0:
    # Every item of the table; those without interactions count 0 and come
    # last in the vocabulary.
    item_counts = item_counts.reindex(
        pd.Index(data.items["item_id"]).union(item_counts.index),
        fill_value=0)
  items = Vocabulary.from_counts(item_counts.index, item_counts.to_numpy())
  user_counts = kept["user_id"].value_counts()
  users = Vocabulary.from_counts(user_counts.index, user_counts.to_numpy())
  user = users.lookup(kept["user_id"])
  order = np.lexsort((kept["source_order"].to_numpy(),
                      kept["timestamp"].to_numpy(), user))
  kept = kept.iloc[order]
  user = user[order]
  genres, tokens, item_genres, item_title, item_titles = _content_features(
      data, items, config)
  stats = dict(data.summary(),
               num_duplicates_dropped=int(duplicates.sum()),
               num_interactions_kept=len(kept),
               num_users_kept=len(users) - NUM_RESERVED,
               num_items_kept=len(items) - NUM_RESERVED)
  logging.info("prepared %s: %s", data.name, stats)
  return PreparedData(
      name=data.name, config=config, items=items, users=users, genres=genres,
      title_tokens=tokens, item_genres=item_genres, item_title=item_title,
      item_titles=item_titles, user=user,
      item=items.lookup(kept["item_id"]),
      timestamp=kept["timestamp"].to_numpy(np.int64),
      rating=kept["rating"].to_numpy(np.float32),
      split=_split_codes(user), stats=stats)


def time_window(prepared: PreparedData, start: Optional[int] = None,
                end: Optional[int] = None) -> PreparedData:
  """Restricts to interactions with start <= timestamp < end and re-splits.

  Vocabularies and item features are kept, so models trained on different
  windows stay compatible (used for continual distillation). Users with fewer
  than 3 interactions in the window are dropped.
  """
  mask = np.ones(len(prepared.item), dtype=bool)
  if start is not None:
    mask &= prepared.timestamp >= start
  if end is not None:
    mask &= prepared.timestamp < end
  counts = np.bincount(prepared.user[mask], minlength=prepared.num_users)
  mask &= counts[prepared.user] >= 3
  if not mask.any():
    raise DataError(f"no user has 3 interactions in the window [{start}, "
                    f"{end}).")
  user = prepared.user[mask]
  return dataclasses.replace(
      prepared, user=user, item=prepared.item[mask],
      timestamp=prepared.timestamp[mask], rating=prepared.rating[mask],
      split=_split_codes(user),
      stats=dict(prepared.stats, window=[start, end],
                 num_interactions_kept=int(mask.sum())))

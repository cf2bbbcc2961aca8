"""The canonical interaction table that every data source produces."""

import dataclasses
from typing import Optional

import numpy as np
import pandas as pd

from tfdistill.errors import DataError

INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp", "rating")
ITEM_COLUMNS = ("item_id", "title", "genres")


@dataclasses.dataclass(frozen=True)
class InteractionData:
  """Interactions and item content features of one data source.

  Attributes:
    name: Name of the source, e.g. "synthetic" or
      "movielens/latest-small-ratings".
    interactions: One row per interaction with columns `user_id` (str),
      `item_id` (str), `timestamp` (int64) and `rating` (float32), in source
      order.
    items: One row per catalog item with columns `item_id` (str), `title` (str,
      may be empty) and `genres` (tuple of str, may be empty). Contains every
      item of `interactions` and possibly items nobody interacted with.
  """
  name: str
  interactions: pd.DataFrame
  items: pd.DataFrame

  @property
  def num_interactions(self) -> int:
    return len(self.interactions)

  @property
  def num_users(self) -> int:
    return int(self.interactions["user_id"].nunique())

  @property
  def num_items(self) -> int:
    return len(self.items)

  def summary(self) -> dict:
    return {
        "dataset": self.name,
        "num_interactions": self.num_interactions,
        "num_users": self.num_users,
        "num_items": self.num_items,
    }


def _where(source: str, row: int, line_offset: Optional[int]) -> str:
  return (f"{source}:{row + line_offset}" if line_offset is not None else
          f"{source} (row {row})")


def _numeric_column(frame: pd.DataFrame, column: str, source: str,
                    line_offset: Optional[int]) -> pd.Series:
  """Converts a column to numbers, naming the first value that is not one."""
  values = pd.to_numeric(frame[column], errors="coerce")
  bad = values.isna().to_numpy()
  if bad.any():
    row = int(np.flatnonzero(bad)[0])
    raise DataError(f"{_where(source, row, line_offset)}: {column} "
                    f"{frame[column].iloc[row]!r} is not a number.")
  return values


def _int64_column(frame: pd.DataFrame, column: str, source: str,
                  line_offset: Optional[int]) -> np.ndarray:
  """A numeric column as int64, refusing values that int64 cannot hold
  (they would wrap around and reorder a user's history)."""
  values = _numeric_column(frame, column, source, line_offset)
  if pd.api.types.is_signed_integer_dtype(values.dtype):
    return values.to_numpy(np.int64)
  floats = values.to_numpy(np.float64)
  bad = ~np.isfinite(floats) | (np.abs(floats) >= 2.0 ** 63)
  if not bad.any():
    # Exact for integers (object or uint64 columns), truncated for floats.
    return np.array([int(v) for v in values], dtype=np.int64) if (
        values.dtype == object or pd.api.types.is_unsigned_integer_dtype(
            values.dtype)) else floats.astype(np.int64)
  row = int(np.flatnonzero(bad)[0])
  raise DataError(f"{_where(source, row, line_offset)}: {column} "
                  f"{frame[column].iloc[row]!r} is out of the int64 range; "
                  "use Unix seconds (or milliseconds).")


def make_interaction_data(name: str,
                          interactions: pd.DataFrame,
                          items: Optional[pd.DataFrame] = None,
                          source: Optional[str] = None,
                          line_offset: Optional[int] = None
                         ) -> InteractionData:
  """Validates raw columns and returns them as canonical `InteractionData`.

  Args:
    name: Name of the data source.
    interactions: Frame with at least the columns of `INTERACTION_COLUMNS`;
      values may still be strings.
    items: Optional item frame with `item_id` and optionally `title` and
      `genres`. Items that only appear in `interactions` are added with empty
      features.
    source: What to call the input in error messages (a file path); defaults
      to `name`.
    line_offset: If the rows come from a text file, the line number of the
      first row, so that errors can name the line.

  Returns:
    The validated `InteractionData`.

  Raises:
    DataError: if a column is missing, a value is not numeric, or there are no
      interactions.
  """
  source = source or name
  missing = [c for c in INTERACTION_COLUMNS if c not in interactions.columns]
  if missing:
    raise DataError(f"{source}: missing column(s) {missing}; found "
                    f"{list(interactions.columns)}.")
  if interactions.empty:
    raise DataError(f"{source}: contains no interactions.")
  for column in ("user_id", "item_id"):
    empty = interactions[column].isna().to_numpy()
    if empty.any():
      row = int(np.flatnonzero(empty)[0])
      raise DataError(f"{_where(source, row, line_offset)}: {column} is "
                      "empty.")
  table = pd.DataFrame({
      "user_id": interactions["user_id"].astype(str).to_numpy(),
      "item_id": interactions["item_id"].astype(str).to_numpy(),
      "timestamp": _int64_column(interactions, "timestamp", source,
                                 line_offset),
      "rating": _numeric_column(interactions, "rating", source,
                                line_offset).astype(np.float32).to_numpy(),
  })
  return InteractionData(name=name, interactions=table,
                         items=_canonical_items(items, table))


def _canonical_items(items: Optional[pd.DataFrame],
                     interactions: pd.DataFrame) -> pd.DataFrame:
  """Merges the optional item table with the items seen in interactions."""
  if items is None:
    items = pd.DataFrame({"item_id": pd.Series([], dtype=str)})
  ids = items["item_id"].astype(str).to_numpy()
  titles = (items["title"].fillna("").astype(str).to_numpy()
            if "title" in items else np.full(len(items), "", dtype=object))
  genres = (
      [tuple(g) if isinstance(g, (list, tuple, np.ndarray)) else () for g in
       items["genres"]] if "genres" in items else [()] * len(items))
  catalog = pd.DataFrame({"item_id": ids, "title": titles, "genres": genres})
  catalog = catalog.drop_duplicates("item_id", keep="first")
  unseen = pd.Series(pd.unique(interactions["item_id"].to_numpy()))
  unseen = unseen[~unseen.isin(catalog["item_id"])].to_numpy()
  if len(unseen):
    extra = pd.DataFrame({"item_id": unseen, "title": [""] * len(unseen),
                          "genres": [()] * len(unseen)})
    catalog = pd.concat([catalog, extra], ignore_index=True)
  return catalog.reset_index(drop=True)

"""One entry point for every data source: `load_dataset`."""

import dataclasses
from typing import Optional, Union

from tfdistill.data import files
from tfdistill.data import movielens
from tfdistill.data.interactions import InteractionData
from tfdistill.data.synthetic import generate_synthetic
from tfdistill.data.synthetic import SyntheticConfig
from tfdistill.errors import DataError

_FILE_SOURCES = ("grouplens", "csv", "parquet", "sequences")
_TABLE_SOURCES = ("csv", "parquet")


@dataclasses.dataclass(frozen=True)
class SourceConfig:
  """Where the interactions come from.

  Attributes:
    dataset: "synthetic" (the embedded default), a TFDS name such as
      "movielens/latest-small-ratings", "grouplens" (raw u.data, ratings.dat
      or ratings.csv at `path`), "csv"/"parquet" (a table at `path`) or
      "sequences" (`user item` lines in time order at `path`, the format of
      SASRec and BERT4Rec).
    path: File for "grouplens", "csv" and "parquet".
    data_dir: TFDS cache directory.
    manual_dir: Folder with the GroupLens zip for offline TFDS preparation.
    columns: Column mapping for "csv"/"parquet", e.g.
      "user_id=uid,item_id=iid,timestamp=ts,rating=" (see `ColumnMapping`).
    synthetic: Size and seed of the synthetic data set.
    item_features: Item table (movies.dat) for "sequences".
    item_id_map: `sequence_id original_id` lines joining a sequence file's
      items to the item table (default: sas_to_original_items.txt beside).
  """
  dataset: str = "synthetic"
  path: Optional[str] = None
  data_dir: Optional[str] = None
  manual_dir: Optional[str] = None
  columns: Optional[str] = None
  synthetic: SyntheticConfig = SyntheticConfig()
  item_features: Optional[str] = None
  item_id_map: Optional[str] = None

  def __post_init__(self):
    if self.dataset not in dataset_names():
      raise DataError(f"unknown data set {self.dataset!r} (--dataset); choose "
                      f"one of {', '.join(dataset_names())}.")
    if self.dataset in _FILE_SOURCES:
      if not self.path:
        raise DataError(f"--dataset={self.dataset} reads a local file; pass "
                        "--path=FILE.")
    elif self.path:
      raise DataError(
          f"--path={self.path} is only read by --dataset="
          f"{', '.join(_FILE_SOURCES)}, but --dataset={self.dataset}; add "
          "the --dataset the file is (e.g. --dataset=csv), or drop --path.")
    if self.columns and self.dataset not in _TABLE_SOURCES:
      raise DataError(f"--columns is only read by --dataset=csv or parquet, "
                      f"but --dataset={self.dataset}; drop --columns.")
    for flag in ("item_features", "item_id_map"):
      if getattr(self, flag) and self.dataset != "sequences":
        raise DataError(f"--{flag} is only read by --dataset=sequences, but "
                        f"--dataset={self.dataset}; drop --{flag}.")
    if self.manual_dir and not self.dataset.startswith("movielens/"):
      raise DataError(f"--manual_dir is only read by the TFDS MovieLens data "
                      f"sets, but --dataset={self.dataset}; drop "
                      "--manual_dir.")

  def to_json(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, values: dict) -> "SourceConfig":
    values = dict(values)
    values["synthetic"] = SyntheticConfig(**values.get("synthetic", {}))
    return cls(**values)


def dataset_names() -> list:
  return ["synthetic"] + movielens.tfds_names() + list(_FILE_SOURCES)


def load_dataset(source: Union[str, SourceConfig] = "synthetic",
                 **overrides) -> InteractionData:
  """Loads a data source into the canonical `InteractionData`.

  Args:
    source: A `SourceConfig` or just the data set name.
    **overrides: Fields of `SourceConfig` to set (e.g. `manual_dir=`).

  Returns:
    The interactions and item features of the source.

  Raises:
    DataError: for an unknown name, a missing `path`, or a bad file.

  Example:
    >>> data = load_dataset("synthetic")
    >>> data = load_dataset("movielens/latest-small-ratings",
    ...                     manual_dir="../shared/data/movielens")
  """
  if isinstance(source, str):
    source = SourceConfig(dataset=source, **overrides)
  elif overrides:
    source = dataclasses.replace(source, **overrides)
  name = source.dataset
  if name == "synthetic":
    return generate_synthetic(source.synthetic)
  if name.startswith("movielens/"):
    return movielens.load_movielens(name, source.data_dir, source.manual_dir)
  if name in _FILE_SOURCES:
    if name == "grouplens":
      return files.load_grouplens(source.path)
    if name == "sequences":
      return files.load_sequences(source.path, source.item_features,
                                  source.item_id_map)
    mapping = (files.ColumnMapping.parse(source.columns)
               if source.columns else files.ColumnMapping())
    return files.load_table(source.path, mapping)
  raise DataError(f"unknown data set {name!r}; choose one of "
                  f"{dataset_names()}.")

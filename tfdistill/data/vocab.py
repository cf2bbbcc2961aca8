"""String id <-> integer index vocabularies with padding and OOV buckets."""

import dataclasses
import hashlib
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from tfdistill.errors import DataError

PAD_TOKEN = "[PAD]"
OOV_TOKEN = "[OOV]"
PAD_INDEX = 0
OOV_INDEX = 1
NUM_RESERVED = 2


@dataclasses.dataclass(frozen=True, eq=False)
class Vocabulary:
  """Maps ids to indices; index 0 is padding and index 1 out-of-vocabulary.

  Attributes:
    tokens: All entries by index, starting with PAD_TOKEN and OOV_TOKEN.
  """
  tokens: tuple

  def __post_init__(self):
    if tuple(self.tokens[:NUM_RESERVED]) != (PAD_TOKEN, OOV_TOKEN):
      raise DataError("a Vocabulary starts with the reserved entries "
                      f"{PAD_TOKEN!r} and {OOV_TOKEN!r}.")
    object.__setattr__(self, "_index", pd.Index(self.tokens))

  @classmethod
  def from_counts(cls, ids: Sequence, counts: Sequence) -> "Vocabulary":
    """Builds a vocabulary ordered by decreasing count, ties by id."""
    ids = np.asarray(ids).astype(str)
    order = np.lexsort((ids, -np.asarray(counts)))
    bad = [i for i in ids if "\n" in i or i in (PAD_TOKEN, OOV_TOKEN)]
    if bad:
      raise DataError(f"id {bad[0]!r} cannot be used in a vocabulary "
                      "(newline or reserved token).")
    return cls((PAD_TOKEN, OOV_TOKEN) + tuple(ids[order]))

  def __len__(self) -> int:
    return len(self.tokens)

  def lookup(self, ids: Iterable) -> np.ndarray:
    """Returns int32 indices (same shape); unknown ids map to OOV_INDEX."""
    ids = np.asarray(ids).astype(str)
    indices = self._index.get_indexer(ids.ravel()).reshape(ids.shape)
    return np.where(indices < 0, OOV_INDEX, indices).astype(np.int32)

  def ids(self, indices: Iterable) -> np.ndarray:
    return np.asarray(self.tokens, dtype=object)[np.asarray(indices)]

  @property
  def fingerprint(self) -> str:
    """Short hash that identifies the exact entries and their order."""
    digest = hashlib.sha256("\n".join(self.tokens).encode("utf-8"))
    return digest.hexdigest()[:16]

  def save(self, path: str) -> None:
    """Writes one entry per line; line n (from 0) is index n."""
    with open(path, "w", encoding="utf-8") as f:
      f.write("\n".join(self.tokens) + "\n")

  @classmethod
  def load(cls, path: str) -> "Vocabulary":
    with open(path, encoding="utf-8") as f:
      return cls(tuple(f.read().rstrip("\n").split("\n")))

"""Local files: GroupLens raw archives and generic CSV/Parquet tables."""

import codecs
import dataclasses
import io
import os
import re
from typing import Optional

import numpy as np
import pandas as pd

from tfdistill.data.interactions import InteractionData
from tfdistill.data.interactions import make_interaction_data
from tfdistill.errors import DataError

_ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children",
                  "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
                  "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
                  "Sci-Fi", "Thriller", "War", "Western")
_PANDAS_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


@dataclasses.dataclass(frozen=True)
class _GroupLensFormat:
  separator: str
  header: bool
  item_file: str


_GROUPLENS = {
    "u.data": _GroupLensFormat("\t", False, "u.item"),
    "ratings.dat": _GroupLensFormat("::", False, "movies.dat"),
    "ratings.csv": _GroupLensFormat(",", True, "movies.csv"),
}


def _read_text(path: str) -> str:
  if not os.path.isfile(path):
    raise DataError(f"{path}: no such file.")
  with open(path, "rb") as f:
    raw = f.read()
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError:
    # ml-100k and ml-1m item files are Latin-1.
    return raw.decode("latin-1")


def _check_text(path: str, sample_bytes: int = 1 << 20) -> None:
  """Raises DataError unless the start of `path` is UTF-8 text."""
  with open(path, "rb") as f:
    sample = f.read(sample_bytes)
  if b"\0" in sample:
    raise DataError(f"{path}: contains NUL bytes; is it a binary file? Pass "
                    "a UTF-8 text table (or .parquet).")
  try:
    codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
  except UnicodeDecodeError as error:
    byte = error.object[error.start:error.start + 1]
    raise DataError(f"{path}: not UTF-8 text (byte {byte!r} at offset "
                    f"{error.start}); is it a binary file? Save the table as "
                    "UTF-8 CSV.") from None


_SEPARATORS = ("::", "\t", ",", ";", "|")
#: The id join file published beside the SASRec MovieLens-1M sequences.
_SAS_ITEM_MAP = "sas_to_original_items.txt"


def _check_separator(path: str, text: str, separator: str,
                     num_fields: int) -> None:
  """Raises when the first line is not `num_fields` fields separated by
  `separator`, naming the separator it does use and the accepted ones."""
  first = text.split("\n", 1)[0].rstrip("\r")
  if len(first.split(separator)) == num_fields:
    return
  found = [s for s in _SEPARATORS if len(first.split(s)) >= num_fields]
  name = os.path.basename(path)
  accepted = ", ".join(f"{n} {f.separator!r}" for n, f in _GROUPLENS.items())
  raise DataError(
      f"{path}:1: expected {num_fields} fields separated by {separator!r} "
      f"(the format of {name}), but the line "
      + (f"is separated by {found[0]!r}" if found else
         f"has no such separator ({first[:60]!r})")
      + f". GroupLens files use: {accepted}; for another table use "
      "--dataset=csv --columns=...")


def _read_delimited(path: str, separator: str, names: list, header: bool,
                    text: Optional[str] = None) -> pd.DataFrame:
  """Reads a delimited file strictly: every line must have len(names) fields.

  Raises:
    DataError: naming the file and line of the first malformed line.
  """
  text = (_read_text(path) if text is None else text).rstrip("\r\n")
  if not text:
    raise DataError(f"{path}: file is empty.")
  _check_separator(path, text, separator, len(names))
  if len(separator) > 1:
    text, separator = text.replace(separator, "\t"), "\t"
  first_line = 2 if header else 1
  try:
    frame = pd.read_csv(
        io.StringIO(text), sep=separator, header=0 if header else None,
        names=None if header else names, dtype=str, keep_default_na=False,
        na_values=[""], skip_blank_lines=False, engine="c", quoting=0)
  except pd.errors.ParserError as error:
    match = _PANDAS_FIELDS.search(str(error))
    if match:
      expected, line, saw = match.groups()
      raise DataError(f"{path}:{line}: expected {expected} fields separated "
                      f"by {separator!r}, found {saw}.") from error
    raise DataError(f"{path}: cannot parse: {error}") from error
  if header:
    missing = [n for n in names if n not in frame.columns]
    if missing:
      raise DataError(f"{path}:1: header lacks column(s) {missing}; found "
                      f"{list(frame.columns)}.")
    frame = frame[names]
  incomplete = frame.isna().any(axis=1).to_numpy()
  if incomplete.any():
    row = int(np.flatnonzero(incomplete)[0])
    raise DataError(f"{path}:{row + first_line}: expected {len(names)} fields "
                    f"separated by {separator!r}, found fewer (or an empty "
                    "line).")
  return frame


def _grouplens_items(path: str) -> Optional[pd.DataFrame]:
  """Reads the movie table that sits beside a GroupLens ratings file."""
  name = os.path.basename(path)
  if not os.path.isfile(path):
    return None
  if name == "u.item":
    text = _read_text(path)
    rows = [line.split("|") for line in text.splitlines() if line]
    genres = [tuple(g for g, flag in zip(_ML100K_GENRES, row[5:24])
                    if flag == "1") for row in rows]
    return pd.DataFrame({"item_id": [r[0] for r in rows],
                         "title": [r[1] for r in rows], "genres": genres})
  if name == "movies.dat":
    frame = _read_delimited(path, "::", ["item_id", "title", "genres"], False)
  else:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = frame.rename(columns={"movieId": "item_id"})
  frame["genres"] = [
      tuple(g for g in s.split("|") if g and g != "(no genres listed)")
      for s in frame["genres"]]
  return frame[["item_id", "title", "genres"]]


def load_grouplens(path: str) -> InteractionData:
  """Loads a raw GroupLens ratings file and the movie file beside it.

  Args:
    path: `u.data` (ml-100k), `ratings.dat` (ml-1m, ml-10m) or `ratings.csv`
      (ml-latest, ml-20m, ml-25m). Titles and genres are read from `u.item`,
      `movies.dat` or `movies.csv` in the same folder when present.

  Returns:
    `InteractionData` named "grouplens:<file name>".

  Raises:
    DataError: for a missing file, an unknown file name, a malformed line or
      a non-numeric rating or timestamp (naming file and line).
  """
  name = os.path.basename(path)
  fmt = _GROUPLENS.get(name)
  if fmt is None:
    raise DataError(f"{path}: not a GroupLens ratings file; expected one of "
                    f"{sorted(_GROUPLENS)} (use --dataset=csv with --columns "
                    "for other tables).")
  if fmt.header:
    names = ["userId", "movieId", "rating", "timestamp"]
  else:
    names = ["user_id", "item_id", "rating", "timestamp"]
  frame = _read_delimited(path, fmt.separator, names, fmt.header)
  frame.columns = ["user_id", "item_id", "rating", "timestamp"]
  items = _grouplens_items(os.path.join(os.path.dirname(path), fmt.item_file))
  return make_interaction_data(f"grouplens:{name}", frame, items, source=path,
                               line_offset=2 if fmt.header else 1)


@dataclasses.dataclass(frozen=True)
class ColumnMapping:
  """Which columns of a generic table hold the canonical fields.

  `rating=None` treats every row as an implicit interaction (rating 1.0);
  `timestamp=None` uses row order. `genres` holds strings separated by
  `genre_separator`.
  """
  user_id: str = "user_id"
  item_id: str = "item_id"
  timestamp: Optional[str] = "timestamp"
  rating: Optional[str] = "rating"
  title: Optional[str] = None
  genres: Optional[str] = None
  genre_separator: str = "|"

  @classmethod
  def parse(cls, spec: str) -> "ColumnMapping":
    """Parses "user_id=uid,item_id=iid,rating=" (empty value = absent)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
      key, sep, value = part.partition("=")
      if not sep or key not in fields:
        raise DataError(f"--columns: {part!r} is not <field>=<column> with "
                        f"field in {sorted(fields)}.")
      if not value and key in ("user_id", "item_id", "genre_separator"):
        raise DataError(f"--columns: {key} needs a column name, e.g. "
                        f"{key}=my_column (only timestamp, rating, title and "
                        "genres may be left empty).")
      values[key] = value or None
    return cls(**values)


def _timestamps(frame: pd.DataFrame, column: Optional[str], path: str,
                line_offset: Optional[int]) -> pd.Series:
  if column is None:
    return pd.Series(np.arange(len(frame)), index=frame.index)
  values = frame[column]
  numeric = pd.to_numeric(values, errors="coerce")
  if numeric.notna().all():
    return values  # converted (and range-checked) by make_interaction_data
  parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
  if parsed.notna().all():
    # Independent of the datetime resolution pandas picks (s, ms, us or ns).
    return (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
  row = int(np.flatnonzero((numeric.isna() & parsed.isna()).to_numpy())[0])
  where = (f"{path}:{row + line_offset}" if line_offset is not None else
           f"{path} (row {row})")
  raise DataError(f"{where}: timestamp {values.iloc[row]!r} is neither a "
                  "number nor an ISO 8601 date.")


def load_table(path: str, columns: ColumnMapping = ColumnMapping()
              ) -> InteractionData:
  """Loads a generic CSV/TSV or Parquet interaction table.

  Args:
    path: A `.csv`, `.tsv` or `.parquet` file.
    columns: Where the canonical fields are.

  Returns:
    `InteractionData` named "table:<file name>".
  """
  if not os.path.isfile(path):
    raise DataError(f"{path}: no such file.")
  suffix = os.path.splitext(path)[1].lower()
  if suffix == ".parquet":
    try:
      frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types.
      raise DataError(f"{path}: cannot read Parquet: {error}") from error
    line_offset = None
  elif suffix in (".csv", ".tsv", ".txt"):
    _check_text(path)
    try:
      frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",",
                          dtype=str, keep_default_na=False, na_values=[""],
                          encoding="utf-8")
    except pd.errors.EmptyDataError as error:
      raise DataError(f"{path}: file is empty; expected a header line and "
                      "one line per interaction.") from error
    except UnicodeDecodeError as error:
      byte = error.object[error.start:error.start + 1]
      raise DataError(f"{path}: not UTF-8 text (byte {byte!r} at offset "
                      f"{error.start}); is it a binary file? Save the table "
                      "as UTF-8 CSV.") from error
    except pd.errors.ParserError as error:
      match = _PANDAS_FIELDS.search(str(error))
      if match:
        expected, line, saw = match.groups()
        raise DataError(f"{path}:{line}: expected {expected} fields like the "
                        f"header line, found {saw}.") from error
      raise DataError(f"{path}: malformed table: {error}") from error
    line_offset = 2
  else:
    raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv, "
                    ".tsv or .parquet.")
  wanted = [c for c in (columns.user_id, columns.item_id, columns.timestamp,
                        columns.rating, columns.title, columns.genres) if c]
  missing = [c for c in wanted if c not in frame.columns]
  if missing:
    raise DataError(f"{path}: missing column(s) {missing}; found "
                    f"{list(frame.columns)}. Map them with --columns, e.g. "
                    "--columns=user_id=uid,item_id=iid,timestamp=ts,rating= "
                    "(timestamp= with no column: the rows are in time "
                    "order).")
  interactions = pd.DataFrame({
      "user_id": frame[columns.user_id],
      "item_id": frame[columns.item_id],
      "timestamp": _timestamps(frame, columns.timestamp, path, line_offset),
      "rating": frame[columns.rating] if columns.rating else 1.0,
  })
  items = None
  if columns.title or columns.genres:
    items = pd.DataFrame({"item_id": frame[columns.item_id].astype(str)})
    if columns.title:
      items["title"] = frame[columns.title].fillna("").astype(str)
    if columns.genres:
      items["genres"] = [
          tuple(g for g in str(v).split(columns.genre_separator) if g)
          if isinstance(v, str) else () for v in frame[columns.genres]]
  return make_interaction_data(f"table:{os.path.basename(path)}", interactions,
                               items, source=path, line_offset=line_offset)


def _integer_pairs(path: str) -> pd.DataFrame:
  """The `user item` lines of a sequence file, checked line by line.

  Raises:
    DataError: naming the file, line number and line of the first line that
      is not two integers separated by whitespace.
  """
  if not os.path.isfile(path):
    raise DataError(f"{path}: no such file.")
  _check_text(path)
  try:
    frame = pd.read_csv(path, sep=r"\s+", header=None, names=["user", "item"],
                        dtype=str, skip_blank_lines=False, engine="c",
                        keep_default_na=False, na_values=[""])
  except pd.errors.EmptyDataError:
    raise DataError(f"{path}: file is empty; expected one 'user item' line "
                    "per interaction.") from None
  except pd.errors.ParserError as error:
    match = _PANDAS_FIELDS.search(str(error))
    line = int(match.group(2)) if match else None
    raise DataError(_bad_sequence_line(path, line)) from None
  bad = ~(frame["user"].str.fullmatch(r"-?\d+", na=False)
          & frame["item"].str.fullmatch(r"-?\d+", na=False)).to_numpy()
  if bad.any():
    raise DataError(_bad_sequence_line(path, int(np.flatnonzero(bad)[0]) + 1))
  return frame


def _bad_sequence_line(path: str, line: Optional[int]) -> str:
  text = ""
  if line is not None:
    with open(path, encoding="utf-8", errors="replace") as f:
      for number, content in enumerate(f, 1):
        if number == line:
          text = content.rstrip("\r\n")
          break
  where = f"{path}:{line}" if line is not None else path
  return (f"{where}: expected 'user item' (two integer ids separated by "
          f"whitespace), found {text[:80]!r}.")


def _id_map(path: str) -> dict:
  """`sas_id original_id` lines -> {sas_id: original_id} (strings)."""
  frame = _integer_pairs(path)
  return dict(zip(frame["user"], frame["item"]))


def load_sequences(path: str, item_features: Optional[str] = None,
                   item_id_map: Optional[str] = None) -> InteractionData:
  """Loads the text format of sequential recommendation research (SASRec,
  BERT4Rec): one `user item` line per interaction, each user's lines in time
  order, no timestamps (the line number stands for the time).

  Args:
    path: The sequence file (e.g. ml-1m.txt).
    item_features: Optional GroupLens item table (`movies.dat`, `movies.csv`
      or `u.item`) for titles and genres.
    item_id_map: Optional `sequence_id original_id` lines joining the file's
      renumbered items to the item table's ids (e.g.
      sas_to_original_items.txt); default: that file beside `path` or
      `item_features` when it exists, else the ids are the table's own.

  Returns:
    `InteractionData` named "sequences:<file name>", rating 1.0.

  Raises:
    DataError: for a malformed line (file, line number and line).
  """
  frame = _integer_pairs(path)
  interactions = pd.DataFrame({
      "user_id": frame["user"], "item_id": frame["item"],
      "timestamp": np.arange(len(frame), dtype=np.int64),
      "rating": np.ones(len(frame), np.float32)})
  items = None
  if item_features:
    if not os.path.isfile(item_features):
      raise DataError(f"--item_features={item_features}: no such file.")
    items = _grouplens_items(item_features)
    if items is None:
      raise DataError(f"--item_features={item_features}: not an item table "
                      "(movies.dat, movies.csv or u.item).")
    if item_id_map is None:
      for folder in (os.path.dirname(path), os.path.dirname(item_features)):
        candidate = os.path.join(folder, _SAS_ITEM_MAP)
        if os.path.isfile(candidate):
          item_id_map = candidate
          break
    if item_id_map:
      to_original = _id_map(item_id_map)
      by_original = items.set_index("item_id")
      ids = list(to_original)
      originals = [to_original[i] for i in ids]
      known = [o in by_original.index for o in originals]
      items = pd.DataFrame({
          "item_id": [i for i, k in zip(ids, known) if k],
          "title": [by_original.at[o, "title"]
                    for o, k in zip(originals, known) if k],
          "genres": [by_original.at[o, "genres"]
                     for o, k in zip(originals, known) if k]})
  return make_interaction_data(f"sequences:{os.path.basename(path)}",
                               interactions, items, source=path,
                               line_offset=1)

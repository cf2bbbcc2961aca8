"""Local files: GroupLens raw formats, generic tables, and their errors."""

import pandas as pd
import pytest

from tfdistill.data.files import ColumnMapping
from tfdistill.data.files import load_grouplens
from tfdistill.data.files import load_table
from tfdistill.data.sources import load_dataset
from tfdistill.errors import DataError


def _write(path, text, encoding="utf-8"):
  path.write_text(text, encoding=encoding)
  return str(path)


def test_u_data_with_u_item(tmp_path):
  _write(tmp_path / "u.item",
         "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0"
         "|0|0|0|0|0\n2|Caf\xe9 (1996)|01-Jan-1996||http://y|0|1|0|0|0|0|0|0|0"
         "|0|0|0|0|0|0|0|0|0|0\n", encoding="latin-1")
  path = _write(tmp_path / "u.data", "1\t1\t5\t881250949\n1\t2\t3\t881250950\n"
                "2\t1\t4\t881250951\n")
  data = load_grouplens(path)
  assert data.summary() == {"dataset": "grouplens:u.data",
                            "num_interactions": 3, "num_users": 2,
                            "num_items": 2}
  items = data.items.set_index("item_id")
  assert items.loc["1", "genres"] == ("Animation", "Children", "Comedy")
  assert items.loc["2", "title"] == "Caf\xe9 (1996)"
  assert data.interactions["rating"].tolist() == [5.0, 3.0, 4.0]


def test_ratings_dat_with_movies_dat(tmp_path):
  _write(tmp_path / "movies.dat", "1::Toy Story (1995)::Animation|Comedy\n")
  path = _write(tmp_path / "ratings.dat", "1::1::5::978300760\n"
                "1::2::3::978302109\n")
  data = load_grouplens(path)
  assert data.num_items == 2  # movie 2 is rated but not in movies.dat
  assert data.items.set_index("item_id").loc["1", "genres"] == ("Animation",
                                                                "Comedy")


def test_ratings_csv_with_header(tmp_path):
  _write(tmp_path / "movies.csv", 'movieId,title,genres\n1,"Heat, The '
         '(1995)",Action|Crime\n2,Other (2000),(no genres listed)\n')
  path = _write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n"
                "1,1,4.5,964982703\n2,2,3.0,964982704\n")
  data = load_grouplens(path)
  items = data.items.set_index("item_id")
  assert items.loc["1", "title"] == "Heat, The (1995)"
  assert items.loc["2", "genres"] == ()
  assert data.interactions["rating"].tolist() == [4.5, 3.0]


def test_malformed_line_names_file_and_line(tmp_path):
  path = _write(tmp_path / "u.data", "1\t1\t5\t881250949\n1\t2\t3\n")
  with pytest.raises(DataError, match=r"u\.data:2: expected 4 fields"):
    load_grouplens(path)


def test_extra_field_names_file_and_line(tmp_path):
  path = _write(tmp_path / "ratings.dat", "1::1::5::9\n1::2::3::9\n1::3::3::9::x\n")
  with pytest.raises(DataError, match=r"ratings\.dat:3: expected 4 fields"):
    load_grouplens(path)


def test_non_numeric_rating_names_line_and_value(tmp_path):
  path = _write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n"
                "1,1,4.5,9\n1,2,good,9\n")
  with pytest.raises(DataError, match=r"ratings\.csv:3: rating 'good' is not "
                     "a number"):
    load_grouplens(path)


def test_missing_file(tmp_path):
  with pytest.raises(DataError, match="no such file"):
    load_grouplens(str(tmp_path / "u.data"))


def test_unknown_grouplens_file_name(tmp_path):
  path = _write(tmp_path / "likes.txt", "1 2\n")
  with pytest.raises(DataError, match="not a GroupLens ratings file"):
    load_grouplens(path)


def test_generic_csv_with_column_mapping(tmp_path):
  path = _write(tmp_path / "events.csv", "uid,iid,when,tags\n"
                "a,x,2024-01-02T00:00:00Z,red|blue\nb,y,2024-01-01,\n")
  mapping = ColumnMapping.parse("user_id=uid,item_id=iid,timestamp=when,"
                                "rating=,genres=tags")
  data = load_table(path, mapping)
  assert data.interactions["rating"].tolist() == [1.0, 1.0]
  assert data.interactions["timestamp"].tolist() == [1704153600, 1704067200]
  assert data.items.set_index("item_id").loc["x", "genres"] == ("red", "blue")


def test_generic_parquet(tmp_path):
  path = tmp_path / "events.parquet"
  pd.DataFrame({"user_id": ["a", "a"], "item_id": ["x", "y"],
                "timestamp": [1, 2], "rating": [3.0, 4.0]}).to_parquet(path)
  data = load_dataset("parquet", path=str(path))
  assert data.num_interactions == 2


def test_generic_table_missing_column_suggests_mapping(tmp_path):
  path = _write(tmp_path / "events.csv", "uid,iid\na,x\n")
  with pytest.raises(DataError, match="--columns"):
    load_table(path)


def test_bad_column_mapping_spec():
  with pytest.raises(DataError, match="not <field>=<column>"):
    ColumnMapping.parse("user=uid")


def test_unknown_dataset_lists_choices():
  with pytest.raises(DataError, match="unknown data set 'nope'.*synthetic"):
    load_dataset("nope")


def test_file_source_without_path():
  with pytest.raises(DataError, match="--path"):
    load_dataset("grouplens")


def test_bad_timestamp_names_line(tmp_path):
  path = _write(tmp_path / "events.csv", "user_id,item_id,timestamp,rating\n"
                "a,x,5,1\na,y,yesterday,1\n")
  with pytest.raises(DataError, match=r"events\.csv:3: timestamp 'yesterday'"):
    load_table(path)

"""Local files: GroupLens raw formats, generic tables, and their errors."""

import pandas as pd
import pytest

from tfdistill.data.files import ColumnMapping
from tfdistill.data.files import load_grouplens
from tfdistill.data.files import load_table
from tfdistill.data.sources import load_dataset
from conftest import REPO
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


SHARED_SASREC = REPO.parent / "shared" / "data" / "ml-1m-sasrec"


def test_sequence_file_in_file_order(tmp_path):
  path = _write(tmp_path / "seq.txt", "1 10\n1 11\n2 10\n1 12\n2 13\n")
  data = load_dataset("sequences", path=path)
  assert data.name == "sequences:seq.txt"
  frame = data.interactions
  assert list(frame["item_id"][frame["user_id"] == "1"]) == ["10", "11", "12"]
  assert list(frame["timestamp"]) == [0, 1, 2, 3, 4]  # the line order
  assert set(frame["rating"]) == {1.0}


def test_sequence_file_items_joined_to_movies_dat(tmp_path):
  path = _write(tmp_path / "seq.txt", "1 1\n1 2\n")
  _write(tmp_path / "movies.dat", "7::Seven (1995)::Crime|Thriller\n"
         "9::Nine (2009)::Animation\n")
  _write(tmp_path / "sas_to_original_items.txt", "1 9\n2 7\n")
  data = load_dataset("sequences", path=path,
                      item_features=str(tmp_path / "movies.dat"))
  items = data.items.set_index("item_id")
  assert items.loc["1", "title"] == "Nine (2009)"
  assert items.loc["2", "genres"] == ("Crime", "Thriller")


@pytest.mark.parametrize("text,line,shown", [
    ("1 1\n1 2 3\n", 2, "'1 2 3'"),
    ("1 1\n1 x\n", 2, "'1 x'"),
    ("1 1\n\n1 2\n", 2, "''"),
    ("1,1\n", 1, "'1,1'"),
])
def test_sequence_file_bad_line_names_file_line_and_text(tmp_path, text, line,
                                                          shown):
  path = _write(tmp_path / "seq.txt", text)
  with pytest.raises(DataError) as error:
    load_dataset("sequences", path=path)
  message = str(error.value)
  assert f"seq.txt:{line}:" in message and shown in message, message


def test_the_sasrec_movielens_1m_file(tmp_path):
  if not (SHARED_SASREC / "ml-1m.txt").is_file():
    pytest.skip(f"{SHARED_SASREC} not found (only on the project's machines)")
  data = load_dataset("sequences", path=str(SHARED_SASREC / "ml-1m.txt"),
                      item_features=str(SHARED_SASREC / "movies.dat"))
  assert (data.num_interactions, data.num_users, data.num_items) == (
      999_611, 6_040, 3_416)
  assert data.items.set_index("item_id").loc["1", "title"] == (
      "Raiders of the Lost Ark (1981)")

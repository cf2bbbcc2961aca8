"""TFDS MovieLens, offline from ../shared/data (skipped elsewhere)."""

import pytest

from tfdistill.data.movielens import load_movielens
from tfdistill.errors import DataError


def test_latest_small_loads_offline(movielens_dir, tfds_cache):
  data = load_movielens("movielens/latest-small-ratings", data_dir=tfds_cache,
                        manual_dir=movielens_dir)
  assert (data.num_interactions, data.num_users, data.num_items) == (100836,
                                                                     610, 9742)
  items = data.items.set_index("item_id")
  assert items.loc["1", "title"] == "Toy Story (1995)"
  assert "Animation" in items.loc["1", "genres"]
  assert data.interactions["rating"].between(0.5, 5.0).all()


def test_unknown_config_is_rejected():
  with pytest.raises(DataError, match="unknown MovieLens data set"):
    load_movielens("movielens/2k-ratings")


def test_missing_manual_dir_is_named(tmp_path):
  with pytest.raises(DataError, match="is not a directory"):
    load_movielens("movielens/100k-ratings", manual_dir=str(tmp_path / "no"))

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


def test_a_build_finished_by_another_process_is_loaded(movielens_dir,
                                                       tfds_cache,
                                                       monkeypatch):
  # Two seeds started together both build the data set; the slower one's
  # rename fails with FileExistsError, and the finished copy must be read.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  real_load, calls = tfds.load, []

  def racing_load(*args, **kwargs):
    calls.append(args[0])
    if len(calls) == 1:
      real_load(*args, **kwargs)  # the other process's build
      raise FileExistsError("Cannot rename incomplete.XYZ: destination exists")
    return real_load(*args, **kwargs)

  monkeypatch.setattr(tfds, "load", racing_load)
  data = load_movielens("movielens/latest-small-ratings", data_dir=tfds_cache,
                        manual_dir=movielens_dir)
  assert data.num_interactions == 100836
  assert calls[:2] == ["movielens/latest-small-ratings"] * 2

"""Preparation: vocabularies, filtering, leave-last-out split without leakage."""

import numpy as np
import pandas as pd
import pytest

from tfdistill.data.interactions import make_interaction_data
from tfdistill.data.prepare import prepare
from tfdistill.data.prepare import PrepareConfig
from tfdistill.data.prepare import PreparedData
from tfdistill.data.prepare import TEST
from tfdistill.data.prepare import time_window
from tfdistill.data.prepare import TRAIN
from tfdistill.data.prepare import VALIDATION
from tfdistill.data.sources import load_dataset
from tfdistill.data.sources import SourceConfig
from tfdistill.data.vocab import OOV_INDEX
from tfdistill.data.vocab import Vocabulary
from tfdistill.errors import ConfigError
from tfdistill.errors import DataError


def _frame(rows):
  return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp",
                                     "rating"])


def test_same_seed_gives_identical_splits(tiny_prepared, tiny_synthetic_config):
  again = prepare(load_dataset(SourceConfig(synthetic=tiny_synthetic_config)),
                  tiny_prepared.config)
  for field in ("user", "item", "timestamp", "split"):
    np.testing.assert_array_equal(getattr(again, field),
                                  getattr(tiny_prepared, field))
  assert again.items.fingerprint == tiny_prepared.items.fingerprint


def test_split_has_no_leakage(tiny_prepared):
  p = tiny_prepared
  frame = pd.DataFrame({"user": p.user, "ts": p.timestamp, "split": p.split})
  for _, group in frame.groupby("user"):
    splits = group["split"].to_numpy()
    assert list(splits[-2:]) == [VALIDATION, TEST]
    assert (splits[:-2] == TRAIN).all()
    train_ts = group["ts"][group["split"] == TRAIN]
    assert group["ts"][group["split"] == VALIDATION].min() >= train_ts.max()
    assert group["ts"][group["split"] == TEST].min() >= train_ts.max()
    assert (np.diff(group["ts"].to_numpy()) >= 0).all()


def test_hand_made_split_and_tie_order():
  # User a: three interactions, the last two share a timestamp; the source
  # order decides. User b has too few interactions and is filtered out.
  data = make_interaction_data("hand", _frame([
      ("a", "x", 10, 4), ("a", "z", 30, 3), ("a", "y", 20, 5),
      ("a", "w", 30, 1), ("b", "x", 5, 2), ("b", "y", 6, 2)]))
  p = prepare(data, PrepareConfig(min_user_interactions=3))
  assert p.stats["num_users_kept"] == 1
  assert p.stats["num_interactions_kept"] == 4
  assert list(p.items.ids(p.item)) == ["x", "y", "z", "w"]
  assert list(p.split) == [TRAIN, TRAIN, VALIDATION, TEST]
  np.testing.assert_array_equal(p.rating, [4, 5, 3, 1])


def test_filtering_reaches_a_fixed_point(tiny_data):
  config = PrepareConfig(min_user_interactions=8, min_item_interactions=6)
  p = prepare(tiny_data, config)
  users = np.bincount(p.user)[2:]
  items = np.bincount(p.item, minlength=p.num_items)[2:]
  assert users.min() >= 8
  assert items[items > 0].min() >= 6
  assert p.stats["num_interactions"] == tiny_data.num_interactions
  assert p.stats["num_interactions_kept"] < tiny_data.num_interactions


def test_vocabulary_reserves_padding_and_oov(tiny_prepared):
  items = tiny_prepared.items
  assert items.tokens[:2] == ("[PAD]", "[OOV]")
  assert items.lookup(["never-seen"])[0] == OOV_INDEX
  assert tiny_prepared.item.min() >= 2
  # Most interacted item gets the first real index.
  counts = np.bincount(tiny_prepared.item)
  assert counts[2] == counts[2:].max()


def test_vocabulary_round_trip(tmp_path):
  vocab = Vocabulary.from_counts(["b", "a", "c"], [1, 5, 1])
  assert vocab.tokens == ("[PAD]", "[OOV]", "a", "b", "c")
  vocab.save(tmp_path / "v.txt")
  again = Vocabulary.load(tmp_path / "v.txt")
  assert again.tokens == vocab.tokens
  assert again.fingerprint == vocab.fingerprint
  np.testing.assert_array_equal(again.lookup(["c", "a", "?"]), [4, 2, 1])


def test_content_features_align_with_vocabulary(tiny_data, tiny_prepared):
  p = tiny_prepared
  row = 5
  item_id = p.items.tokens[row]
  genres = tiny_data.items.set_index("item_id").loc[item_id, "genres"]
  decoded = [p.genres.tokens[g] for g in p.item_genres[row] if g]
  assert decoded == list(genres)[:p.config.max_genres]
  assert not p.item_genres[:2].any() and not p.item_title[:2].any()


def test_save_load_round_trip_and_refuse_overwrite(tiny_prepared, tmp_path):
  target = tmp_path / "prepared"
  tiny_prepared.save(str(target))
  again = PreparedData.load(str(target))
  np.testing.assert_array_equal(again.item, tiny_prepared.item)
  np.testing.assert_array_equal(again.item_title, tiny_prepared.item_title)
  assert again.summary() == tiny_prepared.summary()
  with pytest.raises(DataError, match="already exists"):
    tiny_prepared.save(str(target))
  tiny_prepared.save(str(target), overwrite=True)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]


def test_load_of_a_folder_without_data_names_it(tmp_path):
  with pytest.raises(DataError, match="not a prepared data folder"):
    PreparedData.load(str(tmp_path))


def test_empty_after_filtering_is_an_error(tiny_data):
  with pytest.raises(DataError, match="no interactions left"):
    prepare(tiny_data, PrepareConfig(min_user_interactions=10_000))


def test_min_item_interactions_zero_keeps_the_whole_item_table():
  # 500 items, far fewer interacted with: the catalog is all 500, the items
  # without interactions last, and the seen ones indexed as by default.
  from tfdistill.data.synthetic import SyntheticConfig  # pylint: disable=g-import-not-at-top
  data = load_dataset(SourceConfig(synthetic=SyntheticConfig(
      num_users=30, num_items=500, mean_interactions_per_user=12, seed=1)))
  seen = prepare(data)
  whole = prepare(data, PrepareConfig(min_item_interactions=0))
  assert len(seen.items) < len(whole.items) == 500 + 2
  assert whole.items.tokens[:len(seen.items)] == seen.items.tokens
  np.testing.assert_array_equal(whole.item, seen.item)
  assert (whole.item != OOV_INDEX).all()
  assert whole.item_genres.shape[0] == len(whole.items)
  with pytest.raises(ConfigError, match="min_item_interactions"):
    PrepareConfig(min_item_interactions=-1)


def test_min_user_interactions_below_three_is_rejected():
  with pytest.raises(ConfigError, match="min_user_interactions"):
    PrepareConfig(min_user_interactions=2)


def test_time_window_keeps_vocabulary(tiny_prepared):
  middle = int(np.median(tiny_prepared.timestamp))
  late = time_window(tiny_prepared, start=middle)
  assert late.items is tiny_prepared.items
  assert late.timestamp.min() >= middle
  assert (np.bincount(late.user)[np.unique(late.user)] >= 3).all()
  assert late.split_sizes()["test"] == len(np.unique(late.user))

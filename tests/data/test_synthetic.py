"""The synthetic data set: deterministic, structured, scalable."""

import numpy as np
import pandas as pd
import pytest

from tfdistill.data.synthetic import generate_synthetic
from tfdistill.data.synthetic import SyntheticConfig
from tfdistill.errors import ConfigError

SMALL = SyntheticConfig(num_users=300, num_items=400,
                        mean_interactions_per_user=25, seed=3)


@pytest.fixture(scope="module")
def small():
  return generate_synthetic(SMALL)


def test_same_seed_gives_identical_data(small):
  again = generate_synthetic(SMALL)
  pd.testing.assert_frame_equal(small.interactions, again.interactions)
  pd.testing.assert_frame_equal(small.items, again.items)


def test_different_seed_gives_different_data(small):
  other = generate_synthetic(SyntheticConfig(**{**SMALL.__dict__, "seed": 4}))
  assert not small.interactions.equals(other.interactions)


def test_popularity_is_skewed(small):
  counts = small.interactions["item_id"].value_counts().to_numpy()
  top_share = counts[:len(counts) // 20].sum() / counts.sum()
  # Uniform popularity would give the top 5% of items 5% of interactions.
  assert top_share > 0.15


def _transitions(frame):
  frame = frame.sort_values(["user_id", "timestamp"], kind="stable")
  same_user = frame["user_id"].to_numpy()[1:] == frame["user_id"].to_numpy()[:-1]
  items = frame["item_id"].to_numpy()
  return items[:-1][same_user], items[1:][same_user]


def test_next_item_depends_on_previous_item(small):
  prev, nxt = _transitions(small.interactions)
  pairs = pd.DataFrame({"prev": prev, "next": nxt})
  # How often the next item is the previous item's most common successor...
  top_successor = pairs.groupby("prev")["next"].agg(
      lambda s: s.value_counts().index[0])
  hit = (pairs["next"] == pairs["prev"].map(top_successor)).mean()
  # ...versus how often it is the single most popular item overall.
  popular = (pairs["next"] == pairs["next"].value_counts().index[0]).mean()
  assert hit > 5 * popular


def test_users_have_genre_taste(small):
  genres = small.items.set_index("item_id")["genres"].map(lambda g: g[0])
  frame = small.interactions.assign(genre=small.interactions["item_id"].map(
      genres))
  # Share of a user's interactions in their favourite genre vs. the global
  # share of the most common genre.
  per_user = frame.groupby("user_id")["genre"].agg(
      lambda s: s.value_counts(normalize=True).iloc[0]).mean()
  overall = frame["genre"].value_counts(normalize=True).iloc[0]
  assert per_user > overall + 0.1


def test_items_have_titles_and_genres(small):
  assert small.num_items == SMALL.num_items
  assert (small.items["title"].str.len() > 0).all()
  assert small.items["genres"].map(len).between(1, 3).all()


def test_timestamps_increase_per_user(small):
  frame = small.interactions
  # Interactions are generated in order; timestamps never go backwards.
  diffs = frame.groupby("user_id")["timestamp"].diff().dropna()
  assert (diffs >= 0).all()


def test_ratings_are_half_stars(small):
  ratings = small.interactions["rating"].to_numpy()
  assert ratings.min() >= 0.5 and ratings.max() <= 5.0
  np.testing.assert_array_equal(ratings * 2, np.round(ratings * 2))


def test_large_catalog_is_supported():
  data = generate_synthetic(SyntheticConfig(num_users=200, num_items=100_000,
                                            mean_interactions_per_user=20))
  assert data.num_items == 100_000
  assert data.interactions["item_id"].nunique() > 1000


@pytest.mark.parametrize("field,value", [("num_items", 5),
                                         ("sequential_probability", 1.5),
                                         ("mean_interactions_per_user", 1)])
def test_bad_config_raises(field, value):
  with pytest.raises(ConfigError, match=field):
    SyntheticConfig(**{field: value})

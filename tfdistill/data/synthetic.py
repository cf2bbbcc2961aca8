"""A deterministic synthetic interaction data set with real structure.

The generator is the embedded default data source, so that tfdistill runs on a
machine with no data at all. It is built to have the structure that makes
recommendation (and distillation) non-trivial:

* Zipf-like item popularity;
* latent user tastes over genres, and item latent vectors derived from genres;
* item content features: genres and title tokens drawn from genre-specific
  vocabularies, so content is informative about taste;
* sequential dynamics: the next item depends on the recent ones, both through
  "franchise chains" (each item has a few successors within its genre) and
  through latent similarity to the previous item;
* timestamps that spread users over a time span (for time-window splits) and
  ratings that depend on user-item affinity.

Generation is vectorised over users, step by step, so a million interactions
take seconds.
"""

import dataclasses

from absl import logging
import numpy as np
import pandas as pd

from tfdistill.data.interactions import InteractionData
from tfdistill.data.interactions import make_interaction_data
from tfdistill.errors import ConfigError

_GENRE_NAMES = ("Action", "Adventure", "Animation", "Children", "Comedy",
                "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir",
                "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
                "Thriller", "War", "Western")
_SYLLABLES = ("ka", "lo", "mi", "ren", "tor", "vas", "el", "dun", "shi", "qua",
              "bri", "mon", "zel", "fa", "gor", "thi", "ul", "nar", "pe", "sto")
# Taste candidates drawn per user and step, and how many recent items a user
# avoids repeating. Residual repeats are removed after generation.
_NUM_TASTE_CANDIDATES = 16
_RECENT_WINDOW = 16
_SECONDS_PER_DAY = 86_400


def check_seed(seed: int) -> None:
  """Raises unless `seed` is a valid --seed (an integer in [0, 2**32))."""
  if not 0 <= seed < 2 ** 32:
    raise ConfigError(f"--seed must be an integer in [0, 2**32), got {seed}.")


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Size and structure of the synthetic data set.

  Attributes:
    num_users: Number of users.
    num_items: Catalog size (up to 100k and beyond).
    mean_interactions_per_user: Mean sequence length (log-normal lengths).
    num_genres: Number of genres (item content feature).
    latent_dim: Dimension of the hidden taste space.
    popularity_exponent: Zipf exponent of item popularity.
    taste_sharpness: How strongly users prefer items close to their taste.
    sequential_probability: Probability that the next item continues a chain
      from the previous item (the "sequential dynamics").
    chain_fanout: Number of successors each item has in its chain.
    num_title_tokens: Size of the title vocabulary.
    start_timestamp: Unix time of the first interaction.
    time_span_days: Span of time the interactions cover.
    seed: Random seed; the same config always gives the same data.
  """
  num_users: int = 3000
  num_items: int = 3000
  mean_interactions_per_user: float = 40.0
  num_genres: int = 18
  latent_dim: int = 16
  popularity_exponent: float = 1.0
  taste_sharpness: float = 5.0
  sequential_probability: float = 0.45
  chain_fanout: int = 3
  num_title_tokens: int = 800
  start_timestamp: int = 1_500_000_000
  time_span_days: float = 730.0
  seed: int = 0

  def __post_init__(self):
    check_seed(self.seed)
    if self.num_users < 1 or self.num_items < 10:
      raise ConfigError("synthetic data needs num_users >= 1 and num_items >= "
                        f"10, got {self.num_users} and {self.num_items}.")
    if self.mean_interactions_per_user < 3:
      raise ConfigError("mean_interactions_per_user must be >= 3, got "
                        f"{self.mean_interactions_per_user}.")
    if not 0.0 <= self.sequential_probability <= 1.0:
      raise ConfigError("sequential_probability must be in [0, 1], got "
                        f"{self.sequential_probability}.")
    if not 1 <= self.num_genres <= 64:
      raise ConfigError(f"num_genres must be in [1, 64], got {self.num_genres}.")
    if self.chain_fanout < 1:
      raise ConfigError(f"chain_fanout must be >= 1, got {self.chain_fanout}.")


@dataclasses.dataclass(frozen=True)
class _Catalog:
  latent: np.ndarray  # [num_items, latent_dim], unit norm
  popularity_order: np.ndarray  # item index of popularity rank r
  primary_genre: np.ndarray  # [num_items]
  genres: list  # tuple of genre names per item
  titles: np.ndarray  # str per item
  successors: np.ndarray  # [num_items, chain_fanout]


def _unit(x: np.ndarray) -> np.ndarray:
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _genre_names(num_genres: int) -> list:
  if num_genres <= len(_GENRE_NAMES):
    return list(_GENRE_NAMES[:num_genres])
  return [f"Genre{g:02d}" for g in range(num_genres)]


def _title_words(num_tokens: int, rng: np.random.Generator) -> np.ndarray:
  """Distinct pronounceable words, e.g. "kaloren"."""
  words = set()
  while len(words) < num_tokens:
    n = rng.integers(2, 4)
    words.add("".join(rng.choice(_SYLLABLES, n)))
  return np.array(sorted(words))


def _make_catalog(config: SyntheticConfig,
                  rng: np.random.Generator) -> _Catalog:
  """Draws item genres, latent vectors, popularity, titles and chains."""
  n, g, d = config.num_items, config.num_genres, config.latent_dim
  genre_share = rng.dirichlet(np.full(g, 2.0))
  primary = rng.choice(g, size=n, p=genre_share)
  secondary = rng.choice(g, size=(n, 2), p=genre_share)
  has_secondary = rng.random((n, 2)) < np.array([0.6, 0.2])
  centroids = rng.normal(size=(g, d))
  latent = centroids[primary] + 0.5 * (
      centroids[secondary] * has_secondary[..., None]).sum(1)
  latent = _unit(latent + 0.6 * rng.normal(size=(n, d))).astype(np.float32)


  names = _genre_names(g)
  genres = []
  for i in range(n):
    item_genres = [primary[i]] + [
        s for s, keep in zip(secondary[i], has_secondary[i])
        if keep and s != primary[i]]
    genres.append(tuple(names[k] for k in dict.fromkeys(item_genres)))

  words = _title_words(config.num_title_tokens, rng)
  pool = max(1, len(words) // (g + 1))
  num_words = np.clip(1 + rng.poisson(1.5, size=n), 1, 5)
  years = rng.integers(1950, 2024, size=n)
  # Most title words come from the primary genre's own pool (Zipf within the
  # pool), the rest from a shared generic pool at the end of the word list.
  within = np.minimum((rng.pareto(1.2, size=(n, 5)) * 3).astype(int), pool - 1)
  from_genre = rng.random((n, 5)) < 0.7
  token_ids = np.where(from_genre, primary[:, None] * pool + within,
                       g * pool + within)
  token_ids = np.minimum(token_ids, len(words) - 1)
  titles = np.array([
      " ".join(w.capitalize() for w in words[token_ids[i, :num_words[i]]]) +
      f" ({years[i]})" for i in range(n)])

  # Franchise chains: within each primary genre, items follow each other in a
  # random order; each item's successors are the next few in its chain.
  successors = np.empty((n, config.chain_fanout), dtype=np.int64)
  for genre in range(g):
    members = rng.permutation(np.flatnonzero(primary == genre))
    if len(members) == 0:
      continue
    for k in range(config.chain_fanout):
      successors[members, k] = np.roll(members, -(k + 1))
  return _Catalog(latent=latent, popularity_order=rng.permutation(n),
                  primary_genre=primary,
                  genres=genres, titles=titles, successors=successors)


def _popular_items(config: SyntheticConfig, catalog: _Catalog,
                   rng: np.random.Generator, shape: tuple) -> np.ndarray:
  """Draws items with Zipf-like popularity P(rank r) ~ (r + 1) ** -exponent.

  Inverts the CDF of the continuous power law on [1, n + 1], which is O(1) per
  draw (a table search over a 100k-item CDF is the slow part otherwise).
  """
  a, n = config.popularity_exponent, config.num_items
  u = rng.random(shape)
  if abs(a - 1.0) < 1e-6:
    x = np.exp(u * np.log(n + 1.0))
  else:
    x = ((n + 1.0)**(1.0 - a) * u + (1.0 - u))**(1.0 / (1.0 - a))
  rank = np.minimum(x.astype(np.int64) - 1, n - 1)
  return catalog.popularity_order[rank]


def _user_tastes(config: SyntheticConfig, catalog: _Catalog,
                 rng: np.random.Generator) -> np.ndarray:
  """Each user likes a mixture of one to three genre directions."""
  u, d = config.num_users, config.latent_dim
  anchors = catalog.latent[rng.integers(0, config.num_items, size=(u, 3))]
  mix = rng.dirichlet(np.full(3, 0.5), size=u)
  tastes = (anchors * mix[..., None]).sum(1) + 0.3 * rng.normal(size=(u, d))
  return _unit(tastes).astype(np.float32)


def _sequence_lengths(config: SyntheticConfig,
                      rng: np.random.Generator) -> np.ndarray:
  sigma = 0.8
  mu = np.log(config.mean_interactions_per_user) - sigma**2 / 2
  lengths = np.round(rng.lognormal(mu, sigma, size=config.num_users))
  cap = max(3, int(20 * config.mean_interactions_per_user))
  return np.clip(lengths, 3, cap).astype(np.int64)


def _generate_sequences(config: SyntheticConfig, catalog: _Catalog,
                        tastes: np.ndarray, lengths: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
  """Returns item indices of all users, concatenated in user order.

  Users are processed in order of decreasing length so that the users still
  active at step t are always a prefix, which keeps every step vectorised.
  """
  order = np.argsort(-lengths, kind="stable")
  sorted_lengths = lengths[order]
  offsets = np.concatenate([[0], np.cumsum(lengths)])[:-1][order]
  items = np.zeros(int(lengths.sum()), dtype=np.int64)
  user_taste = tastes[order]
  for t in range(int(sorted_lengths[0])):
    active = int(np.count_nonzero(sorted_lengths > t))
    base = offsets[:active]
    candidates = _popular_items(config, catalog, rng,
                                (active, _NUM_TASTE_CANDIDATES))
    scores = config.taste_sharpness * np.einsum(
        "ad,amd->am", user_taste[:active], catalog.latent[candidates])
    if t > 0:
      last = items[base + t - 1]
      scores += 2.0 * np.einsum("ad,amd->am", catalog.latent[last],
                                catalog.latent[candidates])
      window = np.arange(max(0, t - _RECENT_WINDOW), t)
      recent = items[base[:, None] + window[None, :]]
      repeated = (candidates[:, :, None] == recent[:, None, :]).any(-1)
      scores = np.where(repeated, -np.inf, scores)
    scores += rng.gumbel(size=scores.shape).astype(np.float32)
    pick = candidates[np.arange(active), np.argmax(scores, axis=1)]
    if t > 0:
      # Successors nearer in the chain are more likely.
      hop = np.minimum(rng.geometric(0.6, size=active) - 1,
                       config.chain_fanout - 1)
      successor = catalog.successors[last, hop]
      fresh = ~(successor[:, None] == recent).any(-1)
      follow = (rng.random(active) < config.sequential_probability) & fresh
      pick = np.where(follow, successor, pick)
    items[base + t] = pick
  return items


def generate_synthetic(config: SyntheticConfig = SyntheticConfig()
                      ) -> InteractionData:
  """Generates the synthetic data set described by `config`.

  Args:
    config: Size, structure and seed of the data.

  Returns:
    `InteractionData` named "synthetic" with user ids "u<k>", item ids "i<k>",
    genres and titles for every item.

  Example:
    >>> data = generate_synthetic(SyntheticConfig(num_users=100, num_items=50))
    >>> data.num_items
    50
  """
  rng = np.random.default_rng(config.seed)
  catalog = _make_catalog(config, rng)
  tastes = _user_tastes(config, catalog, rng)
  lengths = _sequence_lengths(config, rng)
  items = _generate_sequences(config, catalog, tastes, lengths, rng)
  users = np.repeat(np.arange(config.num_users), lengths)

  # Each user starts somewhere in the first four fifths of the span and
  # spreads the interactions over the remaining time with exponential gaps.
  span = config.time_span_days * _SECONDS_PER_DAY
  start = rng.uniform(0, 0.8 * span, size=config.num_users)
  gaps = rng.exponential(1.0, size=len(items))
  position = np.cumsum(gaps)
  user_start = np.concatenate([[0], np.cumsum(lengths)])[:-1]
  before = np.concatenate([[0.0], position])[user_start]
  total = np.concatenate([[0.0], position])[user_start + lengths]
  fraction = (position - np.repeat(before, lengths)) / np.repeat(
      total - before, lengths)
  room = np.repeat(span - start, lengths) * rng.uniform(
      0.2, 1.0, size=config.num_users).repeat(lengths)
  timestamps = (config.start_timestamp + np.repeat(start, lengths) +
                fraction * room).astype(np.int64)

  affinity = np.einsum("nd,nd->n", tastes[users], catalog.latent[items])
  ratings = np.round(2 * (3.4 + 2.0 * affinity +
                          0.6 * rng.normal(size=len(items)))) / 2
  ratings = np.clip(ratings, 0.5, 5.0)

  frame = pd.DataFrame({
      "user_id": np.char.add("u", users.astype(str)),
      "item_id": np.char.add("i", items.astype(str)),
      "timestamp": timestamps,
      "rating": ratings.astype(np.float32),
  })
  # The recent-window check leaves a few long-range repeats; users do not
  # re-consume items in this data set, so keep each user's first interaction.
  before_dedupe = len(frame)
  frame = frame.drop_duplicates(["user_id", "item_id"], keep="first")
  logging.info("synthetic: %d interactions (%d repeats removed), %d users, "
               "%d items", len(frame), before_dedupe - len(frame),
               config.num_users, config.num_items)
  item_table = pd.DataFrame({
      "item_id": np.char.add("i", np.arange(config.num_items).astype(str)),
      "title": catalog.titles,
      "genres": catalog.genres,
  })
  return make_interaction_data("synthetic", frame.reset_index(drop=True),
                               item_table)

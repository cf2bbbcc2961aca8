"""Large retrieval teachers: TFRS models trained with `tfrs.tasks.Retrieval`.

Teachers expose, besides `call` (logits over the catalog) and TFRS's
`compute_loss`, what distillation needs:

* `query_signals(inputs, training, catalog=None)` -> {"query_embedding",
  "hidden"}; `catalog`, if given, is `catalog_embeddings()`, from which a
  teacher may read its context items' vectors instead of encoding them;
* `catalog_embeddings(training)` -> [num_items, d], computed once by the
  Distiller for a frozen teacher instead of at every step;
* `input_signature`, `num_items` and `vocabulary_fingerprint` for the
  compatibility checks made before distillation starts.
"""

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from tfdistill.data.examples import CONTEXT
from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.errors import ConfigError
from tfdistill.models.configs import NEGATIVES
from tfdistill.models.configs import OBJECTIVES
from tfdistill.models.features import ItemContentEncoder
from tfdistill.models.layers import MaskedBag
from tfdistill.models.layers import PositionEmbedding
from tfdistill.models.layers import TransformerBlock
from tfdistill.models.registry import register
from tfdistill.models.signals import HIDDEN
from tfdistill.models.signals import LOGITS
from tfdistill.models.signals import QUERY_EMBEDDING



def features_and_labels(inputs, label_key: str):
  """(features, labels) from a batch that is a pair or a feature dict."""
  if isinstance(inputs, (tuple, list)):
    return inputs[0], inputs[1]
  return inputs, inputs[label_key]


class ContentTeacher(tfrs.Model):
  """A TFRS teacher with an item tower over item ids and content features.

  Holds what every tfdistill teacher shares: the catalog and embedding
  sizes, the item vocabulary's fingerprint, the content feature sizes, the
  item tower (`item_encoder`, built at once), and the Keras config of those
  arguments (subclasses add their own to `get_config`).
  """

  def __init__(self, num_items: int, embedding_dim: int, num_genres: int = 2,
               num_title_tokens: int = 2, max_genres: int = 4,
               max_title_tokens: int = 8, vocabulary_fingerprint: str = "",
               **kwargs):
    super().__init__(**kwargs)
    self.num_items = num_items
    self.embedding_dim = embedding_dim
    self.vocabulary_fingerprint = vocabulary_fingerprint
    self._feature_sizes = dict(num_genres=num_genres,
                               num_title_tokens=num_title_tokens,
                               max_genres=max_genres,
                               max_title_tokens=max_title_tokens)
    self.item_encoder = ItemContentEncoder(num_items, embedding_dim,
                                           name="item_encoder",
                                           **self._feature_sizes)
    self.item_encoder.build(None)

  def get_config(self):
    return dict(num_items=self.num_items, embedding_dim=self.embedding_dim,
                vocabulary_fingerprint=self.vocabulary_fingerprint,
                name=self.name, **self._feature_sizes)

  @classmethod
  def from_config(cls, config):
    return cls(**config)


class RetrievalTeacher(ContentTeacher):
  """Shared machinery: item tower, retrieval task and catalog scoring.

  Subclasses implement `query_signals` and `input_signature`.

  Args:
    num_items: Catalog size including padding and OOV.
    embedding_dim: Size of item and query embeddings.
    num_genres, num_title_tokens, max_genres, max_title_tokens: Sizes of the
      item content features (see `PreparedData`).
    negatives: "in_batch" (other targets in the batch; TFRS's default),
      "mixed" (in-batch plus `num_extra_negatives` uniform items) or "catalog"
      (exact softmax over the whole catalog).
    num_extra_negatives: Uniform negatives per batch for "mixed".
    sampling_bias_correction: Subtract log sampling probability from sampled
      negatives' logits ("in_batch" and "mixed").
    temperature: Softmax temperature of the retrieval task.
    vocabulary_fingerprint: Identity of the item vocabulary.
  """

  signal_names = (LOGITS, QUERY_EMBEDDING, HIDDEN)

  def __init__(self, num_items: int, embedding_dim: int = 128,
               num_genres: int = 2, num_title_tokens: int = 2,
               max_genres: int = 4, max_title_tokens: int = 8,
               negatives: str = "in_batch", num_extra_negatives: int = 0,
               sampling_bias_correction: bool = True,
               temperature: float = 1.0, vocabulary_fingerprint: str = "",
               **kwargs):
    if negatives not in NEGATIVES:
      raise ConfigError(f"unknown negatives {negatives!r}; choose one of "
                        f"{NEGATIVES}.")
    super().__init__(num_items, embedding_dim, num_genres=num_genres,
                     num_title_tokens=num_title_tokens, max_genres=max_genres,
                     max_title_tokens=max_title_tokens,
                     vocabulary_fingerprint=vocabulary_fingerprint, **kwargs)
    self.negatives = negatives
    self.num_extra_negatives = num_extra_negatives
    self.sampling_bias_correction = sampling_bias_correction
    self.temperature = temperature
    self.item_probability = self.add_weight(
        name="item_probability", shape=(num_items,), trainable=False,
        initializer=tf_keras.initializers.Constant(1.0 / num_items))
    self.retrieval = tfrs.tasks.Retrieval(
        loss=tf_keras.losses.CategoricalCrossentropy(
            from_logits=True, reduction=tf_keras.losses.Reduction.NONE),
        temperature=temperature, remove_accidental_hits=True,
        name="retrieval")

  def random_generators(self, create: bool = True) -> list:
    """The sampler of "mixed" negatives ([] for other negatives); kept out
    of checkpoints, like Keras's own random layers, and reseeded each epoch
    by `tfdistill.resume.RepeatableEpochs`."""
    if self.negatives != "mixed" and not (
        getattr(self, "objective", "last") == "all_positions"
        and self.negatives != "catalog"):
      return []
    if "_negative_sampler" not in self.__dict__:
      with tf.init_scope():
        self.__dict__["_negative_sampler"] = tf.random.Generator.from_seed(
            0)
    return [self.__dict__["_negative_sampler"]]

  def set_item_data(self, item_genres: np.ndarray, item_title: np.ndarray,
                    item_counts: np.ndarray) -> None:
    """Loads item content features and training popularity (for logQ)."""
    self.item_encoder.set_features(item_genres, item_title)
    counts = np.asarray(item_counts, np.float64) + 1.0  # smoothed
    counts[:NUM_RESERVED] = 1.0
    self.item_probability.assign((counts / counts.sum()).astype(np.float32))

  def catalog_embeddings(self, training: bool = False) -> tf.Tensor:
    return self.item_encoder(tf.range(self.num_items), training=training)

  def query_signals(self, inputs, training: bool = False,
                    catalog=None) -> dict:
    raise NotImplementedError

  def item_vectors(self, ids, training: bool = False, catalog=None):
    """`item_encoder(ids)`, read from `catalog` (all ids encoded) if given."""
    if catalog is None:
      return self.item_encoder(ids, training=training)
    return tf.gather(catalog, ids)

  def distillation_signals(self, inputs, training: bool = False,
                           catalog=None) -> dict:
    """{"logits", "query_embedding", "hidden"} for a batch of inputs."""
    if catalog is None:
      catalog = self.catalog_embeddings(training=training)
    signals = dict(self.query_signals(inputs, training=training,
                                      catalog=catalog))
    signals[LOGITS] = tf.matmul(signals[QUERY_EMBEDDING], catalog,
                                  transpose_b=True)
    return signals

  def call(self, inputs, training=False):
    return self.distillation_signals(inputs, training=training)[LOGITS]

  def retrieval_loss(self, queries, targets, training: bool) -> tf.Tensor:
    """TFRS retrieval loss of queries against their target items.

    Per-example losses averaged over the global batch, so that training is
    correct under any `tf.distribute` strategy.
    """
    targets = tf.cast(targets, tf.int32)
    positives = self.item_encoder(targets, training=training)
    batch = tf.shape(queries)[0]
    if self.negatives == "catalog":
      # Candidates are the targets (diagonal positives) and the catalog; the
      # mask hides other rows' targets and the reserved ids, and TFRS removes
      # each target's own catalog copy as an accidental hit: an exact
      # softmax over the catalog.
      catalog = self.catalog_embeddings(training=training)
      ids = tf.concat([targets, tf.range(self.num_items)], 0)
      reserved = tf.range(self.num_items) >= NUM_RESERVED
      mask = tf.concat([
          tf.cast(tf.eye(batch), tf.bool),
          tf.tile(reserved[tf.newaxis], [batch, 1])], axis=1)
      return tf.nn.compute_average_loss(self.retrieval(
          queries, tf.concat([positives, catalog], 0), candidate_ids=ids,
          score_mask=mask, compute_metrics=False))
    candidates, ids = positives, targets
    probability = tf.gather(self.item_probability, targets) * tf.cast(
        batch, tf.float32)
    if self.negatives == "mixed" and self.num_extra_negatives:
      extra = self.random_generators()[0].uniform(
          [self.num_extra_negatives], NUM_RESERVED, self.num_items,
          dtype=tf.int32)
      candidates = tf.concat([candidates, self.item_encoder(
          extra, training=training)], 0)
      ids = tf.concat([ids, extra], 0)
      uniform = self.num_extra_negatives / (self.num_items - NUM_RESERVED)
      probability = tf.concat([probability, tf.fill(
          [self.num_extra_negatives], uniform)], 0)
    return tf.nn.compute_average_loss(self.retrieval(
        queries, candidates, candidate_ids=ids,
        candidate_sampling_probability=(
            probability if self.sampling_bias_correction else None),
        compute_metrics=False))

  def get_config(self):
    return dict(super().get_config(), negatives=self.negatives,
                num_extra_negatives=self.num_extra_negatives,
                sampling_bias_correction=self.sampling_bias_correction,
                temperature=self.temperature)


@register
class SequentialRetrievalTeacher(RetrievalTeacher):
  """The large model: self-attention over recent items plus item content.

  Inputs {"context": int32 [B, L]} (left-padded, most recent last). Trained on
  `sequence_examples` with `tfrs.tasks.Retrieval`.

  Args:
    context_length: L.
    num_blocks, num_heads, ffn_dim, dropout: Transformer size.
    **kwargs: See `RetrievalTeacher`.

  Example:
    >>> teacher = SequentialRetrievalTeacher(prepared.num_items, 20,
    ...     num_genres=len(prepared.genres),
    ...     num_title_tokens=len(prepared.title_tokens))
    >>> teacher.set_item_data(prepared.item_genres, prepared.item_title,
    ...                       prepared.item_popularity())
    >>> teacher.compile(tf_keras.optimizers.Adam(1e-3))
    >>> teacher.fit(sequence_examples(prepared, batch_size=256), epochs=5)
  """

  def __init__(self, num_items: int, context_length: int,
               num_blocks: int = 2, num_heads: int = 4, ffn_dim: int = 256,
               dropout: float = 0.2, objective: str = "last", **kwargs):
    super().__init__(num_items, **kwargs)
    if objective not in OBJECTIVES:
      raise ConfigError(f"unknown teacher objective {objective!r}; choose "
                        f"one of {OBJECTIVES}.")
    self.objective = objective
    # Trained on every position at once, a position may only see the past.
    self.causal = objective == "all_positions"
    self.context_length = context_length
    self.num_blocks = num_blocks
    self.num_heads = num_heads
    self.ffn_dim = ffn_dim
    self.dropout = dropout
    self.positions = PositionEmbedding(name="positions")
    self.input_dropout = tf_keras.layers.Dropout(dropout)
    self.blocks = [TransformerBlock(num_heads, ffn_dim, dropout,
                                    name=f"block_{i}")
                   for i in range(num_blocks)]
    self.output_norm = tf_keras.layers.LayerNormalization(epsilon=1e-6)
    self.query_projection = tf_keras.layers.Dense(self.embedding_dim,
                                                  name="query_projection")

  @property
  def input_signature(self) -> dict:
    return {CONTEXT: tf.TensorSpec([None, self.context_length], tf.int32)}

  def _encode(self, context, training: bool, catalog, last_only: bool):
    x = self.item_vectors(context, training=training, catalog=catalog)
    x = self.input_dropout(self.positions(x), training=training)
    for i, block in enumerate(self.blocks):
      x = block([x, context], training=training, causal=self.causal,
                last_only=last_only and i == len(self.blocks) - 1)
    return x

  def query_signals(self, inputs, training: bool = False,
                    catalog=None) -> dict:
    context = tf.cast(inputs[CONTEXT], tf.int32)
    # Left padding puts the most recent item in the last position, the only
    # one the query reads: the last block computes it alone.
    x = self._encode(context, training, catalog, last_only=True)
    hidden = self.output_norm(x[:, -1])
    return {HIDDEN: hidden,
            QUERY_EMBEDDING: self.query_projection(hidden)}

  def sequence_signals(self, inputs, training: bool = False,
                       catalog=None) -> dict:
    """{"hidden" [B, L, h], "query_embedding" [B, L, d]}: the signals of
    every position, each computed from the items up to it when the teacher
    is causal (objective "all_positions"); the last position's are
    `query_signals`'."""
    context = tf.cast(inputs[CONTEXT], tf.int32)
    x = self._encode(context, training, catalog, last_only=False)
    # The output layers were built on [B, d] (the last position): the
    # positions go through them as rows.
    hidden = self.output_norm(tf.reshape(x, [-1, tf.shape(x)[-1]]))
    rows = self.query_projection(hidden)
    shape = tf.shape(x)[:2]
    return {HIDDEN: tf.reshape(hidden, tf.concat([shape, [-1]], 0)),
            QUERY_EMBEDDING: tf.reshape(rows, tf.concat([shape, [-1]], 0))}

  def sequence_queries(self, inputs, training: bool = False,
                       catalog=None) -> tf.Tensor:
    """[B, L, d]: the query of every position, for training on every
    position at once."""
    return self.sequence_signals(inputs, training,
                                 catalog)[QUERY_EMBEDDING]

  def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
    features, targets = features_and_labels(inputs, "item")
    if targets.shape.rank == 2:  # chunks: a target at every position
      if self.objective != "all_positions":
        raise ConfigError("a target per position needs "
                          "objective='all_positions' (a causal teacher).")
      return self.all_positions_loss(features, targets, training)
    queries = self.query_signals(features, training)[QUERY_EMBEDDING]
    return self.retrieval_loss(queries, targets, training)

  def all_positions_loss(self, features, targets, training: bool):
    """Softmax cross-entropy at every position with a target (padding
    positions, target 0, are left out): over the whole catalog with
    `negatives="catalog"`, else over the target and `num_extra_negatives`
    uniform items shared by the batch (logQ-corrected, accidental hits
    removed), for catalogs too large to score at every position."""
    targets = tf.cast(targets, tf.int32)
    queries = self.sequence_queries(features, training)
    keep = tf.not_equal(targets, 0)
    queries = tf.boolean_mask(queries, keep)  # [M, d]
    labels = tf.boolean_mask(targets, keep)  # [M]
    if self.negatives == "catalog":
      catalog = self.catalog_embeddings(training=training)
      logits = tf.matmul(queries, catalog, transpose_b=True) / (
          self.temperature)
      reserved = tf.range(self.num_items) < NUM_RESERVED
      logits = tf.where(reserved[tf.newaxis], logits.dtype.min / 2, logits)
      losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
      return tf.nn.compute_average_loss(losses)
    count = max(self.num_extra_negatives, 1)
    negatives = self.random_generators(create=True)[0].uniform(
        [count], NUM_RESERVED, self.num_items, dtype=tf.int32)
    positive = tf.reduce_sum(
        queries * self.item_encoder(labels, training=training), -1)
    sampled = tf.matmul(queries, self.item_encoder(negatives,
                                                   training=training),
                        transpose_b=True)
    if self.sampling_bias_correction:
      sampled -= tf.math.log(count / (self.num_items - NUM_RESERVED))
    hits = tf.equal(labels[:, tf.newaxis], negatives[tf.newaxis])
    sampled = tf.where(hits, sampled.dtype.min / 2, sampled)
    logits = tf.concat([positive[:, tf.newaxis], sampled], 1) / (
        self.temperature)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        tf.zeros_like(labels), logits)
    return tf.nn.compute_average_loss(losses)

  def get_config(self):
    return dict(super().get_config(), context_length=self.context_length,
                num_blocks=self.num_blocks, num_heads=self.num_heads,
                ffn_dim=self.ffn_dim, dropout=self.dropout,
                objective=self.objective)


@register
class TwoTowerRetrievalTeacher(RetrievalTeacher):
  """Two towers: (user id, recent items) | (item id, genres, title).

  Inputs {"user": int32 [B], "context": int32 [B, L]}; trained on
  `pair_examples` (the "item" feature is the positive candidate).
  """

  def __init__(self, num_items: int, num_users: int, context_length: int,
               hidden_dim: int = 256, **kwargs):
    super().__init__(num_items, **kwargs)
    self.num_users = num_users
    self.context_length = context_length
    self.hidden_dim = hidden_dim
    self.user_embedding = tf_keras.layers.Embedding(
        num_users, self.embedding_dim, name="user_embedding")
    self.recent_items = MaskedBag(num_items, self.embedding_dim,
                                  name="recent_items")
    self.user_hidden = tf_keras.layers.Dense(hidden_dim, activation="relu",
                                             name="user_hidden")
    self.query_projection = tf_keras.layers.Dense(self.embedding_dim,
                                                  name="query_projection")

  @property
  def input_signature(self) -> dict:
    return {"user": tf.TensorSpec([None], tf.int32),
            CONTEXT: tf.TensorSpec([None, self.context_length], tf.int32)}

  def query_signals(self, inputs, training: bool = False,
                    catalog=None) -> dict:
    del catalog  # the recent items have their own table
    hidden = self.user_hidden(tf.concat([
        self.user_embedding(tf.cast(inputs["user"], tf.int32)),
        self.recent_items(tf.cast(inputs[CONTEXT], tf.int32))], axis=-1))
    return {HIDDEN: hidden,
            QUERY_EMBEDDING: self.query_projection(hidden)}

  def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
    features, _ = features_and_labels(inputs, "item")
    queries = self.query_signals(features, training)[QUERY_EMBEDDING]
    return self.retrieval_loss(queries, features["item"], training)

  def get_config(self):
    return dict(super().get_config(), num_users=self.num_users,
                context_length=self.context_length,
                hidden_dim=self.hidden_dim)

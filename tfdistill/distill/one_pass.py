"""Students trained on every position of a chunk in one pass.

`tfdistill.distill.positions` gives a student one window of its context
length per target of a batch of chunks. Two encoders read a whole chunk in
one pass instead, and the windows, and their item lookups, are never built:

* a position-weighted mean (`OnePassMeanStudent`): its pooled vector at a
  position is a causal convolution of the chunk's item vectors with the
  softmax weights of its positions (`causal_weighted_mean`), the windows'
  values exactly;
* a self-attention block (`OnePassSelfAttentionStudent`): one causal pass
  over the chunk, as SASRec and a teacher trained on every position are
  trained; the windows' values at a chunk's last position only;
* a GRU (`OnePassGRUStudent`): its state at every position of one pass
  over the chunk, as GRU4Rec is trained; the windows' values at a chunk's
  last position only.

The `Distiller` reads chunks that way, and `OnePassTrainer` trains the
student alone on the same batches.
"""

from typing import Optional

import tensorflow as tf
import tf_keras

from tfdistill.data.examples import CONTEXT
from tfdistill.data.examples import PRECEDING
from tfdistill.distill.positions import at_targets
from tfdistill.distill.positions import with_preceding
from tfdistill.distill.student_trainer import StudentTrainer
from tfdistill.distill.teachers import CATALOG_ITEMS
from tfdistill.distill.teachers import CATALOG_QUERIES
from tfdistill.errors import ModelError
from tfdistill.models.layers import CatalogScores
from tfdistill.models.layers import causal_weighted_mean
from tfdistill.models.layers import ContextAndCatalogIds
from tfdistill.models.layers import LastPosition
from tfdistill.models.layers import PositionEmbedding
from tfdistill.models.layers import PositionWeightedMean
from tfdistill.models.layers import SplitContextAndCatalog
from tfdistill.models.layers import TransformerBlock
from tfdistill.models.registry import register
from tfdistill.models.signals import HIDDEN
from tfdistill.models.signals import LOGITS
from tfdistill.models.signals import QUERY_EMBEDDING
from tfdistill.models.students import ZeroPadding


#: The layers every one-pass student has, by name, besides its encoder's;
#: the item table is named "item_embedding" (any kind of table).
_HEAD = {"context_and_catalog": ContextAndCatalogIds,
         "split_context_and_catalog": SplitContextAndCatalog,
         HIDDEN: tf_keras.layers.Dense, "dropout": tf_keras.layers.Dropout,
         QUERY_EMBEDDING: tf_keras.layers.Dense, LOGITS: CatalogScores}


class OnePassStudent:
  """A student's signals at every target of a batch of chunks, from one
  pass over each chunk instead of one window per target, with its weights.

  `OnePassStudent.of(student)` gives the one that applies to `student`:
  `OnePassMeanStudent`, `OnePassSelfAttentionStudent` or
  `OnePassGRUStudent`; None for any other
  student (another encoder, or layers wrapped for pruning or
  quantization-aware training), which reads windows.
  """

  #: The encoder's layers, by name (a subclass's).
  ENCODER: dict = {}

  def __init__(self, layers: dict):
    self.layers, self.table = layers, layers["item_embedding"]

  @classmethod
  def of(cls, student) -> Optional["OnePassStudent"]:
    if cls is OnePassStudent:
      for kind in (OnePassMeanStudent, OnePassSelfAttentionStudent,
                   OnePassGRUStudent):
        one_pass = kind.of(student)
        if one_pass is not None:
          return one_pass
      return None
    layers = {layer.name: layer for layer in getattr(student, "layers", [])}
    kinds = dict(_HEAD, **cls.ENCODER)
    inputs = [layer for name, layer in layers.items()
              if name not in kinds and name != "item_embedding"]
    if (set(kinds) - set(layers) or "item_embedding" not in layers or
        len(inputs) != 1 or
        not isinstance(inputs[0], tf_keras.layers.InputLayer) or
        inputs[0].name != CONTEXT or
        any(type(layers[name]) is not kind  # pylint: disable=unidiomatic-typecheck
            for name, kind in kinds.items())):
      return None
    return cls(layers)

  def accepts(self, chunk_length: int) -> bool:
    """Whether chunks of `chunk_length` items can be read in one pass."""
    del chunk_length
    return True

  def _sequence(self, context: tf.Tensor, features: dict) -> tf.Tensor:
    """The ids the pass reads: [B, S]."""
    raise NotImplementedError

  def _encode(self, vectors: tf.Tensor, sequence: tf.Tensor, chunk_length,
              training: bool) -> tf.Tensor:
    """The encoder's output at every position of the chunks: [B, L, h]."""
    raise NotImplementedError

  def __call__(self, features: dict, targets: tf.Tensor,
               training: bool = False) -> dict:
    """The student's signals ("logits", "hidden", "query_embedding" and the
    catalog factors) at the positions of `features`' chunks that have a
    target, in the order of `at_targets`."""
    layers = self.layers
    context = tf.cast(features[CONTEXT], tf.int32)
    sequence = self._sequence(context, features)
    rows = self.table(layers["context_and_catalog"](sequence))
    vectors, catalog = layers["split_context_and_catalog"]([rows, sequence])
    encoded = self._encode(vectors, sequence, context.shape[1], training)
    hidden = layers[HIDDEN](at_targets(encoded, targets))
    query = layers[QUERY_EMBEDDING](layers["dropout"](hidden,
                                                      training=training))
    return {LOGITS: layers[LOGITS]([query, catalog]), HIDDEN: hidden,
            QUERY_EMBEDDING: query, CATALOG_QUERIES: query,
            CATALOG_ITEMS: catalog}


class OnePassMeanStudent(OnePassStudent):
  """A mean student (`build_sequential_student`, encoder "mean") on every
  window of a chunk in one pass: its pooled vector at a position is a
  causal convolution of the chunk's item vectors, and the chunk's preceding
  items, with the softmax weights of its positions (`causal_weighted_mean`).
  The same values as the student on `examples_at_every_position` (to
  rounding).
  """

  ENCODER = {"pool": PositionWeightedMean}

  def __init__(self, layers: dict):
    super().__init__(layers)
    self.length = layers["pool"].position_logits.shape[0]

  def _sequence(self, context, features):
    return with_preceding(context, self.length, features.get(PRECEDING))

  def _encode(self, vectors, sequence, chunk_length, training):
    return causal_weighted_mean(self.layers["pool"].position_logits, vectors,
                                sequence, chunk_length)


class _ChunkAloneStudent(OnePassStudent):
  """A one-pass student that reads a chunk alone (not the items before
  it), of exactly its context length (`self.length`)."""

  #: The encoder, as errors name it.
  KIND = ""

  def accepts(self, chunk_length: int) -> bool:
    return chunk_length == self.length

  def _sequence(self, context, features):
    del features  # the chunk alone: its preceding items are not read
    if context.shape[1] != self.length:
      raise ModelError(f"chunks of {context.shape[1]} items, but the "
                       f"{self.KIND} student reads {self.length}: cut the "
                       "chunks at its context length, or read windows.")
    return context


class OnePassSelfAttentionStudent(_ChunkAloneStudent):
  """A self-attention student (`build_sequential_student`, encoder
  "self_attention") trained as SASRec and a teacher trained on every
  position are: one causal pass over each chunk of its context length, in
  which a position attends to the chunk's items up to it, at their
  positions in the chunk.

  Not the windows' values: a window puts its target's context at the last
  positions, and reaches before the chunk. At a chunk's last position the
  two are the same, and the student reads windows so at serving time.
  """

  ENCODER = {"zero_padding": ZeroPadding, "positions": PositionEmbedding,
             "block": TransformerBlock, "last_position": LastPosition}
  KIND = "self-attention"

  def __init__(self, layers: dict):
    super().__init__(layers)
    self.length = layers["positions"].positions.shape[0]

  def _encode(self, vectors, sequence, chunk_length, training):
    layers = self.layers
    positioned = layers["positions"](layers["zero_padding"]([vectors,
                                                             sequence]))
    return layers["block"]([positioned, sequence], training=training,
                           causal=True)


class OnePassGRUStudent(_ChunkAloneStudent):
  """A GRU student (`build_sequential_student`, encoder "gru") trained as
  GRU4Rec is: one pass over each chunk of its context length, its state
  read at every position (a recurrence is causal: a position's state has
  seen the chunk's items up to it), with the student's own GRU weights.

  Not the windows' values: a window runs the GRU over its target's whole
  context, a chunk's position over the chunk's items up to it. At a
  chunk's last position the two are the same, and the student reads
  windows so at serving time.
  """

  ENCODER = {"zero_padding": ZeroPadding, "gru": tf_keras.layers.GRU}
  KIND = "GRU"

  def __init__(self, layers: dict):
    super().__init__(layers)
    gru = layers["gru"]
    self.length = gru.input_shape[1]
    # The student's GRU cell (its weights) run over every position: the
    # student's layer returns the last state only, unrolled for TFLite.
    self._states = tf_keras.layers.RNN(gru.cell, return_sequences=True)

  def _encode(self, vectors, sequence, chunk_length, training):
    return self._states(self.layers["zero_padding"]([vectors, sequence]),
                        training=training)


@register
class OnePassTrainer(StudentTrainer):
  """Trains a student alone on batches of chunks, in one pass per chunk
  (`OnePassStudent`: a mean, self-attention or GRU student): the softmax
  cross-entropy over the catalog of every target. For a mean student, what
  the student compiled with `SparseCategoricalCrossentropy(from_logits=True)`
  trains on `examples_at_every_position`, without building the windows.

  The baseline twin of a student distilled on chunks (the `Distiller`
  reads them the same way).

  Example:
    >>> trainer = OnePassTrainer(student)
    >>> trainer.compile(tf_keras.optimizers.Adam(1e-2))
    >>> trainer.fit(examples.chunk_examples(prepared, 200), epochs=5)
  """

  def __init__(self, student: tf_keras.Model, **kwargs):
    kwargs.setdefault("name", "one_pass_trainer")
    super().__init__(student, **kwargs)
    one_pass = OnePassStudent.of(student)
    if one_pass is None:
      raise ModelError(f"{student.name} is not a mean, self-attention or "
                       "GRU student (build_sequential_student, encoder "
                       "'mean', 'self_attention' or 'gru', layers "
                       "unwrapped); train it on "
                       "one window per target (examples_at_every_position) "
                       "instead.")
    # Not tracked: its layers are the student's.
    self.__dict__["_one_pass"] = one_pass

  def _loss(self, data, training: bool):
    features, targets = data
    logits = self._one_pass(features, targets, training)[LOGITS]
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        at_targets(targets, targets), logits))

  def get_config(self):
    return {"name": self.name,
            "student": tf_keras.saving.serialize_keras_object(self.student)}

  @classmethod
  def from_config(cls, config):
    return cls(tf_keras.saving.deserialize_keras_object(config["student"]),
               name=config["name"])

"""A mean student trained on every position of a chunk in one pass.

`tfdistill.distill.positions` gives a student one window of its context
length per target of a batch of chunks. A student whose encoder is a
position-weighted mean (`PositionWeightedMean`) pools every one of those
windows at once: its pooled vector at a position is a causal convolution of
the chunk's item vectors with the softmax weights of its positions
(`causal_weighted_mean`), so the windows, and their item lookups, are never
built: `OnePassMeanStudent` gives the `Distiller` the student's signals that
way, and `OnePassTrainer` trains the student alone on the same batches.
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
from tfdistill.models.layers import PositionWeightedMean
from tfdistill.models.layers import SplitContextAndCatalog
from tfdistill.models.registry import register
from tfdistill.models.signals import HIDDEN
from tfdistill.models.signals import LOGITS
from tfdistill.models.signals import QUERY_EMBEDDING


#: The layers of a mean student (`build_sequential_student` with encoder
#: "mean"), by name; the item table is named "item_embedding".
_MEAN_STUDENT = {"context_and_catalog": ContextAndCatalogIds,
                 "split_context_and_catalog": SplitContextAndCatalog,
                 "pool": PositionWeightedMean, HIDDEN: tf_keras.layers.Dense,
                 "dropout": tf_keras.layers.Dropout,
                 QUERY_EMBEDDING: tf_keras.layers.Dense,
                 LOGITS: CatalogScores}


class OnePassMeanStudent:
  """A mean student's signals at every target of a batch of chunks, from
  one pass over each chunk (and its preceding items) instead of one window
  per target: the same values as the student on `examples_at_every_position`
  (to rounding), with its weights.

  Build with `OnePassMeanStudent.of(student)`, None for any other student
  (another encoder, or layers wrapped for pruning or quantization-aware
  training).
  """

  def __init__(self, layers: dict, table, length: int):
    self.layers, self.table, self.length = layers, table, length

  @classmethod
  def of(cls, student) -> Optional["OnePassMeanStudent"]:
    layers = {layer.name: layer for layer in getattr(student, "layers", [])}
    expected = dict(_MEAN_STUDENT, item_embedding=None)
    inputs = [layer for name, layer in layers.items() if name not in expected]
    if (set(expected) - set(layers) or len(inputs) != 1 or
        not isinstance(inputs[0], tf_keras.layers.InputLayer) or
        inputs[0].name != CONTEXT or
        any(type(layers[name]) is not kind  # pylint: disable=unidiomatic-typecheck
            for name, kind in _MEAN_STUDENT.items())):
      return None
    return cls(layers, layers["item_embedding"],
               layers["pool"].position_logits.shape[0])

  def __call__(self, features: dict, targets: tf.Tensor,
               training: bool = False) -> dict:
    """The student's signals ("logits", "hidden", "query_embedding" and the
    catalog factors) at the positions of `features`' chunks that have a
    target, in the order of `at_targets`."""
    layers = self.layers
    context = tf.cast(features[CONTEXT], tf.int32)
    sequence = with_preceding(context, self.length, features.get(PRECEDING))
    rows = self.table(layers["context_and_catalog"](sequence))
    vectors, catalog = layers["split_context_and_catalog"]([rows, sequence])
    pooled = causal_weighted_mean(layers["pool"].position_logits, vectors,
                                  sequence, context.shape[1])
    hidden = layers[HIDDEN](at_targets(pooled, targets))
    query = layers[QUERY_EMBEDDING](layers["dropout"](hidden,
                                                      training=training))
    return {LOGITS: layers[LOGITS]([query, catalog]), HIDDEN: hidden,
            QUERY_EMBEDDING: query, CATALOG_QUERIES: query,
            CATALOG_ITEMS: catalog}


@register
class OnePassTrainer(StudentTrainer):
  """Trains a mean student alone on batches of chunks, in one pass per
  chunk: the softmax cross-entropy over the catalog of every target, what
  the student compiled with `SparseCategoricalCrossentropy(from_logits=True)`
  trains on `examples_at_every_position`, without building the windows.

  The baseline twin of a mean student distilled on chunks (the `Distiller`
  reads them the same way).

  Example:
    >>> trainer = OnePassTrainer(student)
    >>> trainer.compile(tf_keras.optimizers.Adam(1e-2))
    >>> trainer.fit(examples.chunk_examples(prepared, 200), epochs=5)
  """

  def __init__(self, student: tf_keras.Model, **kwargs):
    kwargs.setdefault("name", "one_pass_trainer")
    super().__init__(student, **kwargs)
    one_pass = OnePassMeanStudent.of(student)
    if one_pass is None:
      raise ModelError(f"{student.name} is not a mean student "
                       "(build_sequential_student, encoder 'mean', layers "
                       "unwrapped); train it on one window per target "
                       "(examples_at_every_position) instead.")
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

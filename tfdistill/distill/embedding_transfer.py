"""Start a student's item table from its teacher's item embeddings.

Almost all of a sequential student's parameters are its tied item table,
and the distillation
losses reach that table only through the student's scores. Before training,
`transfer_item_embeddings` gives it the teacher's item geometry instead of
random vectors: the teacher's catalog embeddings, centred and projected on
their top `d` principal directions (d: the student's width), at the
teacher's own scale unless `spread=` asks for another.

    student = build_student(prepared, 20, StudentConfig(embedding_dim=16))
    kept = transfer_item_embeddings(student, teacher)  # variance kept
    distiller = Distiller(student=student, teacher=teacher)

Only full tables (a `tf_keras.layers.Embedding`) can be set this way.
"""

from typing import Optional

import numpy as np
import tf_keras

from tfdistill.errors import ModelError
from tfdistill.models.io import check_same_vocabulary
from tfdistill.models.io import model_card

ITEM_TABLE = "item_embedding"


def principal_projection(vectors: np.ndarray, dim: int) -> tuple:
  """(projected [N, dim], fraction of the variance kept) of `vectors` [N, D]
  centred on their mean, projected on their top `dim` principal
  directions."""
  vectors = np.asarray(vectors, np.float64)
  if not 1 <= dim <= min(vectors.shape):
    raise ModelError(f"cannot project {vectors.shape[0]} vectors of size "
                     f"{vectors.shape[1]} on {dim} principal directions.")
  centred = vectors - vectors.mean(axis=0)
  _, singular, directions = np.linalg.svd(centred, full_matrices=False)
  variance = np.square(singular)
  kept = float(variance[:dim].sum() / max(variance.sum(), 1e-30))
  return centred @ directions[:dim].T, kept


def transfer_item_embeddings(student: tf_keras.Model, teacher,
                             layer: str = ITEM_TABLE,
                             spread: Optional[float] = None) -> float:
  """Sets `student`'s item table to the teacher's items, projected (PCA).

  Rows 1.. (every item but padding) get the teacher's catalog embeddings
  projected on their top principal directions; the padding row is kept.
  By default the rows keep the teacher's own scale, which distilled better
  than smaller spreads (benchmarks/NOTES.md).

  Args:
    student: A tfdistill student with a full item table named `layer`.
    teacher: A retrieval teacher (or an `OnlineTeacher` around one) for the
      same item vocabulary, as wide as the student's table or wider.
    layer: Name of the student's item table.
    spread: Standard deviation of the table's new entries; None keeps the
      projection's own (the teacher's scale).

  Returns:
    The fraction of the teacher's item variance the projection keeps.

  Raises:
    ModelError: no such full table, a different catalog or vocabulary, or a
      student wider than the teacher.
  """
  try:
    table = student.get_layer(layer)
  except ValueError:
    raise ModelError(f"student {student.name!r} has no layer {layer!r} to "
                     "set from the teacher.") from None
  if type(table) is not tf_keras.layers.Embedding:  # pylint: disable=unidiomatic-typecheck
    raise ModelError(f"student layer {layer!r} is a {type(table).__name__}; "
                     "only a full item table (Embedding) can be set from the "
                     "teacher's items.")
  model = getattr(teacher, "model", teacher)  # an OnlineTeacher or a model
  if not hasattr(model, "catalog_embeddings"):
    raise ModelError(f"{type(model).__name__} has no catalog_embeddings(); "
                     "the item table can be transferred from a tfdistill "
                     "retrieval teacher only.")
  check_same_vocabulary(model_card(model), model_card(student))
  catalog = np.asarray(model.catalog_embeddings(training=False))
  weights = table.embeddings.numpy()
  if catalog.shape[0] != weights.shape[0]:
    raise ModelError(f"the teacher has {catalog.shape[0]} catalog rows, the "
                     f"student's table {weights.shape[0]}; they must share "
                     "the catalog.")
  if weights.shape[1] > catalog.shape[1]:
    raise ModelError(f"the student's items ({weights.shape[1]} wide) cannot "
                     f"take the principal directions of the teacher's "
                     f"({catalog.shape[1]} wide).")
  if spread is not None and not spread > 0:
    raise ModelError(f"spread must be > 0 (or None), got {spread}.")
  projected, kept = principal_projection(catalog[1:], weights.shape[1])
  if spread is not None:
    projected = projected * (spread / max(projected.std(), 1e-30))
  weights[1:] = projected
  table.embeddings.assign(weights)
  return kept

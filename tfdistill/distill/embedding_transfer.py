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

Full tables (a `tf_keras.layers.Embedding`) take the projection as is;
low-rank and mixed-dimension tables take its closest factored form (the
best rank-r approximation of the rows they factor: every row of a low-rank
table, the tail of a mixed one, whose head rows are set exactly); a
product-quantized table takes its quantization (k-means in each slice:
the codebooks the centroids, each item's codes its nearest ones).
"""

from typing import Optional

import numpy as np
import tf_keras

from tfdistill.errors import ModelError
from tfdistill.export.partitions import nearest_centroids
from tfdistill.models.embeddings import LowRankEmbedding
from tfdistill.models.embeddings import MixedDimensionEmbedding
from tfdistill.models.embeddings import ProductQuantizedEmbedding
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


def best_rank_factors(rows: np.ndarray, rank: int) -> tuple:
  """(factors [N, rank], projection [rank, D]) whose product is the best
  rank-`rank` approximation of `rows` [N, D] (truncated SVD): each row
  projected on the rows' top `rank` right singular directions."""
  left, singular, right = np.linalg.svd(np.asarray(rows, np.float64),
                                        full_matrices=False)
  return left[:, :rank] * singular[:rank], right[:rank]


def kmeans(points: np.ndarray, clusters: int, iterations: int = 25,
           seed: int = 0) -> tuple:
  """(centroids [clusters, D], assignment [N]) of `points` [N, D] by Lloyd's
  algorithm from a k-means++ start (a fixed `seed`: the same points give
  the same codes). With no more distinct points than `clusters`, each
  point is its own centroid and the rest repeat the first."""
  points = np.asarray(points, np.float64)
  distinct = np.unique(points, axis=0)
  if len(distinct) <= clusters:
    centroids = np.concatenate(
        [distinct, np.repeat(distinct[:1], clusters - len(distinct), 0)])
  else:
    rng = np.random.default_rng(seed)
    centroids = [points[rng.integers(len(points))]]
    nearest = np.square(points - centroids[0]).sum(1)
    for _ in range(clusters - 1):
      chosen = rng.choice(len(points), p=nearest / nearest.sum())
      centroids.append(points[chosen])
      nearest = np.minimum(nearest, np.square(points - points[chosen]).sum(1))
    centroids = np.stack(centroids)
  for _ in range(iterations):
    assignment = nearest_centroids(points, centroids)
    for cluster in range(clusters):
      members = points[assignment == cluster]
      if len(members):  # an emptied centroid stays where it was
        centroids[cluster] = members.mean(0)
  return centroids, nearest_centroids(points, centroids)


def product_quantize(rows: np.ndarray, num_codebooks: int,
                     codewords: int) -> tuple:
  """(codebooks [M, K, D / M], codes int32 [N, M]) quantizing `rows`
  [N, D]: slice m holds the columns m, m + M, m + 2M... (principal
  directions in decreasing variance spread evenly over the slices), each
  slice quantized by `kmeans`. Concatenated, the codewords of an item give
  its row with its columns regrouped slice by slice."""
  rows = np.asarray(rows, np.float64)
  slices = [rows[:, m::num_codebooks] for m in range(num_codebooks)]
  books, codes = zip(*(kmeans(part, codewords, seed=m)
                       for m, part in enumerate(slices)))
  return np.stack(books), np.stack(codes, 1).astype(np.int32)


def is_full_item_table(student: tf_keras.Model,
                       layer: str = ITEM_TABLE) -> bool:
  """Whether `student`'s item table `layer` is a full one (an Embedding)."""
  try:
    table = student.get_layer(layer)
  except ValueError:
    return False
  return type(table) is tf_keras.layers.Embedding  # pylint: disable=unidiomatic-typecheck


def _table_shape(table) -> tuple:
  """(rows, width) of a table `transfer_item_embeddings` can set."""
  if type(table) is tf_keras.layers.Embedding:  # pylint: disable=unidiomatic-typecheck
    return tuple(table.embeddings.shape)
  if isinstance(table, (LowRankEmbedding, MixedDimensionEmbedding,
                        ProductQuantizedEmbedding)):
    return table.num_items, table.dim
  raise ModelError(f"student layer {table.name!r} is a "
                   f"{type(table).__name__}; only a full, low-rank, "
                   "mixed-dimension or product-quantized item table can be "
                   "set from the teacher's items.")


def _assign(table, rows: np.ndarray) -> float:
  """Sets `table` to `rows` [catalog, width] (a factored table to its
  closest factored form); returns the fraction of the rows' squared norm
  the table keeps."""
  if type(table) is tf_keras.layers.Embedding:  # pylint: disable=unidiomatic-typecheck
    table.embeddings.assign(rows.astype(np.float32))
    return 1.0
  if isinstance(table, ProductQuantizedEmbedding):
    codebooks, codes = product_quantize(rows, table.num_codebooks,
                                        table.codewords)
    table.codebooks.assign(codebooks.astype(np.float32))
    table.codes.assign(codes)
    quantized = table.table().numpy().astype(np.float64)
    # The table's columns are the rows' regrouped slice by slice.
    regrouped = np.concatenate([rows[:, m::table.num_codebooks]
                                for m in range(table.num_codebooks)], 1)
    lost = np.square(regrouped - quantized).sum()
    return 1.0 - float(lost / max(np.square(rows).sum(), 1e-30))
  if isinstance(table, LowRankEmbedding):
    factored, factor_weights = rows, table.factors
  else:
    factored, factor_weights = rows[table.head_items:], table.tail
    table.head.assign(rows[:table.head_items].astype(np.float32))
  factors, projection = best_rank_factors(factored, table.rank)
  factor_weights.assign(factors.astype(np.float32))
  table.projection.assign(projection.astype(np.float32))
  lost = np.square(factored - factors @ projection).sum()
  return 1.0 - float(lost / max(np.square(rows).sum(), 1e-30))


def transfer_item_embeddings(student: tf_keras.Model, teacher,
                             layer: str = ITEM_TABLE,
                             spread: Optional[float] = None) -> float:
  """Sets `student`'s item table to the teacher's items, projected (PCA).

  Rows 1.. (every item but padding) get the teacher's catalog embeddings
  projected on their top principal directions; the padding row is kept.
  By default the rows keep the teacher's own scale, which distilled better
  than smaller spreads (benchmarks/NOTES.md). A low-rank or mixed-dimension
  table gets the best approximation of those rows it can hold, a
  product-quantized one their quantization (`product_quantize`).

  Args:
    student: A tfdistill student with a full, low-rank, mixed-dimension or
      product-quantized item table named `layer`.
    teacher: A retrieval teacher (or an `OnlineTeacher` around one) for the
      same item vocabulary, as wide as the student's table or wider.
    layer: Name of the student's item table.
    spread: Standard deviation of the table's new entries; None keeps the
      projection's own (the teacher's scale).

  Returns:
    The fraction of the teacher's item variance the table keeps.

  Raises:
    ModelError: no such table (or one of another kind), a different catalog
      or vocabulary, or a student wider than the teacher.
  """
  try:
    table = student.get_layer(layer)
  except ValueError:
    raise ModelError(f"student {student.name!r} has no layer {layer!r} to "
                     "set from the teacher.") from None
  rows, width = _table_shape(table)
  model = getattr(teacher, "model", teacher)  # an OnlineTeacher or a model
  if not hasattr(model, "catalog_embeddings"):
    raise ModelError(f"{type(model).__name__} has no catalog_embeddings(); "
                     "the item table can be transferred from a tfdistill "
                     "retrieval teacher only.")
  check_same_vocabulary(model_card(model), model_card(student))
  catalog = np.asarray(model.catalog_embeddings(training=False))
  if catalog.shape[0] != rows:
    raise ModelError(f"the teacher has {catalog.shape[0]} catalog rows, the "
                     f"student's table {rows}; they must share the catalog.")
  if width > catalog.shape[1]:
    raise ModelError(f"the student's items ({width} wide) cannot "
                     f"take the principal directions of the teacher's "
                     f"({catalog.shape[1]} wide).")
  if spread is not None and not spread > 0:
    raise ModelError(f"spread must be > 0 (or None), got {spread}.")
  projected, kept = principal_projection(catalog[1:], width)
  if spread is not None:
    projected = projected * (spread / max(projected.std(), 1e-30))
  # The padding row keeps the table's own vector.
  padding = table(np.zeros((1,), np.int32)).numpy()
  return kept * _assign(table, np.concatenate([padding, projected]))

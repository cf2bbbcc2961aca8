"""transfer_item_embeddings: the student's item table from the teacher's."""

import numpy as np
import pytest

from tfdistill.distill import Distiller
from tfdistill.distill import OnlineTeacher
from tfdistill.distill import transfer_item_embeddings
from tfdistill.distill.embedding_transfer import best_rank_factors
from tfdistill.distill.embedding_transfer import is_full_item_table
from tfdistill.distill.embedding_transfer import kmeans
from tfdistill.distill.embedding_transfer import principal_projection
from tfdistill.distill.embedding_transfer import product_quantize
from tfdistill.errors import ModelError
from tfdistill.models.embeddings import EmbeddingConfig
from tfdistill.models.students import build_sequential_student
from tfdistill.models.students import StudentConfig


def test_principal_projection_by_hand():
  # Centred on (1, 1): variance 8 along x, 2 along y; one direction keeps x.
  points = np.array([[3., 1.], [-1., 1.], [1., 2.], [1., 0.]])
  projected, kept = principal_projection(points, 1)
  assert kept == pytest.approx(0.8)
  np.testing.assert_allclose(np.abs(projected[:, 0]), [2, 2, 0, 0],
                             atol=1e-12)
  assert projected[0, 0] == pytest.approx(-projected[1, 0])
  with pytest.raises(ModelError, match="3 principal directions"):
    principal_projection(points[:, :2], 3)


def test_student_table_is_the_teachers_items_projected(tiny_teacher,
                                                       student_factory):
  student = student_factory(embedding_dim=4)
  table = student.get_layer("item_embedding").embeddings
  before = table.numpy()
  kept = transfer_item_embeddings(student, OnlineTeacher(tiny_teacher))
  after = table.numpy()
  catalog = np.asarray(tiny_teacher.catalog_embeddings())
  centred = catalog[1:] - catalog[1:].mean(axis=0)
  # Rows 1.. are the teacher's centred items on 4 orthonormal directions
  # (so at the teacher's scale: their inner products are the projection's);
  # padding keeps its vector.
  directions, *_ = np.linalg.lstsq(centred, after[1:], rcond=None)
  np.testing.assert_allclose(centred @ directions, after[1:], atol=1e-4)
  assert np.linalg.matrix_rank(after[1:], tol=1e-6) == 4
  np.testing.assert_allclose(after[1:].T @ after[1:],
                             np.diag(np.diag(after[1:].T @ after[1:])),
                             atol=1e-3)
  variance = np.square(np.linalg.svd(centred, compute_uv=False))
  assert np.square(after[1:]).sum() == pytest.approx(variance[:4].sum(),
                                                     rel=1e-4)
  assert kept == pytest.approx(variance[:4].sum() / variance.sum(), rel=1e-6)
  np.testing.assert_array_equal(after[0], before[0])
  # ... and its item-item inner products follow the teacher's.
  ours, theirs = after[1:] @ after[1:].T, centred @ centred.T
  assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.5
  assert 0 < kept <= 1
  transfer_item_embeddings(student, tiny_teacher, spread=0.1)
  assert table.numpy()[1:].std() == pytest.approx(0.1, rel=1e-5)
  with pytest.raises(ModelError, match="spread must be > 0"):
    transfer_item_embeddings(student, tiny_teacher, spread=0.0)
  # The initialised student distils as any other.
  distiller = Distiller(student=student, teacher=tiny_teacher)
  assert distiller.student is student


def test_best_rank_factors_by_hand():
  # Rows on two directions with squared lengths 9 (x) and 1 (y): rank 1
  # keeps x; full rank gives the rows back.
  rows = np.array([[3., 0.], [0., 1.], [0., 0.]])
  factors, projection = best_rank_factors(rows, 1)
  np.testing.assert_allclose(factors @ projection, [[3, 0], [0, 0], [0, 0]],
                             atol=1e-12)
  factors, projection = best_rank_factors(rows, 2)
  np.testing.assert_allclose(factors @ projection, rows, atol=1e-12)


def _rows(student) -> np.ndarray:
  """Every row of a student's item table, as the student reads them."""
  table = student.get_layer("item_embedding")
  rows = getattr(table, "num_items", None) or table.input_dim
  return table(np.arange(rows)).numpy()


def test_factored_tables_take_the_closest_factored_form(tiny_teacher,
                                                        student_factory):
  """A mixed table's head rows are the full table's transfer exactly and its
  tail their best rank-r approximation; a low-rank table is the best
  rank-r approximation of every row. At full rank both equal the full
  table's transfer; the fraction kept counts what the rank loses."""
  full = student_factory(embedding_dim=4)
  kept_full = transfer_item_embeddings(full, tiny_teacher)
  target = _rows(full)
  head = 5
  mixed = student_factory(embedding_dim=4, embedding=EmbeddingConfig(
      kind="mixed", head_items=head, rank=2))
  padding = _rows(mixed)[0]
  kept_mixed = transfer_item_embeddings(mixed, tiny_teacher)
  rows = _rows(mixed)
  np.testing.assert_allclose(rows[0], padding, atol=1e-6)
  np.testing.assert_allclose(rows[1:head], target[1:head], atol=1e-5)
  factors, projection = best_rank_factors(target[head:], 2)
  np.testing.assert_allclose(rows[head:], factors @ projection, atol=1e-5)
  lost = np.square(target[head:] - rows[head:]).sum()
  padded = np.concatenate([padding[None], target[1:]])
  assert kept_mixed == pytest.approx(
      kept_full * (1 - lost / np.square(padded).sum()), rel=1e-4)
  assert 0 < kept_mixed < kept_full
  exact = student_factory(embedding_dim=4, embedding=EmbeddingConfig(
      kind="mixed", head_items=head, rank=4))
  assert transfer_item_embeddings(exact, tiny_teacher) == pytest.approx(
      kept_full, rel=1e-5)
  np.testing.assert_allclose(_rows(exact)[1:], target[1:], atol=1e-5)
  low_rank = student_factory(embedding_dim=4, embedding=EmbeddingConfig(
      kind="low_rank", rank=2))
  padding = _rows(low_rank)[0]
  transfer_item_embeddings(low_rank, tiny_teacher)
  factors, projection = best_rank_factors(
      np.concatenate([padding[None], target[1:]]), 2)
  np.testing.assert_allclose(_rows(low_rank), factors @ projection,
                             atol=1e-5)
  assert is_full_item_table(full) and not is_full_item_table(mixed)


def test_kmeans_and_product_quantization_by_hand():
  # Two tight pairs: their means, each point assigned to its own pair.
  points = np.array([[0., 0.], [0., 2.], [10., 0.], [10., 2.]])
  centroids, assignment = kmeans(points, 2)
  assert assignment[0] == assignment[1] != assignment[2] == assignment[3]
  np.testing.assert_allclose(centroids[assignment], [[0, 1], [0, 1],
                                                     [10, 1], [10, 1]])
  # No more distinct points than clusters: each point its own centroid.
  centroids, assignment = kmeans(points[:3], 4)
  np.testing.assert_allclose(centroids[assignment], points[:3])
  # Slice m takes the columns m, m + M, ...: columns 0 and 2, then 1 and 3.
  rows = np.array([[1., 5., 1., 5.], [1., 6., 1., 6.], [2., 5., 2., 5.]])
  books, codes = product_quantize(rows, 2, 2)
  assert books.shape == (2, 2, 2) and codes.dtype == np.int32
  for m in range(2):
    np.testing.assert_allclose(books[m][codes[:, m]], rows[:, m::2])
  # The same rows give the same codes.
  again, again_codes = product_quantize(rows, 2, 2)
  np.testing.assert_array_equal(again_codes, codes)
  np.testing.assert_array_equal(again, books)


def test_product_quantized_table_takes_the_teachers_items_quantized(
    tiny_teacher, student_factory, tiny_prepared):
  """With a codeword for every row, the quantized table is the full
  table's transfer exactly (its columns regrouped slice by slice); with
  fewer, each row's codewords are the nearest to its slices, and the
  fraction kept counts what the quantization loses."""
  full = student_factory(embedding_dim=4)
  kept_full = transfer_item_embeddings(full, tiny_teacher)
  target = _rows(full)[1:]
  regrouped = np.concatenate([target[:, 0::2], target[:, 1::2]], 1)
  exact = student_factory(embedding_dim=4, embedding=EmbeddingConfig(
      kind="product_quantized", num_codebooks=2,
      codewords=tiny_prepared.num_items))
  assert transfer_item_embeddings(exact, tiny_teacher) == pytest.approx(
      kept_full, rel=1e-5)
  np.testing.assert_allclose(_rows(exact)[1:], regrouped, atol=1e-5)
  coarse = student_factory(embedding_dim=4, embedding=EmbeddingConfig(
      kind="product_quantized", num_codebooks=2, codewords=8))
  padding = _rows(coarse)[0]
  kept = transfer_item_embeddings(coarse, tiny_teacher)
  table = coarse.get_layer("item_embedding")
  books, codes = table.codebooks.numpy(), table.codes.numpy()
  padded = np.concatenate([[np.concatenate([padding[0::2], padding[1::2]])],
                           regrouped])
  for m in range(2):
    part = padded[:, 2 * m:2 * m + 2]
    distances = np.square(part[:, None] - books[m][None]).sum(-1)
    chosen = distances[np.arange(len(part)), codes[:, m]]
    np.testing.assert_allclose(chosen, distances.min(1), atol=1e-5)
  rows = _rows(coarse)
  lost = np.square(padded - rows).sum()
  assert kept == pytest.approx(kept_full * (1 - lost / np.square(
      padded).sum()), rel=1e-4)
  assert 0 < kept < kept_full


def test_refuses_tables_it_cannot_set(tiny_teacher, student_factory,
                                      tiny_prepared):
  hashed = student_factory(embedding=EmbeddingConfig(kind="hash",
                                                     num_buckets=20))
  with pytest.raises(ModelError, match="item_embedding.*HashEmbedding"):
    transfer_item_embeddings(hashed, tiny_teacher)
  with pytest.raises(ModelError, match="no layer 'items'"):
    transfer_item_embeddings(student_factory(), tiny_teacher, layer="items")
  too_wide = student_factory(embedding_dim=32)  # the teacher is 16 wide
  with pytest.raises(ModelError, match="32 wide"):
    transfer_item_embeddings(too_wide, tiny_teacher)
  other = build_sequential_student(tiny_prepared.num_items + 3, 6,
                                   StudentConfig(embedding_dim=8))
  with pytest.raises(ModelError, match="catalog rows"):
    transfer_item_embeddings(other, tiny_teacher)
  with pytest.raises(ModelError, match="catalog_embeddings"):
    transfer_item_embeddings(student_factory(), [tiny_teacher, tiny_teacher])

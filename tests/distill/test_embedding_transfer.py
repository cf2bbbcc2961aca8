"""transfer_item_embeddings: the student's item table from the teacher's."""

import numpy as np
import pytest

from tfdistill.distill import Distiller
from tfdistill.distill import OnlineTeacher
from tfdistill.distill import transfer_item_embeddings
from tfdistill.distill.embedding_transfer import principal_projection
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


def test_refuses_tables_it_cannot_set(tiny_teacher, student_factory,
                                      tiny_prepared):
  low_rank = student_factory(embedding=EmbeddingConfig(kind="low_rank",
                                                       rank=2))
  with pytest.raises(ModelError, match="item_embedding.*LowRankEmbedding"):
    transfer_item_embeddings(low_rank, tiny_teacher)
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

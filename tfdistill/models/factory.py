"""Build teachers and students that fit a `PreparedData` (sizes, features)."""

from tfdistill.data.prepare import PreparedData
from tfdistill.models.configs import StudentConfig
from tfdistill.models.configs import TeacherConfig
from tfdistill.models.ranking import DCNRankingTeacher
from tfdistill.models.ranking import MultiTaskTeacher
from tfdistill.models.students import build_sequential_student
from tfdistill.models.teachers import SequentialRetrievalTeacher
from tfdistill.models.teachers import TwoTowerRetrievalTeacher


def _feature_sizes(prepared: PreparedData) -> dict:
  return dict(num_genres=len(prepared.genres),
              num_title_tokens=len(prepared.title_tokens),
              max_genres=prepared.item_genres.shape[1],
              max_title_tokens=prepared.item_title.shape[1],
              vocabulary_fingerprint=prepared.items.fingerprint)


def _with_item_data(model, prepared: PreparedData):
  model.set_item_data(prepared.item_genres, prepared.item_title,
                      prepared.item_popularity())
  return model


def build_sequential_teacher(prepared: PreparedData, context_length: int,
                             config: TeacherConfig = TeacherConfig(),
                             name: str = "teacher"
                            ) -> SequentialRetrievalTeacher:
  """The self-attention teacher, with the data's item features loaded."""
  return _with_item_data(SequentialRetrievalTeacher(
      prepared.num_items, context_length, num_blocks=config.num_blocks,
      num_heads=config.num_heads, ffn_dim=config.ffn_dim,
      dropout=config.dropout, embedding_dim=config.embedding_dim,
      negatives=config.negatives,
      num_extra_negatives=config.num_extra_negatives,
      sampling_bias_correction=config.sampling_bias_correction,
      temperature=config.temperature, objective=config.objective,
      name=name, **_feature_sizes(prepared)), prepared)


def build_two_tower_teacher(prepared: PreparedData, context_length: int,
                            embedding_dim: int = 64,
                            negatives: str = "in_batch",
                            name: str = "two_tower_teacher"
                           ) -> TwoTowerRetrievalTeacher:
  return _with_item_data(TwoTowerRetrievalTeacher(
      prepared.num_items, prepared.num_users, context_length,
      embedding_dim=embedding_dim, negatives=negatives, name=name,
      **_feature_sizes(prepared)), prepared)


def build_ranking_teacher(prepared: PreparedData, embedding_dim: int = 32,
                          name: str = "ranking_teacher") -> DCNRankingTeacher:
  return _with_item_data(DCNRankingTeacher(
      prepared.num_users, prepared.num_items, embedding_dim=embedding_dim,
      name=name, **_feature_sizes(prepared)), prepared)


def build_multitask_teacher(prepared: PreparedData, context_length: int,
                            embedding_dim: int = 64,
                            name: str = "multitask_teacher"
                           ) -> MultiTaskTeacher:
  return _with_item_data(MultiTaskTeacher(
      prepared.num_items, prepared.num_users, context_length,
      embedding_dim=embedding_dim, name=name, **_feature_sizes(prepared)),
                         prepared)


def build_student(prepared: PreparedData, context_length: int,
                  config: StudentConfig = StudentConfig(),
                  name: str = "student"):
  """A sequential student sized for the data's catalog and vocabulary."""
  return build_sequential_student(prepared.num_items, context_length, config,
                                  prepared.items.fingerprint, name=name)

"""Distillation strategies built on the Distiller.

* `distill_chain`: teacher -> teaching assistant(s) -> student in one call
  (Mirzadeh et al., 2020: a mid-sized assistant bridges a large gap).
* `continual_distill`: warm-start from the previous student and re-distil on
  a newer time window, keeping the previous student as a second teacher so
  the old window is not forgotten.
* `FusedRecommender`: the student retrieves candidates and the teacher
  re-scores them; the fused score serves where the budget allows a teacher.
"""

from typing import Callable, Optional, Sequence

import tensorflow as tf
import tf_keras

from tfdistill.distill.distiller import Distiller
from tfdistill.distill.soft_targets import MASKED_LOGIT
from tfdistill.distill.teachers import mask_reserved
from tfdistill.distill.teachers import model_inputs
from tfdistill.distill.teachers import TeacherEnsemble
from tfdistill.errors import ConfigError
from tfdistill.models.registry import register
from tfdistill.models.signals import QUERY_EMBEDDING


def distill_chain(models: Sequence[tf_keras.Model], train, epochs: int,
                  compile_kwargs: Callable[[], dict],
                  fit_kwargs: Optional[dict] = None) -> list:
  """Distils models[0] into models[1], models[1] into models[2], and so on.

  Args:
    models: The trained teacher, then the assistants, then the student.
    train: Training data for every link.
    epochs: Epochs per link.
    compile_kwargs: Called once per link, returns `Distiller.compile`
      arguments (a fresh optimizer each time).
    fit_kwargs: Extra `fit` arguments (callbacks, validation data, ...).

  Returns:
    The trained models after the teacher (the last one is the student).

  Example:
    >>> assistant, student = distill_chain(
    ...     [teacher, assistant, student], train, epochs=5,
    ...     compile_kwargs=lambda: dict(optimizer=tf_keras.optimizers.Adam()))
  """
  if len(models) < 2:
    raise ConfigError("distill_chain needs a teacher and at least one student.")
  trained = []
  for teacher, student in zip(models[:-1], models[1:]):
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(**compile_kwargs())
    distiller.fit(train, epochs=epochs, **(fit_kwargs or {}))
    trained.append(distiller.student)
  return trained


def warm_start(model: tf_keras.Model, name: Optional[str] = None
              ) -> tf_keras.Model:
  """A trainable copy of a functional model with the same weights."""
  copy = tf_keras.models.clone_model(model)
  copy.set_weights(model.get_weights())
  copy.trainable = True
  if name:
    copy._name = name  # pylint: disable=protected-access
  return copy


def continual_distill(previous_student: tf_keras.Model, teacher, train,
                      epochs: int, compile_kwargs: Callable[[], dict],
                      anchor_weight: float = 0.3,
                      fit_kwargs: Optional[dict] = None) -> tf_keras.Model:
  """Re-distils a student on newer data without forgetting the older data.

  The new student starts from `previous_student`'s weights and learns from an
  ensemble of the (newer) teacher and the frozen previous student, weighted
  1 - anchor_weight and anchor_weight.

  Args:
    previous_student: The student of the previous window (not modified).
    teacher: The teacher for the new window.
    train: Training data of the new window.
    epochs: Epochs of re-distillation.
    compile_kwargs: Returns `Distiller.compile` arguments.
    anchor_weight: Weight of the previous student as a teacher (0 disables).
    fit_kwargs: Extra `fit` arguments.

  Returns:
    The new student.
  """
  if not 0.0 <= anchor_weight < 1.0:
    raise ConfigError(f"anchor_weight must be in [0, 1), got {anchor_weight}.")
  student = warm_start(previous_student,
                       name=f"{previous_student.name}_continual")
  if anchor_weight > 0:
    anchor = warm_start(previous_student, name=f"{previous_student.name}_anchor")
    source = TeacherEnsemble([teacher, anchor],
                             weights=[1.0 - anchor_weight, anchor_weight])
  else:
    source = teacher
  distiller = Distiller(student=student, teacher=source)
  distiller.compile(**compile_kwargs())
  distiller.fit(train, epochs=epochs, **(fit_kwargs or {}))
  return distiller.student


def _standardize(scores: tf.Tensor) -> tf.Tensor:
  mean, variance = tf.nn.moments(scores, axes=[-1], keepdims=True)
  return (scores - mean) / tf.sqrt(variance + 1e-6)


@register
class FusedRecommender(tf_keras.Model):
  """Student retrieval + teacher re-scoring of the student's candidates.

  fused = (1 - teacher_weight) * z(student) + teacher_weight * z(teacher)
  over the student's top `num_candidates` items (z: standardised per row);
  other items get MASKED_LOGIT. The teacher scores only the candidates, so the
  extra cost is one teacher query pass plus `num_candidates` dot products.
  """

  def __init__(self, student: tf_keras.Model, teacher: tf_keras.Model,
               num_candidates: int = 100, teacher_weight: float = 0.5,
               **kwargs):
    super().__init__(**kwargs)
    if num_candidates < 1:
      raise ConfigError(f"num_candidates must be >= 1, got {num_candidates}.")
    if not 0.0 <= teacher_weight <= 1.0:
      raise ConfigError(f"teacher_weight must be in [0, 1], got "
                        f"{teacher_weight}.")
    self.student = student
    self.teacher = teacher
    self.num_candidates = num_candidates
    self.teacher_weight = teacher_weight
    # A frozen teacher's catalog embeddings are computed once.
    self._catalog = (tf.constant(teacher.catalog_embeddings()) if hasattr(
        teacher, "catalog_embeddings") else None)

  def _teacher_scores(self, inputs, candidates):
    if self._catalog is not None:
      query = self.teacher.query_signals(
          model_inputs(self.teacher, inputs),
          catalog=self._catalog)[QUERY_EMBEDDING]
      return tf.einsum("bd,bkd->bk", query,
                       tf.gather(self._catalog, candidates))
    logits = self.teacher(model_inputs(self.teacher, inputs), training=False)
    return tf.gather(logits, candidates, batch_dims=1)

  def call(self, inputs, training=False):
    student = mask_reserved(self.student(model_inputs(self.student, inputs),
                                         training=False))
    student_top, candidates = tf.math.top_k(student, k=self.num_candidates)
    fused = ((1.0 - self.teacher_weight) * _standardize(student_top) +
             self.teacher_weight * _standardize(
                 self._teacher_scores(inputs, candidates)))
    rows = tf.repeat(tf.range(tf.shape(candidates)[0]), self.num_candidates)
    return tf.tensor_scatter_nd_update(
        tf.fill(tf.shape(student), MASKED_LOGIT),
        tf.stack([rows, tf.reshape(candidates, [-1])], 1),
        tf.reshape(fused, [-1]))

  def get_config(self):
    return {"student": tf_keras.saving.serialize_keras_object(self.student),
            "teacher": tf_keras.saving.serialize_keras_object(self.teacher),
            "num_candidates": self.num_candidates,
            "teacher_weight": self.teacher_weight, "name": self.name}

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config["student"] = tf_keras.saving.deserialize_keras_object(
        config["student"])
    config["teacher"] = tf_keras.saving.deserialize_keras_object(
        config["teacher"])
    return cls(**config)

"""A Keras model that trains a student alone on a loss of its own."""

import tensorflow as tf
import tf_keras

from tfdistill.distill.teachers import model_inputs


class StudentTrainer(tf_keras.Model):
  """Trains `student` in place on `_loss(data, training)`, the student's
  regularization losses added; `fit` reports that loss.

  The base of the trainers of a student alone whose loss is not a Keras
  loss on the student's output: `CatalogTrainer` (a sampled softmax) and
  `OnePassTrainer` (every position of a chunk). Validation and metrics on
  full-catalog scores belong to `tfdistill.evaluation` (callbacks); the
  trainer's call is the student's on the features it declares.
  """

  def __init__(self, student: tf_keras.Model, **kwargs):
    super().__init__(**kwargs)
    self.student = student
    self.loss_tracker = tf_keras.metrics.Mean(name="loss")

  def call(self, inputs, training=False):
    # A batch may hold more than the student reads (e.g. a chunk's
    # preceding items).
    if isinstance(inputs, dict):
      inputs = model_inputs(self.student, inputs)
    return self.student(inputs, training=training)

  def _loss(self, data, training: bool) -> tf.Tensor:
    """The mean loss of a batch, before the student's own losses."""
    raise NotImplementedError

  def _total_loss(self, data, training: bool) -> tf.Tensor:
    loss = self._loss(data, training)
    if self.student.losses:
      loss += tf.add_n(self.student.losses)
    return loss

  def train_step(self, data):
    with tf.GradientTape() as tape:
      loss = self._total_loss(data, training=True)
      # Gradients are summed over replicas; scale as Keras does.
      scaled = loss / tf.cast(
          tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
    variables = self.student.trainable_variables
    self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables),
                                       variables))
    self.loss_tracker.update_state(loss)
    return {"loss": self.loss_tracker.result()}

  def test_step(self, data):
    self.loss_tracker.update_state(self._total_loss(data, training=False))
    return {"loss": self.loss_tracker.result()}

  @property
  def metrics(self):
    return [self.loss_tracker]

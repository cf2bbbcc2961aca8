"""The Distiller: a Keras model that trains a student on a frozen teacher.

It has the shape of the Keras knowledge-distillation example:

    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=tf_keras.optimizers.Adam(1e-3),
                      student_loss=SparseCategoricalCrossentropy(from_logits=True),
                      distillation_loss=SoftTargetKL(),
                      alpha=0.1, temperature=2.0)
    distiller.fit(train, validation_data=val, epochs=5)
    student = distiller.student

The variety (ranking, listwise, contrastive, hints, several teachers, cached
teacher signals) lives in the loss objects and in the teacher source, not in
`train_step`: each distillation loss names the signal it compares and the
Distiller hands it the teacher's and the student's version of that signal.
"""

from typing import Optional, Sequence, Union

from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras

from tfdistill.data.examples import CONTEXT
from tfdistill.distill.one_pass import OnePassStudent
from tfdistill.distill.one_pass import OnePassTrainer
from tfdistill.distill.positions import at_targets
from tfdistill.distill.positions import examples_at_every_position
from tfdistill.distill.positions import is_chunk_batch
from tfdistill.distill.sampled_softmax import CatalogTrainer
from tfdistill.distill.sampled_softmax import SampledCatalogSoftmax
from tfdistill.distill.soft_targets import check_temperature
from tfdistill.distill.soft_targets import DistillationLoss
from tfdistill.distill.soft_targets import SoftTargetKL
from tfdistill.distill.soft_targets import teacher_mask
from tfdistill.distill.student_scores import StudentScores
from tfdistill.distill.teachers import as_teacher_source
from tfdistill.distill.teachers import CATALOG_ITEMS
from tfdistill.distill.teachers import CATALOG_QUERIES
from tfdistill.distill.teachers import model_inputs
from tfdistill.distill.teachers import signal_model
from tfdistill.distill.teachers import TOP_K_SIGNAL
from tfdistill.distill.teachers import TeacherSource
from tfdistill.errors import ConfigError
from tfdistill.errors import ModelError
from tfdistill.models.io import check_same_vocabulary
from tfdistill.models.io import dummy_inputs
from tfdistill.models.io import input_signature
from tfdistill.models.io import model_card
from tfdistill.models.registry import register
from tfdistill.models.signals import LOGITS
from tfdistill.models.signals import RATING

LossLike = Union[tf_keras.losses.Loss, dict]


def _per_batch(values: tf.Tensor, sample_weight) -> tf.Tensor:
  """Keras's SUM_OVER_BATCH_SIZE of per-example values."""
  values = tf.cast(values, tf.float32)
  values = tf.reshape(values, [tf.shape(values)[0], -1])
  values = tf.reduce_mean(values, axis=-1)
  if sample_weight is not None:
    values *= tf.cast(tf.reshape(sample_weight, [-1]), tf.float32)
  return tf.reduce_mean(values)


def _call_loss(loss: tf_keras.losses.Loss, y_true, y_pred) -> tf.Tensor:
  """`loss.call` with labels shaped like Keras shapes them: [B] vs [B, 1]."""
  y_true = tf.convert_to_tensor(y_true)
  if (y_pred.shape.rank is not None and y_true.shape.rank is not None
      and y_true.shape.rank == y_pred.shape.rank - 1
      and y_pred.shape[-1] == 1):
    y_true = tf.expand_dims(y_true, -1)
  return loss.call(y_true, y_pred)


def _distillation_term(loss, teacher_signals: dict, student_signals: dict,
                       student_scores: Optional[StudentScores] = None):
  """Per-example values of one distillation loss.

  A top-K teacher signal (`TOP_K_SIGNAL`) goes to the loss's sparse form,
  with the student's logits as `student_scores` when given.
  """
  student = student_signals[loss.signal]
  if loss.signal == LOGITS and TOP_K_SIGNAL in teacher_signals:
    ids, scores = teacher_signals[TOP_K_SIGNAL]
    return loss.call_top_k(ids, scores, student_scores or student)
  return loss.call(teacher_signals[loss.signal], student)


def _is_catalog_softmax(loss) -> bool:
  """Whether `loss` is the softmax cross-entropy of an id over the logits."""
  if not isinstance(loss, tf_keras.losses.SparseCategoricalCrossentropy):
    return False
  config = loss.get_config()
  return bool(config.get("from_logits")) and config.get("ignore_class") is None


def _public(signals: dict) -> list:
  return sorted(set(signals) - {CATALOG_QUERIES, CATALOG_ITEMS})


class StopOnNaN(tf_keras.callbacks.Callback):
  """Stops training when the loss is NaN or infinite, and says why.

  The Distiller adds it to `fit` unless a `TerminateOnNaN` is given.
  """

  def __init__(self):
    super().__init__()
    self.stopped_at = None

  def on_train_batch_end(self, batch, logs=None):
    loss = (logs or {}).get("loss")
    if loss is not None and not np.isfinite(loss):
      self.stopped_at = batch
      self.model.stop_training = True
      logging.error(
          "Distillation stopped: the loss is %s at batch %d. Lower the "
          "learning rate, raise the temperature, or check the teacher's "
          "scores and the labels for NaN.", loss, batch)


@register
class Distiller(tf_keras.Model):
  """Trains `student` on hard labels plus a frozen teacher's knowledge.

  Args:
    student: A functional student (see `tfdistill.models.students`). It is
      trained in place and is usable on its own afterwards.
    teacher: A teacher model, a list of models (an ensemble), a dict
      {signal: model} (multi-task) or a `TeacherSource` (e.g.
      `CachedTeacher`). Teachers are frozen and run with training=False.
    one_pass: On batches of chunks, read each chunk in one pass when the
      student's encoder allows it (`OnePassStudent`): a mean student's
      pass gives its windows' values; a self-attention student's is a
      causal pass over the chunk, its teacher's formulation, and a GRU
      student's a pass of its recurrence, for chunks of its context
      length. False: one window per target for any student.
  """

  def __init__(self, student: tf_keras.Model, teacher, one_pass: bool = True,
               **kwargs):
    kwargs.setdefault("name", "distiller")
    super().__init__(**kwargs)
    self.student = student
    # A plain attribute: the teacher's weights are not part of the
    # Distiller's checkpoints, and no optimizer ever sees them.
    self.__dict__["teacher"] = as_teacher_source(teacher)
    for model in self.teacher.models():
      model.trainable = False
    self._student_signals = signal_model(student, with_catalog=True)
    # A mean, self-attention or GRU student reads every position of a
    # chunk in one pass (None: one window per target). Not tracked: its
    # layers are the student's.
    self.__dict__["_one_pass"] = (OnePassStudent.of(student)
                                  if one_pass else None)
    self.one_pass = one_pass
    self.loss_tracker = tf_keras.metrics.Mean(name="loss")
    self.student_loss_tracker = tf_keras.metrics.Mean(name="student_loss")
    self.distillation_loss_tracker = tf_keras.metrics.Mean(
        name="distillation_loss")
    self.alpha = 0.1
    self.student_loss = None
    self.distillation_losses = []
    self.distillation_loss_weights = []

  # ---------------------------------------------------------------- compile
  def compile(self, optimizer="adam", metrics=None,
              student_loss: Optional[LossLike] = None,
              distillation_loss: Union[DistillationLoss,
                                       Sequence[DistillationLoss],
                                       None] = None,
              alpha: float = 0.1, temperature: Optional[float] = None,
              distillation_loss_weights: Optional[Sequence[float]] = None,
              **kwargs):
    """Configures distillation.

    Args:
      optimizer: Keras optimizer for the student.
      metrics: Keras metrics on the student's output (e.g.
        `SparseTopKCategoricalAccuracy(k=10)`).
      student_loss: Loss on the hard labels (a dict for multi-output
        students). Default: sparse categorical cross-entropy on logits.
      distillation_loss: One `DistillationLoss` or a list of them. Default:
        `SoftTargetKL`.
      alpha: Weight of the hard loss; the distillation loss gets 1 - alpha.
      temperature: If set, the temperature of every soft-target loss.
      distillation_loss_weights: Relative weights of several distillation
        losses (default 1 each).
      **kwargs: Passed to `tf_keras.Model.compile` (e.g. `steps_per_execution`).

    Raises:
      ValueError (ConfigError): for alpha outside [0, 1] or temperature <= 0.
      ModelError: if teacher and student disagree on inputs, catalog size or
        vocabulary, or lack a signal a loss needs.
    """
    if not 0.0 <= alpha <= 1.0:
      raise ConfigError(f"alpha must be in [0, 1], got {alpha}.")
    if temperature is not None:
      check_temperature(temperature)
    for key in ("loss", "loss_weights"):
      if kwargs.get(key) is not None:
        raise ConfigError(f"Distiller.compile takes student_loss= and "
                          f"distillation_loss=, not {key}=.")
      kwargs.pop(key, None)
    super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
    self.alpha = float(alpha)
    self.student_loss = student_loss or (
        tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    losses = distillation_loss if distillation_loss is not None else (
        SoftTargetKL())
    losses = list(losses) if isinstance(losses, (list, tuple)) else [losses]
    self.distillation_losses = [self._tempered(l, temperature)
                                for l in losses]
    weights = distillation_loss_weights or [1.0] * len(losses)
    if len(weights) != len(losses):
      raise ConfigError(f"{len(weights)} distillation_loss_weights for "
                        f"{len(losses)} distillation losses.")
    self.distillation_loss_weights = [float(w) for w in weights]
    self._check_and_build()

  @staticmethod
  def _tempered(loss, temperature):
    if not isinstance(loss, DistillationLoss):
      raise ConfigError(f"{type(loss).__name__} is not a DistillationLoss; "
                        "use the losses in tfdistill.distill.")
    if temperature is None or not loss.uses_distillation_temperature:
      return loss
    return type(loss).from_config(dict(loss.get_config(),
                                       temperature=temperature))

  def _check_and_build(self) -> None:
    """Dry run on padding inputs: compatibility checks, build projections."""
    student_spec = input_signature(self.student)
    teacher_spec = self.teacher.input_signature()
    for name in student_spec.keys() & teacher_spec.keys():
      s, t = student_spec[name], teacher_spec[name]
      if name == CONTEXT and s.dtype == t.dtype and s.shape.rank == 2 and (
          t.shape.rank == 2 and s.shape[1] <= t.shape[1]):
        continue  # a shorter student reads the most recent items
      if s.shape[1:] != t.shape[1:] or s.dtype != t.dtype:
        raise ModelError(
            f"teacher and student disagree on input {name!r}: teacher expects "
            f"{t.dtype.name}{t.shape.as_list()}, student "
            f"{s.dtype.name}{s.shape.as_list()}. Build both for the same "
            "context length.")
    check_same_vocabulary(self.teacher.card(), model_card(self.student))
    self.teacher.prepare()
    dummy = dummy_inputs(dict(student_spec, **teacher_spec))
    teacher_signals = self.teacher(dummy)
    student_signals = self._student_signals(self._student_inputs(dummy),
                                            training=False)
    if LOGITS in teacher_signals and LOGITS in student_signals:
      t, s = teacher_signals[LOGITS].shape[-1], student_signals[
          LOGITS].shape[-1]
      if t != s:
        raise ModelError(f"the teacher scores {t} items but the student {s}; "
                         "they must share the catalog.")
    if isinstance(self.student_loss, SampledCatalogSoftmax):
      dry_scores = self._sampled_scores(None, teacher_signals,
                                        student_signals)[1]
    else:
      dry_scores = self._student_scores(None, student_signals, None)
    layers = []
    for loss in self.distillation_losses:
      for who, signals in (("teacher", teacher_signals),
                           ("student", student_signals)):
        if loss.signal not in signals:
          raise ModelError(f"{loss.name} needs the {who}'s {loss.signal!r} "
                           f"signal; the {who} provides {_public(signals)}.")
      loss.build(teacher_signals[loss.signal].shape,
                 student_signals[loss.signal].shape)
      _distillation_term(loss, teacher_signals, student_signals,
                         dry_scores)
      layers.extend(loss.trainable_layers)
    self.projections = layers  # Tracked: trained and checkpointed.
    self._per_loss_trackers = [
        tf_keras.metrics.Mean(name=l.name) for l in self.distillation_losses
    ] if len(self.distillation_losses) > 1 else []
    # Student, teacher and projections now exist: the Distiller is built, so
    # that `BackupAndRestore` builds the optimizer and restores its slots
    # before the first step of a resumed `fit`.
    self.built = True

  # ------------------------------------------------------------- training
  def _student_inputs(self, inputs: dict) -> dict:
    """The student's features of a batch; a student with a shorter context
    than the batch's (the teacher's) reads its most recent items."""
    features = model_inputs(self.student, inputs)
    if CONTEXT in features:
      length = input_signature(self.student)[CONTEXT].shape[1]
      if length is not None and features[CONTEXT].shape.rank == 2:
        features[CONTEXT] = features[CONTEXT][:, -length:]
    return features

  def call(self, inputs, training=False):
    return self.student(self._student_inputs(inputs), training=training)

  def _student_outputs(self, signals: dict):
    """The student's own output (what its hard loss and metrics see)."""
    if isinstance(self.student.output, dict):
      return {name: signals[name] for name in self.student.output}
    return signals[RATING if LOGITS not in signals else LOGITS]

  def _hard_loss(self, y, outputs, sample_weight) -> tuple:
    """(The hard loss, its per-example values for a single output or None)."""
    if isinstance(outputs, dict):
      if not isinstance(self.student_loss, dict) or not isinstance(y, dict):
        raise ConfigError("a student with several outputs needs student_loss "
                          "and labels as dicts keyed by output name "
                          f"({sorted(outputs)}).")
      return tf.add_n([
          _per_batch(_call_loss(self.student_loss[name], y[name],
                                outputs[name]), sample_weight)
          for name in self.student_loss]), None
    values = _call_loss(self.student_loss, y, outputs)
    return _per_batch(values, sample_weight), values

  def _student_scores(self, y, student_signals: dict,
                      hard_values) -> Optional[StudentScores]:
    """The student's logits for the top-K forms of the losses.

    Scores a few ids from the `CatalogScores` factors when the student has
    them. When the hard loss is the softmax cross-entropy of the label over
    the same logits, its values give the log-normaliser for free:
    logsumexp(s) = CE(s, y) + s[y].
    """
    if LOGITS not in student_signals:
      return None
    scores = StudentScores(student_signals[LOGITS],
                           student_signals.get(CATALOG_QUERIES),
                           student_signals.get(CATALOG_ITEMS))
    if hard_values is not None and _is_catalog_softmax(self.student_loss):
      labels = tf.reshape(tf.cast(y, tf.int32), [-1, 1])
      scores = scores.with_log_normalizer(
          hard_values + scores.at(labels)[:, 0])
    return scores

  def _sampled_scores(self, y, teacher_signals, student_signals) -> tuple:
    """(per-example hard losses, StudentScores) of a
    `SampledCatalogSoftmax` student loss: the label, the teacher's top-K
    and the step's uniform draws scored from the student's factors."""
    labels = y if y is not None else tf.zeros(  # the dry run: padding ids
        [tf.shape(student_signals[LOGITS])[0]], tf.int32)
    ids = valid = None
    if TOP_K_SIGNAL in teacher_signals:
      ids, top_scores = teacher_signals[TOP_K_SIGNAL]
      valid = teacher_mask(tf.cast(top_scores, tf.float32))
    return self.student_loss.per_example(student_signals, labels,
                                         self.optimizer.iterations, ids,
                                         valid)

  def _compute_losses(self, y, sample_weight, teacher_signals, student_signals):
    if isinstance(self.student_loss, SampledCatalogSoftmax):
      hard_values, scores = self._sampled_scores(y, teacher_signals,
                                                 student_signals)
      hard = _per_batch(hard_values, sample_weight)
    else:
      hard, hard_values = self._hard_loss(
          y, self._student_outputs(student_signals), sample_weight)
      scores = self._student_scores(y, student_signals, hard_values)
    terms = [w * _per_batch(_distillation_term(loss, teacher_signals,
                                               student_signals, scores),
                            sample_weight)
             for loss, w in zip(self.distillation_losses,
                                self.distillation_loss_weights)]
    soft = tf.add_n(terms)
    total = self.alpha * hard + (1.0 - self.alpha) * soft
    if self.student.losses:
      total += tf.add_n(self.student.losses)
    return {"total": total, "hard": hard, "soft": soft, "terms": terms}

  def _trainable_variables(self) -> list:
    variables = list(self.student.trainable_variables)
    for layer in self.projections:
      variables.extend(layer.trainable_variables)
    return variables

  def _record(self, y, sample_weight, student_signals, losses) -> dict:
    self.loss_tracker.update_state(losses["total"])
    self.student_loss_tracker.update_state(losses["hard"])
    self.distillation_loss_tracker.update_state(losses["soft"])
    for tracker, term in zip(self._per_loss_trackers, losses["terms"]):
      tracker.update_state(term)
    self.compiled_metrics.update_state(
        y, self._student_outputs(student_signals), sample_weight)
    return {m.name: m.result() for m in self.metrics}

  @property
  def _teacher_reads(self) -> tuple:
    """What the steps ask of the teacher: the signals the losses compare
    (e.g. a hint alone spares an online teacher its catalog scores)."""
    return tuple(sorted({loss.signal for loss in self.distillation_losses}))

  def _examples_and_teacher_signals(self, data) -> tuple:
    """(student pass, y, sample_weight, teacher signals) of a batch. The
    student pass is a function of `training` that returns the student's
    signals on the batch.

    A batch of chunks of users' sequences (a target at every position,
    `tfdistill.data.examples.chunk_examples`) becomes one example per
    target: the teacher scores every position in one pass, and the student
    reads the window of its context length that ends at each position (a
    mean student all of them in one pass over the chunk).
    """
    x, y, sample_weight = tf_keras.utils.unpack_x_y_sample_weight(data)
    if not is_chunk_batch(x, y):
      return (self._windows_pass(x), y, sample_weight,
              self.teacher(x, y, signals=self._teacher_reads))
    spec = input_signature(self.student)
    if set(spec) != {CONTEXT} or sample_weight is not None:
      raise ConfigError(
          f"distilling at every position of a sequence feeds "
          f"{self.student.name} one context window per target, without "
          f"sample weights; it reads {sorted(spec)}. Distil on context "
          "windows (sequence_examples) instead.")
    teacher_signals = self.teacher.at_every_position(
        x, y, signals=self._teacher_reads)
    if (self._one_pass is not None and
        self._one_pass.accepts(x[CONTEXT].shape[1])):
      chunks, targets = x, y
      return (lambda training: self._one_pass(chunks, targets, training),
              at_targets(y, y), None, teacher_signals)
    x, y = examples_at_every_position(x, y, spec[CONTEXT].shape[1])
    return self._windows_pass(x), y, None, teacher_signals

  def _windows_pass(self, x):
    return lambda training: self._student_signals(self._student_inputs(x),
                                                  training=training)

  def train_step(self, data):
    student_pass, y, sample_weight, teacher_signals = (
        self._examples_and_teacher_signals(data))
    with tf.GradientTape() as tape:
      student_signals = student_pass(True)
      losses = self._compute_losses(y, sample_weight, teacher_signals,
                                    student_signals)
      # Gradients are summed over replicas; scale as Keras does.
      scaled = losses["total"] / tf.cast(
          tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
    variables = self._trainable_variables()
    self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables),
                                       variables))
    return self._record(y, sample_weight, student_signals, losses)

  def test_step(self, data):
    student_pass, y, sample_weight, teacher_signals = (
        self._examples_and_teacher_signals(data))
    student_signals = student_pass(False)
    losses = self._compute_losses(y, sample_weight, teacher_signals,
                                  student_signals)
    return self._record(y, sample_weight, student_signals, losses)

  @property
  def metrics(self):
    trackers = [self.loss_tracker, self.student_loss_tracker,
                self.distillation_loss_tracker]
    trackers += getattr(self, "_per_loss_trackers", [])
    compiled = self.compiled_metrics.metrics if self._is_compiled and (
        self.compiled_metrics is not None) else []
    return trackers + compiled

  def fit(self, *args, callbacks=None, **kwargs):
    """`tf_keras.Model.fit`, plus a `StopOnNaN` unless you pass one."""
    callbacks = list(callbacks or [])
    if not any(isinstance(c, (StopOnNaN, tf_keras.callbacks.TerminateOnNaN))
               for c in callbacks):
      callbacks.append(StopOnNaN())
    return super().fit(*args, callbacks=callbacks, **kwargs)

  # -------------------------------------------------------- serialization
  def get_config(self):
    return {"name": self.name,
            "student": tf_keras.saving.serialize_keras_object(self.student),
            "teacher": [tf_keras.saving.serialize_keras_object(m)
                        for m in self.teacher.models()],
            "one_pass": self.one_pass}

  @classmethod
  def from_config(cls, config):
    """Rebuilds the architecture (weights are restored separately)."""
    teachers = [tf_keras.saving.deserialize_keras_object(t)
                for t in config["teacher"]]
    return cls(student=tf_keras.saving.deserialize_keras_object(
        config["student"]), teacher=teachers[0] if len(teachers) == 1 else
               teachers, one_pass=config.get("one_pass", True),
               name=config["name"])


def compiled_trainer(student: tf_keras.Model, teacher=None,
                     optimizer="adam", alpha: float = 0.1,
                     temperature: Optional[float] = None,
                     distillation_loss=None, student_negatives: int = 0,
                     seed: int = 0, chunks: bool = False,
                     chunk_length: Optional[int] = None) -> tf_keras.Model:
  """What `fit` trains: `student` compiled on its hard labels alone
  (softmax cross-entropy over its logits) when `teacher` is None, else a
  `Distiller` of `student` on `teacher`, compiled with these settings.
  Either way, training it trains `student` in place.

  With `student_negatives` > 0 the hard loss is `SampledCatalogSoftmax`
  with that many uniform items per step (seeded by `seed`), alone through
  `CatalogTrainer`. With `chunks`, the student alone is to train on
  batches of chunks of the users' sequences: a mean, self-attention or GRU
  student through `OnePassTrainer`, which reads them (see `reads_chunks`);
  any other reads one example per target (`examples_at_every_position`).
  `chunk_length` (when known) keeps a self-attention or GRU student whose
  context is shorter than the chunks on windows, as the `Distiller` does."""
  hard = (SampledCatalogSoftmax(student_negatives, seed=seed)
          if student_negatives else None)
  if teacher is None:
    if hard is not None:
      trainer = CatalogTrainer(student, hard)
      trainer.compile(optimizer)
      return trainer
    one_pass = OnePassStudent.of(student) if chunks else None
    if one_pass is not None and (chunk_length is None or
                                 one_pass.accepts(chunk_length)):
      trainer = OnePassTrainer(student)
      trainer.compile(optimizer)
      return trainer
    student.compile(optimizer, loss=tf_keras.losses
                    .SparseCategoricalCrossentropy(from_logits=True))
    return student
  distiller = Distiller(student=student, teacher=teacher)
  distiller.compile(optimizer=optimizer, alpha=alpha, temperature=temperature,
                    distillation_loss=distillation_loss, student_loss=hard)
  return distiller


def reads_chunks(trainer) -> bool:
  """Whether `trainer` (from `compiled_trainer`) trains on batches of
  chunks as they come: a `Distiller` or an `OnePassTrainer`."""
  return isinstance(trainer, (Distiller, OnePassTrainer))


__all__ = ["Distiller", "StopOnNaN", "TeacherSource", "compiled_trainer",
           "reads_chunks"]

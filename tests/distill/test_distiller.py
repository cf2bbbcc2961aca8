"""The Distiller: training behaviour, Keras integration and bad input."""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfdistill.data import examples
from tfdistill.distill import ContrastiveAlignment
from tfdistill.distill import Distiller
from tfdistill.distill import HintDistillation
from tfdistill.distill import OnlineTeacher
from tfdistill.distill import PointwiseScoreDistillation
from tfdistill.distill import RankingDistillation
from tfdistill.distill import SoftTargetKL
from tfdistill.distill import StopOnNaN
from tfdistill.distill.teachers import model_inputs
from tfdistill.distill.teachers import TOP_K_SIGNAL
from tfdistill.errors import ConfigError
from tfdistill.errors import ModelError
from tfdistill.models.factory import build_sequential_teacher
from tfdistill.models.factory import TeacherConfig
from tfdistill.models.students import build_sequential_student
from tfdistill.models.students import StudentConfig


def _snapshot(model):
  return {v.ref(): v.numpy().copy() for v in model.variables}


def _distiller(student, teacher, **compile_args):
  distiller = Distiller(student=student, teacher=teacher)
  args = dict(optimizer=tf_keras.optimizers.Adam(1e-2), alpha=0.5,
              temperature=2.0)
  args.update(compile_args)
  distiller.compile(**args)
  return distiller


def test_teacher_is_unchanged_and_student_learns(tiny_teacher, tiny_train,
                                                  student_factory):
  tf_keras.utils.set_random_seed(1)
  student = student_factory()
  teacher_before, student_before = _snapshot(tiny_teacher), _snapshot(student)
  distiller = _distiller(student, tiny_teacher, distillation_loss=[
      SoftTargetKL(), HintDistillation(), ContrastiveAlignment()])
  history = distiller.fit(tiny_train, epochs=4, verbose=0).history
  for v in tiny_teacher.variables:
    np.testing.assert_array_equal(teacher_before[v.ref()], v.numpy(),
                                  err_msg=v.name)
  changed = [not np.array_equal(student_before[v.ref()], v.numpy())
             for v in student.trainable_variables]
  assert all(changed)
  assert history["student_loss"][-1] < history["student_loss"][0]
  assert history["distillation_loss"][-1] < history["distillation_loss"][0]
  assert {"loss", "student_loss", "distillation_loss", "soft_target_kl",
          "hint_distillation", "contrastive_alignment"} <= set(history)


def test_total_loss_mixes_hard_and_soft_with_alpha(tiny_teacher, tiny_prepared,
                                                   student_factory):
  distiller = _distiller(student_factory(), tiny_teacher, alpha=0.25)
  batch = examples.sequence_examples(tiny_prepared, "validation", 6,
                                     batch_size=32)
  logs = distiller.evaluate(batch, return_dict=True, verbose=0)
  assert logs["loss"] == pytest.approx(
      0.25 * logs["student_loss"] + 0.75 * logs["distillation_loss"],
      rel=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_top_k_teacher_step_equals_the_dense_computation(
    tiny_teacher, tiny_prepared, student_factory, temperature):
  # With a top-K teacher the Distiller scores the K items from the student's
  # query and item vectors and, at T=1, takes the catalog normaliser from the
  # hard loss. Loss and gradients must be those of the textbook formula on
  # the dense logits.
  tf_keras.utils.set_random_seed(3)
  student = student_factory()
  distiller = _distiller(student, OnlineTeacher(tiny_teacher, top_k=8),
                         alpha=0.3, temperature=temperature,
                         distillation_loss=[SoftTargetKL(),
                                            RankingDistillation(top_k=5)])
  x, y = next(iter(examples.sequence_examples(tiny_prepared, "validation", 6,
                                              batch_size=16)))
  teacher = distiller.teacher(x, y)
  dense_losses = [SoftTargetKL(temperature), RankingDistillation(top_k=5)]
  with tf.GradientTape(persistent=True) as tape:
    signals = distiller._student_signals(model_inputs(student, x),
                                         training=False)
    total = distiller._compute_losses(y, None, teacher, signals)["total"]
    logits = signals["logits"]
    hard = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        y, logits)
    soft = tf.add_n([tf.reduce_mean(loss.call(teacher["logits"], logits))
                     for loss in dense_losses])
    expected = 0.3 * hard + 0.7 * soft
  assert float(total) == pytest.approx(float(expected), rel=1e-5)
  for variable in student.trainable_variables:
    np.testing.assert_allclose(
        tf.convert_to_tensor(tape.gradient(total, variable)).numpy(),
        tf.convert_to_tensor(tape.gradient(expected, variable)).numpy(),
        atol=1e-5, err_msg=variable.name)
  hard_values = tf_keras.losses.SparseCategoricalCrossentropy(
      from_logits=True, reduction="none")(y, logits)
  scores = distiller._student_scores(y, signals, hard_values)
  assert scores.queries is not None  # The sparse path was taken.
  np.testing.assert_allclose(scores.log_normalizer(1.0).numpy(),
                             tf.reduce_logsumexp(logits, -1, True).numpy(),
                             rtol=1e-5)


@pytest.mark.parametrize("top_k", [0, 8])
def test_online_teacher_xla_forward_equals_the_plain_one(
    tiny_teacher, tiny_prepared, student_factory, top_k):
  plain = OnlineTeacher(tiny_teacher, top_k=top_k, jit_compile=False)
  xla = OnlineTeacher(tiny_teacher, top_k=top_k)
  assert xla.jit_compile and not plain.jit_compile
  # Other models are not compiled unless asked: XLA may lack their ops.
  assert not OnlineTeacher(student_factory()).jit_compile
  x, _ = next(iter(examples.sequence_examples(tiny_prepared, "validation", 6,
                                              batch_size=16)))
  signals = []
  for source in (plain, xla):
    source.prepare()
    signals.append(source(x))
  assert signals[0].keys() == signals[1].keys() >= {"logits", "hidden"}
  for name, value in signals[0].items():
    tf.nest.map_structure(
        lambda a, b, name=name: np.testing.assert_allclose(
            a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5, err_msg=name),
        value, signals[1][name])


def test_online_teacher_computes_the_signals_asked_for(tiny_teacher,
                                                      tiny_prepared):
  source = OnlineTeacher(tiny_teacher, top_k=8)
  source.prepare()
  x, _ = next(iter(examples.sequence_examples(tiny_prepared, "validation", 6,
                                              batch_size=16)))
  every = source(x)
  assert {"logits", TOP_K_SIGNAL, "hidden", "query_embedding"} <= set(every)
  hidden = source(x, signals=["hidden"])
  assert set(hidden) == {"hidden"}
  np.testing.assert_allclose(hidden["hidden"].numpy(),
                             every["hidden"].numpy(), rtol=1e-6)
  scores = source(x, signals=("logits",))
  assert set(scores) == {"logits", TOP_K_SIGNAL}
  np.testing.assert_array_equal(scores[TOP_K_SIGNAL][0].numpy(),
                                every[TOP_K_SIGNAL][0].numpy())


class _EverySignal(OnlineTeacher):
  """An online teacher that computes every signal whatever it is asked."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.asked = []

  def __call__(self, inputs, labels=None, signals=None):
    self.asked.append(signals)
    return super().__call__(inputs, labels)


@pytest.mark.parametrize("losses,reads", [
    ([HintDistillation()], ("hidden",)),
    ([ContrastiveAlignment(), HintDistillation()],
     ("hidden", "query_embedding")),
    ([SoftTargetKL(), HintDistillation()], ("hidden", "logits"))])
def test_the_steps_ask_the_teacher_for_what_the_losses_read(
    tiny_teacher, tiny_prepared, student_factory, losses, reads):
  # A hint alone spares an online teacher its catalog scores and top-K; the
  # student trains exactly as with a teacher that computes everything.
  batches = examples.sequence_examples(tiny_prepared, "train", 6,
                                       batch_size=64).take(3)
  weights = []
  for source_type in (OnlineTeacher, _EverySignal):
    tf_keras.utils.set_random_seed(5)
    student = student_factory()
    source = source_type(tiny_teacher, top_k=8)
    distiller = _distiller(student, source, distillation_loss=[
        type(loss).from_config(loss.get_config()) for loss in losses])
    distiller.fit(batches, epochs=1, verbose=0)
    weights.append(student.get_weights())
  # The first call is compile's dry run, which checks every signal.
  assert source.asked[0] is None and len(source.asked) > 1
  assert all(tuple(sorted(asked)) == reads for asked in source.asked[1:])
  for a, b in zip(*weights):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_distilled_student_is_a_standalone_model(tiny_teacher, tiny_prepared,
                                                 tiny_train, student_factory,
                                                 tmp_path):
  distiller = _distiller(student_factory(), tiny_teacher)
  distiller.fit(tiny_train.take(3), verbose=0)
  student = distiller.student
  contexts = examples.evaluation_set(tiny_prepared, "test", 6).contexts[:4]
  expected = student.predict_on_batch({"context": contexts})
  np.testing.assert_allclose(distiller.predict_on_batch(
      {"context": contexts}), expected, rtol=1e-6)
  student.save(tmp_path / "student.keras")
  again = tf_keras.models.load_model(tmp_path / "student.keras")
  np.testing.assert_allclose(again.predict_on_batch({"context": contexts}),
                             expected, rtol=1e-5)


def test_temperature_and_alpha_are_validated(tiny_teacher, student_factory):
  distiller = Distiller(student=student_factory(), teacher=tiny_teacher)
  with pytest.raises(ValueError, match="alpha"):
    distiller.compile(alpha=1.5)
  with pytest.raises(ValueError, match="temperature"):
    distiller.compile(temperature=0.0)
  with pytest.raises(ValueError, match="temperature"):
    distiller.compile(temperature=-1.0)


def test_compile_temperature_sets_soft_target_losses(tiny_teacher,
                                                     student_factory):
  distiller = _distiller(student_factory(), tiny_teacher, temperature=5.0,
                         distillation_loss=[SoftTargetKL(2.0),
                                            ContrastiveAlignment(0.1)])
  kl, contrastive = distiller.distillation_losses
  assert kl.temperature == 5.0
  assert contrastive.temperature == 0.1  # InfoNCE temperature is separate


def test_catalog_size_mismatch_is_caught_before_training(tiny_teacher,
                                                         tiny_prepared):
  student = build_sequential_student(tiny_prepared.num_items + 3, 6,
                                     StudentConfig(embedding_dim=8))
  with pytest.raises(ModelError, match="scores .* items but the student"):
    _distiller(student, tiny_teacher)


def test_vocabulary_mismatch_is_caught(tiny_teacher, tiny_prepared):
  student = build_sequential_student(tiny_prepared.num_items, 6,
                                     StudentConfig(embedding_dim=8),
                                     vocabulary_fingerprint="0123456789abcdef")
  with pytest.raises(ModelError, match="different item vocabularies"):
    _distiller(student, tiny_teacher)


def test_input_signature_mismatch_is_caught(tiny_teacher, tiny_prepared):
  student = build_sequential_student(tiny_prepared.num_items, 9,
                                     StudentConfig(embedding_dim=8))
  with pytest.raises(ModelError, match="disagree on input 'context'"):
    _distiller(student, tiny_teacher)


def test_loss_needing_a_missing_signal_is_caught(tiny_teacher,
                                                 student_factory):
  with pytest.raises(ModelError, match="'rating' signal"):
    _distiller(student_factory(), tiny_teacher,
               distillation_loss=PointwiseScoreDistillation())


def test_keras_loss_argument_is_refused(tiny_teacher, student_factory):
  distiller = Distiller(student=student_factory(), teacher=tiny_teacher)
  with pytest.raises(ConfigError, match="student_loss="):
    distiller.compile(loss="mse")


def test_nan_loss_stops_training_with_a_message(tiny_prepared, tiny_train,
                                                student_factory, caplog):
  teacher = build_sequential_teacher(
      tiny_prepared, 6, TeacherConfig(embedding_dim=8, num_blocks=1,
                                      num_heads=1, ffn_dim=8))
  teacher({"context": tf.zeros([1, 6], tf.int32)})  # builds the layers
  kernel = teacher.query_projection.kernel
  kernel.assign(tf.fill(kernel.shape, float("nan")))
  distiller = _distiller(student_factory(), teacher)
  with caplog.at_level(logging.ERROR):
    history = distiller.fit(tiny_train, epochs=3, verbose=0).history
  assert len(history["loss"]) == 1
  assert np.isnan(history["loss"][0])
  assert "loss is nan" in caplog.text and "learning rate" in caplog.text


def test_keras_callbacks(tiny_teacher, tiny_prepared, tiny_train,
                         student_factory, tmp_path):
  validation = examples.sequence_examples(tiny_prepared, "validation", 6,
                                          batch_size=64)
  callbacks = [
      tf_keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt" / "weights"),
                                         save_weights_only=True,
                                         monitor="val_loss"),
      tf_keras.callbacks.TensorBoard(str(tmp_path / "tb")),
      tf_keras.callbacks.EarlyStopping(monitor="val_loss", patience=10),
      tf_keras.callbacks.TerminateOnNaN(),
  ]
  distiller = _distiller(student_factory(), tiny_teacher)
  history = distiller.fit(tiny_train, epochs=2, validation_data=validation,
                          callbacks=callbacks, verbose=0).history
  assert len(history["val_loss"]) == 2
  assert (tmp_path / "ckpt" / "weights.index").exists()
  events = [f for _, _, files in os.walk(tmp_path / "tb") for f in files
            if f.startswith("events.out.tfevents")]
  assert len(events) >= 2  # train and validation writers
  restored = _distiller(student_factory(), tiny_teacher)
  restored.load_weights(str(tmp_path / "ckpt" / "weights"))
  np.testing.assert_allclose(restored.student.get_weights()[0],
                             distiller.student.get_weights()[0])


class _Interrupt(tf_keras.callbacks.Callback):

  def on_epoch_end(self, epoch, logs=None):
    if epoch == 1:
      raise RuntimeError("simulated interruption")


class _CaptureAtStart(tf_keras.callbacks.Callback):
  """Student weights and optimizer state when training (re)starts."""

  def on_train_begin(self, logs=None):
    self.weights = self.model.student.get_weights()
    self.iterations = int(self.model.optimizer.iterations)
    self.slots = [v.numpy() for v in self.model.optimizer.variables]


def test_backup_and_restore_resumes_an_interrupted_run(tiny_teacher,
                                                       tiny_train,
                                                       student_factory,
                                                       tmp_path):
  backup = str(tmp_path / "backup")
  tf_keras.utils.set_random_seed(3)
  distiller = _distiller(student_factory(), tiny_teacher)
  with pytest.raises(RuntimeError, match="simulated"):
    distiller.fit(tiny_train, epochs=4, verbose=0, callbacks=[
        tf_keras.callbacks.BackupAndRestore(backup), _Interrupt()])
  weights_at_interrupt = distiller.student.get_weights()
  steps_at_interrupt = int(distiller.optimizer.iterations)
  slots_at_interrupt = [v.numpy() for v in distiller.optimizer.variables]
  resumed = _distiller(student_factory(), tiny_teacher)
  restored = _CaptureAtStart()
  history = resumed.fit(tiny_train, epochs=4, verbose=0, callbacks=[
      tf_keras.callbacks.BackupAndRestore(backup), restored]).history
  # Epochs 0 and 1 finished before the interruption; only 2 and 3 remain,
  # starting from the weights and optimizer state of the interruption.
  assert len(history["loss"]) == 2
  for got, want in zip(restored.weights, weights_at_interrupt):
    np.testing.assert_array_equal(got, want)
  assert restored.iterations == steps_at_interrupt
  assert len(restored.slots) == len(slots_at_interrupt)
  for got, want in zip(restored.slots, slots_at_interrupt):
    np.testing.assert_array_equal(got, want)
  assert not np.allclose(resumed.student.get_weights()[0],
                         weights_at_interrupt[0])


def test_stop_on_nan_is_added_once(tiny_teacher, tiny_train, student_factory):
  distiller = _distiller(student_factory(), tiny_teacher)
  stopper = StopOnNaN()
  distiller.fit(tiny_train.take(1), verbose=0, callbacks=[stopper])
  assert stopper.stopped_at is None


def test_get_config_round_trip(tiny_teacher, student_factory):
  distiller = Distiller(student=student_factory(), teacher=tiny_teacher)
  again = Distiller.from_config(distiller.get_config())
  assert again.student.count_params() == distiller.student.count_params()
  assert type(again.teacher.models()[0]) is type(tiny_teacher)
  assert again.get_config()["teacher"] == distiller.get_config()["teacher"]
  windows = Distiller(student=student_factory(), teacher=tiny_teacher,
                      one_pass=False)
  assert Distiller.from_config(windows.get_config()).one_pass is False

"""SampledCatalogSoftmax: the student's step without [batch, catalog] logits."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from conftest import make_student
from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.distill import cache_teacher_signal
from tfdistill.distill import cached_examples
from tfdistill.distill import cached_teacher
from tfdistill.distill import CatalogTrainer
from tfdistill.distill import Distiller
from tfdistill.distill import SampledCatalogSoftmax
from tfdistill.distill import SoftTargetKL
from tfdistill.distill.sampled_softmax import sampled_hard_loss
from tfdistill.distill.student_scores import StudentScores
from tfdistill.errors import ModelError

RNG = np.random.default_rng(0)
QUERIES = RNG.normal(size=(2, 3)).astype(np.float32)
CATALOG = RNG.normal(size=(7, 3)).astype(np.float32)
LABELS = np.array([3, 5], np.int32)
TOP_IDS = np.array([[3, 4], [2, 6]], np.int32)
TOP_VALID = np.array([[True, True], [True, False]])


def _scores(loss, step, ids=TOP_IDS, valid=TOP_VALID):
  dense = StudentScores(QUERIES @ CATALOG.T, QUERIES, CATALOG)
  return loss.student_scores(dense, LABELS, step,
                             None if ids is None else tf.constant(ids),
                             None if valid is None else tf.constant(valid))


def test_the_loss_against_hand_computed_values():
  loss = SampledCatalogSoftmax(num_negatives=4, seed=3)
  draws = loss.draw(7, 11).numpy()
  assert ((draws >= NUM_RESERVED) & (draws < 7)).all()
  logits = QUERIES @ CATALOG.T
  weight = np.log((7 - NUM_RESERVED) / 4)
  expected = []
  for row in range(2):
    label = LABELS[row]
    exact = {label} | {int(i) for i, v in zip(TOP_IDS[row], TOP_VALID[row])
                       if v}
    terms = [logits[row, i] for i in sorted(exact)]
    terms += [logits[row, u] + weight for u in draws if u not in exact]
    log_z = np.log(np.sum(np.exp(terms)))
    expected.append(log_z - logits[row, label])
  got = sampled_hard_loss(_scores(loss, 11), LABELS).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  # Another step draws other items, the same step the same ones.
  assert not np.array_equal(draws, loss.draw(7, 12).numpy())
  np.testing.assert_array_equal(draws, loss.draw(7, 11).numpy())
  # On dense logits it is the exact softmax cross-entropy.
  exact = tf_keras.losses.SparseCategoricalCrossentropy(
      from_logits=True, reduction="none")(LABELS, logits)
  np.testing.assert_allclose(loss.call(LABELS, logits), exact, rtol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_the_normaliser_is_unbiased(temperature):
  loss = SampledCatalogSoftmax(num_negatives=3, seed=0)
  estimates = np.mean([np.exp(_scores(loss, step, None, None)
                              .log_normalizer(temperature).numpy()[:, 0])
                       for step in range(1500)], axis=0)
  exact = np.exp(QUERIES @ CATALOG[NUM_RESERVED:].T / temperature).sum(1)
  np.testing.assert_allclose(estimates, exact, rtol=0.03)


def _catalog_sized(function, num_items: int) -> list:
  """Tensors of shape [..., num_items] that the traced step computes (ops
  that its outputs and side effects depend on; unused ones are pruned)."""
  graph = function.graph
  todo = list(function.outputs) + list(graph.control_outputs)
  seen, found = set(), []
  while todo:
    node = todo.pop()
    op = node if isinstance(node, tf.Operation) else node.op
    if op.name in seen:
      continue
    seen.add(op.name)
    for out in op.outputs:
      shape = out.shape
      if shape.rank and shape.rank >= 2 and shape[-1] == num_items:
        found.append(f"{op.type} {op.name} {shape}")
    todo.extend(op.inputs)
    todo.extend(op.control_inputs)
  return found


def _traced_step(model, batch):
  step = tf.function(model.train_step)
  spec = tf.nest.map_structure(tf.TensorSpec.from_tensor, batch)
  return step.get_concrete_function(spec)


@pytest.fixture(scope="module")
def top_k_cache(tiny_teacher, tiny_prepared, context_length,
                tmp_path_factory):
  from tfdistill.data.examples import sequence_examples
  data = sequence_examples(tiny_prepared, "train", context_length,
                           batch_size=64)
  return cache_teacher_signal(
      tiny_teacher, data, str(tmp_path_factory.mktemp("c") / "t.tfrecord"),
      top_k=10)


def test_distilling_from_a_top_k_cache_never_scores_the_catalog(
    top_k_cache, tiny_prepared, tiny_teacher):
  num_items = tiny_prepared.num_items
  tf_keras.utils.set_random_seed(1)
  student = make_student(tiny_prepared, embedding_dim=16, hidden_dim=16)
  distiller = Distiller(student, cached_teacher(top_k_cache))
  distiller.compile(tf_keras.optimizers.Adam(1e-2),
                    student_loss=SampledCatalogSoftmax(num_negatives=16),
                    distillation_loss=SoftTargetKL(temperature=2.0),
                    alpha=0.5)
  data = cached_examples(top_k_cache, batch_size=64)
  batch = next(iter(data))
  assert _catalog_sized(_traced_step(distiller, batch), num_items) == []
  # The same step with the dense softmax does score the catalog (the check
  # can fail).
  dense = Distiller(make_student(tiny_prepared), cached_teacher(top_k_cache))
  dense.compile(tf_keras.optimizers.Adam(1e-2),
                distillation_loss=SoftTargetKL(temperature=2.0))
  assert _catalog_sized(_traced_step(dense, batch), num_items)

  teacher_weights = [w.copy() for w in tiny_teacher.get_weights()]
  history = distiller.fit(data, epochs=4, verbose=0).history
  assert history["loss"][-1] < history["loss"][0]
  assert np.isfinite(history["distillation_loss"]).all()
  for before, after in zip(teacher_weights, tiny_teacher.get_weights()):
    np.testing.assert_array_equal(before, after)


def test_the_student_alone_trains_without_scoring_the_catalog(
    tiny_prepared, tiny_train):
  tf_keras.utils.set_random_seed(2)
  student = make_student(tiny_prepared, embedding_dim=16, hidden_dim=16)
  trainer = CatalogTrainer(student, SampledCatalogSoftmax(num_negatives=16))
  trainer.compile(tf_keras.optimizers.Adam(1e-2))
  batch = next(iter(tiny_train))
  assert _catalog_sized(_traced_step(trainer, batch),
                        tiny_prepared.num_items) == []
  before = [w.copy() for w in student.get_weights()]
  history = trainer.fit(tiny_train, epochs=3, verbose=0).history
  assert history["loss"][-1] < history["loss"][0]
  assert any(not np.array_equal(b, a)
             for b, a in zip(before, student.get_weights()))
  restored = CatalogTrainer.from_config(trainer.get_config())
  assert restored.sampled_loss.get_config() == (
      trainer.sampled_loss.get_config())


def test_a_student_without_catalog_factors_is_refused(tiny_prepared):
  inputs = tf_keras.Input((6,), dtype=tf.int32, name="context")
  hidden = tf_keras.layers.GlobalAveragePooling1D()(
      tf_keras.layers.Embedding(tiny_prepared.num_items, 4)(inputs))
  plain = tf_keras.Model(inputs, tf_keras.layers.Dense(
      tiny_prepared.num_items, name="logits")(hidden))
  with pytest.raises(ModelError, match="CatalogScores"):
    CatalogTrainer(plain, SampledCatalogSoftmax(8))
  with pytest.raises(ValueError, match="num_negatives"):
    SampledCatalogSoftmax(0)


@pytest.mark.slow
def test_a_run_trains_with_sampled_softmaxes(tmp_path, monkeypatch, caplog):
  # --teacher_negatives=mixed and --student_negatives reach the run's
  # steps: the teacher trains on mixed negatives, both students on the
  # sampled softmax (alone through CatalogTrainer), and validation still
  # ranks the whole catalog.
  import dataclasses  # pylint: disable=g-import-not-at-top
  from tfdistill.pipeline.config import preset  # pylint: disable=g-import-not-at-top
  from tfdistill.pipeline.run import Run  # pylint: disable=g-import-not-at-top
  config = preset("tiny", teacher_epochs=1, student_epochs=1,
                  student_negatives=24)
  config = dataclasses.replace(config, teacher=dataclasses.replace(
      config.teacher, negatives="mixed", num_extra_negatives=16))
  calls = []
  scores = SampledCatalogSoftmax.student_scores

  def recorded(self, *args, **kwargs):
    calls.append(self.num_negatives)
    return scores(self, *args, **kwargs)
  monkeypatch.setattr(SampledCatalogSoftmax, "student_scores", recorded)
  run = Run(str(tmp_path / "r"), config)
  assert run.teacher().negatives == "mixed"
  assert not calls
  run.student_alone()
  alone = len(calls)
  run.student_kd()
  assert alone and len(calls) > alone and set(calls) == {24}
  # The compression fine-tunes too: the pruned and the QAT student still
  # score items through their CatalogScores factors (QAT rebuilds the model
  # around the same layer), so none falls back to the dense softmax.
  distilled = len(calls)
  with caplog.at_level("WARNING"):
    run.compressed()
  assert len(calls) > distilled and set(calls) == {24}
  assert "softmax over the whole catalog" not in caplog.text, caplog.text
  for step in ("student_alone", "student_kd", "compressed"):
    assert np.isfinite(run.step_metrics(step)["ndcg@10"])
  with pytest.raises(ValueError, match="student_negatives"):
    preset("tiny", student_negatives=-1)
  large = preset("large")
  assert large.source.synthetic.num_items == 1_000_000
  assert large.prepare.min_item_interactions == 0  # every item in the catalog
  assert large.teacher.negatives == "mixed" and large.student_negatives

"""Pruning, QAT, clustering, low-rank factorization and the compress step."""

import gzip

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfdistill.compress.clustering import cluster_student
from tfdistill.compress.clustering import strip_clustering
from tfdistill.compress.lowrank import choose_rank
from tfdistill.compress.lowrank import factorize_student
from tfdistill.compress.lowrank import truncated_svd
from tfdistill.compress import pipeline
from tfdistill.compress.pipeline import compress_student
from tfdistill.compress.pipeline import CompressConfig
from tfdistill.compress.pipeline import report_markdown
from tfdistill.compress.pruning import layer_sparsity
from tfdistill.compress.pruning import fisher_saliency
from tfdistill.compress.pruning import overall_sparsity
from tfdistill.compress.pruning import prune_mask
from tfdistill.compress.pruning import prune_student
from tfdistill.compress.pruning import pruning_callbacks
from tfdistill.compress.pruning import PruningConfig
from tfdistill.compress.pruning import strip_pruning
from tfdistill.compress.quantization import quantize_student
from tfdistill.data import examples
from tfdistill.data.prepare import TRAIN
from tfdistill.distill import Distiller
from tfdistill.distill import HintDistillation
from tfdistill.errors import ConfigError
from tfdistill.errors import ModelError
from tfdistill.export import tflite
from tfdistill.models.io import load_model
from tfdistill.models.io import save_model

L = 6
_SCCE = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture(scope="module")
def trained_student(tiny_prepared, tiny_train):
  from conftest import make_student  # pylint: disable=import-outside-toplevel
  tf_keras.utils.set_random_seed(3)
  student = make_student(tiny_prepared, embedding_dim=16, hidden_dim=16)
  student.compile(tf_keras.optimizers.Adam(1e-2), loss=_SCCE)
  student.fit(tiny_train, epochs=3, verbose=0)
  return student


def _prune_and_train(student, data, target, **kwargs):
  steps = int(data.cardinality())
  pruned = prune_student(student, PruningConfig(
      target_sparsity=target, end_step=steps * 2, frequency=5, **kwargs))
  pruned.compile(tf_keras.optimizers.Adam(1e-3), loss=_SCCE)
  pruned.fit(data, epochs=3, verbose=0, callbacks=pruning_callbacks())
  return strip_pruning(pruned)


@pytest.mark.parametrize("target", [0.5, 0.8])
def test_sparsity_after_strip_is_on_target(target, trained_student,
                                           tiny_train):
  stripped = _prune_and_train(trained_student, tiny_train, target)
  for row in layer_sparsity(stripped):
    if row["matrix_parameters"]:
      assert abs(row["sparsity"] - target) <= 0.01, row
  # The original student is untouched.
  assert overall_sparsity(trained_student) < 0.01


def test_per_layer_targets_and_2_4_structure(trained_student, tiny_train):
  stripped = _prune_and_train(trained_student, tiny_train, 0.5,
                              layer_sparsity={"Embedding": 0.0},
                              structured="2:4")
  rows = {r["layer"]: r for r in layer_sparsity(stripped)}
  assert rows["item_embedding"]["sparsity"] < 0.01
  kernel = stripped.get_layer("hidden").kernel.numpy()
  # 2:4 along the input axis: every block of 4 has at most 2 non-zeros.
  blocks = (kernel.T.reshape(kernel.shape[1], -1, 4) != 0).sum(-1)
  assert blocks.max() <= 2


def test_pruning_while_distilling(trained_student, tiny_teacher, tiny_train):
  steps = int(tiny_train.cardinality())
  pruned = prune_student(trained_student, PruningConfig(
      target_sparsity=0.6, end_step=steps * 2, frequency=5))
  distiller = Distiller(student=pruned, teacher=tiny_teacher)
  distiller.compile(optimizer=tf_keras.optimizers.Adam(1e-3), alpha=0.5)
  distiller.fit(tiny_train, epochs=3, verbose=0,
                callbacks=pruning_callbacks())
  assert abs(overall_sparsity(strip_pruning(pruned)) - 0.6) <= 0.01


def test_fisher_saliency_is_weight_squared_times_mean_squared_gradient():
  # logits = E[x] @ W: the hard loss's gradient on row x of E is
  # W @ (softmax(logits) - onehot(y)) / batch size, and 0 on rows not read.
  ids = tf_keras.Input(shape=(), dtype="int32")
  logits = tf_keras.layers.Dense(4, use_bias=False)(
      tf_keras.layers.Embedding(3, 2)(ids))
  model = tf_keras.Model(ids, logits)
  table = np.array([[1.0, -2.0], [0.5, 3.0], [2.0, 1.0]], np.float32)
  out = np.array([[1.0, 0.0, -1.0, 2.0], [0.5, 1.0, 0.0, -1.0]], np.float32)
  model.set_weights([table, out])
  data = tf.data.Dataset.from_tensor_slices(([0, 2, 0], [1, 3, 2])).batch(2)

  def row_gradient(row, label, batch_size):
    z = table[row] @ out
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    return out @ (p - np.eye(4)[label]) / batch_size

  first = np.zeros_like(table)  # batch ([0, 2], [1, 3])
  first[0], first[2] = row_gradient(0, 1, 2), row_gradient(2, 3, 2)
  second = np.zeros_like(table)  # batch ([0], [2])
  second[0] = row_gradient(0, 2, 1)
  expected = table ** 2 * (first ** 2 + second ** 2) / 2
  variables = [model.layers[1].embeddings]
  [saliency] = fisher_saliency(model, variables, data, 5)
  np.testing.assert_allclose(saliency, expected, rtol=1e-5, atol=1e-8)
  assert (saliency[1] == 0).all()  # item 1 is never read nor a label's row
  # Only the first batch when asked for one.
  [one] = fisher_saliency(model, variables, data, 1)
  np.testing.assert_allclose(one, table ** 2 * first ** 2, rtol=1e-5,
                             atol=1e-8)


def test_fisher_saliency_traces_once_for_batches_of_every_size():
  # Chunks of users' sequences give as many examples as they hold targets,
  # a different batch size nearly every batch.
  traces = []

  class Counted(tf_keras.layers.Layer):

    def call(self, x):
      traces.append(x.shape)  # Python runs once per trace
      return x

  ids = tf_keras.Input(shape=(), dtype="int32")
  logits = Counted()(tf_keras.layers.Dense(4)(
      tf_keras.layers.Embedding(5, 2)(ids)))
  model = tf_keras.Model(ids, logits)
  sizes = [2, 3, 5, 7, 4, 6, 1, 8]
  data = tf.data.Dataset.from_generator(
      lambda: ((np.arange(n, dtype=np.int32) % 5,
                np.arange(n, dtype=np.int32) % 4) for n in sizes),
      output_signature=(tf.TensorSpec([None], tf.int32),
                        tf.TensorSpec([None], tf.int32)))
  traces.clear()
  fisher_saliency(model, [model.layers[1].embeddings], data, len(sizes))
  assert len(traces) <= 2, traces


def test_prune_mask_zeroes_the_lowest_scores():
  scores = np.array([[3.0, 1.0], [2.0, 0.0], [1.0, 5.0]])
  np.testing.assert_array_equal(prune_mask(scores, 0.5),
                                [[1, 0], [1, 0], [0, 1]])
  np.testing.assert_array_equal(prune_mask(scores, 0.0), np.ones((3, 2)))


def test_fisher_table_pruning_keeps_what_frequent_items_need(
    trained_student, tiny_train, tiny_prepared):
  steps = int(tiny_train.cardinality())
  config = PruningConfig(target_sparsity=0.5, end_step=steps * 2,
                         frequency=5, table_pruning="fisher")
  with pytest.raises(ConfigError, match="pass data="):
    prune_student(trained_student, config)
  pruned = prune_student(trained_student, config, data=tiny_train)
  # The table comes back pruned to its target, not wrapped for TF-MOT.
  table = pruned.get_layer("item_embedding")
  assert type(table).__name__ == "Embedding"
  zeros = table.embeddings.numpy() == 0
  assert zeros.sum() == round(0.5 * zeros.size)
  # Saliency weighs an entry by how often its item is read and scored, so
  # the frequent items keep more of their rows than magnitude leaves them.
  original = trained_student.get_layer("item_embedding").embeddings.numpy()
  counts = np.bincount(tiny_prepared.item[tiny_prepared.split == TRAIN],
                       minlength=original.shape[0])

  def kept_per_interaction(mask):
    return (mask.mean(axis=1) * counts).sum() / counts.sum()

  assert kept_per_interaction(~zeros) > kept_per_interaction(
      prune_mask(np.abs(original), 0.5)) + 0.05
  # Training holds the table's zeros while TF-MOT prunes the Dense layers.
  pruned.compile(tf_keras.optimizers.Adam(1e-3), loss=_SCCE)
  pruned.fit(tiny_train, epochs=3, verbose=0, callbacks=pruning_callbacks())
  stripped = strip_pruning(pruned)
  np.testing.assert_array_equal(
      stripped.get_layer("item_embedding").embeddings.numpy() == 0, zeros)
  for row in layer_sparsity(stripped):
    if row["matrix_parameters"]:
      assert abs(row["sparsity"] - 0.5) <= 0.01, row


def test_gzipped_pruned_model_is_smaller(trained_student, tiny_train):
  stripped = _prune_and_train(trained_student, tiny_train, 0.7)
  dense = gzip.compress(tflite.convert(trained_student), 9)
  sparse = gzip.compress(tflite.convert(stripped), 9)
  assert len(sparse) < len(dense)


def test_qat_student_trains_and_converts_to_int8(trained_student, tiny_train,
                                                 tiny_prepared, tmp_path):
  qat = quantize_student(trained_student)
  names = {type(layer).__name__ for layer in qat.layers}
  assert "QuantizeWrapperV2" in names
  # The item table trains through the int8 rounding TFLite gives it.
  assert type(qat.get_layer("quant_item_embedding")).__name__ == (
      "QuantizeWrapperV2")
  # So does it under the pruning-preserving scheme (TF-MOT 0.8's own
  # registry fails on the id layer feeding the table).
  assert type(quantize_student(trained_student, preserve_sparsity=True)
              .get_layer("quant_item_embedding")).__name__ == (
                  "QuantizeWrapperV2")
  qat.compile(tf_keras.optimizers.Adam(1e-3), loss=_SCCE)
  history = qat.fit(tiny_train, epochs=2, verbose=0).history
  assert np.isfinite(history["loss"]).all()
  contexts = examples.sequence_arrays(tiny_prepared, "train", L).contexts
  content = tflite.convert(qat, "int8", 5, contexts[:50])
  assert "FULLY_CONNECTED" in tflite.op_names(content)
  ids, _ = tflite.LiteRTRecommender(content)(contexts[0])
  assert ids.shape == (5,) and (ids >= 2).all()
  # Round trip through save/load keeps the fake-quant ranges.
  restored = load_model(save_model(qat, str(tmp_path / "qat")))
  np.testing.assert_allclose(restored.predict_on_batch(
      {"context": contexts[:4]}), qat.predict_on_batch(
          {"context": contexts[:4]}), rtol=1e-5, atol=1e-5)


def test_qat_works_for_every_encoder(tiny_prepared):
  from conftest import make_student  # pylint: disable=import-outside-toplevel
  for encoder in ("attention", "cnn", "gru"):
    qat = quantize_student(make_student(tiny_prepared, encoder=encoder))
    assert qat(tf.ones([2, L], tf.int32)).shape[0] == 2


def test_qat_refuses_unsupported_layers_by_name(tiny_prepared):
  from conftest import make_student  # pylint: disable=import-outside-toplevel
  student = make_student(tiny_prepared)
  with pytest.raises(ConfigError, match="dropout.*Dropout.*TFLite converter"):
    quantize_student(student, layers=["dropout"])
  with pytest.raises(ConfigError, match="no layer named"):
    quantize_student(student, layers=["nope"])


def test_svd_error_is_the_discarded_energy():
  rng = np.random.default_rng(0)
  matrix = rng.normal(size=(30, 12))
  s = np.linalg.svd(matrix, compute_uv=False)
  for rank in (1, 5, 11):
    a, b, error = truncated_svd(matrix, rank)
    assert a.shape == (30, rank) and b.shape == (rank, 12)
    measured = np.sum((matrix - a.astype(np.float64) @ b) ** 2)
    assert measured == pytest.approx(np.sum(s[rank:] ** 2), rel=1e-4)
    assert error == pytest.approx(np.sum(s[rank:] ** 2), rel=1e-9)
  with pytest.raises(ValueError, match="rank 13"):
    truncated_svd(matrix, 13)


def test_rank_choice():
  s = np.array([3.0, 2.0, 1.0, 0.0])
  assert choose_rank(s, (10, 4), energy=13 / 14) == 2  # (9 + 4) / 14
  assert choose_rank(s, (10, 4), energy=1.0) == 3
  assert choose_rank(s, (10, 4), size_fraction=0.5) == 1  # 20 / 14
  with pytest.raises(ValueError):
    choose_rank(s, (10, 4), energy=1.5)


def test_factorized_student_matches_svd(trained_student, tiny_prepared):
  model, report = factorize_student(trained_student, rank=4)
  assert {r["layer"] for r in report} >= {"item_embedding"}
  table = trained_student.get_layer("item_embedding").embeddings.numpy()
  layer = model.get_layer("item_embedding")
  rebuilt = layer.factors.numpy() @ layer.projection.numpy()
  error = next(r for r in report if r["layer"] == "item_embedding")[
      "squared_error"]
  assert np.sum((table - rebuilt) ** 2) == pytest.approx(error, rel=1e-3)
  contexts = examples.evaluation_set(tiny_prepared, "test", L).contexts[:3]
  assert model.predict_on_batch({"context": contexts}).shape == (
      3, tiny_prepared.num_items)
  with pytest.raises(ValueError, match="larger than"):
    factorize_student(trained_student, rank=1000,
                      layers=["item_embedding"])


def test_clustering_limits_distinct_values(trained_student):
  clustered = strip_clustering(cluster_student(trained_student, 4,
                                               preserve_sparsity=False))
  kernel = clustered.get_layer("hidden").kernel.numpy()
  assert len(np.unique(kernel)) <= 4


def test_bad_input():
  with pytest.raises(ValueError, match="sparsity"):
    PruningConfig(target_sparsity=1.0)
  with pytest.raises(ValueError, match="sparsity"):
    CompressConfig(target_sparsity=-0.1)
  with pytest.raises(ConfigError, match="table_pruning 'l1'"):
    CompressConfig(table_pruning="l1")
  with pytest.raises(ConfigError, match="fisher_batches"):
    PruningConfig(table_pruning="fisher", fisher_batches=0)
  with pytest.raises(ModelError, match="not a tfdistill student"):
    prune_student(tf_keras.Sequential())


@pytest.mark.slow
def test_compress_step_reports_every_stage(trained_student, tiny_train,
                                           tiny_prepared, tiny_teacher):
  contexts = examples.sequence_arrays(tiny_prepared, "train", L).contexts
  evaluation = examples.evaluation_set(tiny_prepared, "validation", L)
  model, report, _ = compress_student(
      trained_student, tiny_train, evaluation,
      CompressConfig(low_rank_energy=0.95, fine_tune_epochs=1),
      teacher=tiny_teacher, representative=contexts[:64])
  steps = [row["step"] for row in report["steps"]]
  assert steps[0] == "distilled (float)" and "pruned 50%" in steps
  assert steps[-1] == "quantization-aware"
  assert abs(report["summary"]["sparsity"] - 0.5) < 0.02
  assert report["tflite"]["quantization"] == "int8"
  assert 0.0 <= report["tflite"]["ndcg@10"] <= 1.0
  markdown = report_markdown(report)
  assert "| pruned 50% |" in markdown and "Low-rank" in markdown
  # A layer without a weight matrix (the mean's position weights) shows
  # its parameters and no matrix, not a layer of zeros.
  assert "| layer | type | parameters | matrix_parameters | nonzeros |" in (
      markdown)
  pool = next(row for row in report["layers"] if row["layer"] == "pool")
  assert pool["parameters"] == L and pool["matrix_parameters"] == 0
  assert f"| pool | PositionWeightedMean | {L} | 0 | 0 |" in markdown
  with pytest.raises(ConfigError, match="not a trained tfdistill"):
    compress_student(tiny_teacher, tiny_train, evaluation)
  assert model is not trained_student


@pytest.mark.slow
def test_fine_tunes_distil_with_the_given_losses(
    trained_student, tiny_train, tiny_prepared, tiny_teacher, monkeypatch):
  """A hint loss reaches the hidden layer through the pruning and QAT
  wrappers; its projection is learned once and carried from step to step."""
  evaluation = examples.evaluation_set(tiny_prepared, "validation", L)
  hint = HintDistillation()
  projections = []
  compressor = pipeline._Compressor  # pylint: disable=protected-access
  fine_tune = compressor.fine_tune

  def watched(self, model, name, callbacks=()):
    result = fine_tune(self, model, name, callbacks)
    projections.append((name, hint.projection,
                        hint.projection.kernel.numpy().copy()))
    return result
  monkeypatch.setattr(compressor, "fine_tune", watched)
  _, report, _ = compress_student(
      trained_student, tiny_train, evaluation,
      CompressConfig(fine_tune_epochs=1, quantize="dynamic"),
      teacher=tiny_teacher, distillation_loss=[hint])
  assert report["distillation_loss"] == ["hint_distillation"]
  assert "distilled with hint_distillation" in report_markdown(report)
  (first, layer, before), (second, same, after) = projections
  assert (first, second) == ("pruning", "qat") and layer is same
  assert not np.allclose(before, after)  # the QAT fine-tune trained it
  # Without distillation_loss= a teacher's fine-tunes use the KL (the
  # report names it before any step runs: no step needed here).
  _, default, _ = compress_student(
      trained_student, tiny_train, evaluation,
      CompressConfig(target_sparsity=0.0, qat=False, quantize="dynamic"),
      teacher=tiny_teacher)
  assert default["distillation_loss"] == ["soft_target_kl"]
  with pytest.raises(ConfigError, match="needs a teacher"):
    compress_student(trained_student, tiny_train, evaluation,
                     CompressConfig(quantize="dynamic"),
                     distillation_loss=[hint])

"""The exported graph: factored scoring, exclusions, more K, approximate
top-K, the vocabulary inside the .tflite, and the TF Serving bundle."""

import io
import os
import warnings
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import text_format
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from tfdistill.data import examples
from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.errors import ExportError
from tfdistill.export import saved_model as serving
from tfdistill.export import tflite
from tfdistill.export.exporter import exact_top_k
from tfdistill.export.exporter import export_student
from tfdistill.export.exporter import ExportConfig
from tfdistill.export.partitions import build_index
from tfdistill.export.partitions import PartitionConfig
from tfdistill.export.partitions import recall_at_k
from tfdistill.models.io import save_model

L = 6


@pytest.fixture(scope="module")
def student(trained_tiny_student):
  return trained_tiny_student


@pytest.fixture(scope="module")
def contexts(tiny_prepared):
  return examples.evaluation_set(tiny_prepared, "validation", L).contexts


def _reference_top_k(student, contexts, k, exclude=None):
  """Top-k from the student's own logits, with numpy exclusions."""
  logits = tflite.student_logits(student, {tflite.INPUT: tf.constant(
      contexts)}).numpy()
  logits[:, :NUM_RESERVED] = -np.inf
  for row, context in enumerate(contexts):
    logits[row, context] = -np.inf
    if exclude is not None:
      logits[row, exclude[row]] = -np.inf
  return np.argsort(-logits, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("encoder", ["mean", "attention", "gru"])
def test_factored_scoring_is_the_students(encoder, tiny_prepared, contexts):
  """The exported graph (catalog matrix, context rows gathered from it)
  scores exactly as the student's own graph."""
  from conftest import make_student  # pylint: disable=import-outside-toplevel
  model = make_student(tiny_prepared, encoder=encoder, embedding_dim=8,
                       hidden_dim=8)
  scorer = tflite.Scorer(model)
  assert scorer.catalog is not None
  scores, ids = scorer(tf.constant(contexts[:16]))
  assert ids is None
  np.testing.assert_allclose(
      scores.numpy(), tflite.student_logits(model, {tflite.INPUT: tf.constant(
          contexts[:16])}).numpy(), rtol=1e-5, atol=1e-6)


def test_exclusions_and_more_k_in_tflite_and_saved_model(
    saved_student, student, contexts, tiny_prepared, tmp_path):
  out = str(tmp_path / "e")
  manifest = export_student(saved_student, out, ExportConfig(
      saved_model=True, top_k=5, exclude_length=3, more_k=(2,),
      latency_runs=0))
  assert set(manifest["signatures"]) == {"recommend", "recommend_excluding",
                                         "recommend_k2"}
  lite = tflite.LiteRTRecommender(os.path.join(out, "tflite", "model.tflite"))
  runner = lite.interpreter.get_signature_runner("recommend_excluding")
  top2 = lite.interpreter.get_signature_runner("recommend_k2")
  rows = contexts[:20]
  plain = _reference_top_k(student, rows, 5)
  exclude = plain[:, :3].astype(np.int32)   # leave out the three best
  expected = _reference_top_k(student, rows, 5, exclude)
  loaded = tf.saved_model.load(os.path.join(out, "serving", student.name,
                                            "1"))
  strings = tiny_prepared.items.ids(rows).astype(str)
  strings[rows == 0] = ""
  served = loaded.signatures["recommend"](
      context=tf.constant(strings),
      exclude=tf.constant(tiny_prepared.items.ids(exclude).astype(str)),
      k=tf.constant(5))
  served_ids = tiny_prepared.items.lookup(
      served["item_ids"].numpy().astype(str))
  for row in range(len(rows)):
    got = runner(context=rows[row:row + 1], exclude=exclude[row:row + 1])
    assert set(got["item_indices"][0]) == set(expected[row])
    assert not set(got["item_indices"][0]) & set(exclude[row])
    assert set(served_ids[row]) == set(expected[row])
    assert set(top2(context=rows[row:row + 1])["item_indices"][0]) == set(
        plain[row, :2])
  # k chosen per request.
  assert loaded.signatures["recommend"](
      context=tf.constant(strings), exclude=tf.constant([[""]] * len(rows)),
      k=tf.constant(7))["item_ids"].shape == (len(rows), 7)


def test_partition_index_is_balanced_and_complete():
  rng = np.random.default_rng(0)
  vectors = rng.normal(size=(1002, 4)).astype(np.float32)
  index = build_index(vectors, PartitionConfig(partitions=10, probe=3))
  items = index.slots[index.slots != 0]
  assert sorted(items) == list(range(NUM_RESERVED, 1002))  # each item once
  assert index.slots.shape[1] <= int(np.ceil(1.25 * 1000 / 10))
  assert index.probe == 3
  with pytest.raises(ExportError, match="--partitions"):
    PartitionConfig(partitions=5000).resolved(1002)
  with pytest.raises(ExportError, match="--probe"):
    PartitionConfig(partitions=10, probe=11).resolved(1002)


@pytest.mark.slow
def test_approximate_top_k_against_exact(saved_student, student, contexts,
                                         tiny_prepared, tmp_path):
  """Probing every partition is exact search; probing a few finds most of
  the exact top-K, and the gate refuses less than --min_recall."""
  exact = exact_top_k(student, contexts, 5)
  np.testing.assert_array_equal(np.sort(exact, 1), np.sort(
      _reference_top_k(student, contexts, 5), 1))
  everything = tflite.LiteRTRecommender(tflite.convert(
      student, "none", 5, partitions=PartitionConfig(8, 8)))
  assert recall_at_k(everything.recommend_all(contexts)[0], exact) == 1.0
  out = str(tmp_path / "a")
  manifest = export_student(saved_student, out, ExportConfig(
      saved_model=True, top_k=5, partitions=8, probe=4, min_recall=0.5,
      latency_runs=0))
  found = manifest["partitions"]
  assert found["partitions"] == 8 and found["probe"] == 4
  lite = tflite.LiteRTRecommender(os.path.join(out, "tflite", "model.tflite"))
  assert found["recall_at_k"] == pytest.approx(recall_at_k(
      lite.recommend_all(contexts[:256])[0], exact[:256]))
  assert found["recall_at_k"] >= 0.5
  assert manifest["parity"]["identical_up_to_ties"] == 1.0  # same index
  # An untrained student: no popular head that one partition would hold.
  from conftest import make_student  # pylint: disable=import-outside-toplevel
  tf_keras.utils.set_random_seed(3)
  untrained = save_model(make_student(tiny_prepared, embedding_dim=16,
                                      hidden_dim=16),
                         str(tmp_path / "untrained"),
                         vocabulary=tiny_prepared.items, holdout=contexts)
  with pytest.raises(ExportError, match="approximate top-5 found"):
    export_student(untrained, str(tmp_path / "b"), ExportConfig(
        top_k=5, partitions=8, probe=1, min_recall=1.0, latency_runs=0))
  assert not os.path.exists(tmp_path / "b" / "tflite")


def test_the_vocabulary_travels_inside_the_tflite(saved_student, student, tmp_path):
  out = tmp_path / "v"
  manifest = export_student(saved_student, str(out), ExportConfig(latency_runs=0))
  content = (out / "tflite" / "model.tflite").read_bytes()
  tokens, digest = tflite.embedded_vocabulary(content)
  side = (out / "tflite" / "vocabulary.txt").read_text().rstrip("\n")
  assert tokens == side.split("\n")
  assert digest == manifest["vocabulary_sha256"]
  stream = io.BytesIO(content)
  with warnings.catch_warnings(), zipfile.ZipFile(stream, "a") as archive:
    warnings.simplefilter("ignore")  # the duplicate name is the point
    archive.writestr(tflite.VOCABULARY_MEMBER, side.replace("[OOV]", "?"))
  tampered = stream.getvalue()
  with pytest.raises(ExportError, match="does not match"):
    tflite.embedded_vocabulary(tampered)
  with pytest.raises(ExportError, match="no vocabulary hash"):
    tflite.embedded_vocabulary(tflite.convert(student, "none", 3))


def _batching_parameters_class():
  """TF Serving's BatchingParameters message (session_bundle_config.proto,
  not in the tensorflow-serving-api wheel), declared field by field."""
  wrappers = {"max_batch_size": ".google.protobuf.Int64Value",
              "batch_timeout_micros": ".google.protobuf.Int64Value",
              "max_enqueued_batches": ".google.protobuf.Int64Value",
              "num_batch_threads": ".google.protobuf.Int64Value",
              "thread_pool_name": ".google.protobuf.StringValue"}
  proto = descriptor_pb2.FileDescriptorProto(
      name="tfdistill_test_batching.proto", package="tfdistill_test",
      dependency=["google/protobuf/wrappers.proto"])
  message = proto.message_type.add(name="BatchingParameters")
  field = descriptor_pb2.FieldDescriptorProto
  for number, (name, type_name) in enumerate(wrappers.items(), 1):
    message.field.add(name=name, number=number, type=field.TYPE_MESSAGE,
                      type_name=type_name, label=field.LABEL_OPTIONAL)
  message.field.add(name="allowed_batch_sizes", number=6,
                    type=field.TYPE_INT64, label=field.LABEL_REPEATED)
  message.field.add(name="pad_variable_length_inputs", number=7,
                    type=field.TYPE_BOOL, label=field.LABEL_OPTIONAL)
  pool = descriptor_pool.DescriptorPool()
  from google.protobuf import wrappers_pb2  # pylint: disable=import-outside-toplevel
  pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
  pool.Add(proto)
  return message_factory.GetMessageClass(
      pool.FindMessageTypeByName("tfdistill_test.BatchingParameters"))


def test_serving_bundle_files_and_warmup_requests(saved_student, tmp_path):
  out = tmp_path / "s"
  for _ in range(2):
    export_student(saved_student, str(out), ExportConfig(
        tflite=False, saved_model=True, model_name="recs", top_k=4,
        latency_runs=0))
  config = text_format.Parse(
      (out / "serving" / serving.SERVER_CONFIG_FILE).read_text(),
      model_server_config_pb2.ModelServerConfig())
  (model,) = config.model_config_list.config
  assert model.name == "recs" and model.base_path == "/models/recs"
  assert list(model.model_version_policy.specific.versions) == [1, 2]
  assert dict(model.version_labels) == {"stable": 1, "canary": 2}
  batching = text_format.Parse(
      (out / "serving" / serving.BATCHING_FILE).read_text(),
      _batching_parameters_class()())
  assert batching.max_batch_size.value >= 1
  assert batching.num_batch_threads.value == os.cpu_count()
  assert batching.pad_variable_length_inputs
  # Every warm-up record is a request the SavedModel answers.
  version = out / "serving" / "recs" / "2"
  loaded = tf.saved_model.load(str(version))
  records = list(tf.data.TFRecordDataset(
      str(version / serving.WARMUP_FILE)).as_numpy_iterator())
  assert records
  for record in records:
    request = prediction_log_pb2.PredictionLog.FromString(
        record).predict_log.request
    assert request.model_spec.name == "recs"
    signature = loaded.signatures[request.model_spec.signature_name]
    inputs = {name: tf.make_ndarray(tensor)
              for name, tensor in request.inputs.items()}
    outputs = signature(**{name: tf.constant(value)
                           for name, value in inputs.items()})
    assert outputs["item_ids"].shape == (len(inputs["context"]), 4)
  # A user's own models.config is never overwritten.
  own = out / "serving" / serving.SERVER_CONFIG_FILE
  own.write_text("model_config_list {}\n")
  manifest = export_student(saved_student, str(out), ExportConfig(
      tflite=False, saved_model=True, model_name="recs", latency_runs=0))
  assert own.read_text() == "model_config_list {}\n"
  assert manifest["server_files"]["kept"] == [str(own)]


def test_int8_stores_the_item_table_once(student, contexts):
  """The full-integer model's context lookup reads the scoring weights
  (one int8 copy of the table) and still agrees with exact search."""
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=import-outside-toplevel
  from tfdistill.models.io import catalog_size  # pylint: disable=import-outside-toplevel
  content = tflite.convert(student, "int8", 5, contexts[:100],
                           exclude_length=2)
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
  shape = [catalog_size(student), 16]
  tables = {tensor.buffer for subgraph in model.subgraphs
            for tensor in subgraph.tensors
            if list(tensor.shape) == shape and tensor.type == 9}
  assert len(tables) == 1
  found = tflite.LiteRTRecommender(content).recommend_all(contexts[:100])[0]
  assert recall_at_k(found, exact_top_k(student, contexts[:100], 5)) >= 0.8

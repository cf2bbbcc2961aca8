"""A student as a TF Serving SavedModel that speaks raw item ids.

Signatures (all batched):

* "serving_default": {"context": string [B, L]} (item ids as in the data,
  most recent last, left-padded with "") -> {"item_ids": string [B, K],
  "scores": float32 [B, K]}; padding/OOV and the context's own items are
  excluded inside the graph.
* "recommend": {"context": string [B, L], "exclude": string [B, E] (more
  ids to leave out, e.g. items seen beyond the context or out of stock; ""
  pads), "k": int32 scalar} -> the same outputs with K = k, chosen per
  request.
* "score": {"context": string [B, L], "candidates": string [B, C]} ->
  {"scores": float32 [B, C]}.
* "embed": {"context": string [B, L]} -> {"query_embedding": float32 [B, d]}
  (only for students with a "query_embedding" layer).

`assets.extra/tf_serving_warmup_requests` holds PredictionLog warm-up
requests, so TF Serving traces the graph before the first real request.
"""

import os
from typing import Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.data.vocab import OOV_INDEX
from tfdistill.data.vocab import PAD_INDEX
from tfdistill.export.partitions import PartitionConfig
from tfdistill.fileio import write_text
from tfdistill.export.tflite import context_length_of
from tfdistill.export.tflite import EXCLUDE
from tfdistill.export.tflite import INPUT
from tfdistill.export.tflite import Scorer

SERVING_SIGNATURE = "serving_default"
RECOMMEND_SIGNATURE = "recommend"
SCORE_SIGNATURE = "score"
EMBED_SIGNATURE = "embed"
OUTPUT_ITEM_IDS = "item_ids"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


class ServingModule(tf.Module):
  """Vocabulary lookups, scoring and top-K around a retrieval student."""

  def __init__(self, student, vocabulary: Sequence[str], top_k: int = 10,
               partitions=PartitionConfig()):
    super().__init__(name="tfdistill_serving")
    self.scorer = Scorer(student, partitions)
    self.top_k = top_k
    self.vocabulary = [str(v) for v in vocabulary]
    self.context_length = length = context_length_of(student)
    # "" and the padding token both mean padding.
    keys = self.vocabulary[NUM_RESERVED:] + ["", self.vocabulary[PAD_INDEX]]
    values = list(range(NUM_RESERVED, len(self.vocabulary))) + [PAD_INDEX] * 2
    self.table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys), tf.constant(values, tf.int32)),
        default_value=OOV_INDEX)
    self.id_strings = tf.Variable(self.vocabulary, trainable=False,
                                  name="item_id_strings")
    context = tf.TensorSpec([None, length], tf.string, name=INPUT)
    self.serve = tf.function(self._serve, input_signature=[context])
    self.recommend = tf.function(self._recommend, input_signature=[
        context, tf.TensorSpec([None, None], tf.string, name=EXCLUDE),
        tf.TensorSpec([], tf.int32, name="k")])
    self.score = tf.function(self._score, input_signature=[
        context, tf.TensorSpec([None, None], tf.string, name="candidates")])
    self.embedder = None
    names = [layer.name for layer in getattr(student, "layers", [])]
    if "query_embedding" in names:
      self.embedder = tf_keras.Model(
          student.inputs, student.get_layer("query_embedding").output)
      self.embed = tf.function(self._embed, input_signature=[context])

  def _indices(self, strings):
    return self.table.lookup(strings)

  def _top_k(self, context, k, exclude=None):
    top, scores = self.scorer.top_k(self._indices(context), k, exclude)
    return {OUTPUT_ITEM_IDS: tf.gather(self.id_strings, top),
            "scores": scores}

  def _serve(self, context):
    return self._top_k(context, self.top_k)

  def _recommend(self, context, exclude, k):
    checked = tf.debugging.assert_positive(k, message="k must be >= 1")
    with tf.control_dependencies([checked]):
      k = tf.minimum(k, len(self.vocabulary) - NUM_RESERVED)
    return self._top_k(context, k, self._indices(exclude))

  def _score(self, context, candidates):
    return {"scores": self.scorer.score(self._indices(context),
                                        self._indices(candidates))}

  def _embed(self, context):
    return {"query_embedding": self.embedder(
        {INPUT: self._indices(context)}, training=False)}

  def signatures(self) -> dict:
    signatures = {SERVING_SIGNATURE: self.serve.get_concrete_function(),
                  RECOMMEND_SIGNATURE: self.recommend.get_concrete_function(),
                  SCORE_SIGNATURE: self.score.get_concrete_function()}
    if self.embedder is not None:
      signatures[EMBED_SIGNATURE] = self.embed.get_concrete_function()
    return signatures


def write_warmup_requests(directory: str, model_name: str,
                          contexts: np.ndarray) -> str:
  """PredictionLog warm-up records for TF Serving (string contexts)."""
  from tensorflow_serving.apis import model_pb2  # pylint: disable=import-outside-toplevel
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=import-outside-toplevel
  path = os.path.join(directory, WARMUP_FILE)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with tf.io.TFRecordWriter(path) as writer:
    for row in contexts:
      request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(
          name=model_name, signature_name=SERVING_SIGNATURE))
      request.inputs[INPUT].CopyFrom(tf.make_tensor_proto(
          np.asarray([row], dtype=object), dtype=tf.string))
      log = prediction_log_pb2.PredictionLog(
          predict_log=prediction_log_pb2.PredictLog(request=request))
      writer.write(log.SerializeToString())
  return path


def save_serving_model(student, vocabulary: Sequence[str], directory: str,
                       model_name: str, top_k: int,
                       warmup_contexts: np.ndarray,
                       partitions=PartitionConfig()) -> dict:
  """Writes the SavedModel (with warm-up requests) into `directory`."""
  module = ServingModule(student, vocabulary, top_k, partitions)
  tf.saved_model.save(module, directory, signatures=module.signatures())
  write_warmup_requests(directory, model_name, warmup_contexts)
  return {"signatures": sorted(module.signatures()),
          "context_length": module.context_length}


def next_version(model_dir: str) -> int:
  """1 + the largest numeric version folder under a TF Serving model dir."""
  if not os.path.isdir(model_dir):
    return 1
  versions = [int(n) for n in os.listdir(model_dir) if n.isdigit()]
  return max(versions, default=0) + 1


SERVER_CONFIG_FILE = "models.config"
BATCHING_FILE = "batching_parameters.txt"
#: First line of the server files tfdistill writes (and may rewrite).
SERVER_FILE_HEADER = "# Written by tfdistill export"


def _labels(versions: list) -> dict:
  """The newest version is the canary and the one before it stable (a single
  version is stable)."""
  if len(versions) == 1:
    return {"stable": versions[0]}
  return {"stable": versions[-2], "canary": versions[-1]}


def server_config_text(models: dict, base: str = "/models") -> str:
  """A TF Serving ModelServerConfig (text format) for {name: [versions]}."""
  lines = [SERVER_FILE_HEADER + ": TF Serving model config for the models "
           "in this folder.",
           f"# Serve with the folder mounted at {base}, e.g. docker run -p "
           f"8501:8501 -v \"$PWD:{base}\" tensorflow/serving",
           f"#   --model_config_file={base}/{SERVER_CONFIG_FILE} "
           f"--enable_batching --batching_parameters_file={base}/"
           f"{BATCHING_FILE}",
           "# Labels: the newest version is \"canary\", the one before it "
           "\"stable\"; edit them to promote a version.",
           "model_config_list {"]
  for name, versions in sorted(models.items()):
    lines += ["  config {", f"    name: \"{name}\"",
              f"    base_path: \"{base}/{name}\"",
              "    model_platform: \"tensorflow\"",
              "    model_version_policy { specific { "
              + " ".join(f"versions: {v}" for v in versions) + " } }"]
    lines += [f"    version_labels {{ key: \"{label}\" value: {version} }}"
              for label, version in _labels(versions).items()]
    lines.append("  }")
  lines.append("}")
  return "\n".join(lines) + "\n"


def batching_parameters_text(threads: int) -> str:
  """A TF Serving BatchingParameters template (text format) for CPU."""
  return "\n".join([
      SERVER_FILE_HEADER + ": TF Serving batching parameters (a template: "
      "tune on your own traffic, see TF Serving's batching guide).",
      "# Requests are batched up to max_batch_size or until "
      "batch_timeout_micros passed;",
      "# num_batch_threads runs that many batches at once (one per core). The "
      "\"recommend\"",
      "# signature's exclude input varies in length per request, hence the "
      "padding.",
      "max_batch_size { value: 64 }",
      "batch_timeout_micros { value: 1000 }",
      "max_enqueued_batches { value: 100 }",
      f"num_batch_threads {{ value: {threads} }}",
      "pad_variable_length_inputs: true", ""])


def write_server_files(serving_root: str, is_ours) -> dict:
  """Writes `models.config` and `batching_parameters.txt` beside the model
  folders under `serving_root`, listing every version `is_ours(path)` accepts.

  A file of the same name that tfdistill did not write is left alone (its
  path is returned under "kept").
  """
  models = {}
  for name in sorted(os.listdir(serving_root)):
    folder = os.path.join(serving_root, name)
    if not os.path.isdir(folder):
      continue
    versions = sorted(int(v) for v in os.listdir(folder)
                      if v.isdigit() and is_ours(os.path.join(folder, v)))
    if versions:
      models[name] = versions
  written, kept = [], []
  for file_name, text in (
      (SERVER_CONFIG_FILE, server_config_text(models)),
      (BATCHING_FILE, batching_parameters_text(os.cpu_count() or 1))):
    path = os.path.join(serving_root, file_name)
    if os.path.exists(path):
      with open(path, encoding="utf-8", errors="replace") as f:
        if not f.readline().startswith(SERVER_FILE_HEADER):
          kept.append(path)
          continue
    write_text(path, text)
    written.append(path)
  return {"models": models, "written": written, "kept": kept}

"""A student as a TF Serving SavedModel that speaks raw item ids.

Signatures (all batched):

* "serving_default": {"context": string [B, L]} (item ids as in the data,
  most recent last, left-padded with "") -> {"item_ids": string [B, K],
  "scores": float32 [B, K]}; padding/OOV and the context's own items are
  excluded inside the graph.
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
from tfdistill.export.tflite import INPUT
from tfdistill.export.tflite import student_logits
from tfdistill.export.tflite import top_k_excluding

SERVING_SIGNATURE = "serving_default"
SCORE_SIGNATURE = "score"
EMBED_SIGNATURE = "embed"
OUTPUT_ITEM_IDS = "item_ids"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


class ServingModule(tf.Module):
  """Vocabulary lookups, scoring and top-K around a retrieval student."""

  def __init__(self, student, vocabulary: Sequence[str], top_k: int = 10):
    super().__init__(name="tfdistill_serving")
    self.student = student
    self.top_k = top_k
    self.vocabulary = [str(v) for v in vocabulary]
    length = student.input_shape[INPUT][1] if isinstance(
        student.input_shape, dict) else student.input_shape[1]
    self.context_length = length
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

  def _serve(self, context):
    ids = self._indices(context)
    top, scores = top_k_excluding(student_logits(self.student, {INPUT: ids}),
                                  ids, self.top_k, len(self.vocabulary))
    return {OUTPUT_ITEM_IDS: tf.gather(self.id_strings, top),
            "scores": scores}

  def _score(self, context, candidates):
    logits = student_logits(self.student, {INPUT: self._indices(context)})
    return {"scores": tf.gather(logits, self._indices(candidates),
                                batch_dims=1)}

  def _embed(self, context):
    return {"query_embedding": self.embedder(
        {INPUT: self._indices(context)}, training=False)}

  def signatures(self) -> dict:
    signatures = {SERVING_SIGNATURE: self.serve.get_concrete_function(),
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
                       warmup_contexts: np.ndarray) -> dict:
  """Writes the SavedModel (with warm-up requests) into `directory`."""
  module = ServingModule(student, vocabulary, top_k)
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

"""A student as a TFLite top-K recommender: ids in, best K items out.

The converted model has one signature, "recommend":

* input "context": int32 [1, L], the user's recent item indices (vocabulary
  order, most recent last, left-padded with 0);
* outputs "item_indices": int32 [1, K] and "scores": float32 [1, K], the K
  best catalog items excluding padding/OOV and the context's own items.

Top-K runs inside the model over the whole catalog. Exclusion takes the top
K + L + 2 and moves excluded entries behind the others with an integer
re-rank, so no large sentinel scores are needed (they break int8 graphs).
"""

import contextlib
import os
import re
import shutil
import tempfile
import warnings
from typing import Optional

import numpy as np
import tensorflow as tf

from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.errors import ExportError
from tfdistill.models.io import catalog_size
from tfdistill.models.layers import MaskedMean
from tfdistill.models.layers import PositionWeightedMean

QUANTIZATION_MODES = ("none", "float16", "dynamic", "int8")
#: Layers whose ops stay float in "int8" mode (TFLite selective
#: quantization): the context pooling. Quantization-aware training leaves
#: them float, they cost a few hundred operations, and int8 rounding of their
#: masks, weights, sums and divisions moves the top-10 more than the rest of
#: the graph does (benchmarks/export_modes.py measures the agreement).
FLOAT_IN_INT8 = (PositionWeightedMean, MaskedMean)
SIGNATURE = "recommend"
INPUT = "context"
OUTPUT_IDS = "item_indices"
OUTPUT_SCORES = "scores"


def student_logits(student, context):
  outputs = student(context, training=False)
  return outputs["logits"] if isinstance(outputs, dict) else outputs


def top_k_excluding(scores, context, k: int, num_items: int):
  """Top-k of scores [B, N] excluding reserved ids and the context's items."""
  length = context.shape[-1]
  pool = min(num_items, k + length + NUM_RESERVED)
  pool_scores, pool_ids = tf.math.top_k(scores, k=pool)
  seen = tf.reduce_any(tf.equal(pool_ids[:, :, tf.newaxis],
                                context[:, tf.newaxis, :]), axis=-1)
  seen = tf.logical_or(seen, pool_ids < NUM_RESERVED)
  order = tf.range(pool)[tf.newaxis, :] + tf.cast(seen, tf.int32) * pool
  _, positions = tf.math.top_k(-order, k=k)
  return (tf.gather(pool_ids, positions, batch_dims=1),
          tf.gather(pool_scores, positions, batch_dims=1))


class TopKRecommender(tf.Module):
  """tf.Module with the "recommend" signature around a retrieval student."""

  def __init__(self, student, top_k: int = 10):
    super().__init__(name="tfdistill_recommender")
    self.student = student
    context_length = student.input_shape[INPUT][1] if isinstance(
        student.input_shape, dict) else student.input_shape[1]
    num_items = catalog_size(student)
    if not 1 <= top_k <= num_items - NUM_RESERVED:
      raise ExportError(f"top_k must be in [1, {num_items - NUM_RESERVED}] "
                        f"for a catalog of {num_items} ids, got {top_k}.")
    self.top_k, self.context_length = top_k, context_length
    self.num_items = num_items
    self.recommend = tf.function(self._recommend, input_signature=[
        tf.TensorSpec([1, context_length], tf.int32, name=INPUT)])

  def _recommend(self, context):
    ids, scores = top_k_excluding(student_logits(self.student,
                                                 {INPUT: context}),
                                  context, self.top_k, self.num_items)
    return {OUTPUT_IDS: ids, OUTPUT_SCORES: scores}


@contextlib.contextmanager
def _temporary_dir():
  path = tempfile.mkdtemp(prefix="tfdistill-convert-")
  try:
    yield path
  finally:
    shutil.rmtree(path, ignore_errors=True)


def convert(student, mode: str = "none", top_k: int = 10,
            representative: Optional[np.ndarray] = None) -> bytes:
  """Converts a student to .tflite bytes with builtin ops only.

  Args:
    student: A functional retrieval student (or its QAT version).
    mode: "none" (float32), "float16", "dynamic" (int8 weights) or "int8"
      (int8 weights and activations, except the context pooling, see
      `FLOAT_IN_INT8`, and float fallback where an op has no int8 kernel;
      ids and outputs keep their types).
    top_k: K of the recommend signature.
    representative: int32 contexts [M, L] from the training data; required
      for "int8".

  Raises:
    ExportError: unknown mode, int8 without representative data, or a model
      that needs TensorFlow (Flex) ops.
  """
  if mode not in QUANTIZATION_MODES:
    raise ExportError(f"unknown quantization {mode!r}; choose one of "
                      f"{', '.join(QUANTIZATION_MODES)}.")
  if mode == "int8" and (representative is None or len(representative) == 0):
    raise ExportError("int8 quantization needs a representative data set: "
                      "training contexts to calibrate activation ranges "
                      "(models saved by tfdistill carry one; otherwise pass "
                      "--representative_data=FILE.npy).")
  module = TopKRecommender(student, top_k)
  with _temporary_dir() as tmp:
    tf.saved_model.save(module, tmp, signatures={
        SIGNATURE: module.recommend.get_concrete_function()})
    converter = tf.lite.TFLiteConverter.from_saved_model(
        tmp, signature_keys=[SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode != "none":
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
      converter.target_spec.supported_types = [tf.float16]
    if mode == "int8":
      contexts = np.asarray(representative, np.int32)[:, -module
                                                      .context_length:]

      def samples():
        for row in contexts[:200]:
          yield {INPUT: row[np.newaxis]}
      converter.representative_dataset = samples
    try:
      with warnings.catch_warnings():
        # The int8 calibrator runs tf.lite.Interpreter internally and warns
        # that it is deprecated; tfdistill runs models with LiteRT.
        warnings.filterwarnings(
            "ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated",
            category=UserWarning)
        content = converter.convert()
        if mode == "int8":
          content = _keep_float(content, student, converter, samples)
      return content
    except Exception as error:  # the converter raises several types
      message = str(error)
      if "Flex" in message or "Select TF" in message or (
          "not supported" in message and "op" in message):
        raise ExportError(
            "the model needs TensorFlow ops that TFLite builtins do not "
            "have (Flex ops), which tfdistill does not ship to phones; "
            f"converter said: {message.strip().splitlines()[0][:300]}"
        ) from error
      raise ExportError(f"TFLite conversion failed: {message[:500]}") from error


def _keep_float(content: bytes, student, converter, samples) -> bytes:
  """Converts again with the ops of `FLOAT_IN_INT8` layers left float (the
  same model if it has none)."""
  names = [layer.name for layer in getattr(student, "layers", [])
           if isinstance(layer, FLOAT_IN_INT8)]
  if not names:
    return content
  pattern = re.compile("(^|/)(" + "|".join(map(re.escape, names)) + ")/")
  nodes = sorted({detail["name"] for detail in _interpreter(
      content).get_tensor_details() if pattern.search(detail["name"])})
  if not nodes:
    return content
  debugger = tf.lite.experimental.QuantizationDebugger(
      converter=converter, debug_dataset=samples,
      debug_options=tf.lite.experimental.QuantizationDebugOptions(
          denylisted_nodes=nodes))
  return debugger.get_nondebug_quantized_model()


class LiteRTRecommender:
  """Runs a .tflite recommender with the LiteRT interpreter (XNNPACK)."""

  def __init__(self, path_or_bytes, num_threads: int = 1):
    from ai_edge_litert import interpreter as litert  # pylint: disable=import-outside-toplevel
    kwargs = ({"model_content": path_or_bytes}
              if isinstance(path_or_bytes, bytes)
              else {"model_path": os.fspath(path_or_bytes)})
    self.interpreter = litert.Interpreter(num_threads=num_threads, **kwargs)
    signatures = self.interpreter.get_signature_list()
    if SIGNATURE not in signatures:
      raise ExportError(f"{path_or_bytes!r:.80} has no {SIGNATURE!r} "
                        f"signature (found {sorted(signatures)}).")
    self.runner = self.interpreter.get_signature_runner(SIGNATURE)

  def __call__(self, context: np.ndarray):
    out = self.runner(**{INPUT: np.asarray(context, np.int32).reshape(1, -1)})
    return out[OUTPUT_IDS][0], out[OUTPUT_SCORES][0]

  def recommend_all(self, contexts: np.ndarray):
    ids, scores = zip(*(self(row) for row in contexts))
    return np.stack(ids), np.stack(scores)

  def details(self) -> dict:
    signature = self.runner.get_input_details(), self.runner.get_output_details()
    describe = lambda d: {name: {"shape": v["shape"].tolist(),
                                 "dtype": np.dtype(v["dtype"]).name}
                          for name, v in d.items()}
    return {"inputs": describe(signature[0]), "outputs": describe(signature[1])}


def _interpreter(tflite_bytes: bytes):
  from ai_edge_litert import interpreter as litert  # pylint: disable=import-outside-toplevel
  return litert.Interpreter(model_content=tflite_bytes)


def op_names(tflite_bytes: bytes) -> set:
  """Builtin/custom operator names used by a .tflite model."""
  return {op["op_name"] for op in _interpreter(tflite_bytes)._get_ops_details()}  # pylint: disable=protected-access

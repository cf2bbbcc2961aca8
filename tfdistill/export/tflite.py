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
import copy
import hashlib
import io
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras

from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.errors import ExportError
from tfdistill.models.io import catalog_size
from tfdistill.export.partitions import build_index
from tfdistill.export.config import PartitionConfig
from tfdistill.export.config import QUANTIZATION_MODES
from tfdistill.export.partitions import PartitionedCatalog
from tfdistill.export.partitions import PartitionIndex
from tfdistill.models.layers import CatalogScores
from tfdistill.models.layers import MaskedMean
from tfdistill.models.layers import PositionWeightedMean
from tfdistill.models.layers import QueriedPooling
from tfdistill.models.layers import SplitContextAndCatalog

#: Layers whose ops stay float in "int8" mode (TFLite selective
#: quantization): the context pooling. Quantization-aware training leaves
#: them float, they cost a few hundred operations, and int8 rounding of their
#: masks, weights, sums and divisions moves the top-10 more than the rest of
#: the graph does (benchmarks/export_modes.py measures the agreement).
FLOAT_IN_INT8 = (PositionWeightedMean, QueriedPooling, MaskedMean)
SIGNATURE = "recommend"
EXCLUDING_SIGNATURE = "recommend_excluding"
INPUT = "context"
EXCLUDE = "exclude"
OUTPUT_IDS = "item_indices"
OUTPUT_SCORES = "scores"


def student_logits(student, context):
  outputs = student(context, training=False)
  return outputs["logits"] if isinstance(outputs, dict) else outputs


def top_k_excluding(scores, context, k, ids=None, exclude=None):
  """Top-k of candidate scores [B, C], excluding reserved ids, the context's
  items and the `exclude` ids [B, E].

  Args:
    scores: Scores of C candidates per row.
    context: int32 item indices [B, L] (excluded).
    k: Items returned (an int, or a scalar tensor in graphs that allow
      dynamic shapes).
    ids: Item index of each candidate [B, C]; default: column j is item j.
    exclude: More item indices to exclude [B, E] (padding 0 excludes
      nothing).
  """
  seen_ids = context if exclude is None else tf.concat(
      [context, tf.cast(exclude, context.dtype)], axis=1)
  candidates, extra = scores.shape[-1], seen_ids.shape[-1]
  if isinstance(k, int) and candidates is not None and extra is not None:
    pool = min(candidates, k + extra + NUM_RESERVED)
  else:  # a k or an exclusion list chosen per request
    pool = tf.minimum(tf.shape(scores)[-1],
                      k + tf.shape(seen_ids)[-1] + NUM_RESERVED)
  pool_scores, positions = tf.math.top_k(scores, k=pool)
  pool_ids = positions if ids is None else tf.gather(ids, positions,
                                                     batch_dims=1)
  seen = tf.reduce_any(tf.equal(pool_ids[:, :, tf.newaxis],
                                seen_ids[:, tf.newaxis, :]), axis=-1)
  seen = tf.logical_or(seen, pool_ids < NUM_RESERVED)
  order = tf.range(pool)[tf.newaxis, :] + tf.cast(seen, tf.int32) * pool
  _, chosen = tf.math.top_k(-order, k=k)
  return (tf.gather(pool_ids, chosen, batch_dims=1),
          tf.gather(pool_scores, chosen, batch_dims=1))


def _layer_of(model, kind):
  for layer in model.layers:
    if isinstance(getattr(layer, "layer", layer), kind):
      return layer
  return None


def factor_student(student):
  """Splits a student into its query encoder and its catalog matrix.

  The student's own graph looks up the whole item table per request (one
  table serves the context and the catalog, see `ContextAndCatalogIds`).
  Exported, the catalog is a constant matrix instead: scoring is then one
  FULLY_CONNECTED op over it (the layout XNNPACK packs once), and the context
  rows are gathered from the same matrix.

  Returns:
    (encoder, vectors): a model {context, context vectors [B, L, d]} ->
    query [B, d], and the item vectors [N, d]; or None for students without
    a full item table (factorized tables would grow if materialized).
  """
  split = _layer_of(student, SplitContextAndCatalog)
  scores = _layer_of(student, CatalogScores)
  if split is None or scores is None:
    return None
  # A layer shared with an earlier model (QAT clones) has several nodes:
  # the last is this model's.
  rows, context = split.get_input_at(len(split.inbound_nodes) - 1)
  query = scores.get_input_at(len(scores.inbound_nodes) - 1)[0]
  context_vectors = split.get_output_at(len(split.inbound_nodes) - 1)[0]
  table = rows.node.layer
  if not isinstance(getattr(table, "layer", table), tf_keras.layers.Embedding):
    return None
  with warnings.catch_warnings():
    # Keras warns that an input which is not an Input layer's is unusual.
    warnings.simplefilter("ignore")
    encoder = tf_keras.Model([context, context_vectors], query,
                             name="query_encoder")
  # The rows the student itself looks up for one (all-padding) context: the
  # context's, then the whole catalog's (through any QAT wrapper's fake
  # quantization, as the student computes them).
  lookup = tf_keras.Model(student.inputs, rows)
  inputs = {name: tf.zeros([1] + list(spec.shape[1:]), spec.dtype)
            for name, spec in zip(student.input_names, student.inputs)}
  vectors = np.asarray(lookup(inputs, training=False), np.float32)
  return encoder, vectors[-catalog_size(student):]


class Scorer(tf.Module):
  """Context ids -> candidate scores (and their item ids), as exported.

  Exact: every catalog item is a candidate. With partitions (a
  `PartitionConfig`, or a `PartitionIndex` built once for several models of
  one student by `partition_index`), the candidates are the items of the
  best partitions (`PartitionedCatalog`).
  """

  def __init__(self, student, partitions=PartitionConfig()):
    super().__init__(name="scorer")
    self.student = student
    self.num_items = catalog_size(student)
    factored = factor_student(student)
    approximate = isinstance(partitions, PartitionIndex) or partitions.enabled
    self.encoder = self.catalog = self.partitioned = None
    if factored is None:
      if approximate:
        raise ExportError(f"approximate top-K (--partitions) needs a student "
                          f"with a full item table; {student.name} has none.")
      return
    self.encoder, vectors = factored
    if approximate:
      index = (partitions if isinstance(partitions, PartitionIndex)
               else build_index(vectors, partitions))
      self.partitioned = PartitionedCatalog(vectors, index)
    else:
      self.catalog = tf.Variable(vectors, trainable=False, name="catalog")

  def _vectors(self, ids):
    """Item vectors of item indices [...] -> [..., d]."""
    if self.partitioned is not None:
      return self.partitioned.item_vectors(ids)
    return tf.gather(self.catalog, ids)

  def _query(self, context):
    return self.encoder([context, self._vectors(context)], training=False)

  def __call__(self, context):
    """context int32 [B, L] -> (scores [B, C], ids [B, C] or None)."""
    if self.encoder is None:
      return student_logits(self.student, {INPUT: context}), None
    if self.partitioned is not None:
      return self.partitioned.candidates(self._query(context))
    return tf.matmul(self._query(context), self.catalog,
                     transpose_b=True), None

  def top_k(self, context, k, exclude=None):
    scores, ids = self(context)
    return top_k_excluding(scores, context, k, ids, exclude)

  def score(self, context, candidates):
    """Exact scores of candidate item indices [B, C] -> [B, C]."""
    if self.encoder is None:
      return tf.gather(student_logits(self.student, {INPUT: context}),
                       candidates, batch_dims=1)
    return tf.einsum("bd,bcd->bc", self._query(context),
                     self._vectors(candidates))


def partition_index(student, config: PartitionConfig) -> PartitionIndex:
  """The approximate top-K index of a student's item vectors, to build once
  and pass as `partitions` to every model exported from the student."""
  factored = factor_student(student)
  if factored is None:
    raise ExportError(f"approximate top-K (--partitions) needs a student "
                      f"with a full item table; {student.name} has none.")
  return build_index(factored[1], config)


def context_length_of(student) -> int:
  shape = student.input_shape
  return shape[INPUT][1] if isinstance(shape, dict) else shape[1]


class TopKRecommender(tf.Module):
  """tf.Module with the TFLite signatures around a retrieval student:
  "recommend" (context), "recommend_excluding" (context, exclude) when
  `exclude_length` > 0, and "recommend_k{K}" for each of `more_k`."""

  def __init__(self, student, top_k: int = 10, exclude_length: int = 0,
               more_k=(), partitions=PartitionConfig()):
    super().__init__(name="tfdistill_recommender")
    self.scorer = Scorer(student, partitions)
    self.context_length = context_length = context_length_of(student)
    num_items = self.scorer.num_items
    for k in (top_k, *more_k):
      if not 1 <= k <= num_items - NUM_RESERVED:
        raise ExportError(f"top_k must be in [1, {num_items - NUM_RESERVED}] "
                          f"for a catalog of {num_items} ids, got {k}.")
    self.top_k, self.num_items = top_k, num_items
    self.exclude_length = exclude_length
    context = tf.TensorSpec([1, context_length], tf.int32, name=INPUT)
    self.recommend = tf.function(
        lambda context: self._recommend(context, top_k),
        input_signature=[context])
    self.functions = {SIGNATURE: self.recommend}
    if exclude_length:
      self.recommend_excluding = tf.function(
          lambda context, exclude: self._recommend(context, top_k, exclude),
          input_signature=[context, tf.TensorSpec(
              [1, exclude_length], tf.int32, name=EXCLUDE)])
      self.functions[EXCLUDING_SIGNATURE] = self.recommend_excluding
    for k in more_k:
      function = tf.function(
          lambda context, k=k: self._recommend(context, k),
          input_signature=[context])
      setattr(self, f"recommend_k{k}", function)
      self.functions[f"{SIGNATURE}_k{k}"] = function

  def _recommend(self, context, k, exclude=None):
    ids, scores = self.scorer.top_k(context, k, exclude)
    return {OUTPUT_IDS: ids, OUTPUT_SCORES: scores}

  def signatures(self) -> dict:
    return {name: function.get_concrete_function()
            for name, function in self.functions.items()}


@contextlib.contextmanager
def _temporary_dir():
  path = tempfile.mkdtemp(prefix="tfdistill-convert-")
  try:
    yield path
  finally:
    shutil.rmtree(path, ignore_errors=True)


def convert(student, mode: str = "none", top_k: int = 10,
            representative: Optional[np.ndarray] = None,
            exclude_length: int = 0, more_k=(),
            partitions=PartitionConfig()) -> bytes:
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
    exclude_length: E of the "recommend_excluding" signature (0: none).
    more_k: Further K, each a "recommend_k{K}" signature.
    partitions: Approximate top-K (a `PartitionConfig` or a built
      `PartitionIndex`; default exact).

  Raises:
    ExportError: unknown mode, int8 without representative data, or a model
      that needs TensorFlow (Flex) ops.
  """
  return convert_modes(student, (mode,), top_k, representative,
                       exclude_length, more_k, partitions)[mode]


def convert_modes(student, modes, top_k: int = 10,
                  representative: Optional[np.ndarray] = None,
                  exclude_length: int = 0, more_k=(),
                  partitions=PartitionConfig()) -> dict:
  """{mode: .tflite bytes} for each of `modes`, as `convert` gives them,
  from one SavedModel of the recommender (saving it is most of the time of
  a small model's conversion)."""
  for mode in modes:
    if mode not in QUANTIZATION_MODES:
      raise ExportError(f"unknown quantization {mode!r}; choose one of "
                        f"{', '.join(QUANTIZATION_MODES)}.")
  if "int8" in modes and (representative is None or
                          len(representative) == 0):
    raise ExportError("int8 quantization needs a representative data set: "
                      "training contexts to calibrate activation ranges "
                      "(models saved by tfdistill carry one; otherwise pass "
                      "--representative_data=FILE.npy).")
  module = TopKRecommender(student, top_k, exclude_length, more_k,
                           partitions)
  signatures = module.signatures()
  with _temporary_dir() as tmp:
    tf.saved_model.save(module, tmp, signatures=signatures)
    return {mode: _convert_saved(tmp, module, mode, representative)
            for mode in dict.fromkeys(modes)}


def _convert_saved(saved: str, module: TopKRecommender, mode: str,
                   representative) -> bytes:
  """The .tflite, in `mode`, of `module` saved with its signatures in
  `saved`."""
  signatures = list(module.functions)
  converter = tf.lite.TFLiteConverter.from_saved_model(
      saved, signature_keys=signatures)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  if mode != "none":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  if mode in ("dynamic", "int8"):
    # One int8 scale per weight tensor. Per-row scales of the item table
    # would store it once more for the context lookup ("dynamic"), and
    # repeat its N scales in each signature's subgraph.
    converter._experimental_disable_per_channel = True  # pylint: disable=protected-access
  if mode == "float16":
    converter.target_spec.supported_types = [tf.float16]
  if mode == "int8":
    contexts = np.asarray(representative, np.int32)[:, -module
                                                    .context_length:]

    def samples():
      # Every signature is calibrated (a multi-signature model takes
      # (signature key, inputs) pairs); the exclusions are other contexts'
      # items.
      for i, row in enumerate(contexts[:200]):
        inputs = {INPUT: row[np.newaxis]}
        if len(signatures) == 1:
          yield inputs
          continue
        for name in signatures:
          if name == EXCLUDING_SIGNATURE:
            other = np.resize(contexts[(i + 1) % len(contexts)],
                              module.exclude_length)
            yield name, dict(inputs, **{EXCLUDE: other[np.newaxis]})
          else:
            yield name, inputs
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
        content = share_item_table(_keep_float(
            content, module.scorer.student, converter, samples))
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
    return {"inputs": describe(signature[0]), "outputs": describe(signature[1]),
            "signatures": {
                name: {"inputs": value["inputs"], "outputs": value["outputs"]}
                for name, value in self.interpreter.get_signature_list()
                .items()}}


def _interpreter(tflite_bytes: bytes):
  from ai_edge_litert import interpreter as litert  # pylint: disable=import-outside-toplevel
  return litert.Interpreter(model_content=tflite_bytes)


def op_names(tflite_bytes: bytes) -> set:
  """Builtin/custom operator names used by a .tflite model."""
  return {op["op_name"] for op in _interpreter(tflite_bytes)._get_ops_details()}  # pylint: disable=protected-access


#: TFLite metadata entry holding the SHA-256 of the item vocabulary.
VOCABULARY_HASH_METADATA = "tfdistill_vocabulary_sha256"
#: Name of the vocabulary inside the .tflite's associated-files archive.
VOCABULARY_MEMBER = "vocabulary.txt"


def vocabulary_bytes(tokens) -> bytes:
  """vocabulary.txt's content: one item id per line."""
  return ("\n".join(str(t) for t in tokens) + "\n").encode("utf-8")


def vocabulary_sha256(tokens) -> str:
  return hashlib.sha256(vocabulary_bytes(tokens)).hexdigest()


def embed_vocabulary(content: bytes, tokens) -> bytes:
  """Puts the vocabulary inside a .tflite: its SHA-256 as a model metadata
  entry, and the file itself as an associated file (a zip archive appended
  to the flatbuffer, the layout TFLite metadata uses, which LiteRT
  ignores and any zip reader, e.g. Android's MetadataExtractor, opens)."""
  from tensorflow.lite.python import schema_py_generated as schema  # pylint: disable=import-outside-toplevel
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=import-outside-toplevel
  data = vocabulary_bytes(tokens)
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
  buffer = schema.BufferT()
  buffer.data = np.frombuffer(vocabulary_sha256(tokens).encode(), np.uint8)
  model.buffers.append(buffer)
  entry = schema.MetadataT()
  entry.name = VOCABULARY_HASH_METADATA
  entry.buffer = len(model.buffers) - 1
  model.metadata = list(model.metadata or []) + [entry]
  stream = io.BytesIO(bytes(flatbuffer_utils.convert_object_to_bytearray(
      model)))
  stream.seek(0, io.SEEK_END)
  with zipfile.ZipFile(stream, "a", zipfile.ZIP_DEFLATED) as archive:
    archive.writestr(VOCABULARY_MEMBER, data)
  return stream.getvalue()


def embedded_vocabulary(content: bytes):
  """(tokens, hash in the metadata) of a .tflite written by
  `embed_vocabulary`; raises ExportError when the two disagree or are
  missing."""
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=import-outside-toplevel
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
  stated = {}
  for entry in model.metadata or []:
    name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
    if name == VOCABULARY_HASH_METADATA:
      stated[name] = bytes(model.buffers[entry.buffer].data).decode()
  if VOCABULARY_HASH_METADATA not in stated:
    raise ExportError("the .tflite carries no vocabulary hash; export it "
                      "with tfdistill export.")
  try:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
      data = archive.read(VOCABULARY_MEMBER)
  except (zipfile.BadZipFile, KeyError) as error:
    raise ExportError("the .tflite has no embedded vocabulary.txt") from error
  if hashlib.sha256(data).hexdigest() != stated[VOCABULARY_HASH_METADATA]:
    raise ExportError("the .tflite's embedded vocabulary does not match the "
                      "hash in its metadata: the file was altered.")
  return data.decode("utf-8").rstrip("\n").split("\n"), stated[
      VOCABULARY_HASH_METADATA]


#: Ops that read a quantized input with that tensor's own scale and zero
#: point (so the tensor's parameters may change without touching them).
_RESCALING_OPS = ("DEQUANTIZE", "MUL", "ADD", "SUB", "FULLY_CONNECTED",
                  "CONV_2D")


def _constant_int8(model, subgraph, index):
  """(dequantized values, mask of values at the int8 bounds) of a constant
  per-tensor int8 tensor, or None."""
  tensor = subgraph.tensors[index]
  buffer = model.buffers[tensor.buffer] if tensor.buffer else None
  quantization = tensor.quantization
  if (buffer is None or buffer.data is None or len(buffer.data) == 0
      or tensor.type != 9 or quantization is None  # 9: INT8
      or quantization.scale is None or len(quantization.scale) != 1):
    return None
  values = np.frombuffer(bytes(buffer.data), np.int8).reshape(tensor.shape)
  return ((values.astype(np.float32) - quantization.zeroPoint[0])
          * quantization.scale[0], (values == -128) | (values == 127))


def share_item_table(content: bytes) -> bytes:
  """Stores the int8 item table once in a full-integer model.

  The converter quantizes the table twice: symmetric for the scoring
  FULLY_CONNECTED, asymmetric (calibrated) for the context GATHER. Where the
  two hold the same values to within one quantization step (apart from the
  lookup copy's values clipped to its calibrated range), the GATHER is
  pointed at the FULLY_CONNECTED's weights and takes their scale (its output
  too, whose readers all requantize from their input's own parameters), and
  the second copy is dropped. The parity gate checks the result.
  """
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=import-outside-toplevel
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
  opcodes = [flatbuffer_utils.opcode_to_name(model, i)
             for i in range(len(model.operatorCodes))]
  dropped = set()
  for subgraph in model.subgraphs:
    readers = {}
    for op in subgraph.operators:
      for index in op.inputs:
        readers.setdefault(int(index), []).append(opcodes[op.opcodeIndex])
    weights = {}
    for op in subgraph.operators:
      if opcodes[op.opcodeIndex] == "FULLY_CONNECTED" and len(op.inputs) > 1:
        index = int(op.inputs[1])
        tensor = subgraph.tensors[index]
        if (tensor.quantization is not None and tensor.quantization.zeroPoint
            is not None and len(tensor.quantization.zeroPoint) == 1
            and tensor.quantization.zeroPoint[0] == 0):
          weights[tuple(tensor.shape)] = index
    for op in subgraph.operators:
      if opcodes[op.opcodeIndex] != "GATHER":
        continue
      table, output = int(op.inputs[0]), int(op.outputs[0])
      shared = weights.get(tuple(subgraph.tensors[table].shape))
      if shared is None or subgraph.tensors[table].buffer == subgraph.tensors[
          shared].buffer:
        continue
      mine = _constant_int8(model, subgraph, table)
      theirs = _constant_int8(model, subgraph, shared)
      if mine is None or theirs is None:
        continue
      step = max(subgraph.tensors[table].quantization.scale[0],
                 subgraph.tensors[shared].quantization.scale[0])
      # The lookup's copy is clipped to the calibrated range of the context
      # rows; the scoring copy holds every value. Elsewhere they must agree.
      (mine, clipped), (theirs, _) = mine, theirs
      if (np.max(np.abs(mine - theirs)[~clipped], initial=0.0) > 1.01 * step
          or not all(name in _RESCALING_OPS
                     for name in readers.get(output, []))):
        continue
      dropped.add(subgraph.tensors[table].buffer)
      subgraph.tensors[table].buffer = subgraph.tensors[shared].buffer
      for index in (table, output):
        subgraph.tensors[index].quantization = copy.deepcopy(
            subgraph.tensors[shared].quantization)
  in_use = {tensor.buffer for subgraph in model.subgraphs
            for tensor in subgraph.tensors}
  for buffer in dropped - in_use:
    model.buffers[buffer].data = None
  if not dropped:
    return content
  return bytes(flatbuffer_utils.convert_object_to_bytearray(model))

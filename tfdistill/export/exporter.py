"""`export_student`: SavedModel + TFLite, parity gate, latency, manifest.

Layout under `out`:

    out/tflite/model.tflite, vocabulary.txt, manifest.json
    out/serving/<model_name>/<version>/   (TF Serving SavedModel)

Everything is built in a staging folder inside `out`; pieces are moved into
place only after the parity gate passed, so a failed export leaves nothing
behind. An existing tflite/ folder or version is never replaced without
`overwrite=True`.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Optional

import numpy as np
import tensorflow as tf

from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.data.vocab import Vocabulary
from tfdistill.errors import ExportError
from tfdistill.fileio import check_replaceable
from tfdistill.fileio import Marker
from tfdistill.fileio import replace_directory
from tfdistill.export import saved_model as serving
from tfdistill.export import tflite
from tfdistill.export.config import ExportConfig
from tfdistill.export.config import PartitionConfig
from tfdistill.export.partitions import recall_at_k
from tfdistill.models.io import catalog_size
from tfdistill.models.io import is_functional
from tfdistill.models.io import load_contexts
from tfdistill.models.io import load_model
from tfdistill.models.io import load_vocabulary
from tfdistill.models.io import model_card

TFLITE_FILE = "model.tflite"
VOCABULARY_FILE = "vocabulary.txt"
MANIFEST_FILE = "manifest.json"
SERVING_MANIFEST = os.path.join("assets.extra", "tfdistill_manifest.json")
#: What identifies the tflite/ folder and a serving version folder that
#: tfdistill wrote (the only ones `overwrite` replaces).
TFLITE_MARKER = Marker(MANIFEST_FILE, ("format_version", "top_k"))
SERVING_MARKER = Marker(SERVING_MANIFEST, ("format_version", "top_k"))
# Default parity thresholds: least mean top-K agreement per mode. float32
# must also match exactly up to ties.
DEFAULT_MIN_AGREEMENT = {"none": 1.0, "float16": 0.95, "dynamic": 0.9,
                         "int8": 0.9}


def check_top_k(top_k: int, num_items: int) -> None:
  """Raises unless a top-K fits a catalog of `num_items` real items."""
  if top_k > num_items:
    raise ExportError(f"--top_k={top_k} is larger than the catalog "
                      f"({num_items} items); choose --top_k <= {num_items}.")


def parity(lite: "tflite.LiteRTRecommender", serving_dir: str,
           vocabulary: Vocabulary, contexts: np.ndarray) -> dict:
  """Compares the TFLite model with the SavedModel on the same contexts.

  Returns mean top-K agreement, the share of rows whose top-K sets are
  identical up to ties, and the largest score error (TFLite score vs the
  SavedModel's score of the same item).
  """
  loaded = tf.saved_model.load(serving_dir)
  strings = vocabulary.ids(contexts).astype(str)
  strings[contexts == 0] = ""
  reference = loaded.signatures[serving.SERVING_SIGNATURE](
      context=tf.constant(strings))
  ref_ids = vocabulary.lookup(reference[serving.OUTPUT_ITEM_IDS].numpy()
                              .astype(str))
  ref_scores = reference["scores"].numpy()
  lite_ids, lite_scores = lite.recommend_all(contexts)
  rescored = loaded.signatures[serving.SCORE_SIGNATURE](
      context=tf.constant(strings),
      candidates=tf.constant(vocabulary.ids(lite_ids).astype(str)))[
          "scores"].numpy()
  k = ref_ids.shape[1]
  agreement, identical = [], []
  for row in range(len(contexts)):
    common = set(lite_ids[row]) & set(ref_ids[row])
    agreement.append(len(common) / k)
    # Items only TFLite picked must tie with the reference's K-th score.
    kth = ref_scores[row, -1]
    tolerance = 1e-5 * max(1.0, abs(float(kth)))
    extra = [j for j, item in enumerate(lite_ids[row]) if item not in common]
    identical.append(all(rescored[row, j] >= kth - tolerance for j in extra))
  return {"examples": int(len(contexts)), "top_k": int(k),
          "agreement": float(np.mean(agreement)),
          "identical_up_to_ties": float(np.mean(identical)),
          "max_score_error": float(np.max(np.abs(lite_scores - rescored)))}


def _gate(result: dict, mode: str, min_agreement: Optional[float]) -> None:
  needed = DEFAULT_MIN_AGREEMENT[mode] if min_agreement is None else (
      min_agreement)
  result["min_agreement"] = needed
  if mode == "none" and min_agreement is None:
    passed = result["identical_up_to_ties"] == 1.0
  else:
    passed = result["agreement"] >= needed
  result["passed"] = bool(passed)
  if not passed:
    raise ExportError(
        f"parity gate failed for quantization={mode}: TFLite top-"
        f"{result['top_k']} agreement with the SavedModel is "
        f"{result['agreement']:.3f} (needed {needed}), identical up to ties "
        f"in {result['identical_up_to_ties']:.1%} of {result['examples']} "
        f"examples, largest score error {result['max_score_error']:.3g}. "
        "Nothing was written; try a milder --quantize or lower "
        "--min_agreement if this is acceptable.")


def exact_top_k(model, contexts: np.ndarray, k: int) -> np.ndarray:
  """Item indices [M, k] of exact search (the reference of approximate
  top-K), with the same exclusions as the exported models."""
  scorer = tflite.Scorer(model)
  return np.concatenate([
      scorer.top_k(tf.constant(chunk), k)[0].numpy()
      for chunk in np.array_split(contexts, max(1, len(contexts) // 64))])


def _recall_gate(model, lite, contexts, config: ExportConfig) -> dict:
  """Recall@K of the TFLite model's approximate top-K against exact search;
  raises below `config.min_recall`."""
  resolved = config.partition_config.resolved(catalog_size(model))
  exact = exact_top_k(model, contexts, config.top_k)
  recall = recall_at_k(lite.recommend_all(contexts)[0], exact)
  result = {"partitions": resolved.partitions, "probe": resolved.probe,
            "recall_at_k": recall, "min_recall": config.min_recall,
            "examples": int(len(contexts))}
  if recall < config.min_recall:
    raise ExportError(
        f"approximate top-{config.top_k} found {recall:.3f} of the exact "
        f"top-{config.top_k} on {len(contexts)} held-out contexts (needed "
        f"{config.min_recall}, --partitions={resolved.partitions} --probe="
        f"{resolved.probe}). Nothing was written; raise --probe, or lower "
        "--min_recall if this is acceptable.")
  return result


def _latency(tflite_path, serving_dir, contexts, vocabulary_path, runs):
  with tempfile.NamedTemporaryFile(suffix=".npy", delete=False) as f:
    np.save(f, np.asarray(contexts[:50], np.int32))
  command = [sys.executable, "-m", "tfdistill.export.latency",
             f"--contexts={f.name}", f"--runs={runs}",
             f"--vocabulary={vocabulary_path}"]
  if tflite_path:
    command.append(f"--tflite={tflite_path}")
  if serving_dir:
    command.append(f"--saved_model={serving_dir}")
  try:
    done = subprocess.run(command, capture_output=True, text=True,
                          check=False, timeout=900,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  finally:
    os.remove(f.name)
  if done.returncode != 0:
    raise ExportError("latency measurement failed: "
                      + done.stderr.strip()[-500:])
  return json.loads(done.stdout.strip().splitlines()[-1])


def _gzip_bytes(path: str) -> int:
  import gzip  # pylint: disable=import-outside-toplevel
  with open(path, "rb") as f:
    return len(gzip.compress(f.read(), compresslevel=9))


def _directory_bytes(path: str) -> int:
  return sum(os.path.getsize(os.path.join(root, name))
             for root, _, names in os.walk(path) for name in names)


def export_student(model, out: str, config: ExportConfig = ExportConfig(),
                   vocabulary: Optional[Vocabulary] = None,
                   representative: Optional[np.ndarray] = None,
                   holdout: Optional[np.ndarray] = None) -> dict:
  """Exports a retrieval student; returns the manifest.

  Args:
    model: A functional student or the folder of one saved by tfdistill
      (which also provides the vocabulary and the contexts below).
    out: Export folder (created if needed).
    config: `ExportConfig`.
    vocabulary: Item vocabulary (index -> item id).
    representative: Training contexts for int8 calibration.
    holdout: Held-out contexts for the parity gate (default: representative).

  Raises:
    ExportError: bad input, a failed conversion or a failed parity gate.
  """
  source = ""
  if isinstance(model, (str, os.PathLike)):
    source = os.fspath(model)
    try:
      loaded = load_model(source)
    except Exception as error:  # any failure: not a usable model folder
      raise ExportError(f"cannot load a trained model from {source}: "
                        f"{error}") from error
    vocabulary = vocabulary or load_vocabulary(source)
    representative = representative if representative is not None else (
        load_contexts(source, "representative"))
    holdout = holdout if holdout is not None else load_contexts(source,
                                                                "holdout")
    model = loaded
  if not is_functional(model) or "logits" not in [
      layer.name for layer in model.layers]:
    raise ExportError(f"{source or model.name} is not a retrieval student "
                      "(a functional model with a 'logits' output); export "
                      "a distilled student, e.g. <run>/student_kd/model.")
  if vocabulary is None:
    raise ExportError(f"no item vocabulary for {source or model.name}: save "
                      "the model with tfdistill (it stores items.txt) or "
                      "pass --vocabulary=items.txt.")
  if len(vocabulary) != catalog_size(model):
    raise ExportError(f"the vocabulary has {len(vocabulary)} entries but the "
                      f"model scores {catalog_size(model)} items.")
  for k in (config.top_k, *config.more_k):
    check_top_k(k, catalog_size(model) - NUM_RESERVED)
  if config.partitions:
    config.partition_config.resolved(catalog_size(model))  # checks the values
  if config.quantize == "int8" and representative is None:
    raise ExportError("int8 quantization needs a representative data set "
                      "(training contexts); pass --representative_data="
                      "FILE.npy or export a model saved by tfdistill.")
  contexts = holdout if holdout is not None else representative
  if contexts is None:
    raise ExportError("no contexts to check parity on; pass "
                      "--holdout_data=FILE.npy.")
  contexts = np.asarray(contexts, np.int32)[:256]
  name = config.model_name or model.name
  tflite_dir = os.path.join(out, "tflite")
  model_dir = os.path.join(out, "serving", name)
  version = config.version or serving.next_version(model_dir)
  version_dir = os.path.join(model_dir, str(version))
  for path, wanted, marker in ((tflite_dir, config.tflite, TFLITE_MARKER),
                               (version_dir, config.saved_model,
                                SERVING_MARKER)):
    if wanted and os.path.exists(path):
      if not config.overwrite:
        raise ExportError(f"{path} already exists; pass --overwrite to "
                          "replace it (or a new --version for TF Serving).")
      check_replaceable(path, [marker], ExportError)
  if os.path.exists(out) and not os.path.isdir(out):
    raise ExportError(f"--out={out} is a file, not a folder; choose a folder "
                      "path.")
  os.makedirs(out, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=".export-", dir=out)
  try:
    manifest = _build(model, staging, config, vocabulary, representative,
                      contexts, name, version)
    manifest["source_model"] = source
    moves = []
    if config.tflite:
      moves.append((os.path.join(staging, "tflite"), tflite_dir))
    if config.saved_model:
      moves.append((os.path.join(staging, "serving"), version_dir))
    for src, dst in moves:
      os.makedirs(os.path.dirname(dst), exist_ok=True)
      replace_directory(src, dst)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  if config.saved_model:
    manifest["server_files"] = serving.write_server_files(
        os.path.join(out, "serving"), SERVING_MARKER.found_in)
  return manifest


def _build(model, staging, config, vocabulary, representative, contexts,
           name, version) -> dict:
  serving_dir = os.path.join(staging, "serving")
  lite_dir = os.path.join(staging, "tflite")
  os.makedirs(lite_dir)
  warmup = vocabulary.ids(contexts[:5]).astype(str)
  warmup[contexts[:5] == 0] = ""
  # One index (k-means over the catalog) for every model exported here.
  partitions = (tflite.partition_index(model, config.partition_config)
                if config.partitions else PartitionConfig())
  serving_info = serving.save_serving_model(
      model, vocabulary.tokens, serving_dir, name, config.top_k, warmup,
      partitions)
  vocabulary.save(os.path.join(lite_dir, VOCABULARY_FILE))
  manifest = {"format_version": 1, "model": model_card(model),
              "context_length": serving_info["context_length"],
              "top_k": config.top_k, "padding_id": 0, "oov_id": 1,
              "num_items": len(vocabulary), "vocabulary": VOCABULARY_FILE,
              "vocabulary_sha256": tflite.vocabulary_sha256(
                  vocabulary.tokens),
              "quantization": config.quantize}
  bytes_info = {}
  if config.saved_model:
    manifest["saved_model"] = {
        "model_name": name, "version": version,
        "path": os.path.join("serving", name, str(version)),
        "signatures": serving_info["signatures"],
        "serving_default": {"input": {"context": {
            "dtype": "string", "shape": [-1, serving_info["context_length"]]}},
                            "outputs": {"item_ids": "string [-1, top_k]",
                                        "scores": "float32 [-1, top_k]"}}}
    bytes_info["saved_model"] = _directory_bytes(serving_dir)
  tflite_path = os.path.join(lite_dir, TFLITE_FILE)
  if config.tflite:
    shape = dict(exclude_length=config.exclude_length,
                 more_k=tuple(config.more_k),
                 partitions=partitions)
    lites = tflite.convert_modes(model, (config.quantize, "none"),
                                 config.top_k, representative, **shape)
    content = tflite.embed_vocabulary(lites[config.quantize],
                                      vocabulary.tokens)
    with open(tflite_path, "wb") as f:
      f.write(content)
    float_bytes = (len(content) if config.quantize == "none" else
                   len(lites["none"]))
    lite = tflite.LiteRTRecommender(tflite_path)
    details = lite.details()
    result = parity(lite, serving_dir, vocabulary, contexts)
    _gate(result, config.quantize, config.min_agreement)
    if config.partitions:
      manifest["partitions"] = _recall_gate(model, lite, contexts, config)
    manifest.update({
        "file": TFLITE_FILE, "signature": tflite.SIGNATURE,
        "input": tflite.INPUT, "inputs": details["inputs"],
        "outputs": details["outputs"], "parity": result,
        "signatures": details["signatures"],
        "ops": sorted(tflite.op_names(content))})
    bytes_info.update({"tflite": len(content),
                       "tflite_gzip": _gzip_bytes(tflite_path),
                       "float32_tflite": float_bytes})
  manifest["bytes"] = bytes_info
  if config.latency_runs:
    manifest["latency"] = _latency(
        tflite_path if config.tflite else "", serving_dir, contexts,
        os.path.join(lite_dir, VOCABULARY_FILE), config.latency_runs)
  with open(os.path.join(lite_dir, MANIFEST_FILE), "w") as f:
    json.dump(manifest, f, indent=2)
  if config.saved_model:
    with open(os.path.join(serving_dir, SERVING_MANIFEST), "w") as f:
      json.dump(manifest, f, indent=2)
  return manifest

"""One compression step: low-rank -> prune -> cluster -> QAT -> TFLite.

`compress_student` runs the steps a `CompressConfig` asks for, fine-tunes
after each (distilling from the teacher when one is given, with the losses
the student was distilled with, so pruning and QAT also happen *while
distilling*), and measures after each step what it
cost in quality and gained in bytes. The report (JSON and Markdown) has one
row per step and a per-layer table of the final model.
"""

import gzip
import json
import os
import shutil
import tempfile
from typing import Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras

from tfdistill.compress.clustering import cluster_student
from tfdistill.compress.config import CompressConfig
from tfdistill.compress.clustering import strip_clustering
from tfdistill.compress.lowrank import factorize_student
from tfdistill.compress.pruning import KeepSparsity
from tfdistill.compress.pruning import layer_sparsity
from tfdistill.compress.pruning import overall_sparsity
from tfdistill.compress.pruning import prune_student
from tfdistill.compress.pruning import pruning_callbacks
from tfdistill.compress.pruning import PruningConfig
from tfdistill.compress.pruning import strip_pruning
from tfdistill.compress.quantization import quantize_student
from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.distill.distiller import compiled_trainer
from tfdistill.distill.teachers import CATALOG_ITEMS
from tfdistill.distill.teachers import signal_model
from tfdistill.distill.soft_targets import SoftTargetKL
from tfdistill.errors import ConfigError
from tfdistill.evaluation.evaluate import evaluate_retrieval
from tfdistill.evaluation.ranking import STAGE_METRICS
from tfdistill.evaluation.evaluate import evaluate_tflite
from tfdistill.export import tflite
from tfdistill.models.io import catalog_size
from tfdistill.models.io import count_parameters
from tfdistill.reporting import fit_verbosity
from tfdistill.reporting import markdown_table

EVAL_POOL = 200  # top-K of the TFLite model used for evaluation
#: The fine-tunes' hard-loss weight when `CompressConfig.alpha` is None.
FINE_TUNE_ALPHA = 0.5


def _saved_model_bytes(model) -> int:
  path = tempfile.mkdtemp(prefix="tfdistill-size-")
  try:
    tf.saved_model.save(model, path)
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)
  finally:
    shutil.rmtree(path, ignore_errors=True)


class _Compressor:
  """Holds the data and settings shared by the steps."""

  def __init__(self, train, evaluation, config, teacher, distillation_loss,
               representative, log_dir, student_negatives=0):
    self.student_negatives = student_negatives
    self.train, self.evaluation = train, evaluation
    self.config, self.teacher = config, teacher
    # One set of loss objects for every fine-tune: a loss's learned
    # projection carries over from one step to the next.
    self.distillation_loss = distillation_loss
    self.representative, self.log_dir = representative, log_dir
    self.steps = []
    self._measured = (None, None)  # (the last measured model, its .tflite)

  def fine_tune(self, model, name, callbacks=()):
    callbacks = list(callbacks)
    if self.log_dir:
      callbacks.append(tf_keras.callbacks.TensorBoard(
          os.path.join(self.log_dir, name)))
    negatives = self.student_negatives
    if negatives and CATALOG_ITEMS not in signal_model(
        model, with_catalog=True).output:
      logging.warning("%s: the student's item scores are not a CatalogScores "
                      "layer's here; this fine-tune uses the softmax over "
                      "the whole catalog.", name)
      negatives = 0
    trainer = compiled_trainer(
        model, self.teacher, tf_keras.optimizers.Adam(
            self.config.learning_rate),
        alpha=(FINE_TUNE_ALPHA if self.config.alpha is None
               else self.config.alpha),
        temperature=self.config.temperature,
        distillation_loss=self.distillation_loss,
        student_negatives=negatives)
    trainer.fit(self.train, epochs=self.config.fine_tune_epochs,
                callbacks=callbacks, verbose=fit_verbosity())
    return model

  def measure(self, step: str, model, sparse_model=None) -> dict:
    """Quality, parameters, sparsity and bytes of one step's model."""
    sparse_model = sparse_model or model
    quality = evaluate_retrieval(model, self.evaluation)
    mode = self.config.quantize
    lites = tflite.convert_modes(model, ("none", mode), _top_k(model),
                                 self.representative)
    float_lite, lite = lites["none"], lites[mode]
    self._measured = (model, lite)
    row = {"step": step, **{k: quality[k] for k in STAGE_METRICS},
           "params": count_parameters(sparse_model),
           "nonzeros": int(sum(r["nonzeros"] for r in layer_sparsity(
               sparse_model))),
           "sparsity": overall_sparsity(model),
           "saved_model_bytes": _saved_model_bytes(model),
           "tflite_float32_bytes": len(float_lite),
           f"tflite_{mode}_bytes": len(lite),
           f"tflite_{mode}_gzip_bytes": len(gzip.compress(lite, 9))}
    self.steps.append(row)
    print(f"[compress] {step}: ndcg@10={row['ndcg@10']:.4f} "
          f"sparsity={row['sparsity']:.2f} tflite={len(lite)} bytes",
          flush=True)
    return row

  def deployable(self, model) -> bytes:
    """`model`'s .tflite in the configured mode: the one `measure`
    converted when `model` is the last model it measured, else a new
    conversion."""
    measured, lite = self._measured
    if measured is model:
      return lite
    return tflite.convert(model, self.config.quantize, _top_k(model),
                          self.representative)


def _top_k(model) -> int:
  """The K of the measured .tflite models: the evaluation's pool, or the
  whole catalog when it is smaller."""
  return min(EVAL_POOL, catalog_size(model) - NUM_RESERVED)


#: Gradual pruning reaches its target sparsity this far into the pruning
#: fine-tune, and updates its masks this many times on the way.
PRUNING_END_FRACTION = 0.8
PRUNING_MASK_UPDATES = 20


def _low_rank_step(work: _Compressor, model) -> tuple:
  """SVD factorization of the Dense kernels, then a fine-tune."""
  model, factors = factorize_student(model,
                                     energy=work.config.low_rank_energy)
  work.measure("low-rank (before fine-tune)", model)
  model = work.fine_tune(model, "low_rank")
  work.measure("low-rank + fine-tune", model)
  return model, factors


def _pruning_step(work: _Compressor, model):
  """The item table pruned once, the Dense layers gradually while the
  student fine-tunes; the pruning wrappers stripped."""
  config, train = work.config, work.train
  steps = int(train.cardinality().numpy())
  if steps < 0:
    steps = sum(1 for _ in train)
  total = steps * config.fine_tune_epochs
  pruned = prune_student(model, PruningConfig(
      target_sparsity=config.target_sparsity, schedule=config.schedule,
      end_step=max(1, int(total * PRUNING_END_FRACTION)), begin_step=0,
      frequency=max(1, total // PRUNING_MASK_UPDATES),
      structured=config.structured,
      layer_sparsity=dict(config.layer_sparsity),
      table_pruning=config.table_pruning), data=train)
  pruned = work.fine_tune(pruned, "pruning", pruning_callbacks(
      os.path.join(work.log_dir, "pruning_summaries") if work.log_dir
      else None))
  model = strip_pruning(pruned)
  work.measure(f"pruned {config.target_sparsity:.0%}", model)
  return model


def _keep_sparsity(config) -> list:
  return [KeepSparsity()] if config.target_sparsity else []


def _clustering_step(work: _Compressor, model):
  """Weight clustering (sparsity-preserving after pruning), fine-tuned."""
  config = work.config
  clustered = work.fine_tune(cluster_student(
      model, config.clusters, preserve_sparsity=bool(
          config.target_sparsity)), "clustering", _keep_sparsity(config))
  model = strip_clustering(clustered)
  work.measure(f"clustered ({config.clusters})", model)
  return model


def _qat_step(work: _Compressor, model):
  """Quantization-aware training (pruning-preserving after pruning)."""
  config = work.config
  model = work.fine_tune(quantize_student(
      model, preserve_sparsity=bool(config.target_sparsity)), "qat",
                         _keep_sparsity(config))
  work.measure("quantization-aware", model)
  return model


def compress_student(student: tf_keras.Model, train, evaluation,
                     config: CompressConfig = CompressConfig(),
                     teacher=None, representative: Optional[np.ndarray] = None,
                     log_dir: Optional[str] = None,
                     distillation_loss: Optional[Sequence] = None,
                     student_negatives: int = 0):
  """Compresses a trained student; returns (compressed model, report).

  Args:
    student: A trained functional retrieval student.
    train: Batched training `tf.data` (for the fine-tunes): context windows
      (`sequence_examples`), or, with a causal teacher trained on every
      position, chunks of users' sequences (`chunk_examples`), distilled at
      every position.
    evaluation: `SequenceArrays` (validation or test) for quality.
    config: `CompressConfig`.
    teacher: Optional teacher: fine-tunes then distill (pruning while
      distilling).
    representative: Training contexts (int8 calibration); required when
      `config.quantize == "int8"`.
    log_dir: TensorBoard logs per step (incl. pruning summaries).
    distillation_loss: The `DistillationLoss`es of the fine-tunes with a
      teacher: those the student was distilled with (a pipeline run passes
      its own). Default `SoftTargetKL`. The same objects serve every step.
    student_negatives: As `compiled_trainer`: > 0 fine-tunes with
      `SampledCatalogSoftmax` (where the compressed student still scores
      items through its `CatalogScores` factors).

  Returns:
    (model, report, sparse_model): the final Keras model (QAT applied if
    asked), the report {"config", "distillation_loss" (the fine-tunes'
    loss names), "steps", "layers", "low_rank", "tflite", "summary"}, and
    the float model before QAT (pruning stripped).
  """
  if not getattr(student, "_is_graph_network", False) or "logits" not in [
      layer.name for layer in student.layers]:
    raise ConfigError(f"{getattr(student, 'name', student)!r} is not a "
                      "trained tfdistill retrieval student; compress the "
                      "output of distillation (e.g. <run>/student_kd/model).")
  if config.quantize == "int8" and representative is None:
    raise ConfigError("int8 needs representative training contexts.")
  if teacher is None and distillation_loss:
    raise ConfigError("distillation_loss= needs a teacher= to distil from; "
                      "without one the fine-tunes train on the hard labels.")
  if teacher is not None:
    distillation_loss = list(distillation_loss or [SoftTargetKL()])
  elif isinstance(train.element_spec, tuple) and (
      train.element_spec[1].shape.rank == 2):
    raise ConfigError("chunks of users' sequences (a target at every "
                      "position) train a student only by distillation from "
                      "a causal teacher; pass teacher= or windows "
                      "(sequence_examples).")
  work = _Compressor(train, evaluation, config, teacher, distillation_loss,
                     representative, log_dir, student_negatives)
  report = {"config": config.to_json(), "low_rank": [],
            "distillation_loss": [loss.name for loss in distillation_loss]
                                 if teacher is not None else []}
  model = student
  work.measure("distilled (float)", model)
  if config.low_rank_energy:
    model, report["low_rank"] = _low_rank_step(work, model)
  if config.target_sparsity:
    model = _pruning_step(work, model)
  if config.clusters:
    model = _clustering_step(work, model)
  sparse_model = model
  if config.qat:
    model = _qat_step(work, model)
  # Each step measures the model it returns: its .tflite is the artefact.
  report["tflite"] = dict(evaluate_tflite(work.deployable(model), evaluation),
                          quantization=config.quantize)
  report["steps"] = work.steps
  report["layers"] = layer_sparsity(model)
  first, last = work.steps[0], work.steps[-1]
  report["summary"] = {
      "ndcg_relative_change_keras": last["ndcg@10"] / first["ndcg@10"] - 1
      if first["ndcg@10"] else None,
      "ndcg_relative_change_tflite": report["tflite"]["ndcg@10"]
      / first["ndcg@10"] - 1 if first["ndcg@10"] else None,
      "tflite_bytes_vs_float32": last[f"tflite_{config.quantize}_bytes"]
      / first["tflite_float32_bytes"],
      "sparsity": overall_sparsity(model),
      "target_sparsity": config.target_sparsity}
  return model, report, sparse_model


def report_markdown(report: dict) -> str:
  """The compression report as Markdown tables."""
  mode = report["config"]["quantize"]
  columns = ["step", "ndcg@10", "hr@10", "params", "nonzeros", "sparsity",
             "saved_model_bytes", "tflite_float32_bytes",
             f"tflite_{mode}_bytes", f"tflite_{mode}_gzip_bytes"]
  parts = ["# Compression report", "",
           "Quality on the evaluation split (full catalog, seen items "
           "excluded); bytes of each step's model.", "",
           markdown_table(report["steps"], columns), "",
           f"TFLite ({mode}, run with LiteRT): ndcg@10="
           f"{report['tflite']['ndcg@10']:.4f}, hr@10="
           f"{report['tflite']['hr@10']:.4f}.", "",
           "Fine-tunes: " + (
               "distilled with " + " + ".join(report["distillation_loss"])
               if report.get("distillation_loss") else "hard labels only")
           + ".", "",
           "## Final model per layer", "",
           "Non-zeros and sparsity are over the weight matrices "
           "(matrix_parameters), what pruning targets; biases, position "
           "weights and quantization ranges count in parameters only.", "",
           markdown_table(report["layers"], [
               "layer", "type", "parameters", "matrix_parameters",
               "nonzeros", "sparsity"])]
  if report.get("low_rank"):
    parts += ["", "## Low-rank factorization", "",
              markdown_table(report["low_rank"], [
                  "layer", "shape", "rank", "energy", "squared_error",
                  "parameters_before", "parameters_after"])]
  return "\n".join(parts) + "\n"


def write_report(report: dict, directory: str) -> None:
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "compression_report.json"), "w") as f:
    json.dump(report, f, indent=2, default=float)
  with open(os.path.join(directory, "compression_report.md"), "w") as f:
    f.write(report_markdown(report))

"""The commands of the `tfdistill` command line; each wraps library calls."""

import dataclasses
import json
import os
from typing import Callable, Optional

from absl import logging

from tfdistill.cli import options
from tfdistill.data.prepare import prepare
from tfdistill.data.sources import load_dataset

FLAGS = options.FLAGS


@dataclasses.dataclass(frozen=True)
class Command:
  """A command; `check` (if any) validates its flags without TensorFlow,
  before TensorFlow loads, so that bad input fails at once."""
  name: str
  function: Callable[[], int]
  summary: str
  flags: tuple
  check: Optional[Callable[[], object]] = None


def _print_json(values: dict) -> None:
  """The last line of a command's output: one JSON object (for scripts)."""
  print(json.dumps(values, sort_keys=True, default=str), flush=True)


def data() -> int:
  """Prepare and inspect a data set.

  Loads the source, filters rare users/items, builds vocabularies and the
  leave-last-out split, optionally saves it (--out), and prints as its last
  line one JSON object with num_interactions, num_users and num_items (before
  filtering), the counts kept and the split sizes.
  """
  source = options.source_config()
  if FLAGS.out and os.path.exists(FLAGS.out):
    # Checked before any work, naming the flag.
    from tfdistill.data.prepare import PREPARED_MARKER  # pylint: disable=import-outside-toplevel
    from tfdistill.errors import DataError  # pylint: disable=import-outside-toplevel
    from tfdistill.fileio import check_replaceable  # pylint: disable=import-outside-toplevel
    if FLAGS.overwrite or not os.path.isdir(FLAGS.out):
      check_replaceable(FLAGS.out, [PREPARED_MARKER], DataError,
                        what=f"--out={FLAGS.out}")
    else:
      raise DataError(f"--out={FLAGS.out} already exists; choose another "
                      "folder or pass --overwrite.")
  prepared = prepare(load_dataset(source), options.prepare_config())
  if FLAGS.out:
    prepared.save(FLAGS.out, overwrite=FLAGS.overwrite)
    logging.info("saved prepared data to %s", FLAGS.out)
  summary = prepared.summary()
  for key, value in summary.items():
    print(f"{key:>24}: {value}")
  _print_json(summary)
  return 0


def _run(command: str = ""):
  """The run of --out; for a training command, under --strategy (made
  before any other TensorFlow work, as multi-worker training needs)."""
  from tfdistill.errors import ConfigError  # pylint: disable=import-outside-toplevel
  from tfdistill.pipeline.run import Run  # pylint: disable=import-outside-toplevel
  if not FLAGS.out:
    raise ConfigError("--out=DIR (the run directory) is required.")
  config = options.pipeline_config()
  strategy = None
  if command and FLAGS.strategy != "default":
    from tfdistill.distribute import describe  # pylint: disable=import-outside-toplevel
    from tfdistill.distribute import make_strategy  # pylint: disable=import-outside-toplevel
    strategy = make_strategy(FLAGS.strategy, FLAGS.worker_timeout)
    logging.info("training under %s", describe(strategy))
  return Run(FLAGS.out, config, force=FLAGS.force, strategy=strategy)


def _worker_summary(run) -> bool:
  """For a worker that is not the chief: prints its one JSON line (the
  chief prints the results) and returns True."""
  if run.chief:
    return False
  from tfdistill.distribute import describe  # pylint: disable=import-outside-toplevel
  _print_json({"chief": False, "strategy": describe(run.strategy),
               "out": run.shared})
  return True


def _stage_summary(run, step: str) -> None:
  metrics = run.step_metrics(step)
  from tfdistill.evaluation.ranking import STAGE_METRICS  # pylint: disable=import-outside-toplevel
  _print_json({k: metrics.get(k) for k in STAGE_METRICS + ("params",
                                                           "path")})


def pipeline() -> int:
  """Run the whole job: data, teacher, students, compression, export, report.

  With no flags it distils on the embedded synthetic data set into
  ./tfdistill_run. Finished steps are skipped on a re-run (--force redoes
  them); an interrupted training resumes from its checkpoint. Prints the
  report's path and, as the last line, the metrics of every stage as JSON.
  """
  if not FLAGS.out:
    FLAGS.out = "tfdistill_run"
  run = _run("pipeline")
  metrics = run.all()
  if _worker_summary(run):
    return 0
  print(f"report: {os.path.join(run.step_dir('report'), 'report.html')}")
  _print_json(metrics)
  return 0


def train_teacher() -> int:
  """Train the sequential self-attention teacher of a run (--out)."""
  run = _run("train-teacher")
  run.teacher()
  if not _worker_summary(run):
    _stage_summary(run, "teacher")
  return 0


def distill() -> int:
  """Distil the student from the run's teacher (trains the teacher first if
  needed), and train the same student without a teacher for comparison."""
  run = _run("distill")
  run.student_alone()
  run.student_kd()
  if not _worker_summary(run):
    _stage_summary(run, "student_kd")
  return 0


def compress() -> int:
  """Prune, quantization-aware train (and optionally factorize or cluster)
  the run's distilled student; writes compressed/compression_report.md."""
  run = _run("compress")
  run.compressed()
  if not _worker_summary(run):
    _stage_summary(run, "compressed")
  return 0


def report() -> int:
  """Write the run's report (metrics.json, report.md, report.html)."""
  run = _run()
  print(f"report: {run.report()}")
  _print_json(run.metrics())
  return 0


def _export_config():
  """The export command's `ExportConfig` (no TensorFlow needed)."""
  from tfdistill.errors import ExportError  # pylint: disable=import-outside-toplevel
  from tfdistill.export.config import ExportConfig  # pylint: disable=import-outside-toplevel
  if not FLAGS.model or not FLAGS.out:
    raise ExportError("--model=PATH (a saved student) and --out=DIR are "
                      "required.")
  return ExportConfig(
      tflite=FLAGS.tflite, saved_model=FLAGS.saved_model,
      quantize=FLAGS.quantize or "none",
      top_k=10 if FLAGS.top_k is None else FLAGS.top_k,
      model_name=FLAGS.model_name or "", version=FLAGS.version or 0,
      overwrite=FLAGS.overwrite, min_agreement=FLAGS.min_agreement,
      exclude_length=FLAGS.exclude_length,
      more_k=options.integers("more_k"), partitions=FLAGS.partitions,
      probe=FLAGS.probe, min_recall=FLAGS.min_recall)


def export() -> int:
  """Export a saved student for TF Serving (--saved_model) and/or phones
  (--tflite), with the parity gate and latency in manifest.json."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from tfdistill.data.vocab import Vocabulary  # pylint: disable=import-outside-toplevel
  from tfdistill.errors import ExportError  # pylint: disable=import-outside-toplevel
  from tfdistill.export.exporter import export_student  # pylint: disable=import-outside-toplevel
  config = _export_config()
  representative = None
  if FLAGS.representative_data:
    if not os.path.isfile(FLAGS.representative_data):
      raise ExportError(f"--representative_data: no file "
                        f"{FLAGS.representative_data}.")
    representative = np.load(FLAGS.representative_data)
  vocabulary = None
  if FLAGS.vocabulary:
    if not os.path.isfile(FLAGS.vocabulary):
      raise ExportError(f"--vocabulary: no file {FLAGS.vocabulary}.")
    vocabulary = Vocabulary.load(FLAGS.vocabulary)
  manifest = export_student(FLAGS.model, FLAGS.out, config,
                            vocabulary=vocabulary,
                            representative=representative)
  _print_json({"out": FLAGS.out, "quantization": manifest["quantization"],
               "bytes": manifest["bytes"], "parity": manifest.get("parity"),
               "latency": manifest.get("latency")})
  return 0


def _data_of_model(model: str) -> tuple:
  """(the run's config or None, prepared data) for a saved model: the data
  of the run it belongs to, unless data flags say otherwise."""
  from tfdistill.pipeline.run import config_of_model  # pylint: disable=import-outside-toplevel
  config = None if options.data_flags_given() else config_of_model(model)
  if config is not None:
    source, prepare_with = config.source, config.prepare
  else:
    source, prepare_with = options.source_config(), options.prepare_config()
  return config, prepare(load_dataset(source), prepare_with)


def evaluate() -> int:
  """Evaluate a saved model (--model) on a data set's split: a retrieval
  model by its ranking metrics (HR, recall, precision, F1, NDCG@10, MRR), a
  ranking model by RMSE and, for "rating >= --positive_rating", accuracy,
  precision, recall, F1 and AUC. By default, for a model of a pipeline run,
  on the run's own data set."""
  from tfdistill.errors import ConfigError  # pylint: disable=import-outside-toplevel
  from tfdistill.evaluation.evaluate import evaluate_saved_model  # pylint: disable=import-outside-toplevel
  if not FLAGS.model:
    raise ConfigError("--model=PATH is required.")
  _, prepared = _data_of_model(FLAGS.model)
  result = evaluate_saved_model(
      FLAGS.model, prepared, FLAGS.split, FLAGS.context_length,
      FLAGS.positive_rating)
  _print_json(dict(result, split=FLAGS.split, model=FLAGS.model))
  return 0


def cache() -> int:
  """Compute a teacher's signals over the training examples as an Apache
  Beam pipeline: sharded TFRecords and cache.json in --out, which
  `cached_teacher`/`cached_examples` read.

  --teacher is a teacher saved by tfdistill (a run's teacher/model); its
  run's data and context length are used unless data flags are given. Beam
  runs with --beam_options (DirectRunner by default; Dataflow, Flink or
  Spark through Beam's own options). An interrupted job resumes when rerun
  with the same flags; a finished one is left as it is.
  """
  import shlex  # pylint: disable=import-outside-toplevel
  from tfdistill.data import examples  # pylint: disable=import-outside-toplevel
  from tfdistill.distill.beam_cache import cache_with_beam  # pylint: disable=import-outside-toplevel
  from tfdistill.distill.beam_cache import SavedTeacher  # pylint: disable=import-outside-toplevel
  from tfdistill.errors import ConfigError  # pylint: disable=import-outside-toplevel
  from tfdistill.models.io import MODEL_MARKER  # pylint: disable=import-outside-toplevel
  if not FLAGS.teacher or not FLAGS.out:
    raise ConfigError("--teacher=MODEL (a teacher saved by tfdistill, e.g. "
                      "RUN/teacher/model) and --out=DIR are required.")
  if not MODEL_MARKER.found_in(FLAGS.teacher):
    raise ConfigError(f"--teacher={FLAGS.teacher} is not a model saved by "
                      "tfdistill (no tfdistill_model.json); give a run's "
                      "teacher/model folder.")
  config, prepared = _data_of_model(FLAGS.teacher)
  context_length = FLAGS.context_length or (
      config.context_length if config else examples.DEFAULT_CONTEXT_LENGTH)
  batch_size = FLAGS.batch_size or (config.batch_size if config else 256)
  for flag, value in (("context_length", context_length),
                      ("batch_size", batch_size), ("shards", FLAGS.shards)):
    if value < 1:
      raise ConfigError(f"--{flag}={value} must be >= 1.")
  try:
    beam_options = shlex.split(FLAGS.beam_options or "")
  except ValueError as error:
    raise ConfigError(f"--beam_options={FLAGS.beam_options}: {error}.") from error
  data = examples.sequence_examples(prepared, "train", context_length,
                                    batch_size=batch_size)
  index = cache_with_beam(SavedTeacher(FLAGS.teacher), data, FLAGS.out,
                          top_k=FLAGS.top_k or 50, signals=FLAGS.signals,
                          num_shards=FLAGS.shards,
                          pipeline_options=beam_options,
                          overwrite=FLAGS.overwrite)
  _print_json({"out": FLAGS.out, "batches": index["batches"],
               "shards": len(index["shards"]), "top_k": index["top_k"],
               "signals": FLAGS.signals,
               "data_fingerprint": index["data_fingerprint"],
               "teacher_fingerprint": index["teacher_fingerprint"]})
  return 0


def tune() -> int:
  """Search temperature, alpha, distillation loss and student size with
  keras-tuner under a size budget; writes <out>/tune/best.flags."""
  from tfdistill.pipeline.tune import tune as run_tune  # pylint: disable=import-outside-toplevel
  result = run_tune(_run(), FLAGS.max_trials, FLAGS.max_params,
                    FLAGS.max_tflite_bytes, FLAGS.tune_epochs)
  _print_json(result)
  return 0


COMMANDS = {
    c.name: c for c in [
        Command("data", data, "prepare and inspect a data set",
                options.DATA_FLAGS + ("out", "overwrite")),
        Command("pipeline", pipeline, "run every step, from data to report",
                options.TRAIN_FLAGS, options.pipeline_config),
        Command("train-teacher", train_teacher, "train the teacher of a run",
                options.TRAIN_FLAGS, options.pipeline_config),
        Command("distill", distill, "distil the student of a run",
                options.TRAIN_FLAGS, options.pipeline_config),
        Command("compress", compress, "prune + QAT the distilled student",
                options.TRAIN_FLAGS, options.pipeline_config),
        Command("export", export, "export a student (SavedModel, TFLite)",
                options.EXPORT_FLAGS, _export_config),
        Command("cache", cache, "the teacher's signals as a Beam job",
                options.CACHE_FLAGS),
        Command("evaluate", evaluate, "evaluate a saved model",
                options.DATA_FLAGS + ("model", "split", "context_length",
                                      "positive_rating")),
        Command("report", report, "write the report of a run",
                options.RUN_FLAGS, options.pipeline_config),
        Command("tune", tune, "search distillation settings (keras-tuner)",
                options.RUN_FLAGS + ("max_trials", "max_params",
                                     "max_tflite_bytes", "tune_epochs"),
                options.pipeline_config),
    ]
}

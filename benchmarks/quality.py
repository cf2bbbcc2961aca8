"""Quality and size of every variant, three seeds, mean and std.

For each seed this runs the tfdistill pipeline (teacher, student alone,
distilled student, 50% pruned + QAT, int8 TFLite) in a run directory, then
adds the multi-teacher (teacher + a second teacher, confidence-weighted) and
teaching-assistant (teacher -> mid-size assistant -> student) variants, and
one student per distillation loss alone (`student_kd_<loss>`: the
pipeline's student_kd step with only the loss changed; --loss_variants).
Evaluation: sequential next-item retrieval, per-user leave-last-out, full
catalog, seen items excluded (test split). The best distilled student of the
student's size (the issue's `student_kd`) is chosen among all of them on
validation NDCG@10, never on the test split: the result names it
("best_distilled"), and when it is not the pipeline's student_kd the targets
table gives the distillation targets for it too.

Every student (alone, distilled, assistant) uses the position-weighted mean
context encoder (`student_encoders.py` compares it with a GRU and a CNN);
`--student_encoder=gru` (or cnn) repeats the benchmark with another one and
writes quality_<data>_<encoder>.*.

Its defaults are the pipeline's configuration (`HEADLINE`: students 10
epochs, their item tables from the teacher's, two fine-tune epochs per
compression step, the item table pruned by Fisher saliency). It writes
benchmarks/results/quality_<data>.json as
{"machine": {...}, "variants": [{"variant", "params", "ndcg@10", ...}]} and a
Markdown table; the results of other settings get a suffix naming what
differs (e.g. quality_latest_small_e5_random_c1_magnitude, the first
measured configuration).

    python benchmarks/quality.py                       # latest-small, 3 seeds
    python benchmarks/quality.py --student_epochs=5 --student_init=random \
        --compress_epochs=1 --table_pruning=magnitude  # the first runs
    python benchmarks/quality.py --data=synthetic
    python benchmarks/quality.py --quick               # tiny smoke run
"""

import argparse
import dataclasses
import json
import os
import sys

import _common  # pylint: disable=import-error

import tfdistill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import numpy as np
import tf_keras

from tfdistill.data.sources import SourceConfig
from tfdistill.distill import compiled_trainer
from tfdistill.distill import TeacherEnsemble
from tfdistill.distill.strategies import distill_chain
from tfdistill.errors import ConfigError
from tfdistill.compress.pipeline import EVAL_POOL
from tfdistill.compress.pruning import TABLE_PRUNING
from tfdistill.evaluation.evaluate import evaluate_retrieval
from tfdistill.evaluation.evaluate import evaluate_tflite
from tfdistill.evaluation.ranking import RankingMetrics
from tfdistill.evaluation.statistics import paired_bootstrap
from tfdistill.export import tflite
from tfdistill.models.factory import build_sequential_teacher
from tfdistill.models.factory import build_student
from tfdistill.models.factory import TeacherConfig
from tfdistill.models.io import catalog_size
from tfdistill.models.io import count_parameters
from tfdistill.models.io import load_contexts
from tfdistill.pipeline.config import distillation_losses
from tfdistill.pipeline.config import LOSSES
from tfdistill.pipeline.config import PipelineConfig
from tfdistill.pipeline.config import preset
from tfdistill.pipeline.config import STUDENT_INITS
from tfdistill.pipeline.report import plot_quality_against_bytes
from tfdistill.pipeline.run import CONFIG_FILE
from tfdistill.pipeline.run import Run
from tfdistill.pipeline.run import stored_config
from tfdistill.reporting import fit_verbosity

METRICS = ("ndcg@10", "hr@10", "recall@10", "mrr")


def _config(args, seed):
  if args.quick:
    base = preset("tiny", seed=seed, distillation_loss=args.loss,
                  quantize=args.quantize, min_agreement=args.min_agreement,
                  student_init=args.student_init)
    return dataclasses.replace(base, compress=dataclasses.replace(
        base.compress, table_pruning=args.table_pruning))
  base = preset("default", seed=seed, teacher_epochs=args.teacher_epochs,
                teacher_learning_rate=args.teacher_learning_rate,
                student_epochs=args.student_epochs,
                student_learning_rate=args.student_learning_rate,
                distillation_loss=args.loss)
  base = dataclasses.replace(base, quantize=args.quantize,
                             min_agreement=args.min_agreement,
                             compress=dataclasses.replace(
                                 base.compress,
                                 fine_tune_epochs=args.compress_epochs,
                                 table_pruning=args.table_pruning),
                             teacher=dataclasses.replace(
      base.teacher, embedding_dim=args.teacher_dim,
      num_heads=args.teacher_heads, num_blocks=args.teacher_blocks,
      ffn_dim=2 * args.teacher_dim))
  base = dataclasses.replace(base, student_init=args.student_init,
                             student=dataclasses.replace(
                                 base.student, encoder=args.student_encoder))
  if args.data == "latest-small":
    base = dataclasses.replace(base, source=SourceConfig(
        dataset="movielens/latest-small-ratings",
        manual_dir=str(_common.SHARED_MOVIELENS),
        data_dir=os.environ.get("TFDS_DATA_DIR") or None))
  return base


def _extra_variants(run) -> list:
  """Multi-teacher and teaching-assistant students for one run; their item
  tables start as the run's `student_init` says (from the first teacher's
  items, or random)."""
  config, prepared = run.config, run.prepared
  teacher = run.teacher()
  train, test = run.train_data(), run.evaluation("test")
  validation = run.evaluation("validation")
  rows = []
  tf_keras.utils.set_random_seed(config.seed + 10)
  print(f"{run.out}: second teacher (1 block), {config.teacher_epochs} "
        "epochs", flush=True)
  second = build_sequential_teacher(prepared, config.context_length,
                                    dataclasses.replace(
                                        config.teacher, num_blocks=1))
  second.compile(tf_keras.optimizers.Adam(config.teacher_learning_rate))
  second.fit(train, epochs=config.teacher_epochs, verbose=fit_verbosity())

  def compile_kwargs():
    return dict(optimizer=tf_keras.optimizers.Adam(
        config.student_learning_rate), alpha=config.alpha,
                temperature=config.temperature,
                distillation_loss=distillation_losses(
                    config.distillation_loss, config.temperature))

  tf_keras.utils.set_random_seed(config.seed + 2)
  student = build_student(prepared, config.context_length, config.student)
  init = run.init_item_table(student, teacher)
  distiller = compiled_trainer(student, TeacherEnsemble(
      [teacher, second], weighting="confidence"), **compile_kwargs())
  print(f"{run.out}: student_multi_teacher, {config.student_epochs} epochs",
        flush=True)
  distiller.fit(train, epochs=config.student_epochs,
                verbose=fit_verbosity())
  rows.append(dict(variant="student_multi_teacher",
                   params=count_parameters(student), student_init=init,
                   **_validation_ndcg(student, validation),
                   **evaluate_retrieval(student, test)))
  tf_keras.utils.set_random_seed(config.seed + 2)
  assistant = build_student(prepared, config.context_length, dataclasses
                            .replace(config.student, embedding_dim=4 *
                                     config.student.embedding_dim),
                            name="assistant")
  student = build_student(prepared, config.context_length, config.student)
  # --student_init applies to every distilled student: the assistant's and
  # the student's tables both start from the teacher's items (the
  # assistant's when the teacher is at least as wide; --quick's is not).
  try:
    assistant_init = run.init_item_table(assistant, teacher)
  except ConfigError:
    assistant_init = "random"
  init = run.init_item_table(student, teacher)
  print(f"{run.out}: student_teaching_assistant (teacher, assistant, "
        f"student), {config.student_epochs} epochs per link", flush=True)
  distill_chain([teacher, assistant, student], train,
                epochs=config.student_epochs, compile_kwargs=compile_kwargs,
                fit_kwargs={"verbose": fit_verbosity()})
  rows.append(dict(variant="student_teaching_assistant",
                   params=count_parameters(student), student_init=init,
                   assistant_init=assistant_init,
                   **_validation_ndcg(student, validation),
                   **evaluate_retrieval(student, test)))
  return rows


#: The column of a distilled student's validation NDCG@10, by which
#: `best_distilled` chooses among them without looking at the test split.
VALIDATION_NDCG = "validation_ndcg@10"

#: Distilled students of the student_alone architecture and size, the
#: candidates for the issue's "student_kd, the best distilled student".
DISTILLED = ("student_kd", "student_multi_teacher",
             "student_teaching_assistant")


def _validation_ndcg(model, validation) -> dict:
  return {VALIDATION_NDCG: evaluate_retrieval(model, validation)["ndcg@10"]}


def _cached(path: str, compute) -> list:
  """Rows kept in the run directory, so that a rerun reuses them."""
  if os.path.isfile(path):
    with open(path) as f:
      return json.load(f)
  rows = compute()
  with open(path, "w") as f:
    json.dump(rows, f, indent=1)
  return rows


# The headline student (`student_encoders.py`: a GRU is not better over
# three seeds on latest-small).
DEFAULT_ENCODER = "mean"


#: Run directories are named after the first measured runs (students 5
#: epochs from random item tables; one fine-tune epoch per compression step,
#: magnitude table pruning): a directory's name tags what differs from them
#: (`run_directory`), and the other benchmark scripts reuse those runs'
#: data and teachers (`<data>_seed<N>_mean`).
BASE = {"student_epochs": 5, "student_init": "random",
        "compress_epochs": 1, "table_pruning": "magnitude"}

#: quality.py's defaults: the pipeline's configuration (students 10 epochs
#: from the teacher's item table, two fine-tune epochs per compression step,
#: the item table pruned by Fisher saliency). Its results are
#: quality_<data>.*; the results of other settings tag what differs from it
#: (`result_suffix`).
HEADLINE = {"student_epochs": 10, "student_init": "teacher_items",
            "compress_epochs": 2, "table_pruning": "fisher"}


def epochs_tag(student_epochs: int,
               reference: int = BASE["student_epochs"]) -> str:
  """"_e<N>" for students trained other than `reference` epochs, else ""."""
  return "" if student_epochs == reference else f"_e{student_epochs}"


DEFAULT_TEACHER_EPOCHS = 5
#: The teacher's transformer blocks in the measured runs (`TeacherConfig`'s).
DEFAULT_TEACHER_BLOCKS = TeacherConfig.num_blocks


def blocks_tag(teacher_blocks: int) -> str:
  """"_b<N>" for a teacher of other than `DEFAULT_TEACHER_BLOCKS` blocks."""
  return ("" if teacher_blocks == DEFAULT_TEACHER_BLOCKS
          else f"_b{teacher_blocks}")


def run_directory(work_dir: str, data: str, seed: int, encoder: str,
                  student_epochs: int = BASE["student_epochs"],
                  teacher_epochs: int = DEFAULT_TEACHER_EPOCHS,
                  student_init: str = BASE["student_init"],
                  compression: str = "",
                  teacher_blocks: int = DEFAULT_TEACHER_BLOCKS) -> str:
  """Where one seed's run lives; quality.py, student_encoders.py and
  compression.py share the layout <data>_seed<N>_<encoder>[_e<student
  epochs>][_t<teacher epochs>][_b<teacher blocks>][_<student init>]
  [<compression tag>]."""
  teacher_tag = ("" if teacher_epochs == DEFAULT_TEACHER_EPOCHS
                 else f"_t{teacher_epochs}")
  init_tag = ("" if student_init == BASE["student_init"]
              else f"_{student_init}")
  return os.path.join(work_dir, f"{data}_seed{seed}_{encoder}"
                      f"{epochs_tag(student_epochs)}{teacher_tag}"
                      f"{blocks_tag(teacher_blocks)}{init_tag}"
                      f"{compression}")


def compression_tag(args, reference: dict = None) -> str:
  """"" for `reference`'s compression (fine-tune epochs, table pruning;
  default `BASE`, against which run directories are tagged), else
  _c<epochs>_<tables>."""
  reference = reference or BASE
  return ("" if (args.compress_epochs, args.table_pruning) == (
      reference["compress_epochs"], reference["table_pruning"])
          else f"_c{args.compress_epochs}_{args.table_pruning}")


def _student_epochs(args) -> int:
  """--quick runs keep the base name whatever their epochs."""
  return BASE["student_epochs"] if args.quick else args.student_epochs


def result_suffix(args, reference: dict = None) -> str:
  """What a result name tags: the student encoder when not the headline
  one, and the student epochs, item-table initialisation and compression
  where they differ from `reference` (default `HEADLINE`, quality.py's
  defaults; --quick runs are not tagged with their epochs)."""
  reference = reference or HEADLINE
  encoder = ("" if args.student_encoder == DEFAULT_ENCODER
             else f"_{args.student_encoder}")
  epochs = "" if args.quick else epochs_tag(args.student_epochs,
                                            reference["student_epochs"])
  init = ("" if args.student_init == reference["student_init"]
          else f"_{args.student_init}")
  return (encoder + epochs + blocks_tag(args.teacher_blocks) + init
          + compression_tag(args, reference))


#: The configuration fields that only the steps after the teacher read: a
#: run that differs from another only in these can start from its teacher.
AFTER_TEACHER = ("student", "student_epochs", "student_learning_rate",
                 "student_init", "distillation_loss", "alpha", "temperature",
                 "compress", "quantize", "top_k", "min_agreement")


#: The configuration fields that only compression and export read.
AFTER_STUDENTS = ("compress", "quantize", "top_k", "min_agreement")


def _differs_only_in(base_dir: str, config: PipelineConfig, fields) -> bool:
  stored = stored_config(base_dir)
  return dataclasses.replace(stored, **{
      name: getattr(config, name) for name in fields}) == config


def _base_args(args) -> argparse.Namespace:
  """`args` with the base runs' student epochs, tables and compression."""
  return argparse.Namespace(**dict(vars(args), **BASE))


def run_for(args, seed: int) -> Run:
  """The run of one seed; refuses a directory of a changed configuration.

  A run that does not exist yet starts from the finished steps of one that
  differs from it only after them: the same students with the measured
  compression (data, teacher, students), else the random-table run of the
  same student epochs (data, teacher), else the seed's base run
  (`<data>_seed<N>_<encoder>`: data, teacher), whose teacher is trained
  first when missing, so that the other benchmark scripts find it there.
  """
  data = "quick" if args.quick else args.data
  blocks = dict(teacher_blocks=args.teacher_blocks)
  out = run_directory(args.work_dir, data, seed, args.student_encoder,
                      _student_epochs(args), student_init=args.student_init,
                      compression=compression_tag(args), **blocks)
  config = _config(args, seed)
  if os.path.isdir(out):
    return Run(out, config)
  students = run_directory(args.work_dir, data, seed, args.student_encoder,
                           _student_epochs(args),
                           student_init=args.student_init, **blocks)
  if students != out and os.path.isfile(os.path.join(
      students, "student_kd", "metrics.json")) and _differs_only_in(
          students, config, AFTER_STUDENTS):
    return _common.shared_run(students, out, config, steps=(
        "data", "teacher", "student_alone", "student_kd"))
  base = run_directory(args.work_dir, data, seed, args.student_encoder,
                       _student_epochs(args), **blocks)
  if base != out and os.path.isfile(os.path.join(
      base, "teacher", "metrics.json")) and _differs_only_in(
          base, config, AFTER_TEACHER):
    return _common.shared_run(base, out, config)
  root = run_directory(args.work_dir, data, seed, args.student_encoder,
                       **blocks)
  if root != out:
    if not os.path.exists(root):
      Run(root, _config(_base_args(args), seed)).claim()
    if os.path.isfile(os.path.join(root, CONFIG_FILE)) and _differs_only_in(
        root, config, AFTER_TEACHER):
      run = Run(root, stored_config(root))
      if not run.done("teacher"):
        run.teacher()
      return _common.shared_run(root, out, config)
  return Run(out, config)


def core_rows(args, seed: int) -> list:
  """The pipeline's stages for one seed."""
  run = run_for(args, seed)

  def compute():
    metrics = run.all()
    rows = []
    for stage in ("teacher", "student_alone", "student_kd", "compressed",
                  "tflite"):
      values = metrics[stage]
      rows.append(dict(variant=stage, params=values["params"],
                       **{k: values.get(k) for k in METRICS if k in values},
                       bytes=values.get("bytes"),
                       float_bytes=values.get("float_bytes"),
                       sparsity=values.get("sparsity"),
                       agreement=(values.get("parity") or {}).get(
                           "agreement")))
    return rows
  return _cached(os.path.join(run.out, "quality_rows.json"), compute)


def extra_rows(args, seed: int) -> list:
  run = run_for(args, seed)
  path = os.path.join(run.out, "quality_extra_rows.json")
  rows = _cached(path, lambda: _extra_variants(run))
  if any(VALIDATION_NDCG not in row for row in rows):
    os.remove(path)  # kept by a version without validation scores
    rows = _cached(path, lambda: _extra_variants(run))
  return rows


def validation_rows(args, seed: int) -> dict:
  """{variant: validation NDCG@10} of the pipeline's distilled student."""
  run = run_for(args, seed)
  return _cached(os.path.join(run.out, "quality_validation.json"),
                 lambda: {"student_kd": _validation_ndcg(
                     run.student_kd(), run.evaluation("validation"))[
                         VALIDATION_NDCG]})


#: --loss_variants' default: every distillation loss of the pipeline alone
#: ("kl_teacher_items" equals "kl" with the online teacher's dense logits).
LOSS_VARIANTS = tuple(name for name in LOSSES if name != "kl_teacher_items")


def loss_variant_name(loss: str) -> str:
  return f"student_kd_{loss}"


def trained_losses(args, losses) -> list:
  """The losses of `losses` that train a student of their own: not --loss,
  which is the run's student_kd."""
  return [loss for loss in losses if loss != args.loss]


def loss_rows(args, seed: int, losses) -> list:
  """The run's student_kd step once per distillation loss in `losses`.

  Each loss gets a run directory beside the seed's run (<run>_loss_<loss>),
  started from its data and teacher: the pipeline's own student_kd step
  with only the loss changed (same initial student, item table, epochs,
  alpha and temperature). A loss equal to --loss is the run's student_kd.
  """
  run = run_for(args, seed)
  if not run.done("teacher"):
    run.teacher()
  rows = []
  for loss in trained_losses(args, losses):
    out = f"{run.out}_loss_{loss}"
    loss_run = _common.shared_run(run.out, out, dataclasses.replace(
        run.config, distillation_loss=loss))

    def compute(loss_run=loss_run, loss=loss):
      student = loss_run.student_kd()
      metrics = loss_run.step_metrics("student_kd")
      return [dict(variant=loss_variant_name(loss), params=metrics["params"],
                   **{k: metrics[k] for k in METRICS},
                   **_validation_ndcg(student,
                                      loss_run.evaluation("validation")))]
    rows += _cached(os.path.join(out, "quality_rows.json"), compute)
  return rows


def best_distilled(per_seed: list, distilled=DISTILLED) -> str:
  """The distilled student (of `distilled`) with the best mean validation
  NDCG@10 over the seeds that trained every candidate (ties: the first).

  Args:
    per_seed: one {variant: validation NDCG@10} per seed.
  """
  common = [seed for seed in per_seed if all(
      name in seed for name in distilled)] or per_seed
  candidates = [name for name in distilled if all(
      name in seed for seed in common)]
  return max(candidates, key=lambda name: np.mean(
      [seed[name] for seed in common]))


def per_user_rows(args, seed: int) -> dict:
  """NDCG@10 of every test user for each pipeline stage: {stage: [...]}.

  The same users in the same order for every stage, so that stages can be
  compared pairwise (`bootstrap_targets`). The TFLite stage runs the
  exported mode with LiteRT, as the pipeline's own evaluation does.
  """
  run = run_for(args, seed)

  def compute():
    test = run.evaluation("test")
    values = {}
    for stage in ("teacher", "student_alone", "student_kd", "compressed"):
      metrics = RankingMetrics((10,))
      evaluate_retrieval(getattr(run, stage)(), test, metrics=metrics)
      values[stage] = metrics.per_example("ndcg@10").tolist()
    model = run.compressed()
    lite = tflite.convert(model, run.config.quantize,
                          min(EVAL_POOL, catalog_size(model) - 2),
                          load_contexts(os.path.join(
                              run.step_dir("compressed"), "model")))
    metrics = RankingMetrics((10,))
    evaluate_tflite(lite, test, metrics=metrics)
    values["tflite"] = metrics.per_example("ndcg@10").tolist()
    return values
  return _cached(os.path.join(run.out, "quality_per_user.json"), compute)


def _ratio_targets(means: dict) -> dict:
  """The relative targets from mean NDCG@10 per stage."""
  return {"student_kd NDCG@10 / teacher NDCG@10":
              means["student_kd"] / means["teacher"],
          "student_kd NDCG@10 gain over student_alone":
              means["student_kd"] / means["student_alone"] - 1,
          "pruned + quantized TFLite NDCG@10 change vs student_kd":
              means["tflite"] / means["student_kd"] - 1}


def bootstrap_targets(per_user: list, samples: int = 2000,
                      seed: int = 0, ratios=_ratio_targets) -> dict:
  """95% intervals of the relative targets over test users.

  Each sample redraws every seed's test users with replacement (the same
  draw for all stages: the comparisons are paired), averages NDCG@10 over
  users and then over seeds, as the headline numbers do.

  Args:
    per_user: one {stage: [ndcg per user]} per seed.
    ratios: {stage: mean NDCG@10} -> {target: value}; default the issue's
      targets on the quality table's stages.

  Returns:
    {target: [low, high]}.
  """
  return paired_bootstrap(per_user, ratios, samples, seed)


def aggregate(per_seed: list) -> list:
  """Mean and spread of every variant over the seeds that trained it.

  A ratio column compares a variant with its reference (teacher,
  student_alone, student_kd) on the same seeds only: a variant trained on
  seed 0 alone is not measured against a three-seed mean.
  """
  ndcg = [{r["variant"]: r["ndcg@10"] for r in rows} for rows in per_seed]
  variants = []
  for name in dict.fromkeys(r["variant"] for rows in per_seed for r in rows):
    rows = [r for seed in per_seed for r in seed if r["variant"] == name]
    row = {"variant": name, "params": rows[0]["params"], "seeds": len(rows),
           **_common.mean_and_std(rows, METRICS + (
               "bytes", "float_bytes", "sparsity", "agreement",
               VALIDATION_NDCG))}
    same_seeds = [seed for seed in ndcg if name in seed]
    for reference, column, offset in (
        ("teacher", "ndcg_vs_teacher", 0), ("student_alone",
                                            "ndcg_vs_student_alone", 1),
        ("student_kd", "ndcg_vs_student_kd", 1)):
      row[column] = float(
          np.mean([seed[name] for seed in same_seeds]) /
          np.mean([seed[reference] for seed in same_seeds]) - offset)
    variants.append(row)
  teacher_params = next(v["params"] for v in variants
                        if v["variant"] == "teacher")
  for row in variants:
    row["params_vs_teacher"] = row["params"] / teacher_params
  return variants


def targets(variants: list, intervals: dict = None,
            best: str = "student_kd") -> list:
  """The issue's targets, each with the measured value and whether it held.

  `intervals` ({target: [low, high]}, from `bootstrap_targets`) adds a
  "ci95" column: how far test-user sampling alone moves each ratio. When
  `best` (the best distilled student on validation, `best_distilled`) is
  not the pipeline's student_kd, the two distillation targets are also
  given for it.
  """
  by_name = {v["variant"]: v for v in variants}
  kd, lite = by_name["student_kd"], by_name["tflite"]
  rows = [
      ("student_kd params / teacher params", kd["params_vs_teacher"], "<=",
       0.10),
      ("student_kd NDCG@10 / teacher NDCG@10", kd["ndcg_vs_teacher"], ">=",
       0.90),
      ("student_kd NDCG@10 gain over student_alone",
       kd["ndcg_vs_student_alone"], ">=", 0.20),
      ("pruned + quantized TFLite NDCG@10 change vs student_kd",
       lite["ndcg_vs_student_kd"], ">=", -0.03)]
  if best != "student_kd" and best in by_name:
    label = f"best distilled student on validation ({best})"
    rows[3:3] = [
        (f"{label} NDCG@10 / teacher NDCG@10", by_name[best][
            "ndcg_vs_teacher"], ">=", 0.90),
        (f"{label} NDCG@10 gain over student_alone", by_name[best][
            "ndcg_vs_student_alone"], ">=", 0.20)]
  if lite.get("agreement") is not None:
    rows.append(("TFLite top-10 agreement with the SavedModel",
                 lite["agreement"], ">=", 0.90))
  if lite.get("float_bytes"):
    rows.append(("quantized .tflite bytes / float32 .tflite bytes",
                 lite["bytes"] / lite["float_bytes"], "<=", 0.30))
  intervals = intervals or {}
  return [{"target": name, "measured": value, "goal": f"{op} {goal}",
           "met": value <= goal if op == "<=" else value >= goal,
           "ci95": ("[{:.3g}, {:.3g}]".format(*intervals[name])
                    if name in intervals else "")}
          for name, value, op, goal in rows]


def build_parser(defaults: dict = None,
                 description: str = None) -> argparse.ArgumentParser:
  """quality.py's flags (also the run-directory flags of compression.py),
  with `defaults` (default `HEADLINE`) for the student epochs, item-table
  initialisation and compression; --help shows them."""
  parser = argparse.ArgumentParser(
      description=description or __doc__.split("\n")[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--data", choices=["latest-small", "synthetic"],
                      default="latest-small")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--extras_seeds", default="0,1,2",
                      help="seeds that also train the multi-teacher and "
                      "teaching-assistant variants (each needs a second "
                      "teacher or an assistant)")
  parser.add_argument("--loss_variants", default=",".join(LOSS_VARIANTS),
                      help="distillation losses that each train a student "
                      "like student_kd's, alone (student_kd_<loss>); empty "
                      "for none")
  parser.add_argument("--loss_seeds", default="0,1,2",
                      help="seeds that train the --loss_variants students")
  parser.add_argument("--teacher_epochs", type=int,
                      default=DEFAULT_TEACHER_EPOCHS)
  parser.add_argument("--student_epochs", type=int,
                      help="training epochs of every student")
  # The measured runs' learning rates (the pipeline's defaults are now
  # higher, for its short synthetic default run).
  parser.add_argument("--teacher_learning_rate", type=float, default=2e-3)
  parser.add_argument("--student_learning_rate", type=float, default=2e-3)
  parser.add_argument("--teacher_dim", type=int, default=128,
                      help="teacher embedding size (ffn is twice this)")
  parser.add_argument("--teacher_blocks", type=int,
                      default=DEFAULT_TEACHER_BLOCKS,
                      help="transformer blocks of the teacher (the run "
                      "directories and result files of another number get "
                      "a _b<N> suffix)")
  parser.add_argument("--teacher_heads", type=int, default=4,
                      help="attention heads of the teacher's blocks (the "
                      "pipeline's synthetic default has 2)")
  parser.add_argument("--quantize", default="int8",
                      help="TFLite mode of the exported student")
  parser.add_argument("--min_agreement", type=float, default=None,
                      help="parity gate of the export step (None: the "
                      "exporter's per mode); the measured agreement is "
                      "reported either way")
  parser.add_argument("--loss", default="kl+hint",
                      help="distillation loss of student_kd (see "
                      "tfdistill distill --help)")
  parser.add_argument("--student_encoder", default=DEFAULT_ENCODER,
                      choices=["mean", "cnn", "gru"],
                      help="context encoder of every student (the result "
                      "files of a non-default one get a _<encoder> suffix)")
  parser.add_argument("--compress_epochs", type=int,
                      help="fine-tune epochs per compression step of the "
                      "compressed variant (the pipeline's 2; the first "
                      "measured runs had 1)")
  parser.add_argument("--table_pruning", choices=list(TABLE_PRUNING),
                      help="how the compressed variant prunes the item "
                      "table (the pipeline's fisher; the first measured "
                      "runs pruned it by magnitude)")
  parser.add_argument("--student_init", choices=list(STUDENT_INITS),
                      help="the distilled students' item tables "
                      "(student_kd, multi-teacher, assistant; teacher_items: "
                      "from the teacher's; student_init.py); a "
                      "run reuses the teacher of the random-table run of "
                      "its seed, trained first when missing")
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--name", default="",
                      help="result file name (default: quality_<data> and "
                      "what differs from the defaults); name a run of other "
                      "seeds here, as the name does not tag them")
  parser.add_argument("--work_dir", default=str(_common.DEFAULT_OUT / "runs"))
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  parser.set_defaults(**(defaults or HEADLINE))
  return parser


def check_data(args) -> None:
  if args.data == "latest-small" and not args.quick and not (
      _common.SHARED_MOVIELENS / "ml-latest-small.zip").is_file():
    sys.exit(f"error: {_common.SHARED_MOVIELENS}/ml-latest-small.zip not "
             "found; pass --data=synthetic or --quick.")


def main():
  args = build_parser().parse_args()
  check_data(args)
  losses = [loss for loss in args.loss_variants.split(",") if loss]
  for loss in losses:
    try:
      distillation_losses(loss, 1.0)
    except ConfigError as error:
      sys.exit(f"error: --loss_variants: {error}")
  seeds = [int(s) for s in args.seeds.split(",")]
  # Every seed's pipeline first, then the costlier extra variants.
  per_seed = [core_rows(args, seed) for seed in seeds]
  for index, seed in enumerate(seeds):
    if str(seed) in args.extras_seeds.split(","):
      per_seed[index] = per_seed[index] + extra_rows(args, seed)
  for index, seed in enumerate(seeds):
    if str(seed) in args.loss_seeds.split(","):
      per_seed[index] = per_seed[index] + loss_rows(args, seed, losses)
  for seed, rows in zip(seeds, per_seed):
    for row in rows:
      if row["variant"] == "student_kd":
        row[VALIDATION_NDCG] = validation_rows(args, seed)["student_kd"]
  best = best_distilled([{row["variant"]: row[VALIDATION_NDCG]
                          for row in rows if VALIDATION_NDCG in row}
                         for rows in per_seed], DISTILLED + tuple(
                             loss_variant_name(loss)
                             for loss in trained_losses(args, losses)))
  variants = aggregate(per_seed)
  for row in variants:
    row["best_distilled"] = row["variant"] == best
  intervals = bootstrap_targets([per_user_rows(args, seed) for seed in seeds])
  checks = targets(variants, intervals, best)
  name = args.name or ("quality_quick" if args.quick else (
      "quality_latest_small" if args.data == "latest-small"
      else "quality_synthetic") + result_suffix(args))
  columns = ["variant", "seeds", "params", "params_vs_teacher", "ndcg@10",
             "ndcg@10_std", "hr@10", "recall@10", "mrr", "ndcg_vs_teacher",
             "ndcg_vs_student_alone", "ndcg_vs_student_kd", "bytes",
             "agreement", VALIDATION_NDCG]
  label = "synthetic tiny (quick)" if args.quick else args.data
  path = _common.write_report(
      args.out, name, f"Quality of every variant ({label}, seeds "
      f"{args.seeds})", {"data": args.data, "seeds": seeds,
                         "variants": variants, "targets": checks,
                         "best_distilled": best,
                         "per_seed": per_seed},
      [("Mean over seeds (test split, full catalog, seen excluded)",
        variants, columns),
       ("Targets", checks, ["target", "measured", "goal", "met", "ci95"])],
      notes=f"students: {args.student_encoder} context encoder; student_kd:"
      f" distillation loss {args.loss!r}, item table {args.student_init}; "
      + (
          "tiny preset sizes and epochs" if args.quick else
          f"teacher embedding {args.teacher_dim}, {args.teacher_blocks} "
          f"block{'s' if args.teacher_blocks != 1 else ''}, "
          f"{args.teacher_heads} heads, {args.teacher_epochs} "
          f"epochs; students {args.student_epochs} epochs") + ". compressed = 50% "
            f"pruning (item table by {args.table_pruning}) + "
            "pruning-preserving QAT, "
            f"{args.compress_epochs} fine-tune epoch(s) each; tflite = its "
            f"{args.quantize} .tflite from the export step (parity gate "
            "passed; bytes vs float_bytes: the float32 .tflite of the same "
            "student). ci95: 95% paired bootstrap interval over test users "
            "(users redrawn per seed, 2000 samples). Best distilled student "
            f"of student_alone's size on validation NDCG@10 (mean over "
            f"seeds; chosen without the test split): {best}.")
  figure = plot_quality_against_bytes(
      [dict(v, label=v["variant"]) for v in variants],
      str(path.with_name(f"{name}_pareto.png")),
      title=f"NDCG@10 against size ({label})")
  print(path.read_text())
  print(f"figure: {figure}")


if __name__ == "__main__":
  main()

"""Distilling from an ensemble of teachers on latest-small.

A student distilled from one teacher can hardly beat that teacher, so its
gain over the same student trained alone is capped by how far the student
alone is behind. An ensemble of teachers is a stronger teacher at no cost to
the student's size. This script takes the runs of a named configuration
(`--config`, configs.py) for `--seeds` (same data, each with its own
trained teacher, student alone and student distilled from that teacher;
trained here when missing), scores the ensemble of all their
teachers (`TeacherEnsemble`, equal weights: the mean of the teachers' log
probabilities, the very target the student is distilled towards), and for
each seed distils the run's student (same initial weights, loss, alpha,
temperature and epochs as its `student_kd`) from that ensemble instead.

    python benchmarks/teacher_ensemble.py --config=latest_small

Writes benchmarks/results/<name>.{json,md} (default teacher_ensemble).
"""

import argparse
import sys

import _common  # pylint: disable=import-error
import configs  # pylint: disable=import-error
import run as runner  # pylint: disable=import-error

import tfdistill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import tensorflow as tf

from tfdistill.data.examples import CONTEXT
from tfdistill.distill import TeacherEnsemble
from tfdistill.evaluation.evaluate import evaluate_retrieval
from tfdistill.pipeline.run import Run

METRICS = ("ndcg@10", "hr@10", "mrr")
#: Each run's own steps compared, by row prefix.
VARIANTS = {"teacher": "teacher", "alone": "student_alone",
            "kd": "student_kd"}


def _runs(args) -> list:
  """The configuration's run of each seed, its students trained."""
  seeds = [int(s) for s in args.seeds.split(",")]
  if len(seeds) < 2:
    sys.exit("error: an ensemble needs the teachers of at least two seeds "
             f"(--seeds={args.seeds}).")
  benchmark = configs.BENCHMARKS[args.config]
  runs = []
  for seed in seeds:
    run = runner.open_run(benchmark, seed, args)
    for step in ("teacher", "student_alone", "student_kd"):
      runner.run_step(benchmark, run, step, args)
    runs.append(run)
  return runs


def _teachers(runs: list) -> list:
  """Fresh copies of the runs' teachers: a Distiller freezes its teachers'
  weights in place, so each ensemble gets its own."""
  return [Run(run.out, run.config).teacher() for run in runs]


def ensemble_quality(teachers: list, evaluation) -> dict:
  """Test metrics of the ensemble target the students are distilled to."""
  source = TeacherEnsemble(teachers)
  source.prepare()
  score = tf.function(lambda contexts: source({CONTEXT: contexts})["logits"])
  result = evaluate_retrieval(
      lambda contexts: score(tf.constant(contexts, tf.int32)), evaluation)
  return {key: float(result[key]) for key in METRICS}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seeds", default="0,1,2",
                      help="the runs whose teachers form the ensemble and "
                      "whose students are distilled from it")
  parser.add_argument("--config", default="latest_small",
                      choices=sorted(configs.BENCHMARKS),
                      help="the named configuration (configs.py) whose runs "
                      "give the teachers and students")
  parser.add_argument("--data_root", default=str(configs.DATA_ROOT))
  parser.add_argument("--work_dir", default=str(_common.DEFAULT_OUT / "runs"))
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  parser.add_argument("--name", default="teacher_ensemble")
  args = parser.parse_args()
  runs = _runs(args)
  step = f"student_kd_ensemble{len(runs)}"
  ensemble = ensemble_quality(_teachers(runs), runs[0].evaluation("test"))
  params = {name: runs[0].step_metrics(step_name)["params"]
            for name, step_name in VARIANTS.items() if name != "kd_ensemble"}
  ensemble_params = sum(run.step_metrics("teacher")["params"]
                        for run in runs)
  rows = []
  for run in runs:
    run.distilled_student(step, _teachers(runs))
    row = {"seed": run.config.seed, "ensemble_ndcg@10": ensemble["ndcg@10"]}
    for name, step_name in dict(VARIANTS, kd_ensemble=step).items():
      metrics = run.step_metrics(step_name)
      row.update({f"{name}_{key}": metrics[key] for key in METRICS})
    rows.append(row)
  params["kd_ensemble"] = runs[0].step_metrics(step)["params"]
  mean = _common.mean_and_std(rows, [key for key in rows[0] if key != "seed"])
  summary = [
      {"measure": "student params / ensemble params",
       "value": params["kd_ensemble"] / ensemble_params},
      {"measure": "student_kd_ensemble NDCG@10 / ensemble NDCG@10",
       "value": mean["kd_ensemble_ndcg@10"] / ensemble["ndcg@10"]},
      {"measure": "student_kd_ensemble NDCG@10 / single teacher NDCG@10 "
                  "(mean over runs)",
       "value": mean["kd_ensemble_ndcg@10"] / mean["teacher_ndcg@10"]},
      {"measure": "student_kd_ensemble NDCG@10 gain over student_alone",
       "value": mean["kd_ensemble_ndcg@10"] / mean["alone_ndcg@10"] - 1},
      {"measure": "student_kd (one teacher) NDCG@10 gain over student_alone",
       "value": mean["kd_ndcg@10"] / mean["alone_ndcg@10"] - 1}]
  variants = [{"variant": "teacher_ensemble", "params": ensemble_params,
               **ensemble}]
  variants += [{"variant": name, "params": params[name],
                "ndcg@10_std": mean[f"{name}_ndcg@10_std"],
                **{key: mean[f"{name}_{key}"] for key in METRICS}}
               for name in params]
  config = runs[0].config
  path = _common.write_report(
      args.out, args.name,
      f"Distilling from an ensemble of {len(runs)} teachers ({args.config}, "
      f"seeds {args.seeds})",
      {"summary": summary, "variants": variants, "per_seed": rows,
       "ensemble": ensemble, "ensemble_params": ensemble_params},
      [("Summary (mean over seeds)", summary, ["measure", "value"]),
       ("Mean over seeds (test split, full catalog, seen excluded)", variants,
        ["variant", "params", "ndcg@10", "ndcg@10_std", "hr@10", "mrr"]),
       ("Per seed", rows, ["seed", "teacher_ndcg@10", "ensemble_ndcg@10",
                           "alone_ndcg@10", "kd_ndcg@10",
                           "kd_ensemble_ndcg@10"])],
      notes=f"teacher: each run's own teacher (mean over runs); "
      f"teacher_ensemble: all {len(runs)} teachers, equal weights; "
      f"alone, kd: the runs' student alone and distilled from their own "
      f"teacher; kd_ensemble: the same initial student distilled from the "
      f"ensemble with the same loss ({config.distillation_loss}, alpha "
      f"{config.alpha}, T={config.temperature}; the hint reads the "
      f"teachers' concatenated hidden layers), {config.student_epochs} "
      f"epochs.")
  print(path.read_text())


if __name__ == "__main__":
  main()

"""Quality against training budget: the student alone and distilled, per epoch.

The issue's two relative targets pull in opposite directions along the
training budget. A short budget leaves the student alone far behind, so the
distilled student's gain over it is large while it is still short of the
teacher; a long budget brings the distilled student up to the teacher while
the student alone catches up. This script measures the whole curve instead of
one point: for each seed it takes a `student_encoders.py` run (same data,
teacher, initial student, loss and optimizer as its steps), trains the
student alone and distilled for `--student_epochs`, and scores both on the
test and validation users after every epoch.

The optimizer's learning rate is constant and each epoch's shuffle depends
only on the seed and the epoch, so the scores after epoch e are those of an
e-epoch run. The per-epoch table gives both targets with 95% paired bootstrap
intervals over test users, and which epochs meet both (on test, and on
validation, which is how a budget would be chosen without the test set).

    python benchmarks/student_encoders.py --encoders=mean --student_epochs=10
    python benchmarks/training_budget.py --student_epochs=10

Writes benchmarks/results/<name>.{json,md} (default training_budget).
"""

import argparse
import os

import _common  # pylint: disable=import-error
import numpy as np
import quality  # pylint: disable=import-error
import student_encoders  # pylint: disable=import-error

import tfdistill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import tf_keras

from tfdistill.evaluation.evaluate import evaluate_retrieval
from tfdistill.evaluation.ranking import RankingMetrics
from tfdistill.reporting import fit_verbosity

#: The issue's relative targets: (name, goal), both ">=".
TARGETS = {"kd_vs_teacher": 0.90, "kd_vs_alone": 0.20}


class EpochScores(tf_keras.callbacks.Callback):
  """Per-user test NDCG@10 and mean validation NDCG@10 after every epoch."""

  def __init__(self, student, test, validation):
    super().__init__()
    self.student, self.test, self.validation = student, test, validation
    self.test_per_user, self.validation_ndcg = [], []

  def on_epoch_end(self, epoch, logs=None):
    metrics = RankingMetrics((10,))
    evaluate_retrieval(self.student, self.test, metrics=metrics)
    self.test_per_user.append(metrics.per_example("ndcg@10").tolist())
    self.validation_ndcg.append(float(
        evaluate_retrieval(self.student, self.validation)["ndcg@10"]))


def fit_curve(run, student, trainer, epochs: int, test, validation) -> dict:
  """Trains `trainer` on the run's training data for `epochs`; `student`'s
  {"test": [[ndcg per user] per epoch], "validation": [ndcg per epoch]}."""
  scores = EpochScores(student, test, validation)
  trainer.fit(run.train_data(), epochs=epochs, callbacks=[scores],
              verbose=fit_verbosity())
  return {"test": scores.test_per_user, "validation": scores.validation_ndcg}


def seed_curves(run, epochs: int) -> dict:
  """{variant: {"test": [[ndcg per user] per epoch], "validation": [...]},
  "teacher": {...}} for one run; kept in the run directory."""

  def compute():
    test, validation = run.evaluation("test"), run.evaluation("validation")
    teacher = run.teacher()
    metrics = RankingMetrics((10,))
    evaluate_retrieval(teacher, test, metrics=metrics)
    curves = {"teacher": {
        "test": metrics.per_example("ndcg@10").tolist(),
        "validation": float(evaluate_retrieval(teacher,
                                               validation)["ndcg@10"])}}
    for name, source in (("alone", None), ("kd", teacher)):
      curves[name] = fit_curve(run, *run.student_trainer(source), epochs,
                               test, validation)
    return curves

  return quality._cached(  # pylint: disable=protected-access
      os.path.join(run.out, f"training_budget_e{epochs}.json"), compute)


def _ratios(teacher: float, alone: float, kd: float) -> dict:
  return {"kd_vs_teacher": kd / teacher, "kd_vs_alone": kd / alone - 1}


def epoch_rows(curves: list, epochs: int, samples: int) -> list:
  """One row per epoch: mean NDCG@10 over seeds, both ratios on test (with
  intervals) and on validation, and whether both targets hold."""
  teacher = [np.asarray(c["teacher"]["test"]) for c in curves]
  teacher_test = float(np.mean([t.mean() for t in teacher]))
  teacher_val = float(np.mean([c["teacher"]["validation"] for c in curves]))
  rows = []
  for epoch in range(epochs):
    per_model = {name: [np.asarray(c[name]["test"][epoch]) for c in curves]
                 for name in ("alone", "kd")}
    test = {name: float(np.mean([v.mean() for v in values]))
            for name, values in per_model.items()}
    val = {name: float(np.mean([c[name]["validation"][epoch]
                                for c in curves]))
           for name in ("alone", "kd")}
    ratios = _ratios(teacher_test, test["alone"], test["kd"])
    val_ratios = _ratios(teacher_val, val["alone"], val["kd"])
    intervals = quality.bootstrap_targets(
        [{"teacher": t, "alone": a, "kd": k} for t, a, k in
         zip(teacher, per_model["alone"], per_model["kd"])], samples,
        ratios=lambda means: _ratios(means["teacher"], means["alone"],
                                     means["kd"]))
    row = {"epoch": epoch + 1, "teacher_ndcg@10": teacher_test,
           "alone_ndcg@10": test["alone"], "kd_ndcg@10": test["kd"],
           "kd_ndcg@10_std": float(np.std([v.mean()
                                           for v in per_model["kd"]]))}
    for name, goal in TARGETS.items():
      row[name] = ratios[name]
      row[f"{name}_ci95"] = "[{:.3g}, {:.3g}]".format(*intervals[name])
      row[f"val_{name}"] = val_ratios[name]
    row["both_met"] = all(ratios[n] >= g for n, g in TARGETS.items())
    row["val_both_met"] = all(val_ratios[n] >= g for n, g in TARGETS.items())
    rows.append(row)
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--data", default="latest-small")
  parser.add_argument("--student_epochs", type=int, default=10,
                      help="epochs of the curve (the run directory of the "
                      "student_encoders.py runs with as many epochs)")
  parser.add_argument("--bootstrap_samples", type=int, default=2000)
  parser.add_argument("--work_dir", default=str(_common.DEFAULT_OUT / "runs"))
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  parser.add_argument("--name", default="training_budget")
  args = parser.parse_args()
  epochs = args.student_epochs
  runs = student_encoders.mean_runs(
      args.work_dir, args.data, [int(s) for s in args.seeds.split(",")],
      epochs)
  curves = [seed_curves(run, epochs) for run in runs]
  rows = epoch_rows(curves, epochs, args.bootstrap_samples)
  met = [r["epoch"] for r in rows if r["both_met"]]
  val_met = [r["epoch"] for r in rows if r["val_both_met"]]
  summary = [
      {"measure": "epochs at which both targets hold on test",
       "value": ", ".join(map(str, met)) or "none"},
      {"measure": "epochs at which both targets hold on validation",
       "value": ", ".join(map(str, val_met)) or "none"}]
  config = runs[0].config
  path = _common.write_report(
      args.out, args.name,
      f"Quality against training budget ({args.data}, seeds {args.seeds})",
      {"summary": summary, "epochs": rows},
      [("Summary", summary, ["measure", "value"]),
       ("Per epoch (test NDCG@10, mean over seeds; ratios of the means)",
        rows, ["epoch", "teacher_ndcg@10", "alone_ndcg@10", "kd_ndcg@10",
               "kd_ndcg@10_std", "kd_vs_teacher", "kd_vs_teacher_ci95",
               "kd_vs_alone", "kd_vs_alone_ci95", "both_met"]),
       ("Per epoch on validation (ratios of mean NDCG@10)", rows,
        ["epoch", "val_kd_vs_teacher", "val_kd_vs_alone", "val_both_met"])],
      notes=f"Targets: kd_vs_teacher >= {TARGETS['kd_vs_teacher']}, "
      f"kd_vs_alone >= {TARGETS['kd_vs_alone']}. The runs' student "
      f"({config.student.encoder} encoder, embedding "
      f"{config.student.embedding_dim}), loss {config.distillation_loss}, "
      f"alpha {config.alpha}, T={config.temperature}, Adam "
      f"{config.student_learning_rate} (constant), teacher "
      f"{config.teacher_epochs} epochs. ci95: 95% paired bootstrap interval "
      f"over test users ({args.bootstrap_samples} samples, users redrawn per "
      "seed).")
  print(path.read_text())


if __name__ == "__main__":
  main()

"""The student's item table from the teacher's items, against a random one.

Most of the student's parameters are its item table (98.6% of them on
latest-small). `--student_init=teacher_items` starts that table from the
teacher's catalog embeddings projected on their top principal directions
(`tfdistill.distill.transfer_item_embeddings`) instead of at random. This
script measures what that start is worth, alone and with distillation, on
the runs of `training_budget.py` (same data, teacher, initial student, loss,
optimizer and epochs), and scores every student on the test and validation
users after every epoch:

- alone: the student on hard labels, random table (the issue's baseline);
- kd: distilled, random table (the runs' loss, e.g. kl+hint);
- alone_teacher_items: hard labels only, table from the teacher's items;
- kd_teacher_items: distilled, table from the teacher's items (what
  `tfdistill pipeline --student_init=teacher_items` trains).

The teacher-items students are the run's seeded initial student with the
transferred table, as `Run.student_trainer` builds them for
`--student_init=teacher_items` (pinned by tests/pipeline/test_pipeline_cli.py).

    python benchmarks/quality.py                      # the teachers it reuses
    python benchmarks/student_init.py --student_epochs=10

Writes benchmarks/results/<name>.{json,md} (default student_init); the
alone and kd curves are those of training_budget.py (shared cache).
"""

import argparse
import os

import _common  # pylint: disable=import-error
import numpy as np
import quality  # pylint: disable=import-error
import student_encoders  # pylint: disable=import-error
import training_budget  # pylint: disable=import-error

import tfdistill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)

from tfdistill.distill import transfer_item_embeddings

#: Students compared with the teacher and with `alone` (the issue's
#: "same student trained alone").
VARIANTS = ("kd", "alone_teacher_items", "kd_teacher_items")


def seed_curves(run, epochs: int) -> dict:
  """training_budget.seed_curves plus the two teacher-items students, and
  the share of the teacher's item variance the table kept."""
  curves = dict(training_budget.seed_curves(run, epochs))

  def compute():
    test, validation = run.evaluation("test"), run.evaluation("validation")
    teacher = run.teacher()
    added = {}
    for name, source in (("alone_teacher_items", None),
                         ("kd_teacher_items", teacher)):
      student, trainer = run.student_trainer(source)
      kept = transfer_item_embeddings(student, teacher)
      added[name] = dict(training_budget.fit_curve(
          run, student, trainer, epochs, test, validation),
                         variance_kept=kept)
    return added

  curves.update(quality._cached(  # pylint: disable=protected-access
      os.path.join(run.out, f"student_init_e{epochs}.json"), compute))
  return curves


def variant_rows(curves: list, epochs: int, samples: int) -> tuple:
  """(rows, per_epoch): one row per student at the last epoch, with its
  ratios to the teacher and to `alone` (test, with intervals, and
  validation), and the per-epoch rows of kd_teacher_items."""
  teacher = float(np.mean([np.mean(c["teacher"]["test"]) for c in curves]))
  alone = [float(np.mean(c["alone"]["test"][-1])) for c in curves]
  rows = [{"variant": "teacher", "ndcg@10": teacher},
          {"variant": "alone", "ndcg@10": float(np.mean(alone)),
           "ndcg@10_std": float(np.std(alone)),
           "vs_teacher": float(np.mean(alone)) / teacher, "vs_alone": 0.0}]
  per_epoch = None
  for name in VARIANTS:
    as_kd = [{"teacher": c["teacher"], "alone": c["alone"], "kd": c[name]}
             for c in curves]
    epoch_rows = training_budget.epoch_rows(as_kd, epochs, samples)
    final = epoch_rows[-1]
    rows.append({"variant": name, "ndcg@10": final["kd_ndcg@10"],
                 "ndcg@10_std": final["kd_ndcg@10_std"],
                 "vs_teacher": final["kd_vs_teacher"],
                 "vs_teacher_ci95": final["kd_vs_teacher_ci95"],
                 "vs_alone": final["kd_vs_alone"],
                 "vs_alone_ci95": final["kd_vs_alone_ci95"],
                 "val_vs_teacher": final["val_kd_vs_teacher"],
                 "val_vs_alone": final["val_kd_vs_alone"],
                 "both_met": final["both_met"]})
    if name == "kd_teacher_items":
      per_epoch = epoch_rows
  return rows, per_epoch


def seed_rows(curves: list, seeds: list) -> list:
  """Test NDCG@10 of every student per seed, at the last epoch."""
  rows = []
  for seed, c in zip(seeds, curves):
    row = {"seed": seed, "teacher": float(np.mean(c["teacher"]["test"]))}
    for name in ("alone",) + VARIANTS:
      row[name] = float(np.mean(c[name]["test"][-1]))
    row["variance_kept"] = c["kd_teacher_items"]["variance_kept"]
    rows.append(row)
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--data", default="latest-small")
  parser.add_argument("--student_epochs", type=int, default=10)
  parser.add_argument("--bootstrap_samples", type=int, default=2000)
  parser.add_argument("--work_dir", default=str(_common.DEFAULT_OUT / "runs"))
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  parser.add_argument("--name", default="student_init")
  args = parser.parse_args()
  epochs, seeds = args.student_epochs, [int(s) for s in args.seeds.split(",")]
  runs = student_encoders.mean_runs(args.work_dir, args.data, seeds, epochs)
  curves = [seed_curves(run, epochs) for run in runs]
  rows, per_epoch = variant_rows(curves, epochs, args.bootstrap_samples)
  summary = [
      {"measure": "epochs at which kd_teacher_items meets both targets on "
                  "test", "value": ", ".join(
                      str(r["epoch"]) for r in per_epoch if r["both_met"])
       or "none"},
      {"measure": "epochs at which kd_teacher_items meets both targets on "
                  "validation", "value": ", ".join(
                      str(r["epoch"]) for r in per_epoch
                      if r["val_both_met"]) or "none"}]
  config = runs[0].config
  path = _common.write_report(
      args.out, args.name,
      f"The student's item table from the teacher's items ({args.data}, "
      f"seeds {args.seeds}, students {epochs} epochs)",
      {"variants": rows, "per_seed": seed_rows(curves, seeds),
       "summary": summary, "epochs": per_epoch},
      [(f"Test NDCG@10 after {epochs} epochs (mean over seeds; ratios of "
        "the means)", rows,
        ["variant", "ndcg@10", "ndcg@10_std", "vs_teacher",
         "vs_teacher_ci95", "vs_alone", "vs_alone_ci95", "val_vs_teacher",
         "val_vs_alone", "both_met"]),
       ("Per seed (test NDCG@10)", seed_rows(curves, seeds),
        ["seed", "teacher", "alone", *VARIANTS, "variance_kept"]),
       ("Summary", summary, ["measure", "value"]),
       ("kd_teacher_items per epoch (test NDCG@10, mean over seeds)",
        per_epoch, ["epoch", "teacher_ndcg@10", "alone_ndcg@10",
                    "kd_ndcg@10", "kd_vs_teacher", "kd_vs_teacher_ci95",
                    "kd_vs_alone", "kd_vs_alone_ci95", "both_met",
                    "val_both_met"])],
      notes=f"Targets: vs_teacher >= {training_budget.TARGETS['kd_vs_teacher']}"
      f", vs_alone >= {training_budget.TARGETS['kd_vs_alone']} (both_met: "
      "both on test). vs_alone compares with the student alone with a "
      "random table. The runs' student "
      f"({config.student.encoder} encoder, embedding "
      f"{config.student.embedding_dim}), loss {config.distillation_loss}, "
      f"alpha {config.alpha}, T={config.temperature}, Adam "
      f"{config.student_learning_rate} (constant), teacher "
      f"{config.teacher_epochs} epochs. variance_kept: share of the "
      "teacher's centred item variance on the table's principal directions. "
      f"ci95: 95% paired bootstrap interval over test users "
      f"({args.bootstrap_samples} samples, users redrawn per seed).")
  print(path.read_text())


if __name__ == "__main__":
  main()

"""Does a sequence-aware student close the gap to the teacher?

The quality benchmark's student pools its recent items without regard to
order (position-weighted mean). This script keeps everything else of the
seed's base run (`<data>_seed<N>_mean`: data, the trained teacher, sizes,
loss, epochs; every quality.py run trains its teacher first) and swaps
the student's context encoder for a 1-D convolution or a GRU, training each
student alone and distilled, so that the encoders are compared against one
and the same teacher.

    python benchmarks/quality.py                     # trains the teachers it reuses
    python benchmarks/student_encoders.py            # seeds 0,1,2
    python benchmarks/student_encoders.py --seeds=0 --encoders=gru
    python benchmarks/student_encoders.py --encoders=mean --student_epochs=10 \
        --name=student_epochs_10          # longer training, same teacher
    python benchmarks/student_encoders.py --encoders=mean --student_epochs=10 \
        --teacher_epochs=10 --name=teacher_epochs_10  # a longer-trained teacher

Writes benchmarks/results/student_encoders.{json,md}.
"""

import argparse
import dataclasses
import os
import sys

import _common  # pylint: disable=import-error
import quality  # pylint: disable=import-error

import tfdistill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)

from tfdistill.pipeline.run import Run
from tfdistill.pipeline.run import stored_config

METRICS = ("ndcg@10", "hr@10", "mrr")


def encoder_run(base_dir: str, out: str, encoder: str, epochs: int,
                teacher_epochs: int = 0) -> Run:
  """The base run with another student encoder, student epochs and/or
  teacher epochs, in `out`; it shares the base's data, and its teacher
  unless `teacher_epochs` (0: the base's) asks for a teacher trained longer
  or shorter, which is then trained in `out`."""
  base = stored_config(base_dir)
  teacher_epochs = teacher_epochs or base.teacher_epochs
  if (base.student.encoder, base.student_epochs, base.teacher_epochs) == (
      encoder, epochs, teacher_epochs):
    return Run(base_dir, base)
  config = dataclasses.replace(base, student_epochs=epochs,
                               teacher_epochs=teacher_epochs,
                               student=dataclasses.replace(
                                   base.student, encoder=encoder))
  return _common.shared_run(
      base_dir, out, config, ("data", "teacher")
      if teacher_epochs == base.teacher_epochs else ("data",))


def mean_runs(work_dir: str, data: str, seeds, epochs: int) -> list:
  """The runs of `--encoders=mean --student_epochs=<epochs>`, one per seed
  (made from the seed's quality.py run when missing); exits with the
  command to run when a seed's quality.py run has no trained teacher."""
  runs = []
  for seed in seeds:
    base = quality.run_directory(work_dir, data, seed, "mean")
    if not os.path.isfile(os.path.join(base, "teacher", "metrics.json")):
      sys.exit(f"error: {base} holds no trained teacher; run "
               f"`python benchmarks/quality.py --seeds={seed}` first.")
    runs.append(encoder_run(
        base, quality.run_directory(work_dir, data, seed, "mean", epochs),
        "mean", epochs))
  return runs


def rows_for(base_dir: str, out: str, encoder: str, epochs: int,
             teacher_epochs: int = 0) -> dict:
  run = encoder_run(base_dir, out, encoder, epochs, teacher_epochs)
  run.student_alone()
  run.student_kd()
  teacher = run.step_metrics("teacher")
  alone, kd = run.step_metrics("student_alone"), run.step_metrics(
      "student_kd")
  row = {"encoder": encoder, "params": kd["params"],
         "teacher_ndcg@10": teacher["ndcg@10"]}
  for key in METRICS:
    row[f"alone_{key}"] = alone.get(key)
    row[f"kd_{key}"] = kd.get(key)
  return row


def aggregate(per_seed: list, encoders: list) -> list:
  table = []
  for encoder in encoders:
    rows = [r for seed in per_seed for r in seed if r["encoder"] == encoder]
    out = {"encoder": encoder, "seeds": len(rows), "params": rows[0]["params"],
           **_common.mean_and_std(rows, ("teacher_ndcg@10",) + tuple(
               f"{kind}_{m}" for kind in ("alone", "kd") for m in METRICS))}
    out["kd_vs_teacher"] = out["kd_ndcg@10"] / out["teacher_ndcg@10"]
    out["kd_vs_alone"] = out["kd_ndcg@10"] / out["alone_ndcg@10"] - 1
    table.append(out)
  return table


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--encoders", default="mean,cnn,gru")
  parser.add_argument("--data", default="latest-small",
                      help="the quality.py runs to reuse (<data>_seed<N>)")
  parser.add_argument("--base_encoder", default="mean",
                      help="encoder of the quality.py runs whose data and "
                      "teacher are reused (<data>_seed<N>_<encoder>)")
  parser.add_argument("--work_dir", default=str(_common.DEFAULT_OUT / "runs"))
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  parser.add_argument("--student_epochs", type=int, default=0,
                      help="student epochs (default: the base runs' 5)")
  parser.add_argument("--teacher_epochs", type=int, default=0,
                      help="teacher epochs (default: the base run's, "
                      "whose teacher is then reused; otherwise a teacher is "
                      "trained for this many epochs in a new run directory)")
  parser.add_argument("--name", default="student_encoders")
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  encoders = args.encoders.split(",")
  per_seed = []
  epochs = args.student_epochs or quality.BASE["student_epochs"]
  for seed in seeds:
    base = quality.run_directory(args.work_dir, args.data, seed,
                                 args.base_encoder)
    if not os.path.isfile(os.path.join(base, "teacher", "metrics.json")):
      sys.exit(f"error: {base} holds no trained teacher; run "
               f"`python benchmarks/quality.py --seeds={seed} "
               f"--student_encoder={args.base_encoder}` first.")
    teacher_epochs = args.teacher_epochs or quality.DEFAULT_TEACHER_EPOCHS
    per_seed.append([dict(rows_for(base, quality.run_directory(
        args.work_dir, args.data, seed, e, epochs, teacher_epochs), e,
                                   epochs, teacher_epochs), seed=seed)
                     for e in encoders])
  table = aggregate(per_seed, encoders)
  path = _common.write_report(
      args.out, args.name, (f"Students trained {args.student_epochs} epochs"
                            if args.student_epochs else
                            "Student context encoders") +
      f" against one teacher ({args.data}, seeds {args.seeds}"
      + (f", teacher trained {args.teacher_epochs} epochs"
         if args.teacher_epochs else "") + ")",
      {"data": args.data, "seeds": seeds, "encoders": table,
       "per_seed": per_seed},
      [("Mean over seeds (test split, full catalog, seen excluded)", table,
        ["encoder", "seeds", "params", "teacher_ndcg@10", "alone_ndcg@10",
         "kd_ndcg@10", "kd_ndcg@10_std", "kd_hr@10", "kd_vs_teacher",
         "kd_vs_alone"]),
       ("Per seed", [r for seed in per_seed for r in seed],
        ["seed", "encoder", "teacher_ndcg@10", "alone_ndcg@10",
         "kd_ndcg@10"])],
      notes="Each seed's data" + ("" if args.teacher_epochs else ", teacher")
      + " and training settings come from quality.py's run; only the "
      "student's context encoder changes "
      + (f"(and students train {args.student_epochs} epochs) "
         if args.student_epochs else "")
      + (f"(and the teacher is retrained for {args.teacher_epochs} epochs "
         "with the run's seed) " if args.teacher_epochs else "") +
      "(mean: position-weighted mean; cnn: Conv1D(k=3) + max pool; gru: "
      "unrolled GRU).")
  print(path.read_text())


if __name__ == "__main__":
  main()

"""The standard sequential-recommendation benchmark: MovieLens-1M (ml-1m.txt).

tfdistill's pipeline on the file the SASRec/BERT4Rec literature evaluates
on: leave-last-out (each user's last item is the test target, the one
before it validation), every item of the catalog ranked, the user's earlier
items excluded. Per seed, one pipeline run: the teacher (causal
self-attention trained on every position, full softmax over the catalog,
SASRec's formulation), the on-device student trained alone, the same
student distilled (at every position of each user's sequence, one teacher
pass per chunk), compressed (pruning + int8 QAT) and exported to .tflite.
Every training stops after `--patience` epochs without a better validation
NDCG@10 and keeps its best epoch. The published figures on this file are
in the table beside tfdistill's.

    python benchmarks/ml1m.py                     # seeds 0, 1, 2
    python benchmarks/ml1m.py --seeds=0 --teacher_epochs=2 --student_epochs=1 --name=ml1m_quick

Runs resume (each seed's run directory under --work_dir keeps finished
steps). Writes benchmarks/results/<name>.{json,md} (default ml1m).
"""

import argparse
import dataclasses
import json
import os
import time

import _common  # pylint: disable=import-error

import tfdistill  # pylint: disable=unused-import  # Keras 2 before TF loads
import numpy as np

from tfdistill.compress.pipeline import CompressConfig
from tfdistill.data.sources import SourceConfig
from tfdistill.evaluation.statistics import t_interval
from tfdistill.models.factory import TeacherConfig
from tfdistill.models.students import StudentConfig
from tfdistill.pipeline.config import preset
from tfdistill.pipeline.run import Run

ML1M = _common.REPO.parent / "shared" / "data" / "ml-1m-sasrec" / "ml-1m.txt"
STAGES = ("teacher", "student_alone", "student_kd", "compressed", "tflite")
STEPS = ("teacher", "student_alone", "student_kd", "compressed", "export")
STAGE_NAMES = {"teacher": "teacher", "student_alone": "student alone",
               "student_kd": "student distilled",
               "compressed": "student 50% pruned + QAT",
               "tflite": "student int8 .tflite"}
#: Published full-catalog figures on ml-1m.txt (../shared/data/README.md).
PUBLISHED = [
    {"model": "SASRec+ (full softmax, d=64, 2 blocks, L=200)",
     "hr@10": 0.3152, "ndcg@10": 0.1821,
     "source": "Klenitskiy & Vasilev, RecSys 2023"},
    {"model": "gSASRec (256 negatives, gBCE), d=128",
     "hr@10": 0.3003, "ndcg@10": 0.1726,
     "source": "Petrov & Macdonald, RecSys 2023"},
    {"model": "BERT4Rec", "hr@10": 0.2843, "ndcg@10": 0.1537,
     "source": "Klenitskiy & Vasilev, RecSys 2023"},
]


def config_for(args, seed: int):
  base = preset("default", seed=seed)
  return dataclasses.replace(
      base,
      source=SourceConfig(dataset="sequences", path=args.path),
      context_length=args.context_length,
      chunk_batch_size=args.chunk_batch_size,
      teacher=TeacherConfig(embedding_dim=args.teacher_dim, num_blocks=2,
                            num_heads=1, ffn_dim=args.teacher_dim,
                            dropout=args.teacher_dropout, negatives="catalog",
                            objective="all_positions"),
      teacher_epochs=args.teacher_epochs,
      teacher_learning_rate=args.teacher_lr,
      student=StudentConfig(encoder=args.student_encoder,
                            embedding_dim=args.student_dim,
                            hidden_dim=args.student_hidden, dropout=0.1),
      student_epochs=args.student_epochs,
      student_learning_rate=args.student_lr,
      distillation_loss=args.distillation_loss, alpha=args.alpha,
      temperature=args.temperature, student_init=args.student_init,
      early_stopping_patience=args.patience,
      compress=dataclasses.replace(base.compress,
                                   fine_tune_epochs=args.compress_epochs))


def _timed(run: Run, timings: dict, path: str, step: str) -> None:
  """Runs a step; records its wall time when this process finished it (a
  resumed step's earlier processes are in its training_seconds), never
  the moment it takes to read a step finished before."""
  finished_before = run.done(step)
  start = time.time()
  getattr(run, step)()
  if step not in timings and not finished_before:
    timings[step] = time.time() - start
    with open(path, "w") as f:
      json.dump(timings, f, indent=1)


def run_seed(args, seed: int) -> dict:
  run = Run(os.path.join(args.work_dir, f"seed{seed}"), config_for(args,
                                                                    seed))
  run.claim()
  timing_path = os.path.join(run.out, "benchmark_seconds.json")
  timings = {}
  if os.path.exists(timing_path):
    with open(timing_path) as f:
      timings = json.load(f)
  for step in args.steps.split(","):
    _timed(run, timings, timing_path, step)
  stages = (run.metrics() if run.done("export") else
            {step: run.step_metrics(step) for step in STAGES[:4]
             if run.done(step)})
  row = {"seed": seed}
  for stage in STAGES:
    for key in ("hr@10", "ndcg@10", "params", "best_epoch",
                "epochs_trained", "training_seconds"):
      if stages.get(stage, {}).get(key) is not None:
        row[f"{stage}_{key}"] = stages[stage][key]
    if stage in timings:
      row[f"{stage}_seconds"] = timings[stage]
  if "tflite" in stages:
    row["tflite_bytes"] = stages["tflite"]["bytes"]
  if "student_kd_ndcg@10" in row:
    row["kd_vs_teacher"] = (row["student_kd_ndcg@10"]
                            / row["teacher_ndcg@10"])
    row["params_vs_teacher"] = (row["student_kd_params"]
                                / row["teacher_params"])
    if "student_alone_ndcg@10" in row:
      row["kd_vs_alone"] = (row["student_kd_ndcg@10"]
                            / row["student_alone_ndcg@10"] - 1)
  return row


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--path", default=str(ML1M))
  parser.add_argument("--context_length", type=int, default=200)
  parser.add_argument("--chunk_batch_size", type=int, default=32)
  parser.add_argument("--teacher_dim", type=int, default=64)
  parser.add_argument("--teacher_dropout", type=float, default=0.2)
  parser.add_argument("--teacher_lr", type=float, default=1e-3)
  parser.add_argument("--teacher_epochs", type=int, default=200)
  parser.add_argument("--student_encoder", default="mean")
  parser.add_argument("--student_dim", type=int, default=8)
  parser.add_argument("--student_hidden", type=int, default=32)
  parser.add_argument("--student_lr", type=float, default=1e-2)
  parser.add_argument("--student_epochs", type=int, default=20)
  defaults = preset("default")
  parser.add_argument("--distillation_loss",
                      default=defaults.distillation_loss)
  parser.add_argument("--alpha", type=float, default=defaults.alpha)
  parser.add_argument("--temperature", type=float,
                      default=defaults.temperature)
  parser.add_argument("--student_init", default=defaults.student_init)
  parser.add_argument("--compress_epochs", type=int, default=1)
  parser.add_argument("--patience", type=int, default=10)
  parser.add_argument("--steps", default=",".join(STEPS),
                      help="The pipeline steps to run (the table reports "
                      "those finished), e.g. teacher,student_alone,"
                      "student_kd to leave compression and export out.")
  parser.add_argument("--work_dir", default="benchmarks/results/runs/ml1m")
  parser.add_argument("--name", default="ml1m")
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  args = parser.parse_args()
  if not os.path.isfile(args.path):
    parser.exit(2, f"ml1m.py: --path={args.path} does not exist; it is "
                "../shared/data/ml-1m-sasrec/ml-1m.txt on the project's "
                "machines.\n")
  rows = [run_seed(args, int(s)) for s in args.seeds.split(",")]
  numeric = sorted({k for r in rows for k, v in r.items()
                    if k != "seed" and isinstance(v, (int, float))})
  summary = {k: float(np.mean([r[k] for r in rows if k in r]))
             for k in numeric}
  intervals = {k: t_interval([r[k] for r in rows])
               for k in ("teacher_ndcg@10", "teacher_hr@10", "kd_vs_teacher",
                         "kd_vs_alone", "student_kd_ndcg@10",
                         "student_alone_ndcg@10")
               if all(k in r for r in rows)}
  def interval(key):
    if len(rows) < 2 or key not in intervals:
      return "one seed" if len(rows) < 2 else ""
    low, high = intervals[key]
    return f"[{low:.4f}, {high:.4f}]"

  ours = [{"model": f"tfdistill {STAGE_NAMES[stage]}", "hr@10": summary.get(
      f"{stage}_hr@10"), "ndcg@10": summary.get(f"{stage}_ndcg@10"),
           "ndcg@10 95% interval": interval(f"{stage}_ndcg@10"),
           "params": summary.get(f"{stage}_params"),
           "source": f"this run, {len(rows)} seed(s)"}
          for stage in STAGES if f"{stage}_ndcg@10" in summary]
  columns = ["seed"] + [f"{s}_{k}" for s in STAGES
                        for k in ("hr@10", "ndcg@10")] + [
                            "kd_vs_teacher", "kd_vs_alone",
                            "params_vs_teacher", "teacher_seconds",
                            "teacher_training_seconds",
                            "teacher_best_epoch", "teacher_epochs_trained",
                            "student_alone_epochs_trained",
                            "student_kd_epochs_trained"]
  path = _common.write_report(
      args.out, args.name,
      "MovieLens-1M (ml-1m.txt): tfdistill against the published figures "
      "(leave-last-out, full catalog, earlier items excluded)",
      {"rows": rows, "summary": summary, "intervals": intervals,
       "published": PUBLISHED, "settings": vars(args)},
      [("tfdistill and the literature", ours + PUBLISHED,
        ["model", "hr@10", "ndcg@10", "ndcg@10 95% interval", "params",
         "source"]),
       ("Per seed", rows, columns)],
      notes=(
          f"Teacher: causal self-attention, d={args.teacher_dim}, 2 blocks, "
          f"1 head, L={args.context_length}, dropout {args.teacher_dropout}, "
          "trained on every position with the full softmax over the "
          f"catalog, Adam {args.teacher_lr}, {args.chunk_batch_size} chunks "
          "per batch, item ids only (as the published models). Student: "
          f"{args.student_encoder} encoder, d={args.student_dim}, the same "
          "seeded student alone (one context window per target) and "
          f"distilled ({args.distillation_loss}, alpha {args.alpha}, "
          f"temperature {args.temperature}, student init "
          f"{args.student_init}, at every position of each chunk, each "
          "position reading the same window as the student alone). Every "
          "training stops "
          f"after {args.patience} epochs without a better validation "
          "NDCG@10 and keeps its best epoch. Protocol differences: the "
          "published SASRec+ and BERT4Rec figures use every user's last "
          "item as test (as here); gSASRec's hold out 512 validation users. "
          "Seconds are wall time on this machine's 2 CPU cores, which other "
          "work (test runs) shared for part of each step: teacher_seconds "
          "is the step in the process that finished it, "
          "teacher_training_seconds its epochs summed over every process "
          "that trained them (a resumed training included)."))
  print(path.read_text())


if __name__ == "__main__":
  main()

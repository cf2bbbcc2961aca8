"""Does distillation help? One student per distillation loss vs no teacher.

On MovieLens latest-small (sequential next-item retrieval, leave-last-out,
full-catalog ranking with seen items excluded) this trains the
self-attention teacher once, then the same small student

* without a teacher (hard labels only), and
* with the Distiller and each distillation loss (alpha = 0.5),

with the same seed, optimizer and epochs, and reports test NDCG@10, HR@10
and MRR, the parameter ratio and the gain over the undistilled student.

    python benchmarks/distillation.py            # real data, ~45 min on 2 CPUs
    python benchmarks/distillation.py --quick    # synthetic smoke run, seconds
"""

import argparse
import os
import sys
import time

import _common  # pylint: disable=import-error

import tfdistill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import tf_keras

from tfdistill.data import examples
from tfdistill.data.prepare import prepare
from tfdistill.data.sources import load_dataset
from tfdistill.data.sources import SourceConfig
from tfdistill.data.synthetic import SyntheticConfig
from tfdistill.distill import ContrastiveAlignment
from tfdistill.distill import Distiller
from tfdistill.distill import HintDistillation
from tfdistill.distill import ListwiseDistillation
from tfdistill.distill import RankingDistillation
from tfdistill.distill import RelaxedRankingDistillation
from tfdistill.distill import SoftTargetKL
from tfdistill.distill import SoftTargetMSE
from tfdistill.evaluation.evaluate import evaluate_retrieval
from tfdistill.models.factory import build_sequential_teacher
from tfdistill.models.factory import build_student
from tfdistill.models.factory import TeacherConfig
from tfdistill.models.io import count_parameters
from tfdistill.models.io import load_model
from tfdistill.models.io import save_model
from tfdistill.models.students import StudentConfig
from tfdistill.reporting import fit_verbosity

LOSSES = {
    "soft_target_kl": lambda: [SoftTargetKL(temperature=2.0)],
    "soft_target_mse": lambda: [SoftTargetMSE()],
    "listwise_sampled": lambda: [ListwiseDistillation(num_candidates=1000)],
    "ranking_tang_wang": lambda: [RankingDistillation(top_k=10)],
    "relaxed_ranking_de_rrd": lambda: [RelaxedRankingDistillation(top_k=10)],
    "contrastive": lambda: [ContrastiveAlignment()],
    "hint": lambda: [HintDistillation()],
    "kl+ranking": lambda: [SoftTargetKL(temperature=2.0),
                           RankingDistillation(top_k=10)],
}


def _args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true",
                      help="tiny synthetic data and models (smoke test)")
  parser.add_argument("--losses", default=",".join(LOSSES),
                      help="comma-separated subset of " + ",".join(LOSSES))
  parser.add_argument("--epochs", type=int, default=5)
  parser.add_argument("--teacher_epochs", type=int, default=5)
  parser.add_argument("--context_length", type=int, default=20)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  parser.add_argument("--work_dir", default="",
                      help="keep the trained teacher here and reuse it")
  return parser.parse_args(argv)


def _data(args):
  if args.quick:
    return load_dataset(SourceConfig(synthetic=SyntheticConfig(
        num_users=150, num_items=120, mean_interactions_per_user=15,
        seed=args.seed)))
  if not (_common.SHARED_MOVIELENS / "ml-latest-small.zip").is_file():
    sys.exit(f"error: {_common.SHARED_MOVIELENS}/ml-latest-small.zip not "
             "found; this benchmark needs the real MovieLens archive "
             "(or pass --quick).")
  return load_dataset(SourceConfig(
      dataset="movielens/latest-small-ratings",
      manual_dir=str(_common.SHARED_MOVIELENS),
      data_dir=os.environ.get("TFDS_DATA_DIR") or None))


def _teacher(args, prepared, train):
  config = (TeacherConfig(embedding_dim=16, num_blocks=1, num_heads=2,
                          ffn_dim=16) if args.quick else TeacherConfig())
  path = os.path.join(args.work_dir, "teacher") if args.work_dir else ""
  if path and os.path.isdir(path):
    print(f"reusing the teacher in {path}", flush=True)
    return load_model(path), 0.0
  tf_keras.utils.set_random_seed(args.seed)
  teacher = build_sequential_teacher(prepared, args.context_length, config)
  teacher.compile(tf_keras.optimizers.Adam(1e-3))
  start = time.time()
  teacher.fit(train, epochs=args.teacher_epochs, verbose=fit_verbosity())
  if path:
    save_model(teacher, path)
  return teacher, time.time() - start


def main(argv=None):
  args = _args(argv)
  prepared = prepare(_data(args))
  length = args.context_length
  train = examples.sequence_examples(prepared, "train", length,
                                     batch_size=256, shuffle=True,
                                     seed=args.seed)
  test = examples.evaluation_set(prepared, "test", length)
  teacher, teacher_seconds = _teacher(args, prepared, train)
  teacher_params = count_parameters(teacher)
  student_config = (StudentConfig(embedding_dim=8, hidden_dim=16)
                    if args.quick else StudentConfig(embedding_dim=16,
                                                     hidden_dim=64))
  rows = [dict(model="teacher", loss="(retrieval, catalog softmax)",
               parameters=teacher_params, seconds=round(teacher_seconds),
               **evaluate_retrieval(teacher, test))]

  def student_row(name, student, seconds):
    row = dict(model="student", loss=name,
               parameters=count_parameters(student),
               seconds=round(seconds), **evaluate_retrieval(student, test))
    row["params_vs_teacher"] = row["parameters"] / teacher_params
    print(f"{name}: test ndcg@10={row['ndcg@10']:.4f}", flush=True)
    return row

  tf_keras.utils.set_random_seed(args.seed)
  baseline = build_student(prepared, length, student_config)
  baseline.compile(tf_keras.optimizers.Adam(2e-3),
                   loss=tf_keras.losses.SparseCategoricalCrossentropy(
                       from_logits=True))
  start = time.time()
  baseline.fit(train, epochs=args.epochs, verbose=fit_verbosity())
  rows.append(student_row("none (no teacher)", baseline, time.time() - start))
  for name in args.losses.split(","):
    if name not in LOSSES:
      sys.exit(f"error: unknown --losses entry {name!r}; choose from "
               f"{','.join(LOSSES)}.")
    tf_keras.utils.set_random_seed(args.seed)
    student = build_student(prepared, length, student_config)
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=tf_keras.optimizers.Adam(2e-3), alpha=0.5,
                      distillation_loss=LOSSES[name]())
    start = time.time()
    distiller.fit(train, epochs=args.epochs, verbose=fit_verbosity())
    rows.append(student_row(name, distiller.student, time.time() - start))
  base = rows[1]["ndcg@10"]
  for row in rows[1:]:
    row["ndcg_gain_vs_no_teacher"] = (row["ndcg@10"] / base - 1.0
                                      if base else float("nan"))
  columns = ["model", "loss", "parameters", "params_vs_teacher", "ndcg@10",
             "hr@10", "mrr", "ndcg_gain_vs_no_teacher", "seconds"]
  dataset = "synthetic (quick)" if args.quick else (
      "movielens/latest-small-ratings")
  path = _common.write_report(
      args.out, "distillation_quick" if args.quick else "distillation",
      "Distillation losses: student with vs without a teacher",
      {"dataset": dataset, "context_length": length, "epochs": args.epochs,
       "teacher_epochs": args.teacher_epochs, "seed": args.seed,
       "student_config": student_config.to_json(), "rows": rows},
      [(f"{dataset}, test split, full catalog, seen items excluded", rows,
        columns)],
      notes="Same seed, optimizer (Adam 2e-3), batch 256 and epochs for "
            "every student; Distiller alpha = 0.5.")
  print(f"wrote {path}")
  return rows


if __name__ == "__main__":
  main()

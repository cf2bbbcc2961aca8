"""The student's softmax over the catalog, dense or sampled: what it costs.

`SampledCatalogSoftmax` lets a student distilled from a cached top-K skip
the [batch, catalog] logits. This script asks what that does to quality:
on a run's data and trained teacher (the default preset on the embedded
synthetic data unless flags say otherwise) it caches the teacher's top-50
over the training examples, then trains the same initial student four
ways with the same budget and the same early stopping on validation
NDCG@10 (best epoch restored):

* alone, softmax over the catalog (dense) and sampled;
* distilled from the cached top-50 (the run's alpha, KL at T=1), dense and
  sampled.

It reports test NDCG@10 / HR@10, the epoch each stopped at, and the median
training step time of each (speed.py's method). Seeds give mean and 95%
interval.

    python benchmarks/sampled_softmax.py                      # ~15 min
    python benchmarks/sampled_softmax.py --negatives=256 --seeds=0,1,2
"""

import argparse
import os

import _common  # pylint: disable=import-error
import speed  # pylint: disable=import-error

import tfdistill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import tf_keras

from tfdistill.distill import cache_teacher_signal
from tfdistill.distill import cached_examples
from tfdistill.distill import cached_teacher
from tfdistill.distill import compiled_trainer
from tfdistill.distill import SoftTargetKL
from tfdistill.evaluation.callbacks import RankingEvaluation
from tfdistill.evaluation.evaluate import evaluate_retrieval
from tfdistill.evaluation.statistics import t_interval
from tfdistill.models.factory import build_student
from tfdistill.pipeline.config import preset
from tfdistill.pipeline.run import Run

VARIANTS = ("alone_dense", "alone_sampled", "distilled_dense",
            "distilled_sampled")
TOP_K = 50


def _train(run, variant: str, cache: str, negatives: int, epochs: int,
           patience: int) -> dict:
  config = run.config
  tf_keras.utils.set_random_seed(config.seed + 2)
  student = build_student(run.prepared, config.context_length, config.student)
  distilled = variant.startswith("distilled")
  trainer = compiled_trainer(
      student, cached_teacher(cache) if distilled else None,
      tf_keras.optimizers.Adam(config.student_learning_rate),
      alpha=config.alpha, temperature=1.0,
      distillation_loss=[SoftTargetKL(temperature=1.0)],
      student_negatives=negatives if variant.endswith("sampled") else 0,
      seed=config.seed)
  data = (cached_examples(cache, batch_size=config.batch_size, shuffle=True,
                          seed=config.seed) if distilled else
          run.train_data())
  stop = tf_keras.callbacks.EarlyStopping(
      "val_ndcg@10", mode="max", patience=patience,
      restore_best_weights=True)
  history = trainer.fit(
      data, epochs=epochs, verbose=0,
      callbacks=[RankingEvaluation(run.evaluation("validation")), stop])
  curve = history.history["val_ndcg@10"]
  test = evaluate_retrieval(student, run.evaluation("test"))
  step = speed.step_times({variant: (trainer, speed.in_memory(data, 8))},
                          steps=5, rounds=3)[variant]
  return {"variant": variant, "ndcg@10": test["ndcg@10"],
          "hr@10": test["hr@10"], "best_epoch": curve.index(max(curve)) + 1,
          "epochs_run": len(curve), "step_ms": 1000 * step}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--preset", default="default")
  parser.add_argument("--seeds", default="0")
  parser.add_argument("--negatives", type=int, default=256)
  parser.add_argument("--epochs", type=int, default=20)
  parser.add_argument("--patience", type=int, default=3)
  parser.add_argument("--work_dir",
                      default=str(_common.DEFAULT_OUT / "runs" / "sampled"))
  parser.add_argument("--name", default="sampled_softmax")
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  args = parser.parse_args()
  rows = []
  for seed in [int(s) for s in args.seeds.split(",")]:
    run = Run(os.path.join(args.work_dir, f"{args.preset}_seed{seed}"),
              preset(args.preset, seed=seed))
    teacher = run.teacher()
    cache = os.path.join(run.out, "teacher_top50.tfrecord")
    if not os.path.exists(cache):
      cache_teacher_signal(teacher, run.train_data(), cache, top_k=TOP_K)
    for variant in VARIANTS:
      row = dict(seed=seed, **_train(run, variant, cache, args.negatives,
                                     args.epochs, args.patience))
      print(row, flush=True)
      rows.append(row)
  summary = []
  for variant in VARIANTS:
    mine = [r for r in rows if r["variant"] == variant]
    entry = {"variant": variant, "seeds": len(mine)}
    for key in ("ndcg@10", "hr@10", "step_ms"):
      values = [r[key] for r in mine]
      entry[key] = sum(values) / len(values)
      if len(values) > 1:
        entry[f"{key}_95"] = t_interval(values)
    entry["best_epochs"] = [r["best_epoch"] for r in mine]
    summary.append(entry)
  by_name = {s["variant"]: s for s in summary}
  for s in summary:
    s["ndcg_vs_dense"] = s["ndcg@10"] / by_name[
        s["variant"].replace("sampled", "dense")]["ndcg@10"]
    s["step_vs_dense"] = s["step_ms"] / by_name[
        s["variant"].replace("sampled", "dense")]["step_ms"]
  path = _common.write_report(
      args.out, args.name,
      "The student's softmax over the catalog, dense or sampled",
      {"rows": rows, "summary": summary, "settings": vars(args)},
      [("Mean over seeds", summary,
        ["variant", "seeds", "ndcg@10", "hr@10", "ndcg_vs_dense", "step_ms",
         "step_vs_dense", "best_epochs"]),
       ("Each seed", rows, ["seed", "variant", "ndcg@10", "hr@10",
                            "best_epoch", "epochs_run", "step_ms"])],
      notes=(f"Sampled: SampledCatalogSoftmax with {args.negatives} uniform "
             "items per step (plus the label and, distilled, the teacher's "
             "top-50). Distilled: from the teacher's cached top-50, KL at "
             "T=1, the preset's alpha. Every variant: the same initial "
             f"student, at most {args.epochs} epochs, early stopping on "
             f"validation NDCG@10 with patience {args.patience}, best epoch "
             "restored. Step: median ms of the compiled train step on "
             "in-memory batches."))
  print(path.read_text())


if __name__ == "__main__":
  main()

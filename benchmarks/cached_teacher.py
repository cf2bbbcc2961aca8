"""Distilling from a cached teacher top-K on latest-small: quality and step.

The speed target for a cached teacher signal is about the training step; this
script puts each cached-signal loss's step time next to the quality it
reaches, on real data, so that a fast setting is not quoted without its
NDCG. For each seed it takes the run of a named configuration (`--config`,
configs.py: data, trained teacher, the student trained alone, the student
distilled online with the run's loss; trained here when missing), caches the teacher's top-K over the training examples once (in
the run directory), and trains the run's distilled student again (the
same initial weights, optimizer, alpha, epoch budget and early stopping;
its temperature unless `--temperature` sets another) with the Distiller
reading the cache, once per loss in `--losses`. Step times are
those of the compiled train function over in-memory batches, the trainers
taking turns (as in speed.py).

    python benchmarks/cached_teacher.py --config=latest_small
    python benchmarks/cached_teacher.py --config=latest_small --losses=kl \
        --temperature=1 --name=cached_teacher_t1

Writes benchmarks/results/<name>.{json,md} (default name cached_teacher).
"""

import argparse
import json
import os

import _common  # pylint: disable=import-error
import configs  # pylint: disable=import-error
import run as runner  # pylint: disable=import-error
import speed  # pylint: disable=import-error

import tfdistill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import tf_keras

from tfdistill.data import examples
from tfdistill.distill import Distiller
from tfdistill.distill.cache import cache_teacher_signal
from tfdistill.distill.cache import cached_examples
from tfdistill.distill.cache import cached_teacher
from tfdistill.evaluation.callbacks import RankingEvaluation
from tfdistill.evaluation.evaluate import evaluate_retrieval
from tfdistill.pipeline.config import distillation_losses
from tfdistill.reporting import fit_verbosity
from tfdistill.resume import BestEpoch

METRICS = ("ndcg@10", "hr@10", "mrr")


def _alone(run):
  """The run's initial student, compiled as its student alone."""
  _, trainer = run.student_trainer()
  return trainer


def _distiller(run, cache: str, loss: str, temperature: float) -> Distiller:
  """The run's initial student, its item table started as the run's
  distilled student's (from the run's teacher when the configuration says
  so), distilled from the cache."""
  config = run.config
  student, _ = run.student_trainer()
  run.init_item_table(student, run.teacher())
  distiller = Distiller(student=student, teacher=cached_teacher(cache))
  distiller.compile(optimizer=tf_keras.optimizers.Adam(
      config.student_learning_rate), alpha=config.alpha,
                    temperature=temperature,
                    distillation_loss=distillation_losses(loss, temperature))
  return distiller


def _teacher_cache(run, top_k: int) -> str:
  path = os.path.join(run.out, f"teacher_top{top_k}.tfrecord")
  if not os.path.isfile(path):
    data = examples.sequence_examples(run.prepared, "train",
                                      run.config.context_length,
                                      batch_size=run.config.batch_size)
    cache_teacher_signal(run.teacher(), data, path, top_k=top_k,
                         overwrite=True)
  return path


def _quality(run, cache: str, loss: str, temperature: float) -> dict:
  """Test metrics of the student distilled from the cache (kept in the run
  directory, so that a rerun reuses them)."""
  tag = ("" if temperature == run.config.temperature
         else f"_t{temperature:g}")
  name = f"cached_{os.path.basename(cache)}_{loss}{tag}"
  path = os.path.join(run.out, f"{name}.json")
  if os.path.isfile(path):
    with open(path) as f:
      values = json.load(f)
    # Kept unless written before these students stopped early.
    if "best_epoch" in values:
      return values
  config = run.config
  distiller = _distiller(run, cache, loss, temperature)
  # The run's rule for its students: stop after its patience without a
  # better validation NDCG@10, keep the best epoch.
  best = BestEpoch(os.path.join(run.out, f"{name}_best_epoch"),
                   "val_ndcg@10", config.early_stopping_patience)
  distiller.fit(cached_examples(cache, batch_size=config.batch_size,
                                shuffle=True, seed=config.seed),
                epochs=config.student_epochs, verbose=fit_verbosity(),
                callbacks=[RankingEvaluation(run.evaluation("validation")),
                           best])
  result = evaluate_retrieval(distiller.student, run.evaluation("test"))
  values = {k: float(result[k]) for k in METRICS}
  values.update(best_epoch=best.best_epoch + 1,
                epochs_trained=best.epochs_trained)
  with open(path, "w") as f:
    json.dump(values, f, indent=1)
  return values


def _step_ratios(run, cache: str, losses: list, temperature: float,
                 steps: int, rounds: int) -> dict:
  """Seconds per step of each cached-signal Distiller / the student alone."""
  batch = run.config.batch_size
  train = speed.in_memory(examples.sequence_examples(
      run.prepared, "train", run.config.context_length, batch_size=batch),
                          steps)
  cached = speed.in_memory(cached_examples(cache, batch_size=batch), steps)
  trainers = {"alone": (_alone(run), train)}
  trainers.update({loss: (_distiller(run, cache, loss, temperature), cached)
                   for loss in losses})
  times = speed.step_times(trainers, steps, rounds)
  return {loss: times[loss] / times["alone"] for loss in losses}


def seed_rows(args, seed: int) -> list:
  benchmark = configs.BENCHMARKS[args.config]
  run = runner.open_run(benchmark, seed, args)
  for step in ("teacher", "student_alone", "student_kd"):
    runner.run_step(benchmark, run, step, args)
  cache = _teacher_cache(run, args.top_k)
  temperature = args.temperature or run.config.temperature
  ratios = _step_ratios(run, cache, args.losses, temperature, args.steps,
                        args.rounds)
  teacher = run.step_metrics("teacher")
  rows = [dict(seed=seed, variant=step, loss=(run.config.distillation_loss
                                               if step == "student_kd"
                                               else ""),
               teacher_signal={"student_kd": "online"}.get(step, ""),
               temperature=(run.config.temperature if step == "student_kd"
                            else ""),
               **{k: run.step_metrics(step).get(k) for k in METRICS + (
                   "best_epoch", "epochs_trained")})
          for step in ("teacher", "student_alone", "student_kd")]
  rows += [dict(seed=seed, variant="student_kd_cached", loss=loss,
                 teacher_signal=f"cached top-{args.top_k}",
                temperature=temperature, step_vs_alone=ratios[loss],
                **_quality(run, cache, loss, temperature))
           for loss in args.losses]
  alone = run.step_metrics("student_alone")
  for row in rows:
    row["vs_teacher"] = row["ndcg@10"] / teacher["ndcg@10"]
    row["vs_alone"] = row["ndcg@10"] / alone["ndcg@10"] - 1
  return rows


def aggregate(rows: list) -> list:
  table = []
  for variant, loss in dict.fromkeys((r["variant"], r["loss"]) for r in rows):
    group = [r for r in rows if (r["variant"], r["loss"]) == (variant, loss)]
    table.append({"variant": variant, "loss": loss,
                  "teacher_signal": group[0]["teacher_signal"],
                  "temperature": group[0]["temperature"],
                  "seeds": len(group), **_common.mean_and_std(
                      group, METRICS + ("vs_teacher", "vs_alone",
                                        "step_vs_alone"))})
  return table


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--config", default="latest_small",
                      choices=sorted(configs.BENCHMARKS),
                      help="the named configuration (configs.py) whose runs "
                      "give the teacher and students")
  parser.add_argument("--data_root", default=str(configs.DATA_ROOT))
  parser.add_argument("--losses", default="kl,kl_teacher_items",
                      help="distillation losses to train with the cached "
                      "signal, comma-separated (names as --distillation_loss)")
  parser.add_argument("--top_k", type=int, default=50)
  parser.add_argument("--temperature", type=float, default=0.0,
                      help="temperature of the cached-signal students "
                      "(default: the run's, as its online student)")
  parser.add_argument("--steps", type=int, default=40,
                      help="training steps per timing round")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--work_dir", default=str(_common.DEFAULT_OUT / "runs"))
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  parser.add_argument("--name", default="cached_teacher")
  args = parser.parse_args()
  args.losses = args.losses.split(",")
  distillation_losses("+".join(args.losses), 1.0)  # fails early on a typo
  rows = [row for seed in args.seeds.split(",")
          for row in seed_rows(args, int(seed))]
  table = aggregate(rows)
  path = _common.write_report(
      args.out, args.name,
      f"Distilling from a cached teacher top-{args.top_k} ({args.config}, "
      f"seeds {args.seeds})", {"variants": table, "per_seed": rows},
      [("Mean over seeds (test split, full catalog, seen excluded)", table,
        ["variant", "loss", "teacher_signal", "temperature", "seeds",
         "ndcg@10",
         "ndcg@10_std", "hr@10", "vs_teacher", "vs_alone", "step_vs_alone",
         "step_vs_alone_std"]),
       ("Per seed", rows, ["seed", "variant", "loss", "temperature",
                           "ndcg@10", "best_epoch", "epochs_trained",
                           "step_vs_alone"])],
      notes="student_kd distils online with the run's loss (a hint term "
      "needs the teacher's hidden layer, which a top-K cache does not "
      "hold); student_kd_cached rows train the same initial student (item "
      "table included) from the cached top-K, with the same epoch budget "
      "and early stopping on validation NDCG@10 (best epoch kept). "
      "step_vs_alone: seconds per training step over the student-alone "
      "step, measured in one process "
      "(median of rounds, trainers taking turns). kl normalises the "
      "student's softmax over the catalog; kl_teacher_items over the "
      "teacher's K items (SoftTargetKL(normalize_over='teacher_items')); "
      "at temperature 1, kl takes the student's catalog normaliser from the "
      "hard loss instead of a second pass over the catalog.")
  print(path.read_text())


if __name__ == "__main__":
  main()

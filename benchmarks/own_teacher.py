"""A teacher trained outside tfdistill, distilled from its SavedModel.

The model of the TFRS sequential-retrieval tutorial (a GRU over the previous
movie ids, `tfrs.tasks.Retrieval`, string movie ids through StringLookup),
trained with plain `tf.keras` on MovieLens latest-small and saved with
`tf.saved_model.save` as a query signature and a candidate signature. The
pipeline then takes it with `--teacher=` (no teacher training) and trains
the student alone and distilled, with the same initial student, epochs and
optimizer. Per seed: teacher / student alone / distilled NDCG@10 on the
test users (full catalog, earlier items excluded).

    python benchmarks/own_teacher.py                 # seeds 0, 1, 2
    python benchmarks/own_teacher.py --seeds=0 --teacher_epochs=2 --name=own_teacher_quick

Writes benchmarks/results/<name>.{json,md} (default own_teacher).
"""

import argparse
import dataclasses
import os

import _common  # pylint: disable=import-error

import tfdistill  # pylint: disable=unused-import  # Keras 2 before TF loads
import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfdistill.data import examples
from tfdistill.data.prepare import prepare
from tfdistill.data.sources import load_dataset
from tfdistill.data.sources import SourceConfig
from tfdistill.evaluation.statistics import t_interval
from tfdistill.pipeline.config import preset
from tfdistill.pipeline.run import Run

DATASET = "movielens/latest-small-ratings"
KEYS = ("teacher", "student_alone", "student_kd")


class SequentialModel(tfrs.Model):
  """The tutorial's model, as a user writes it."""

  def __init__(self, movie_ids, dim: int):
    super().__init__()
    lookup = lambda: tf.keras.layers.StringLookup(vocabulary=movie_ids,
                                                  mask_token=None)
    self.query_model = tf.keras.Sequential([
        lookup(), tf.keras.layers.Embedding(len(movie_ids) + 1, dim),
        tf.keras.layers.GRU(dim)])
    self.candidate_model = tf.keras.Sequential([
        lookup(), tf.keras.layers.Embedding(len(movie_ids) + 1, dim)])
    self.task = tfrs.tasks.Retrieval()

  def compute_loss(self, features, training=False):
    return self.task(self.query_model(features["context_movie_id"]),
                     self.candidate_model(features["label_movie_id"]),
                     compute_metrics=False)


class Export(tf.Module):
  """Query and candidate signatures, as a serving export holds them."""

  def __init__(self, model, length: int):
    super().__init__()
    self.model = model
    self.query = tf.function(
        lambda history: {"embedding": model.query_model(history)},
        input_signature=[tf.TensorSpec([None, length], tf.string,
                                       name="history")])
    self.candidates = tf.function(
        lambda movie_id: {"embedding": model.candidate_model(movie_id)},
        input_signature=[tf.TensorSpec([None], tf.string, name="movie_id")])


def _strings(prepared, indices):
  keys = np.asarray(prepared.items.tokens, dtype=object)[indices]
  keys[indices == 0] = ""
  return keys.astype(str)


def train_teacher(prepared, length: int, args, seed: int, path: str) -> str:
  """Trains the tutorial model outside tfdistill; saves it to `path`."""
  if os.path.isfile(os.path.join(path, "saved_model.pb")):
    return path
  tf.keras.utils.set_random_seed(seed)
  train = examples.sequence_arrays(prepared, "train", length)
  model = SequentialModel(list(prepared.items.tokens[2:]), args.teacher_dim)
  model.compile(optimizer=tf.keras.optimizers.Adagrad(args.teacher_lr))
  data = tf.data.Dataset.from_tensor_slices({
      "context_movie_id": _strings(prepared, train.contexts),
      "label_movie_id": _strings(prepared, train.targets)}).shuffle(
          100_000, seed=seed).batch(args.teacher_batch)
  model.fit(data, epochs=args.teacher_epochs, verbose=2)
  export = Export(model, length)
  tf.saved_model.save(export, path, signatures={
      "serving_default": export.query, "candidates": export.candidates})
  return path


def run_seed(args, seed: int) -> dict:
  base = preset("default", seed=seed)
  source = SourceConfig(dataset=DATASET, manual_dir=args.manual_dir,
                        data_dir=args.data_dir)
  prepared = prepare(load_dataset(source), base.prepare)
  work = os.path.join(args.work_dir, f"seed{seed}")
  teacher = train_teacher(prepared, base.context_length, args, seed,
                          os.path.join(work, "teacher_savedmodel"))
  config = dataclasses.replace(
      base, source=source, teacher_path=teacher,
      student_epochs=args.student_epochs)
  run = Run(os.path.join(work, "run"), config)
  run.student_kd()
  run.student_alone()
  row = {"seed": seed}
  for key in KEYS:
    metrics = run.step_metrics(key)
    row[key] = metrics["ndcg@10"]
    row[f"{key}_params"] = metrics["params"]
  row["kd_vs_teacher"] = row["student_kd"] / row["teacher"]
  row["kd_vs_alone"] = row["student_kd"] / row["student_alone"] - 1
  row["params_vs_teacher"] = row["student_kd_params"] / row["teacher_params"]
  return row


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--teacher_epochs", type=int, default=10)
  parser.add_argument("--teacher_dim", type=int, default=64)
  parser.add_argument("--teacher_lr", type=float, default=0.1)
  parser.add_argument("--teacher_batch", type=int, default=128)
  parser.add_argument("--student_epochs", type=int, default=5)
  parser.add_argument("--manual_dir", default=str(_common.SHARED_MOVIELENS))
  parser.add_argument("--data_dir", default=os.path.expanduser(
      "~/tensorflow_datasets"))
  parser.add_argument("--work_dir",
                      default="benchmarks/results/runs/own_teacher")
  parser.add_argument("--name", default="own_teacher")
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  args = parser.parse_args()
  rows = [run_seed(args, int(s)) for s in args.seeds.split(",")]
  summary = {key: float(np.mean([r[key] for r in rows]))
             for key in KEYS + ("kd_vs_teacher", "kd_vs_alone",
                                "params_vs_teacher")}
  summary["kd_vs_alone_ci95"] = t_interval([r["kd_vs_alone"] for r in rows])
  summary["kd_vs_teacher_ci95"] = t_interval([r["kd_vs_teacher"]
                                             for r in rows])
  columns = ["seed", "teacher", "student_alone", "student_kd",
             "kd_vs_teacher", "kd_vs_alone", "params_vs_teacher"]
  mean_row = dict(summary, seed="mean")
  path = _common.write_report(
      args.out, args.name,
      "A TFRS tutorial GRU trained outside tfdistill, distilled from its "
      "SavedModel (MovieLens latest-small, NDCG@10)",
      {"rows": rows, "summary": summary, "settings": vars(args)},
      [("Per seed", rows + [mean_row], columns)],
      notes=("Teacher: the TFRS sequential-retrieval tutorial's model "
             f"(GRU {args.teacher_dim}, Adagrad {args.teacher_lr}, "
             f"{args.teacher_epochs} epochs, in-batch softmax), trained with "
             "tf.keras and saved with tf.saved_model.save; distilled with "
             "`tfdistill pipeline --teacher=` defaults (KL + ranking, "
             f"{args.student_epochs} student epochs, the same initial student "
             "alone and distilled). 95% t-intervals over seeds: "
             f"kd_vs_alone {summary['kd_vs_alone_ci95']}, kd_vs_teacher "
             f"{summary['kd_vs_teacher_ci95']}."))
  print(path.read_text())


if __name__ == "__main__":
  main()

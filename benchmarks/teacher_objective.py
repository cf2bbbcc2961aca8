"""Training targets per second: all positions at once against one target
per sliding window, for the same teacher, in one run.

The sliding-window trainer (`objective="last"`) encodes a context window per
training target; the all-position trainer (`objective="all_positions"`,
causal) encodes each chunk of a user's sequence once and trains a target at
every position. Both cover the same training targets per epoch. Each
configuration trains `--steps` timed steps after `--warmup` steps, in turn,
in this process; targets are the non-padding targets of those batches.

    python benchmarks/teacher_objective.py            # ml-1m.txt if present
    python benchmarks/teacher_objective.py --lengths=50 --steps=10 --name=teacher_objective_quick

Writes benchmarks/results/<name>.{json,md} (default teacher_objective).
"""

import argparse
import time

import _common  # pylint: disable=import-error

import tfdistill  # pylint: disable=unused-import  # Keras 2 before TF loads
import numpy as np
import tensorflow as tf
import tf_keras

from tfdistill.data import examples
from tfdistill.data.prepare import prepare
from tfdistill.data.sources import load_dataset
from tfdistill.data.sources import SourceConfig
from tfdistill.models.factory import build_sequential_teacher
from tfdistill.models.factory import TeacherConfig

SASREC = _common.REPO.parent / "shared" / "data" / "ml-1m-sasrec" / "ml-1m.txt"


def _data(length: int, objective: str, prepared, batch: int):
  if objective == "all_positions":
    features, targets = examples.sequence_chunks(prepared, length)
    data = tf.data.Dataset.from_tensor_slices((features, targets))
  else:
    arrays = examples.sequence_arrays(prepared, "train", length)
    data = tf.data.Dataset.from_tensor_slices(
        ({"context": arrays.contexts}, arrays.targets))
  return data.shuffle(20_000, seed=0).repeat().batch(batch).prefetch(2)


def measure(prepared, length: int, objective: str, negatives: str, args):
  tf_keras.utils.set_random_seed(0)
  teacher = build_sequential_teacher(prepared, length, TeacherConfig(
      embedding_dim=args.dim, num_blocks=2, num_heads=1, ffn_dim=args.dim,
      dropout=0.2, objective=objective, negatives=negatives,
      num_extra_negatives=args.negatives))
  teacher.compile(tf_keras.optimizers.Adam(1e-3))
  batch = args.chunk_batch if objective == "all_positions" else args.batch
  data = _data(length, objective, prepared, batch)
  teacher.fit(data, steps_per_epoch=args.warmup, epochs=1, verbose=0)
  batches = list(data.skip(args.warmup).take(args.steps))
  targets = sum(int(np.count_nonzero(np.asarray(y))) for _, y in batches)
  timed = tf.data.Dataset.from_tensor_slices(tuple(
      tf.concat([b[i] if i else b[0]["context"] for b in batches], 0)
      for i in range(2))).map(lambda c, y: ({"context": c}, y)).batch(batch)
  start = time.perf_counter()
  teacher.fit(timed, epochs=1, verbose=0)
  seconds = time.perf_counter() - start
  return {"length": length, "objective": objective, "negatives": negatives,
          "batch": batch, "steps": args.steps, "targets": targets,
          "seconds": seconds, "targets_per_second": targets / seconds}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--lengths", default="50,200")
  parser.add_argument("--negatives_modes", default="catalog,mixed")
  parser.add_argument("--dim", type=int, default=64)
  parser.add_argument("--negatives", type=int, default=256)
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--chunk_batch", type=int, default=32)
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--name", default="teacher_objective")
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  args = parser.parse_args()
  source = (SourceConfig(dataset="sequences", path=str(SASREC))
            if SASREC.is_file() else SourceConfig())
  prepared = prepare(load_dataset(source))
  rows = []
  for length in (int(v) for v in args.lengths.split(",")):
    for negatives in args.negatives_modes.split(","):
      pair = {o: measure(prepared, length, o, negatives, args)
              for o in ("last", "all_positions")}
      rows.extend(pair.values())
      rows.append({"length": length, "objective": "ratio",
                   "negatives": negatives,
                   "targets_per_second": pair["all_positions"][
                       "targets_per_second"] / pair["last"][
                           "targets_per_second"]})
      print(rows[-3:], flush=True)
  path = _common.write_report(
      args.out, args.name,
      "Teacher training targets per second: all positions against "
      "sliding windows", {"rows": rows, "data": prepared.name,
                          "settings": vars(args)},
      [("Targets per second (ratio rows: all_positions / last)", rows,
        ["length", "objective", "negatives", "batch", "targets", "seconds",
         "targets_per_second"])],
      notes=(f"Data: {prepared.name}. Teacher: d={args.dim}, 2 blocks, 1 "
             "head, dropout 0.2, Adam; 'catalog' is the full softmax over "
             f"the catalog, 'mixed' {args.negatives} sampled negatives (for "
             "last: in-batch plus uniform)."))
  print(path.read_text())


if __name__ == "__main__":
  main()

"""What an item table lets a distilled student reach, with the encoder
taken out: the ceiling each table puts on distillation from a teacher.

For a finished run (the ml1m benchmark's), the run's teacher scores the
whole catalog for every test user. An oracle student then has a free query
vector per test user (the best output any encoder could give) and an item
table of a given kind and width. Queries and table are fitted together to
the teacher's softmax at the run's distillation temperature, by the KL of
the distilled step (no labels), over those very users, until the KL stops
falling. The fitted scores are then ranked against the users' test items
as the pipeline ranks (full catalog, the users' earlier items excluded).

A distilled student with that table sees other users than the ones it is
fitted on, through an encoder far smaller than a free vector per user: the
oracle's NDCG@10 is what the table keeps of the teacher, not what a student
reaches. It is not a strict bound either (a table fitted to the test items
rather than to the teacher could rank them better).

Tables: full tables of several widths (the 10% student's is the narrowest
ones'), started from the teacher's items' principal directions; the
product-quantized table of the ml1m_pq student (64-wide, its codes the
teacher's items quantized, its codebooks fitted); and the teacher's own
items, frozen, with free queries (how much of the teacher a free query per
user keeps: the oracle's own limit).

    python benchmarks/student_ceiling.py \\
        --run=benchmarks/results/runs/ml1m/seed0

Writes benchmarks/results/<name>.{json,md} (default student_ceiling);
`--from_json=FILE` writes the table of an earlier results file again.
"""

import argparse
import json
import os
import time

import _common  # pylint: disable=import-error

import tfdistill  # pylint: disable=unused-import  # Keras 2 before TF loads
import numpy as np
import tensorflow as tf
import tf_keras

from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.distill.embedding_transfer import principal_projection
from tfdistill.distill.embedding_transfer import product_quantize
from tfdistill.evaluation.evaluate import score_function
from tfdistill.evaluation.ranking import RankingMetrics
from tfdistill.pipeline.run import Run
from tfdistill.pipeline.run import stored_config


def _teacher_scores(run: Run, test) -> np.ndarray:
  """The teacher's scores [U, N] for the test users' contexts."""
  score = score_function(run.teacher())
  return np.concatenate([score(test.contexts[lo:lo + 256])
                         for lo in range(0, len(test), 256)]).astype(
                             np.float32)


def _ndcg(scores: np.ndarray, test) -> tuple:
  """(NDCG@10, HR@10) of scores [U, N] on the test items, the users'
  earlier items excluded."""
  metrics = RankingMetrics((10,), num_items=scores.shape[1])
  for lo in range(0, len(test), 512):
    batch = test.take(slice(lo, lo + 512))
    metrics.update(scores[lo:lo + 512], batch.targets,
                   [batch.seen(i) for i in range(len(batch))])
  result = metrics.result()
  return result["ndcg@10"], result["hr@10"]


class Oracle(tf.Module):
  """Free queries [U, d] scored against an item table [N - reserved, d]:
  a full one (`rows`), or a product-quantized one (`codebooks` [M, K, d/M]
  indexed by fixed `codes` [N - reserved, M]); `train_items=False` freezes
  the table."""

  def __init__(self, queries, rows=None, codebooks=None, codes=None,
               train_items=True):
    super().__init__()
    self.queries = tf.Variable(queries, dtype=tf.float32)
    self.codes = None if codes is None else tf.constant(codes, tf.int32)
    table = rows if codebooks is None else codebooks
    self.table = tf.Variable(table, dtype=tf.float32, trainable=train_items)

  def items(self):
    if self.codes is None:
      return self.table
    return tf.concat([tf.gather(self.table[m], self.codes[:, m])
                      for m in range(self.codes.shape[1])], axis=1)

  def scores(self):
    return tf.matmul(self.queries, self.items(), transpose_b=True)


def fit(oracle: Oracle, teacher_logits: np.ndarray, temperature: float,
        learning_rate: float, max_steps: int, tolerance: float) -> dict:
  """Adam on the KL between the teacher's and the oracle's softmax at
  `temperature`, full batch, until the KL falls by less than `tolerance`
  (relative) over 100 steps or after `max_steps`."""
  target = tf.nn.softmax(tf.constant(teacher_logits) / temperature)
  entropy = -tf.reduce_mean(tf.reduce_sum(
      tf.math.xlogy(target, target), axis=1))
  variables = [v for v in (oracle.queries, oracle.table) if v.trainable]
  optimizer = tf_keras.optimizers.Adam(learning_rate)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(
          target, oracle.scores() / temperature)) - entropy
    optimizer.apply_gradients(zip(tape.gradient(loss, variables),
                                  variables))
    return loss

  history, start = [], time.time()
  for number in range(1, max_steps + 1):
    history.append(float(step()))
    if number % 100 == 0:
      print(f"  step {number}: KL {history[-1]:.4f} "
            f"({time.time() - start:.0f} s)", flush=True)
    if number >= 200 and number % 100 == 0:
      before = history[-101]
      if before - history[-1] < tolerance * abs(before):
        break
  return {"kl": history[-1], "steps": len(history),
          "kl_100_steps_before": history[-101] if len(history) > 100
                                 else None,
          "seconds": time.time() - start}


def _least_squares_queries(logits: np.ndarray, items: np.ndarray):
  """The queries whose scores against `items` are closest to the centred
  `logits`: a start for the fit."""
  centred = logits - logits.mean(axis=1, keepdims=True)
  solution, *_ = np.linalg.lstsq(items, centred.T, rcond=None)
  return solution.T


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--run", default=str(
      _common.REPO / "benchmarks" / "results" / "runs" / "ml1m" / "seed0"),
                      help="A finished run directory (its teacher trained).")
  parser.add_argument("--widths", default="4,8,16",
                      help="Widths of the full tables.")
  parser.add_argument("--codebooks", type=int, default=4)
  parser.add_argument("--codewords", type=int, default=128)
  parser.add_argument("--learning_rate", type=float, default=0.03)
  parser.add_argument("--max_steps", type=int, default=2000)
  parser.add_argument("--tolerance", type=float, default=2e-3)
  parser.add_argument("--users", type=int, default=0,
                      help="Fit and rank the first N test users (0: all).")
  parser.add_argument("--name", default="student_ceiling")
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  parser.add_argument("--from_json", default=None,
                      help="Write the table again from this results file "
                      "(its machine and command kept); nothing is fitted.")
  args = parser.parse_args()
  if args.from_json:
    with open(args.from_json) as f:
      results = json.load(f)
    measured = {key: results.pop(key) for key in ("machine", "command")}
    print(f"wrote {write(results, args.out, args.name, measured)}")
    return
  if not os.path.isfile(os.path.join(args.run, "config.json")):
    parser.error(f"--run={args.run} is not a run directory (no config.json); "
                 "run `python benchmarks/run.py ml1m --seeds=0` first.")
  config = stored_config(args.run)
  run = Run(args.run, config)
  if not run.done("teacher"):
    parser.error(f"--run={args.run} has no trained teacher; finish its "
                 "teacher step first.")
  tf.random.set_seed(0)
  test = run.evaluation("test")
  if args.users:
    test = test.take(slice(0, args.users))
  logits = _teacher_scores(run, test)
  teacher_ndcg, teacher_hr = _ndcg(logits, test)
  teacher_params = run.step_metrics("teacher")["params"]
  catalog = np.asarray(run.teacher().catalog_embeddings(training=False),
                       np.float64)[NUM_RESERVED:]
  fitted = logits[:, NUM_RESERVED:]
  rows = []

  def record(table, params, oracle, fit_result, **extra):
    scores = np.full_like(logits, -np.inf)
    scores[:, NUM_RESERVED:] = oracle.scores().numpy()
    ndcg, hr = _ndcg(scores, test)
    rows.append(dict(table=table, item_params=params,
                     item_params_vs_teacher=params / teacher_params,
                     **{"ndcg@10": ndcg, "hr@10": hr},
                     ndcg_vs_teacher=ndcg / teacher_ndcg, **fit_result,
                     **extra))
    print(rows[-1], flush=True)

  fit_args = (config.temperature, args.learning_rate, args.max_steps,
              args.tolerance)
  frozen = Oracle(_least_squares_queries(fitted, catalog), rows=catalog,
                  train_items=False)
  record(f"the teacher's items, frozen ({catalog.shape[1]}-wide)",
         catalog.size, frozen, fit(frozen, fitted, *fit_args))
  for width in (int(w) for w in args.widths.split(",")):
    projected, kept = principal_projection(catalog, width)
    oracle = Oracle(_least_squares_queries(fitted, projected), rows=projected)
    record(f"full, {width}-wide", projected.size, oracle,
           fit(oracle, fitted, *fit_args), variance_kept=kept)
  width = catalog.shape[1]
  projected, _ = principal_projection(catalog, width)
  books, codes = product_quantize(projected, args.codebooks, args.codewords)
  start = np.concatenate([books[m][codes[:, m]]
                          for m in range(args.codebooks)], axis=1)
  oracle = Oracle(_least_squares_queries(fitted, start), codebooks=books,
                  codes=codes)
  record(f"product-quantized, {width}-wide, {args.codebooks} x "
         f"{args.codewords}", codes.size + books.size, oracle,
         fit(oracle, fitted, *fit_args))

  students = {stage: run.step_metrics(stage) for stage in
              ("student_alone", "student_kd") if run.done(stage)}
  results = dict(run=os.path.relpath(args.run, _common.REPO),
                 users=len(test), temperature=config.temperature,
                 student=_describe(config.student),
                 teacher={"ndcg@10": teacher_ndcg, "hr@10": teacher_hr,
                          "params": teacher_params},
                 students={stage: {"ndcg@10": m["ndcg@10"],
                                   "params": m["params"]}
                           for stage, m in students.items()},
                 oracles=rows)
  print(f"wrote {write(results, args.out, args.name)}")


def _describe(student) -> str:
  return (f"{student.encoder} encoder, {student.embedding_dim}-wide "
          f"{student.embedding.kind} table")


def write(results: dict, out: str, name: str, measured: dict = None):
  """The results file and its table; `measured`: the machine and command
  of the run that measured `results`, when only the table is written
  again (--from_json)."""
  teacher = results["teacher"]
  table = [dict(table="teacher",
                params=teacher["params"], **{"ndcg@10": teacher["ndcg@10"]},
                ndcg_vs_teacher=1.0)]
  table += [dict(table=row["table"], params=row["item_params"],
                 params_vs_teacher=row["item_params_vs_teacher"],
                 **{"ndcg@10": row["ndcg@10"]},
                 ndcg_vs_teacher=row["ndcg_vs_teacher"], kl=row["kl"],
                 steps=row["steps"]) for row in results["oracles"]]
  table += [dict(table=f"{stage} ({results['student']})", params=m["params"],
                 params_vs_teacher=m["params"] / teacher["params"],
                 **{"ndcg@10": m["ndcg@10"]},
                 ndcg_vs_teacher=m["ndcg@10"] / teacher["ndcg@10"])
            for stage, m in results["students"].items()]
  columns = ("table", "params", "params_vs_teacher", "ndcg@10",
             "ndcg_vs_teacher", "kl", "steps")
  return _common.write_report(
      out, name, "What each item table keeps of the teacher: oracle "
      "students with a free query per test user", results,
      [("Oracle students fitted to the teacher's softmax", table, columns)],
      notes=(f"Run {results['run']}, {results['users']} test users, the KL "
             f"at temperature {results['temperature']}. The teacher's and "
             "the run's students' params are the whole model's, an oracle's "
             "its item table's (codes counted): its queries are free, "
             "one per test user, fitted on those users. It measures what "
             "the table keeps of the teacher, not what a student reaches."),
      measured=measured)


if __name__ == "__main__":
  main()

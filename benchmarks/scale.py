"""Scaling: catalogs of 10k to 1M items, and 1, 2, 4 local workers.

Catalog size, each size in a fresh process (its own peak memory), on
random next-item examples whose items follow a Zipf popularity law over the
whole catalog:

* median seconds per training step (batch 256, context 20) of the teacher
  (causal self-attention, d=64, scored against the batch's items plus 1,024
  uniform negatives with logQ correction: the large-catalog form), of the
  student alone (mean encoder, d=16) and of the same student distilled from
  the teacher's cached top-50 (KL), each with the softmax over the full
  catalog ("dense") and with `SampledCatalogSoftmax` (1,024 uniform items
  per step, "sampled": the step never forms [batch, items] logits);
* seconds to evaluate full-catalog ranking metrics on 2,048 examples (rows
  scored in blocks that bound the memory);
* peak resident memory of the process after the teacher, the sampled steps
  and the evaluation, and after the dense steps as well.

Each cost's growth is fitted as cost ~ items^slope over the measured sizes,
and extrapolated to 10M items.

Workers: the same job (the tiny preset's teacher and student without
dropout on the default synthetic data, one epoch each, global batch 256) in
1, 2 and 4 processes on
this machine with TF_CONFIG on loopback ports; training examples per second
and the distilled student's test NDCG@10 against the one-process run.

    python benchmarks/scale.py                 # about 15 min on 2 CPUs
    python benchmarks/scale.py --quick         # smaller, a few minutes
"""

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import _common  # pylint: disable=import-error

from tfdistill.distribute import local_tf_configs

L, BATCH, TOP_K, EXTRA_NEGATIVES, EVAL_EXAMPLES = 20, 256, 50, 1024, 2048


def _zipf_examples(num_items: int, count: int, seed: int = 0):
  import numpy as np  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  ranks = np.arange(1, num_items - 1, dtype=np.float64)
  weights = ranks ** -1.05
  weights /= weights.sum()
  draws = rng.choice(num_items - 2, size=(count, L + 1), p=weights) + 2
  return draws[:, :L].astype(np.int32), draws[:, L].astype(np.int32)


def _catalog_child(num_items: int, steps: int, rounds: int) -> None:
  """In a subprocess: the step and evaluation times of one catalog size."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tfdistill  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  import tf_keras  # pylint: disable=import-outside-toplevel
  from speed import in_memory  # pylint: disable=import-error,import-outside-toplevel
  from speed import step_times  # pylint: disable=import-error,import-outside-toplevel
  from tfdistill.distill import CatalogTrainer  # pylint: disable=import-outside-toplevel
  from tfdistill.distill import Distiller  # pylint: disable=import-outside-toplevel
  from tfdistill.distill import SampledCatalogSoftmax  # pylint: disable=import-outside-toplevel
  from tfdistill.distill import SoftTargetKL  # pylint: disable=import-outside-toplevel
  from tfdistill.distill.cache import cache_teacher_signal  # pylint: disable=import-outside-toplevel
  from tfdistill.distill.cache import cached_examples  # pylint: disable=import-outside-toplevel
  from tfdistill.distill.cache import cached_teacher  # pylint: disable=import-outside-toplevel
  from tfdistill.models.students import build_sequential_student  # pylint: disable=import-outside-toplevel
  from tfdistill.models.students import StudentConfig  # pylint: disable=import-outside-toplevel
  from tfdistill.models.teachers import SequentialRetrievalTeacher  # pylint: disable=import-outside-toplevel

  contexts, targets = _zipf_examples(num_items, 8 * BATCH)
  train = in_memory(tf.data.Dataset.from_tensor_slices(
      ({"context": contexts}, targets)).batch(BATCH), 8)
  tf_keras.utils.set_random_seed(0)
  teacher = SequentialRetrievalTeacher(
      num_items, L, embedding_dim=64, num_heads=2, ffn_dim=128,
      negatives="mixed", num_extra_negatives=EXTRA_NEGATIVES)
  teacher.compile(tf_keras.optimizers.Adam(1e-3))
  teacher(next(iter(train))[0])

  def student(compiled: bool = True):
    model = build_sequential_student(num_items, L,
                                     StudentConfig(embedding_dim=16))
    if compiled:
      model.compile(tf_keras.optimizers.Adam(1e-3),
                    tf_keras.losses.SparseCategoricalCrossentropy(
                        from_logits=True))
    return model

  def distiller(path, sampled: bool):
    model = Distiller(student=student(False), teacher=cached_teacher(path))
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3), alpha=0.5,
                  temperature=1.0, distillation_loss=SoftTargetKL(),
                  student_loss=(SampledCatalogSoftmax(EXTRA_NEGATIVES)
                                if sampled else None))
    return model

  alone = CatalogTrainer(student(False), SampledCatalogSoftmax(
      EXTRA_NEGATIVES))
  alone.compile(tf_keras.optimizers.Adam(1e-3))
  with tempfile.TemporaryDirectory() as work:
    path = cache_teacher_signal(teacher, train, os.path.join(work, "top"),
                                top_k=TOP_K)
    cached = in_memory(cached_examples(path, batch_size=BATCH), 8)
    times = step_times({"teacher": (teacher, train),
                        "student_alone_sampled": (alone, train),
                        "distilled_cached_top50_sampled": (
                            distiller(path, True), cached)},
                       steps, rounds)
    evaluation = _evaluation_seconds(num_items, student(False))
    sampled_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times.update(step_times({"student_alone_dense": (student(), train),
                             "distilled_cached_top50_dense": (
                                 distiller(path, False), cached)},
                            steps, rounds))
  print(json.dumps({
      "items": num_items, **{f"{k}_step_ms": 1000 * v for k, v in
                             times.items()},
      "evaluation_s": evaluation,
      "peak_rss_sampled_mib": sampled_rss,
      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                      / 1024}))


def _evaluation_seconds(num_items: int, model) -> float:
  """Seconds to evaluate `model` on EVAL_EXAMPLES held-out examples."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from tfdistill.data.examples import SequenceArrays  # pylint: disable=import-outside-toplevel
  from tfdistill.evaluation.evaluate import evaluate_retrieval  # pylint: disable=import-outside-toplevel
  eval_contexts, eval_targets = _zipf_examples(num_items, EVAL_EXAMPLES, 1)
  held_out = SequenceArrays(
      contexts=eval_contexts, targets=eval_targets,
      users=np.arange(EVAL_EXAMPLES, dtype=np.int32),
      ratings=np.ones(EVAL_EXAMPLES, np.float32),
      seen_starts=np.arange(EVAL_EXAMPLES) * L,
      seen_ends=np.arange(1, EVAL_EXAMPLES + 1) * L,
      item_history=eval_contexts.reshape(-1))
  evaluate_retrieval(model, held_out.take(slice(0, 256)))  # traces
  start = time.perf_counter()
  evaluate_retrieval(model, held_out)
  return time.perf_counter() - start


def catalog_scaling(sizes, steps: int, rounds: int) -> list:
  rows = []
  for size in sizes:
    print(f"catalog {size} ...", flush=True)
    done = subprocess.run(
        [sys.executable, __file__, f"--_catalog={size}", f"--steps={steps}",
         f"--rounds={rounds}"], capture_output=True, text=True, check=False,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if done.returncode:
      raise RuntimeError(done.stderr[-3000:])
    rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
  return rows


def fitted_growth(rows: list, target: int = 10_000_000) -> list:
  """Each cost's growth: cost ~ items^slope (least squares in log-log) and
  cost ~ fixed + per_item * items (least squares), each extrapolated to
  `target` items. A cost with a large fixed part (memory: TensorFlow
  itself) has a small log-log slope that understates its growth; the
  linear fit does not."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  items = np.array([r["items"] for r in rows], np.float64)
  out = []
  for key in [k for k in rows[0] if k != "items"]:
    values = np.array([max(r[key], 1e-9) for r in rows])
    slope, intercept = np.polyfit(np.log(items), np.log(values), 1)
    per_item, fixed = np.polyfit(items, values, 1)
    millions = target // 1_000_000
    out.append({"cost": key, "slope": float(slope),
                f"at_{millions}M": float(
                    np.exp(intercept + slope * np.log(target))),
                "fixed": float(fixed), "per_1M_items": float(per_item * 1e6),
                f"at_{millions}M_linear": float(fixed + per_item * target)})
  return out


def _worker_child(index: int, strategy: str, out: str) -> None:
  """In a subprocess: one worker of the multi-worker job, or the single
  process (`strategy` "default")."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  import tfdistill  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  from tfdistill.distribute import make_strategy  # pylint: disable=import-outside-toplevel
  from tfdistill.pipeline.config import preset  # pylint: disable=import-outside-toplevel
  from tfdistill.pipeline.run import Run  # pylint: disable=import-outside-toplevel
  strategy = make_strategy(strategy)
  tiny, default = preset("tiny"), preset("default")
  # Without dropout every replica computes what the one process does, so
  # the results differ only by the order of floating point sums.
  config = dataclasses.replace(
      tiny, source=default.source, batch_size=256, teacher_epochs=1,
      student_epochs=1,
      teacher=dataclasses.replace(tiny.teacher, dropout=0.0),
      student=dataclasses.replace(tiny.student, dropout=0.0))
  run = Run(out, config, strategy=strategy)
  prepared = run.prepared
  start = time.perf_counter()
  run.student_kd()
  seconds = time.perf_counter() - start
  from tfdistill.data.examples import sequence_arrays  # pylint: disable=import-outside-toplevel
  # One epoch of the teacher and one of the distilled student.
  examples = 2 * len(sequence_arrays(prepared, "train",
                                     config.context_length).targets)
  print(json.dumps({"index": index, "chief": run.chief, "seconds": seconds,
                    "examples_per_s": examples / seconds,
                    "ndcg@10": run.step_metrics("student_kd")["ndcg@10"]}))


def worker_scaling(counts) -> list:
  rows = []
  for count in counts:
    print(f"{count} worker(s) ...", flush=True)
    with tempfile.TemporaryDirectory() as work:
      tf_configs = local_tf_configs(count) if count > 1 else [""]
      processes = []
      for index, tf_config in enumerate(tf_configs):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=tf_config)
        processes.append(subprocess.Popen(
            [sys.executable, __file__, f"--_worker={index}",
             f"--_strategy={'multi_worker' if tf_config else 'default'}",
             f"--_out={os.path.join(work, 'run')}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env))
      results = []
      for process in processes:
        stdout, stderr = process.communicate(timeout=3600)
        if process.returncode:
          raise RuntimeError(stderr[-3000:])
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    chief = next(r for r in results if r["chief"])
    rows.append({"workers": count, "seconds": chief["seconds"],
                 "examples_per_s": chief["examples_per_s"],
                 "slowest_worker_seconds": max(r["seconds"] for r in results),
                 "ndcg@10": chief["ndcg@10"]})
  for row in rows:
    row["throughput_vs_1"] = rows[0]["seconds"] / row["seconds"]
    row["ndcg@10_vs_1"] = row["ndcg@10"] / rows[0]["ndcg@10"]
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--sizes", default="")
  parser.add_argument("--workers", default="1,2,4")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--name", default="scale")
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  parser.add_argument("--refit", action="store_true",
                      help="recompute the growth fits from <out>/<name>.json "
                      "(keeps its figures, command and machine)")
  parser.add_argument("--_catalog", type=int, default=0, help=argparse.SUPPRESS)
  parser.add_argument("--_worker", type=int, default=-1, help=argparse.SUPPRESS)
  parser.add_argument("--_strategy", default="", help=argparse.SUPPRESS)
  parser.add_argument("--_out", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args._catalog:  # pylint: disable=protected-access
    _catalog_child(args._catalog, args.steps, args.rounds)  # pylint: disable=protected-access
    return
  if args._worker >= 0:  # pylint: disable=protected-access
    _worker_child(args._worker, args._strategy, args._out)  # pylint: disable=protected-access
    return
  name = args.name + ("_quick" if args.quick else "")
  measured = None
  if args.refit:  # the growth fits again, from the figures already measured
    measured = json.loads((pathlib.Path(args.out) / f"{name}.json")
                          .read_text())
    catalog, workers = measured["catalog"], measured["workers"]
    args = argparse.Namespace(**dict(measured["settings"], out=args.out))
  else:
    sizes = [int(s) for s in (args.sizes or (
        "10000,30000" if args.quick else "10000,100000,1000000")).split(",")]
    catalog = catalog_scaling(sizes, args.steps, args.rounds)
    workers = worker_scaling([int(w) for w in args.workers.split(",")])
  growth = fitted_growth(catalog)
  path = _common.write_report(
      args.out, name,
      "Scaling: catalog size and local workers",
      {"catalog": catalog, "growth": growth, "workers": workers,
       "settings": vars(args)},
      [("Cost by catalog size", catalog,
        ["items", "teacher_step_ms", "student_alone_dense_step_ms",
         "student_alone_sampled_step_ms", "distilled_cached_top50_dense_step_ms",
         "distilled_cached_top50_sampled_step_ms", "evaluation_s",
         "peak_rss_sampled_mib", "peak_rss_mib"]),
       ("Growth with the catalog, extrapolated to 10M items", growth,
        ["cost", "slope", "at_10M", "fixed", "per_1M_items",
         "at_10M_linear"]),
       ("Local workers (processes on this machine, TF_CONFIG on loopback)",
        workers, ["workers", "seconds", "examples_per_s",
                  "slowest_worker_seconds",
                  "throughput_vs_1", "ndcg@10", "ndcg@10_vs_1"])],
      notes=(
          "Step times: median of the compiled train step on batches held in "
          "memory. Dense: the student's softmax over the full catalog "
          "([batch, items] logits); sampled: SampledCatalogSoftmax with "
          "1,024 uniform items per step. peak_rss_sampled_mib: after the "
          "teacher, the sampled steps and the evaluation; peak_rss_mib: "
          "after the dense steps too. The workers are processes sharing "
          "this machine's 2 cores. Growth: slope of cost ~ items^slope "
          "(log-log fit) and its extrapolation; fixed + per_1M_items x items "
          "(linear fit) and its extrapolation, the better guide for a cost "
          "with a large fixed part such as memory."),
      measured=measured)
  print(path.read_text())


if __name__ == "__main__":
  main()

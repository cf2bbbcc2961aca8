"""Per-request latency of an exported recommender, on one thread.

Run as a separate process (`python -m tfdistill.export.latency ...`) so that
TensorFlow's thread pools can be limited to one thread before it starts and
so that the measuring process holds nothing else.
"""

import argparse
import json
import os
import time

import numpy as np

PERCENTILES = (50, 95, 99)


def summarize(seconds) -> dict:
  values = np.asarray(seconds) * 1000.0
  return {f"p{p}_ms": float(np.percentile(values, p)) for p in PERCENTILES}


def time_call(call, runs: int, warmup: int = 20) -> dict:
  """Latency percentiles of `runs` calls after `warmup` untimed ones."""
  for _ in range(warmup):
    call()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  return summarize(times)


def measure(tflite_path: str = "", saved_model_dir: str = "",
            contexts=None, vocabulary=None, runs: int = 200) -> dict:
  """Latency percentiles of batch-1 requests for each given model."""
  results = {}
  if tflite_path:
    from tfdistill.export.tflite import LiteRTRecommender  # pylint: disable=import-outside-toplevel
    model = LiteRTRecommender(tflite_path, num_threads=1)
    rows = iter(np.tile(contexts, (runs // len(contexts) + 30, 1)))
    results["tflite"] = time_call(lambda: model(next(rows)), runs)
  if saved_model_dir:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    serve = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
    strings = np.asarray(vocabulary, dtype=object)[contexts]
    strings[contexts == 0] = ""
    requests = [tf.constant(row[np.newaxis]) for row in strings]
    rows = iter(requests * (runs // len(requests) + 30))
    results["saved_model"] = time_call(lambda: serve(context=next(rows)), runs)
  if "tflite" in results and "saved_model" in results:
    results["tflite_vs_saved_model_p50"] = (
        results["tflite"]["p50_ms"] / results["saved_model"]["p50_ms"])
  return results


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--tflite", default="")
  parser.add_argument("--saved_model", default="")
  parser.add_argument("--contexts", required=True, help=".npy int32 [M, L]")
  parser.add_argument("--vocabulary", default="", help="items.txt")
  parser.add_argument("--runs", type=int, default=200)
  args = parser.parse_args()
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  vocabulary = None
  if args.vocabulary:
    with open(args.vocabulary, encoding="utf-8") as f:
      vocabulary = f.read().rstrip("\n").split("\n")
  print(json.dumps(measure(args.tflite, args.saved_model,
                           np.load(args.contexts), vocabulary, args.runs)))


if __name__ == "__main__":
  main()

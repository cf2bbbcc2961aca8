"""On-device latency against the hardware limit, and approximate top-K.

For catalogs of 10k, 100k and 1M items, the exported .tflite (LiteRT, one
thread, batch 1, top-10 with the context excluded) beside the limit on this
machine: a LiteRT model holding only the catalog's FULLY_CONNECTED scores
and a top-k over them, in the same quantization (the arithmetic any
exact recommender must do), and numpy's single-thread float32 matrix-vector
product plus `argpartition`. The ratio model / limit is per size and mode.

At the largest catalog, approximate top-K (`--partitions`, k-means
partitions inside the graph) against exact search of the same model:
recall@10, p50 and file size per `probe`; the same on a trained student
(MovieLens-1M's distilled student, when `benchmarks/run.py ml1m` has run).

The students' item tables are not trained (training a 1M-item student is
the scaling benchmark's job): they are drawn with the structure of the
synthetic data set (genre clusters, popularity-skewed norms), and the query
is the position-weighted mean of the context's item vectors, so approximate
search meets the geometry of a trained table. Contexts are drawn with the
same popularity skew.

    python benchmarks/latency.py            # 10k, 100k, 1M items
    python benchmarks/latency.py --quick    # 2k and 20k items, seconds
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the numpy limit: 1 thread
os.environ.setdefault("OMP_NUM_THREADS", "1")

import _common  # pylint: disable=import-error,wrong-import-position

import tfdistill  # noqa: F401  pylint: disable=unused-import,wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import tensorflow as tf  # pylint: disable=wrong-import-position

from tfdistill.data.vocab import NUM_RESERVED  # pylint: disable=wrong-import-position
from tfdistill.export import latency  # pylint: disable=wrong-import-position
from tfdistill.export import tflite  # pylint: disable=wrong-import-position
from tfdistill.export.exporter import exact_top_k  # pylint: disable=wrong-import-position
from tfdistill.export.partitions import PartitionConfig  # pylint: disable=wrong-import-position
from tfdistill.export.partitions import recall_at_k  # pylint: disable=wrong-import-position
from tfdistill.models.io import catalog_size  # pylint: disable=wrong-import-position
from tfdistill.models.students import build_sequential_student  # pylint: disable=wrong-import-position
from tfdistill.models.students import StudentConfig  # pylint: disable=wrong-import-position

L, DIM, K, GENRES = 20, 32, 10, 64
MODES = ("none", "dynamic", "int8")
GOALS = "exact top-10: 10k items <= 2x the limit, 100k items <= 0.5 ms; " \
        "int8 never slower than float32; 1M approximate: recall@10 >= 0.95, " \
        "p50 <= 2 ms"


def structured_student(num_items: int, rng: np.random.Generator):
  """A student whose item table has genre clusters and popularity-skewed
  norms, and whose query is the weighted mean of the context's vectors;
  returns (student, contexts [M, L])."""
  student = build_sequential_student(num_items, L, StudentConfig(
      embedding_dim=DIM, hidden_dim=2 * DIM, dropout=0.0))
  centroids = rng.normal(size=(GENRES, DIM))
  genre = rng.integers(0, GENRES, num_items)
  second = rng.integers(0, GENRES, num_items)
  vectors = (centroids[genre] + 0.4 * centroids[second]
             + 0.6 * rng.normal(size=(num_items, DIM)))
  vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
  popularity = rng.permutation(num_items)  # rank of each item
  vectors *= (1.0 + 0.3 * np.log1p(num_items / (popularity + 1.0)))[:, None]
  vectors[:NUM_RESERVED] = 0.0
  student.get_layer("item_embedding").set_weights([vectors.astype(np.float32)])
  # hidden = relu([x, -x]), query = relu(x) - relu(-x) = x.
  eye = np.eye(DIM, dtype=np.float32)
  student.get_layer("hidden").set_weights(
      [np.concatenate([eye, -eye], 1), np.zeros(2 * DIM, np.float32)])
  student.get_layer("query_embedding").set_weights(
      [np.concatenate([eye, -eye], 0), np.zeros(DIM, np.float32)])
  # Contexts: a user's items come from one or two genres, popular first.
  by_genre = [np.flatnonzero(genre == g) for g in range(GENRES)]
  by_genre = [items[np.argsort(popularity[items])] for items in by_genre]
  contexts = np.zeros((256, L), np.int32)
  for row in contexts:
    for position in range(L):
      items = by_genre[rng.integers(0, GENRES) if position % 5 == 0
                       else genre[row[position - 1]] if position else 0]
      rank = min(int(rng.pareto(1.0) * 3), len(items) - 1)
      row[position] = max(int(items[rank]), NUM_RESERVED)
  return student, contexts


class _Limit(tf.Module):
  """Only the catalog scores (FULLY_CONNECTED) and a top-k over them."""

  def __init__(self, vectors: np.ndarray):
    super().__init__()
    self.catalog = tf.Variable(vectors, trainable=False)
    self.recommend = tf.function(self._recommend, input_signature=[
        tf.TensorSpec([1, DIM], tf.float32, name="query")])

  def _recommend(self, query):
    scores = tf.matmul(query, self.catalog, transpose_b=True)
    return {"ids": tf.math.top_k(scores, K + L + NUM_RESERVED).indices}


def _convert_limit(vectors: np.ndarray, mode: str) -> bytes:
  module = _Limit(vectors)
  with tempfile.TemporaryDirectory() as tmp:
    tf.saved_model.save(module, tmp, signatures={
        "recommend": module.recommend.get_concrete_function()})
    converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
    if mode != "none":
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
      converter._experimental_disable_per_channel = True  # pylint: disable=protected-access
    if mode == "int8":
      rng = np.random.default_rng(0)

      def samples():
        for _ in range(50):
          yield {"query": rng.normal(size=(1, DIM)).astype(np.float32) / 4}
      converter.representative_dataset = samples
    return converter.convert()


def limits(vectors: np.ndarray, runs: int) -> dict:
  """p50 of the limit models per mode, and numpy's float32 limit."""
  from ai_edge_litert import interpreter as litert  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(1)
  query = rng.normal(size=(1, DIM)).astype(np.float32) / 4
  result = {}
  for mode in MODES:
    content = _convert_limit(vectors, mode)
    runner = litert.Interpreter(model_content=content,
                                num_threads=1).get_signature_runner()
    result[mode] = latency.time_call(lambda runner=runner: runner(query=query),
                           runs)["p50_ms"]
  flat = query[0]
  result["numpy_float32"] = latency.time_call(
      lambda: np.argpartition(-(vectors @ flat), K + L)[:K + L], runs)[
          "p50_ms"]
  return result


def _time_model(content: bytes, contexts: np.ndarray, runs: int) -> dict:
  with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
    f.write(content)
    f.flush()
    return latency.measure(tflite_path=f.name, contexts=contexts[:64],
                           runs=runs)["tflite"]


def exact_rows(size: int, runs: int) -> list:
  rng = np.random.default_rng(size)
  student, contexts = structured_student(size, rng)
  vectors = student.get_layer("item_embedding").get_weights()[0]
  limit = limits(vectors, runs)
  rows = []
  for mode in MODES:
    content = tflite.convert(student, mode, K, contexts)
    timing = _time_model(content, contexts, runs)
    rows.append({"catalog": size, "quantization": mode,
                 "bytes": len(content), **timing,
                 "limit_p50_ms": limit[mode],
                 "numpy_float32_limit_p50_ms": limit["numpy_float32"],
                 "model_vs_limit": timing["p50_ms"] / limit[mode]})
  return rows


#: Shares of the partitions probed per request.
PROBE_SHARES = (0.01, 0.025, 0.05)


def _probes(num_items: int) -> list:
  partitions = PartitionConfig(-1, 1).resolved(num_items).partitions
  return [max(1, round(share * partitions)) for share in PROBE_SHARES]


def approximate_rows(size: int, runs: int) -> list:
  rng = np.random.default_rng(size)
  student, contexts = structured_student(size, rng)
  exact = exact_top_k(student, contexts, K)
  rows = []
  for mode in ("none", "int8"):
    exact_content = tflite.convert(student, mode, K, contexts)
    exact_timing = _time_model(exact_content, contexts, runs)
    for probe in _probes(size):
      started = time.perf_counter()
      content = tflite.convert(student, mode, K, contexts,
                               partitions=PartitionConfig(-1, probe))
      seconds = time.perf_counter() - started
      model = tflite.LiteRTRecommender(content)
      found = model.recommend_all(contexts)[0]
      timing = _time_model(content, contexts, runs)
      rows.append({"catalog": size, "quantization": mode,
                   "partitions": PartitionConfig(-1, probe).resolved(
                       size).partitions, "probe": probe,
                   "recall_at_10": recall_at_k(found, exact),
                   "bytes": len(content), "exact_bytes": len(exact_content),
                   "p50_ms": timing["p50_ms"], "p99_ms": timing["p99_ms"],
                   "exact_p50_ms": exact_timing["p50_ms"],
                   "speedup_vs_exact": exact_timing["p50_ms"]
                                       / timing["p50_ms"],
                   "export_seconds": seconds})
      print(rows[-1], flush=True)
  return rows


def trained_rows(path: str, runs: int) -> list:
  """Approximate top-10 on a trained student (its own held-out contexts)."""
  from tfdistill.models.io import load_contexts  # pylint: disable=import-outside-toplevel
  from tfdistill.models.io import load_model  # pylint: disable=import-outside-toplevel
  student = load_model(path)
  contexts = np.asarray(load_contexts(path, "holdout"), np.int32)[:256]
  exact = exact_top_k(student, contexts, K)
  exact_timing = _time_model(tflite.convert(student, "none", K), contexts,
                             runs)
  rows = []
  for probe in _probes(catalog_size(student)):
    config = PartitionConfig(-1, probe)
    content = tflite.convert(student, "none", K, partitions=config)
    found = tflite.LiteRTRecommender(content).recommend_all(contexts)[0]
    resolved = config.resolved(catalog_size(student))
    rows.append({"model": path, "partitions": resolved.partitions,
                 "probe": probe, "share_of_catalog_scored": probe / resolved
                 .partitions, "recall_at_10": recall_at_k(found, exact),
                 "p50_ms": _time_model(content, contexts, runs)["p50_ms"],
                 "exact_p50_ms": exact_timing["p50_ms"]})
    print(rows[-1], flush=True)
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  parser.add_argument(
      "--trained", default=str(_common.REPO / "benchmarks" / "results" / "runs"
                               / "ml1m" / "seed0" / "student_kd" / "model"),
      help="A trained student for the approximate rows (written by "
           "python benchmarks/run.py ml1m; skipped when absent).")
  args = parser.parse_args()
  sizes = (2000, 20_000) if args.quick else (10_000, 100_000, 1_000_000)
  runs = 100 if args.quick else 500
  exact = []
  for size in sizes:
    exact += exact_rows(size, runs)
    print(exact[-3:], flush=True)
  approximate = approximate_rows(sizes[-1], runs)
  trained = []
  if not args.quick and os.path.isdir(args.trained):
    trained = trained_rows(args.trained, runs)
  results = {"exact": exact, "approximate": approximate, "trained": trained,
             "goals": GOALS, "context_length": L, "embedding_dim": DIM,
             "top_k": K}
  path = _common.write_report(
      args.out, "latency_quick" if args.quick else "latency",
      "On-device latency against the hardware limit", results,
      [("Exact top-10: model against the limit (1 thread, batch 1)", exact,
        ["catalog", "quantization", "bytes", "p50_ms", "p99_ms",
         "limit_p50_ms", "model_vs_limit", "numpy_float32_limit_p50_ms"]),
       (f"Approximate top-10 at {sizes[-1]} items against exact search",
        approximate,
        ["quantization", "partitions", "probe", "recall_at_10", "p50_ms",
         "p99_ms", "exact_p50_ms", "speedup_vs_exact", "bytes",
         "exact_bytes"]),
       ("Approximate top-10 on a trained student (MovieLens-1M, distilled)",
        trained, ["partitions", "probe", "share_of_catalog_scored",
                  "recall_at_10", "p50_ms", "exact_p50_ms"])],
      notes=f"Goals: {GOALS}. The limit is a LiteRT model with only the "
            f"catalog's FULLY_CONNECTED scores and a top-{K + L + 2} over "
            "them, in the same quantization; numpy's is a float32 "
            f"matrix-vector product and argpartition on one thread. Student: "
            f"d={DIM}, L={L}, mean encoder; item tables drawn with genre "
            "clusters and popularity-skewed norms (see the script).")
  print(path.read_text())


if __name__ == "__main__":
  main()

"""The benchmark scripts stay importable, and their statistics are right.

The benchmarks themselves are not run here (they take minutes to hours);
this pins the parts whose errors would silently change the published
figures.
"""

import pathlib
import py_compile
import sys

import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def quality():
  sys.path.insert(0, str(BENCHMARKS))
  try:
    import quality as module  # pylint: disable=import-outside-toplevel,import-error
  finally:
    sys.path.remove(str(BENCHMARKS))
  return module


@pytest.mark.parametrize("script", sorted(p.name for p in
                                          BENCHMARKS.glob("*.py")))
def test_script_compiles(script):
  py_compile.compile(str(BENCHMARKS / script), doraise=True)


def _per_user(kd, tflite, users=400, seed=0):
  rng = np.random.default_rng(seed)
  hits = rng.random(users) < 0.5
  return {"teacher": (hits * 1.0).tolist(),
          "student_alone": (hits * 0.5).tolist(),
          "student_kd": (hits * kd).tolist(),
          "compressed": (hits * kd).tolist(),
          "tflite": (hits * tflite).tolist()}


def test_bootstrap_of_exact_ratios_is_a_point(quality):
  # Every user's value is a fixed multiple of the teacher's, so every
  # resample gives the same ratios.
  intervals = quality.bootstrap_targets([_per_user(0.8, 0.76)],
                                        samples=50)
  np.testing.assert_allclose(
      intervals["student_kd NDCG@10 / teacher NDCG@10"], [0.8, 0.8])
  np.testing.assert_allclose(
      intervals["student_kd NDCG@10 gain over student_alone"], [0.6, 0.6])
  np.testing.assert_allclose(
      intervals["pruned + quantized TFLite NDCG@10 change vs student_kd"],
      [-0.05, -0.05])


def test_bootstrap_interval_covers_the_measured_ratio(quality):
  rng = np.random.default_rng(1)
  per_seed = []
  for _ in range(3):
    values = {k: (rng.random(300) < p).astype(float).tolist() for k, p in
              (("teacher", 0.2), ("student_alone", 0.1),
               ("student_kd", 0.15), ("compressed", 0.15), ("tflite", 0.15))}
    per_seed.append(values)
  low, high = quality.bootstrap_targets(per_seed, samples=300)[
      "student_kd NDCG@10 / teacher NDCG@10"]
  measured = (np.mean([np.mean(v["student_kd"]) for v in per_seed]) /
              np.mean([np.mean(v["teacher"]) for v in per_seed]))
  assert low < measured < high
  assert high - low > 0.05  # 900 binary outcomes cannot pin a ratio exactly


def test_targets_report_interval_and_verdict(quality):
  variants = [
      {"variant": "teacher", "params": 100, "ndcg@10": 0.1},
      {"variant": "student_alone", "params": 8, "ndcg@10": 0.05},
      {"variant": "student_kd", "params": 8, "ndcg@10": 0.08,
       "params_vs_teacher": 0.08, "ndcg_vs_teacher": 0.8,
       "ndcg_vs_student_alone": 0.6},
      {"variant": "tflite", "params": 8, "ndcg@10": 0.079,
       "ndcg_vs_student_kd": -0.0125, "bytes": 25, "float_bytes": 100}]
  rows = {r["target"]: r for r in quality.targets(
      variants, {"student_kd NDCG@10 / teacher NDCG@10": [0.7, 0.9]})}
  assert rows["student_kd NDCG@10 / teacher NDCG@10"]["met"] is False
  assert rows["student_kd NDCG@10 / teacher NDCG@10"]["ci95"] == "[0.7, 0.9]"
  assert rows["quantized .tflite bytes / float32 .tflite bytes"]["met"]
  assert rows["pruned + quantized TFLite NDCG@10 change vs student_kd"]["met"]

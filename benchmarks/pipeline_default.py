"""Wall time and metrics of `tfdistill pipeline` with no flags (the README's
first command) on this machine.

Runs the command line in a subprocess into a fresh run directory, times it
from start to exit and copies the stages of its report/metrics.json into
benchmarks/results/pipeline_default.{json,md}.

    python benchmarks/pipeline_default.py
    python benchmarks/pipeline_default.py --flags="--preset=tiny" --name=pipeline_tiny
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import _common  # pylint: disable=import-error

STAGES = ("teacher", "student_alone", "student_kd", "compressed", "tflite")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--flags", default="",
                      help="extra flags for tfdistill pipeline")
  parser.add_argument("--name", default="pipeline_default")
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  args = parser.parse_args()
  work = tempfile.mkdtemp(prefix="tfdistill-pipeline-")
  run_dir = os.path.join(work, "run")
  command = [os.path.join(os.path.dirname(sys.executable), "tfdistill"),
             "pipeline", f"--out={run_dir}"] + shlex.split(args.flags)
  try:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True,
                          check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
      sys.exit(f"error: {' '.join(command)} exited with {done.returncode}:\n"
               + done.stderr[-2000:])
    with open(os.path.join(run_dir, "report", "metrics.json")) as f:
      metrics = json.load(f)
  finally:
    shutil.rmtree(work, ignore_errors=True)
  rows = [dict(stage=stage, **{k: v for k, v in metrics[stage].items()
                               if not isinstance(v, (dict, list))})
          for stage in STAGES]
  lite = metrics["tflite"]
  summary = [{"measure": "wall time (s)", "value": seconds},
             {"measure": "student_kd NDCG@10 / teacher",
              "value": metrics["student_kd"]["ndcg@10"] /
              metrics["teacher"]["ndcg@10"]},
             {"measure": "student_kd NDCG@10 gain over student_alone",
              "value": metrics["student_kd"]["ndcg@10"] /
              metrics["student_alone"]["ndcg@10"] - 1},
             {"measure": "tflite bytes / float32 tflite bytes",
              "value": lite["bytes"] / lite["float_bytes"]},
             {"measure": "tflite top-K agreement with the SavedModel",
              "value": lite["parity"]["agreement"]},
             {"measure": "TFLite p50 / SavedModel p50 latency",
              "value": lite["latency_ms"]["p50_ms"] /
              lite["saved_model_latency_ms"]["p50_ms"]}]
  path = _common.write_report(
      args.out, args.name, "tfdistill pipeline " + (args.flags or
                                                    "(no flags)"),
      {"wall_seconds": seconds, "flags": args.flags, "metrics": metrics},
      [("Summary", summary, ["measure", "value"]),
       ("Stages (report/metrics.json)", rows,
        ["stage", "params", "ndcg@10", "hr@10", "recall@10", "sparsity",
         "bytes", "float_bytes"])])
  print(path.read_text())


if __name__ == "__main__":
  main()

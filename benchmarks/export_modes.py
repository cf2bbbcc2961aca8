"""Export one trained student in every TFLite mode: bytes, parity, latency.

For each quantization mode (none, float16, dynamic, int8) this runs the same
`export_student` as `tfdistill export --tflite --saved_model` (with the
threshold at 0 so that a failing mode is measured too, and the default
gate's verdict recorded) and reads the manifest back: .tflite bytes (plain
and gzipped), top-K agreement with the SavedModel and the largest score
error, p50/p95 latency of TFLite and of the SavedModel (batch 1, one thread,
measured one after the other in the same subprocess) and their ratio.

    python benchmarks/export_modes.py --run=RUN_DIR      # a pipeline run
    python benchmarks/export_modes.py --model=PATH       # any saved student
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

import _common  # pylint: disable=import-error

import tfdistill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)

from tfdistill.export.exporter import DEFAULT_MIN_AGREEMENT
from tfdistill.export.exporter import export_student
from tfdistill.export.exporter import ExportConfig
from tfdistill.export.tflite import QUANTIZATION_MODES


def _model_path(args) -> str:
  if args.model:
    return args.model
  metrics = os.path.join(args.run, "report", "metrics.json")
  if not os.path.isfile(metrics):
    sys.exit(f"error: --run={args.run}: {metrics} not found; finish the run "
             "with `tfdistill pipeline --out=...` first, or pass --model.")
  with open(metrics) as f:
    return json.load(f)["student_kd"]["path"]


def export_row(model: str, mode: str, work: str, runs: int) -> dict:
  # min_agreement=0 lets every mode through so that its parity is measured;
  # the default gate's verdict is recorded beside it.
  manifest = export_student(model, os.path.join(work, mode), ExportConfig(
      tflite=True, saved_model=True, quantize=mode, latency_runs=runs,
      min_agreement=0.0))
  sizes, parity, timing = (manifest["bytes"], manifest["parity"],
                           manifest["latency"])
  default_gate = (parity["identical_up_to_ties"] == 1.0 if mode == "none"
                  else parity["agreement"] >= DEFAULT_MIN_AGREEMENT[mode])
  return {"quantization": mode, "default_gate_passes": default_gate,
          "tflite_bytes": sizes["tflite"],
          "tflite_gzip_bytes": sizes["tflite_gzip"],
          "bytes_vs_float32": sizes["tflite"] / sizes["float32_tflite"],
          "agreement@k": parity["agreement"],
          "identical_up_to_ties": parity["identical_up_to_ties"],
          "max_score_error": parity["max_score_error"],
          "tflite_p50_ms": timing["tflite"]["p50_ms"],
          "tflite_p95_ms": timing["tflite"]["p95_ms"],
          "saved_model_p50_ms": timing["saved_model"]["p50_ms"],
          "tflite_vs_saved_model": timing["tflite_vs_saved_model_p50"],
          "top_k": parity["top_k"], "parity_examples": parity["examples"]}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--run", help="a `tfdistill pipeline` run directory; "
                      "its student_kd is exported")
  source.add_argument("--model", help="a saved student (tfdistill export "
                      "--model=)")
  parser.add_argument("--modes", default=",".join(QUANTIZATION_MODES))
  parser.add_argument("--runs", type=int, default=300,
                      help="timed requests per format and mode")
  parser.add_argument("--name", default="export_modes")
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  args = parser.parse_args()
  model = _model_path(args)
  work = tempfile.mkdtemp(prefix="tfdistill-export-modes-")
  try:
    rows = [export_row(model, mode, work, args.runs)
            for mode in args.modes.split(",")]
  finally:
    shutil.rmtree(work, ignore_errors=True)
  columns = ["quantization", "default_gate_passes", "tflite_bytes", "tflite_gzip_bytes",
             "bytes_vs_float32", "agreement@k", "identical_up_to_ties",
             "max_score_error", "tflite_p50_ms", "saved_model_p50_ms",
             "tflite_vs_saved_model"]
  path = _common.write_report(
      args.out, args.name, "Export modes of one student", {
          "model": model, "modes": rows},
      [("Parity with the SavedModel on the held-out contexts, bytes and "
        "latency per mode", rows, columns)],
      notes=f"Model: `{model}`. Latency: batch 1, one thread, {args.runs} "
            "requests per format; the ratio is TFLite p50 / SavedModel p50 "
            "measured in the same process.")
  print(path.read_text())


if __name__ == "__main__":
  main()

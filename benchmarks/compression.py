"""What does each compression step cost? Pruning against a no-pruning control.

The compressed student of `quality.py` is the distilled student after two
fine-tunes (pruning, then QAT), and fine-tuning alone moves a student's
NDCG@10 by several percent either way. This benchmark separates the two on
the same distilled students (the quality runs' `student_kd`, per seed):

* `qat_only`: QAT fine-tune, no pruning (the control: what one more epoch
  of distillation through int8 rounding does);
* `pruned_50`: the run's own compression step, by default the first
  measured one (50% polynomial magnitude pruning, one fine-tune epoch, then
  pruning-preserving QAT; `--compress_epochs`, `--table_pruning`);
* `pruned_50_2_epochs`: the same with two fine-tune epochs per step, and
  `qat_only_2_epochs`, its control;
* `pruned_50_2_epochs_lr3e-4`: two epochs per step at a learning rate of
  3e-4 instead of 1e-3 (fine-tuning moves a student that is already above
  its teacher less);
* `pruned_50_2_epochs_hard`: two epochs per step on the hard labels only
  (alpha 1: the teacher's loss weighs nothing);
* `pruned_50_fisher`, `pruned_50_2_epochs_fisher` (the pipeline's
  default since 2026-12-01, and quality.py's compressed variant) and
  `pruned_50_4_epochs_fisher`: the item table pruned once by Fisher
  saliency instead of gradually by magnitude, one, two or four fine-tune
  epochs per step.

The pruned variants before the Fisher ones prune the table by magnitude.

Each reports float NDCG@10 after the step, its int8 .tflite's NDCG@10 (run
with LiteRT), the change of both against the float distilled student, and
the int8 bytes. It takes quality.py's run flags, with the same defaults
(students 10 epochs from the teacher's item table) except the compression
(`COMPRESSION_DEFAULTS`), and reuses the students of the quality run with
those flags (trained here when missing). Result names tag what differs
from these defaults.

    python benchmarks/compression.py --min_agreement=0.85 \
        --variants=qat_only,pruned_50,pruned_50_2_epochs,\
pruned_50_2_epochs_lr3e-4,pruned_50_2_epochs_hard,pruned_50_fisher,\
pruned_50_2_epochs_fisher    # compression_latest_small
    python benchmarks/compression.py --min_agreement=0.85 --student_epochs=5 \
        --student_init=random    # the first measured students
    python benchmarks/compression.py --compress_epochs=2 \
        --table_pruning=fisher --variants=pruned_50,qat_only,\
qat_only_2_epochs,pruned_50_2_epochs,pruned_50_2_epochs_lr3e-4,\
pruned_50_2_epochs_hard,pruned_50_fisher,pruned_50_2_epochs_fisher,\
pruned_50_4_epochs_fisher    # compression_latest_small_c2_fisher: the
                             # students of quality_latest_small
"""

import dataclasses
import json
import os

import _common  # pylint: disable=import-error
import quality  # pylint: disable=import-error

import numpy as np


#: compression.py's run flags: quality.py's, with the first measured
#: compression as the run's own step (`pruned_50`).
COMPRESSION_DEFAULTS = dict(
    quality.HEADLINE, compress_epochs=quality.BASE["compress_epochs"],
    table_pruning=quality.BASE["table_pruning"])
_MAGNITUDE = dict(table_pruning="magnitude")
VARIANTS = {
    # One fine-tune epoch whatever --compress_epochs says (the name's own).
    "qat_only": dict(target_sparsity=0.0, fine_tune_epochs=1),
    "qat_only_2_epochs": dict(target_sparsity=0.0, fine_tune_epochs=2),
    "pruned_50": None,  # the quality run's own compressed step
    "pruned_50_2_epochs": dict(fine_tune_epochs=2, **_MAGNITUDE),
    "pruned_50_2_epochs_lr3e-4": dict(fine_tune_epochs=2,
                                      learning_rate=3e-4, **_MAGNITUDE),
    "pruned_50_2_epochs_hard": dict(fine_tune_epochs=2, alpha=1.0,
                                    **_MAGNITUDE),
    "pruned_50_fisher": dict(fine_tune_epochs=1, table_pruning="fisher"),
    "pruned_50_2_epochs_fisher": dict(fine_tune_epochs=2,
                                      table_pruning="fisher"),
    "pruned_50_4_epochs_fisher": dict(fine_tune_epochs=4,
                                      table_pruning="fisher"),
}


def _report(run, variant: str) -> dict:
  """One compression report of `variant` on `run`'s distilled student."""
  if VARIANTS[variant] is None:
    run.compressed()
    path = os.path.join(run.step_dir("compressed"), "compression_report.json")
    with open(path) as f:
      return json.load(f)
  path = os.path.join(run.out, f"compression_{variant}.json")
  if os.path.isfile(path):
    with open(path) as f:
      return json.load(f)
  _, report, _ = run.compress(dataclasses.replace(run.config.compress,
                                                  **VARIANTS[variant]))
  with open(path, "w") as f:
    json.dump(report, f, indent=1, default=float)
  return report


def row(seed: int, variant: str, report: dict) -> dict:
  first, last, lite = report["steps"][0], report["steps"][-1], report["tflite"]
  return {"seed": seed, "variant": variant,
          "sparsity": last["sparsity"],
          "kd_ndcg@10": first["ndcg@10"],
          "ndcg@10": last["ndcg@10"], "tflite_ndcg@10": lite["ndcg@10"],
          "int8_bytes": last.get(f"tflite_{lite['quantization']}_bytes")}


def summarize(rows: list) -> list:
  """Per variant: means over seeds and changes against the distilled mean."""
  table = []
  for variant in dict.fromkeys(r["variant"] for r in rows):
    mine = [r for r in rows if r["variant"] == variant]
    kd = np.mean([r["kd_ndcg@10"] for r in mine])
    float_ndcg = np.mean([r["ndcg@10"] for r in mine])
    lite = np.mean([r["tflite_ndcg@10"] for r in mine])
    per_seed = [r["tflite_ndcg@10"] / r["kd_ndcg@10"] - 1 for r in mine]
    table.append({
        "variant": variant, "seeds": len(mine),
        "sparsity": float(np.mean([r["sparsity"] for r in mine])),
        "kd_ndcg@10": float(kd), "ndcg@10": float(float_ndcg),
        "float_change": float(float_ndcg / kd - 1),
        "tflite_ndcg@10": float(lite), "tflite_change": float(lite / kd - 1),
        "tflite_change_per_seed": " / ".join(f"{c:+.1%}" for c in per_seed),
        "int8_bytes": mine[0]["int8_bytes"]})
  return table


def main():
  parser = quality.build_parser(COMPRESSION_DEFAULTS,
                                description=__doc__.split("\n")[0])
  parser.add_argument("--variants", default=",".join(VARIANTS),
                      help="comma-separated, from " + ", ".join(VARIANTS))
  run_args = parser.parse_args()
  quality.check_data(run_args)
  variants = run_args.variants.split(",")
  unknown = sorted(set(variants) - set(VARIANTS))
  if unknown:
    parser.error(f"unknown --variants {unknown}; choose from {list(VARIANTS)}")
  rows = []
  for seed in (int(s) for s in run_args.seeds.split(",")):
    run = quality.run_for(run_args, seed)
    rows += [row(seed, v, _report(run, v)) for v in variants]
  table = summarize(rows)
  name = run_args.name or ("compression_quick" if run_args.quick else
          f"compression_{run_args.data.replace('-', '_')}" +
          quality.result_suffix(run_args, COMPRESSION_DEFAULTS))
  path = _common.write_report(
      run_args.out, name, f"Cost of each compression step ({run_args.data}, "
      f"seeds {run_args.seeds}, students trained {run_args.student_epochs} "
      "epochs)", {"rows": rows, "variants": table},
      [("Mean over seeds (test split; changes against the float distilled "
        "student of the same seeds)", table,
        ["variant", "seeds", "sparsity", "kd_ndcg@10", "ndcg@10",
         "float_change", "tflite_ndcg@10", "tflite_change",
         "tflite_change_per_seed", "int8_bytes"]),
       ("Per seed", rows, ["seed", "variant", "sparsity", "kd_ndcg@10",
                           "ndcg@10", "tflite_ndcg@10", "int8_bytes"])],
      notes="qat_only: QAT fine-tune without pruning (control); pruned_50: "
      f"the run's own compress step ({run_args.compress_epochs} fine-tune "
      f"epoch(s) per step, item table pruned by {run_args.table_pruning}); "
      "qat_only is one fine-tune epoch; *_2_epochs, *_4_epochs: two or four "
      "fine-tune epochs per step (tables by magnitude unless *_fisher). "
      "tflite: the int8 .tflite of each, run with LiteRT.")
  print(path.read_text())


if __name__ == "__main__":
  main()

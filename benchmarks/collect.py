"""Assembles BENCHMARKS.md from the latest results in benchmarks/results/.

Each benchmark script writes `<name>.json` and `<name>.md`; this script puts
the Markdown tables under one heading per benchmark, after a summary of the
targets and the hand-written reading in benchmarks/NOTES.md, so that
BENCHMARKS.md always shows what the result files say.

    python benchmarks/collect.py
"""

import json
import pathlib

import _common  # pylint: disable=import-error

from tfdistill.reporting import markdown_table

SECTIONS = (
    ("quality_latest_small",
     "Quality with the pipeline's student and compression (latest-small, "
     "students 10 epochs from the teacher's item table; two fine-tune epochs "
     "per compression step, item table pruned by Fisher saliency; "
     "student_kd_<loss>: each distillation loss alone)"),
    ("quality_latest_small_onednn_teachers",
     "Earlier: the same configuration, first run (teachers trained with "
     "oneDNN on; no per-loss students)"),
    ("quality_latest_small_c1_magnitude",
     "Earlier: quality with the teacher's item table and one-epoch "
     "magnitude compression (latest-small, students 10 epochs, no "
     "multi-teacher or assistant variants)"),
    ("quality_latest_small_e5_random_c1_magnitude",
     "Earlier: quality with random item tables (latest-small, students 5 "
     "epochs)"),
    ("quality_synthetic_e5",
     "Quality on the embedded synthetic default with the pipeline's own "
     "settings (the targets are latest-small's)"),
    ("quality_synthetic_e3_random_c1_magnitude",
     "Earlier: quality on the embedded synthetic default (the pipeline's "
     "sizes, 3-epoch teacher and students at learning rate 2e-3, random "
     "item tables)"),
    ("student_encoders",
     "Student context encoders against one teacher (latest-small)"),
    ("student_encoders_seed0",
     "Student context encoders incl. a CNN (latest-small, seed 0)"),
    ("compression_latest_small_e5_random",
     "Cost of each compression step against a no-pruning control "
     "(latest-small, students 5 epochs, random item tables)"),
    ("compression_latest_small_random",
     "Cost of compression on the students trained 10 epochs (latest-small, "
     "random item tables)"),
    ("compression_latest_small_c2_fisher",
     "Cost of compression on the quality run's students (latest-small, "
     "quality_latest_small's students and settings)"),
    ("compression_latest_small_b1_hint",
     "Cost of compression on the one-block teacher's hint students "
     "(latest-small, quality_latest_small_b1_hint's students; diagnostics "
     "beside its pipeline step)"),
    ("compression_latest_small",
     "Cost of compression on the students with the teacher's item table "
     "(latest-small, students 10 epochs, the earlier teachers)"),
    ("compression_synthetic_e5_c2_fisher",
     "Cost of compression on the synthetic default (the pipeline's "
     "settings)"),
    ("student_epochs_10",
     "Students trained 10 epochs instead of 5 (latest-small)"),
    ("teacher_epochs_10_seed0",
     "A teacher trained 10 epochs instead of 5 (latest-small, seed 0)"),
    ("training_budget",
     "Quality against training budget: the student alone and distilled "
     "after every epoch (latest-small)"),
    ("student_init",
     "The student's item table from the teacher's items (latest-small, "
     "students 10 epochs)"),
    ("teacher_ensemble",
     "Distilling from an ensemble of the three seeds' teachers "
     "(latest-small, students 10 epochs)"),
    ("cached_teacher",
     "Distilling from a cached teacher top-50: quality and step time "
     "(latest-small, students 10 epochs)"),
    ("cached_teacher_t1",
     "Distilling from a cached teacher top-50 with the KL at T=1 "
     "(latest-small, students 10 epochs)"),
    ("distillation", "Distillation losses one by one (latest-small, one seed)"),
    ("export_modes", "Export modes of the latest-small distilled student"),
    ("export_modes_compressed",
     "Export modes of the latest-small compressed (50% pruned + QAT) student"),
    ("speed", "Training-step and serving-latency ratios"),
    ("pipeline_default", "`tfdistill pipeline` with no flags (the "
     "teacher's item table by default since 2026-12-01)"),
    ("own_teacher", "A teacher trained outside tfdistill (the TFRS "
     "sequential-retrieval tutorial's GRU, latest-small), distilled from "
     "its SavedModel with `--teacher=`"),
    ("teacher_objective", "Teacher training targets per second: every "
     "position at once against sliding windows (ml-1m.txt)"),
    ("pipeline_teacher_items",
     "`tfdistill pipeline --student_init=teacher_items` (synthetic default, "
     "before it was the default)"),
)
#: quality.py results whose targets table heads BENCHMARKS.md, the
#: configuration the pipeline trains by default first, then the earlier
#: measured configurations it grew out of.
TARGET_TABLES = (
    ("quality_latest_small",
     "Targets with the pipeline's student and compression (latest-small, "
     "quality.py's defaults: students 10 epochs from the teacher's item "
     "table, two fine-tune epochs per compression step, Fisher table "
     "pruning)"),
    ("quality_latest_small_b1_hint",
     "Targets with a one-block teacher and the hint loss, the configuration "
     "that meets every target: its online and cached steps are in the speed "
     "rows further down (latest-small, `--teacher_blocks=1 --loss=hint`)"),
    ("quality_latest_small_b1",
     "A one-block teacher with the pipeline's KL + hint, and the hint and "
     "contrastive losses alone (latest-small, `--teacher_blocks=1 "
     "--loss_variants=hint,contrastive`)"),
    ("quality_latest_small_onednn_teachers",
     "Earlier: the same configuration, first run (teachers trained with "
     "oneDNN on, before it was turned off; `--min_agreement=0.85`)"),
    ("quality_latest_small_c1_magnitude",
     "Earlier: the teacher's item table with one-epoch magnitude compression "
     "(latest-small, students 10 epochs, `--compress_epochs=1 "
     "--table_pruning=magnitude`)"),
    ("quality_latest_small_e5_random_c1_magnitude",
     "Earlier: random item tables (latest-small, students 5 epochs, "
     "`--student_epochs=5 --student_init=random --compress_epochs=1 "
     "--table_pruning=magnitude`)"))
#: quality.py Pareto figures shown under the targets: name -> caption.
FIGURES = (
    ("quality_latest_small",
     "quality against size (the pipeline's student and compression)"),
    ("quality_latest_small_e5_random_c1_magnitude",
     "quality against size (earlier: random item tables)"))
INTRO = """# Benchmarks

Measured by the scripts in `benchmarks/`; every table below is copied from
`benchmarks/results/<name>.md` by `python benchmarks/collect.py`, and the
JSON next to it holds every number plus the machine. Ratios are measured in
one run (both sides one after the other on the same machine), so machine
noise affects both alike; absolute times are only indicative.

To reproduce a table, run the command printed above it from the repository
root (after `pip install -e .`), then `python benchmarks/collect.py`. The
latest-small benchmarks read the GroupLens archive from
`../shared/data/movielens` and build it with TFDS offline; set
`TFDS_DATA_DIR` to keep that build between runs. Training runs are kept
under `benchmarks/results/runs/` (not committed), so a rerun reuses finished
steps.
"""


def _load(results: pathlib.Path, name: str):
  path = results / f"{name}.json"
  return json.loads(path.read_text()) if path.is_file() else None


def other_targets(results: pathlib.Path) -> list:
  """The targets measured outside the quality table, where results exist."""
  rows = []

  def add(target, measured, op, goal, source):
    rows.append({"target": target, "measured": measured,
                 "goal": f"{op} {goal}",
                 "met": measured <= goal if op == "<=" else measured >= goal,
                 "source": source})
  longer = _load(results, "student_epochs_10")
  if longer:
    mean = next(r for r in longer["encoders"] if r["encoder"] == "mean")
    add("student_kd NDCG@10 / teacher NDCG@10 (students 10 epochs)",
        mean["kd_vs_teacher"], ">=", 0.9, "student_epochs_10")
    add("student_kd NDCG@10 gain over student_alone (students 10 epochs)",
        mean["kd_vs_alone"], ">=", 0.2, "student_epochs_10")
  budget = _load(results, "training_budget")
  if budget:
    met = [row["epoch"] for row in budget["epochs"] if row["both_met"]]
    rows.append({
        "target": "student_kd >= 0.9x the teacher and >= +20% over "
                  "student_alone at one budget (epochs where both hold)",
        "measured": ", ".join(map(str, met)) or "none",
        "goal": f"any of 1-{len(budget['epochs'])}", "met": bool(met),
        "source": "training_budget"})
  init = _load(results, "student_init")
  if init:
    kd = next(r for r in init["variants"]
              if r["variant"] == "kd_teacher_items")
    add("student_kd with the teacher's item table NDCG@10 / teacher NDCG@10 "
        "(students 10 epochs)", kd["vs_teacher"], ">=", 0.9, "student_init")
    add("student_kd with the teacher's item table NDCG@10 gain over "
        "student_alone (students 10 epochs)", kd["vs_alone"], ">=", 0.2,
        "student_init")
  ensemble = _load(results, "teacher_ensemble")
  if ensemble:
    summary = {row["measure"]: row["value"] for row in ensemble["summary"]}
    size = len(ensemble["per_seed"])
    for measure, op, goal in (
        ("student params / ensemble params", "<=", 0.1),
        ("student_kd_ensemble NDCG@10 / ensemble NDCG@10", ">=", 0.9),
        ("student_kd_ensemble NDCG@10 gain over student_alone", ">=", 0.2)):
      add(f"{measure} ({size}-teacher ensemble)",
          summary[measure], op, goal, "teacher_ensemble")
  for name, label in (("compression_latest_small_e5_random",
                       "students 5 epochs"),
                      ("compression_latest_small_random",
                       "students 10 epochs"),
                      ("compression_latest_small",
                       "teacher's item table, students 10 epochs"),
                      ("compression_latest_small_c2_fisher",
                       "the quality run's students"),
                      ("compression_latest_small_b1_hint",
                       "the one-block teacher's hint students")):
    compression = _load(results, name)
    for row in (compression or {}).get("variants", []):
      if row["variant"].startswith("pruned_50"):
        add(f"{row['variant']} int8 TFLite NDCG@10 change vs student_kd "
            f"({label})", row["tflite_change"], ">=", -0.03, name)
  speed = _load(results, "speed")
  if speed:
    ten_k = [r for r in speed["catalog_scaling"] if r["catalog"] == 10000]
    for r in ten_k:
      add(f"TFLite top-10 p50 ms, 10k items ({r['quantization']})",
          r["p50_ms"], "<=", 1.0, "speed")
    add("Distiller step / student-alone step (online teacher)",
        speed["training"]["online_vs_alone"], "<=", 1.5, "speed")
    if "teacher_forward_vs_alone" in speed["training"]:
      add("the online teacher's forward pass alone / student-alone step "
          "(the least an online step adds)",
          speed["training"]["teacher_forward_vs_alone"], "<=", 0.5, "speed")
    for key, teacher in (("online_hint_vs_alone", "online teacher, hint "
                          "only: no catalog scores"),
                         ("online_hint_1_block_vs_alone", "online teacher "
                          "of 1 block, hint only; quality in "
                          "quality_latest_small_b1_hint")):
      if key in speed["training"]:
        add(f"Distiller step / student-alone step ({teacher})",
            speed["training"][key], "<=", 1.5, "speed")
    add("Distiller step / student-alone step (cached teacher top-K, KL at "
        "T=2 + ranking)",
        speed["training"]["cached_vs_alone"], "<=", 1.15, "speed")
    if "cached_kl_t1_vs_alone" in speed["training"]:
      add("Distiller step / student-alone step (cached top-K, KL at T=1: "
          "the hard loss's normaliser; quality in cached_teacher_t1)",
          speed["training"]["cached_kl_t1_vs_alone"], "<=", 1.15, "speed")
    if "cached_teacher_items_vs_alone" in speed["training"]:
      add("Distiller step / student-alone step (cached top-K, KL over the "
          "teacher's items only; it loses the distillation gain: "
          "cached_teacher)",
          speed["training"]["cached_teacher_items_vs_alone"], "<=", 1.15,
          "speed")
    if "cached_hint_vs_alone" in speed["training"]:
      add("Distiller step / student-alone step (cached hidden layer, hint "
          "only; quality in quality_latest_small_b1_hint)",
          speed["training"]["cached_hint_vs_alone"], "<=", 1.15, "speed")
  return rows


def _body(markdown: str) -> str:
  """A result file's Markdown without its first-level title."""
  lines = markdown.splitlines()
  if lines and lines[0].startswith("# "):
    lines = lines[1:]
  return "\n".join(line.replace("## ", "### ", 1) if line.startswith("## ")
                   else line for line in lines).strip()


def main(results: pathlib.Path = _common.DEFAULT_OUT,
         out: pathlib.Path = _common.REPO / "BENCHMARKS.md") -> None:
  parts = [INTRO]
  for name, heading in TARGET_TABLES:
    quality = results / f"{name}.json"
    checks = (json.loads(quality.read_text()).get("targets", [])
              if quality.is_file() else [])
    if checks:
      parts += [f"## {heading}", "",
                markdown_table(checks, ["target", "measured", "goal", "met",
                                        "ci95"]),
                ""]
  others = other_targets(results)
  if others:
    parts += ["## Other targets", "", markdown_table(
        others, ["target", "measured", "goal", "met", "source"]), ""]
  for name, caption in FIGURES:
    figure = results / f"{name}_pareto.png"
    if figure.is_file():
      parts += [f"![{caption}]({figure.relative_to(out.parent)})", ""]
  notes = _common.REPO / "benchmarks" / "NOTES.md"
  if notes.is_file():  # hand-written reading of the latest results
    parts += [notes.read_text().strip(), ""]
  for name, title in SECTIONS:
    path = results / f"{name}.md"
    if path.is_file():
      parts += [f"## {title}", "", _body(path.read_text()), ""]
  out.write_text("\n".join(parts))
  print(f"wrote {out}")


if __name__ == "__main__":
  main()

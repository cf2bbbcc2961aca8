"""The run report: metrics.json, Markdown and a self-contained HTML page.

Figures (matplotlib, PNG, embedded in the HTML as data URIs):

* quality against size: NDCG@10 of every stage against the bytes it ships
  as (`model_bytes`), with the Pareto front drawn through the stages no
  other stage beats on both;
* training curves: loss and validation NDCG@10 per epoch of every training;
* latency: p50/p95/p99 per request of the TFLite model and the SavedModel.
"""

import base64
import csv
import html
import os
from typing import Optional

from tfdistill.evaluation.ranking import STAGE_METRICS
from tfdistill.fileio import write_json

from tfdistill.reporting import markdown_table

STAGE_LABELS = {"teacher": "Teacher", "student_alone": "Student alone",
                "student_kd": "Student distilled", "compressed":
                "Compressed (pruned + QAT)", "tflite": "TFLite"}


def compressed_label(target_sparsity: float, qat: bool) -> str:
  """What the compression step applied: "pruned + QAT", "QAT", "pruned"
  or "fine-tuned" (neither)."""
  done = [name for name, applied in (("pruned", target_sparsity > 0),
                                     ("QAT", qat)) if applied]
  return " + ".join(done) or "fine-tuned"


def model_bytes(row: dict) -> int:
  """The bytes a stage ships as: its file's ("bytes", the .tflite), else
  its weights in float32 (4 bytes a parameter; a pruned Keras model is
  stored dense)."""
  return row.get("bytes") or 4 * row["params"]


def pareto_front(points: list) -> list:
  """Indices of points (size, quality) not dominated by any other point."""
  front = []
  for i, (size, quality) in enumerate(points):
    if not any(s <= size and q >= quality and (s, q) != (size, quality)
               for s, q in points):
      front.append(i)
  return sorted(front, key=lambda i: points[i][0])


def label_heights(points: list, gap: float) -> list:
  """The height of each point's label: its own, moved down where needed so
  that the labels of points of the same size are at least `gap` apart (the
  students of one size otherwise print their names over each other)."""
  heights = [quality for _, quality in points]
  order = sorted(range(len(points)),
                 key=lambda i: (points[i][0], -points[i][1], i))
  for above, below in zip(order, order[1:]):
    if points[above][0] == points[below][0]:
      heights[below] = min(heights[below], heights[above] - gap)
  return heights


def _plt():
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  return plt


def plot_pareto(rows: list, path: str, size_key: str = "params",
                title: str = "Quality against size",
                xlabel: str = None) -> str:
  """rows: dicts with "label", size_key and "ndcg@10"; xlabel defaults to
  size_key."""
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6.5, 4))
  points = [(r[size_key], r["ndcg@10"]) for r in rows]
  qualities = [y for _, y in points]
  # About 11 points of the plot's height at this size and fontsize 8.
  gap = 0.045 * ((max(qualities) - min(qualities)) or 1.0)
  for row, (x, y), height in zip(rows, points,
                                 label_heights(points, gap)):
    ax.scatter(x, y, s=40)
    ax.annotate(row["label"], (x, y), xytext=(x * 1.08, height),
                textcoords="data", va="center", fontsize=8,
                arrowprops=(dict(arrowstyle="-", color="grey", linewidth=0.5)
                            if height != y else None))
  front = pareto_front(points)
  ax.plot([points[i][0] for i in front], [points[i][1] for i in front],
          "--", color="grey", linewidth=1, label="Pareto front")
  ax.set_xscale("log")
  # Labels at 1, 2 and 5 of each decade ("200 k", "1 M"), none between.
  from matplotlib import ticker  # pylint: disable=import-outside-toplevel
  ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
  ax.xaxis.set_major_formatter(ticker.EngFormatter())
  ax.xaxis.set_minor_formatter(ticker.NullFormatter())
  ax.set_xlabel(xlabel or size_key.replace("_", " "))
  ax.set_ylabel("NDCG@10 (test)")
  ax.set_title(title)
  ax.legend(loc="lower right", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def plot_quality_against_bytes(rows: list, path: str,
                               title: str = "NDCG@10 against size") -> str:
  """`plot_pareto` of rows ("label", "params", "ndcg@10", "bytes" of a
  file where there is one) against `model_bytes`."""
  return plot_pareto([dict(row, model_bytes=model_bytes(row))
                      for row in rows], path, size_key="model_bytes",
                     title=title, xlabel="bytes (the .tflite file; float32 "
                     "weights of the others)")


def _read_log(path: str) -> dict:
  if not os.path.isfile(path):
    return {}
  with open(path) as f:
    rows = list(csv.DictReader(f))
  return {key: [float(r[key]) for r in rows if r.get(key) not in (None, "")]
          for key in (rows[0] if rows else {})}


def plot_training(run, path: str) -> str:
  plt = _plt()
  fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
  for step in ("teacher", "student_alone", "student_kd"):
    log = _read_log(os.path.join(run.step_dir(step), "training_log.csv"))
    if not log:
      continue
    epochs = [e + 1 for e in log.get("epoch", [])]
    left.plot(epochs, log.get("loss", []), marker="o",
              label=STAGE_LABELS[step])
    if "val_ndcg@10" in log:
      right.plot(epochs, log["val_ndcg@10"], marker="o",
                 label=STAGE_LABELS[step])
  left.set_title("Training loss")
  right.set_title("Validation NDCG@10")
  for ax in (left, right):
    ax.set_xlabel("epoch")
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def plot_latency(metrics: dict, path: str) -> str:
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6, 3.2))
  tflite = metrics["tflite"]
  series = {"TFLite (1 thread)": tflite.get("latency_ms", {}),
            "SavedModel (1 thread)": tflite.get("saved_model_latency_ms", {})}
  width = 0.38
  for i, (label, values) in enumerate(series.items()):
    keys = ["p50_ms", "p95_ms", "p99_ms"]
    ax.bar([k + i * width for k in range(3)],
           [values.get(k, 0.0) for k in keys], width, label=label)
  ax.set_xticks([k + width / 2 for k in range(3)], ["p50", "p95", "p99"])
  ax.set_ylabel("ms per request (batch 1)")
  ax.set_title("Latency")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def _stage_rows(metrics: dict) -> list:
  rows = []
  teacher = metrics["teacher"]["ndcg@10"] or float("nan")
  alone = metrics["student_alone"]["ndcg@10"] or float("nan")
  for stage, values in metrics.items():
    label = STAGE_LABELS.get(stage, stage)
    if stage == "compressed" and "target_sparsity" in values:
      label = "Compressed ({})".format(compressed_label(
          values["target_sparsity"], values.get("qat", True)))
    rows.append({"stage": label, "label": label, **values,
                 "vs teacher": values["ndcg@10"] / teacher,
                 "vs student alone": values["ndcg@10"] / alone - 1.0})
  return rows


def distillation_behind(alone: dict, kd: dict) -> Optional[str]:
  """The warning for a distilled student whose best validation NDCG@10 is
  below its twin's trained alone (None when it is not, or when either
  predates the figure): the split early stopping reads, not the test
  split the report's figures are on."""
  ours, theirs = kd.get("val_ndcg@10"), alone.get("val_ndcg@10")
  if ours is None or theirs is None or ours >= theirs:
    return None
  return ("On validation (the split that chose each student's kept epoch), "
          f"the distilled student's best NDCG@10 ({ours:.4f}) is below the "
          f"student alone's ({theirs:.4f}): distilled this way, the teacher "
          "may not help this student. Compare other --distillation_loss "
          "choices or a larger --alpha (the weight of the hard labels).")


def _headline(metrics: dict) -> list:
  t, a, kd = (metrics[k] for k in ("teacher", "student_alone", "student_kd"))
  lite = metrics["tflite"]
  share = (f"{kd['params'] / t['params']:.1%} of the teacher's"
           if t.get("params") else "the teacher's are not known")
  lines = [
      f"- The distilled student has {kd['params']:,} parameters "
      f"({share}) and reaches "
      f"{kd['ndcg@10'] / t['ndcg@10']:.0%} of the teacher's NDCG@10 "
      f"({kd['ndcg@10'] / a['ndcg@10'] - 1:+.0%} against the same student "
      "trained without a teacher).",
      f"- Compression ({metrics['compressed']['sparsity']:.0%} sparse, "
      f"{lite['quantization']} TFLite) changes NDCG@10 by "
      f"{lite['ndcg@10'] / kd['ndcg@10'] - 1:+.1%}; the .tflite is "
      f"{lite['bytes']:,} bytes, {lite['bytes'] / lite['float_bytes']:.0%} "
      "of the float32 .tflite.",
      f"- Parity with the SavedModel: top-{lite['parity']['top_k']} "
      f"agreement {lite['parity']['agreement']:.3f}."]
  behind = distillation_behind(a, kd)
  if behind:
    lines.insert(1, f"- {behind}")
  origin = t.get("origin")
  if origin:
    joined = origin.get("vocabulary") or {}
    lines.insert(0, f"- The teacher is the user's own: {origin['origin']}"
                 + (f"; {joined['unknown_to_teacher']} of "
                    f"{joined['student_items']} catalog items unknown to it"
                    if joined else "") + ".")
  p50, saved = (lite.get("latency_ms", {}).get("p50_ms"),
                lite.get("saved_model_latency_ms", {}).get("p50_ms"))
  if p50 and saved:
    lines.append(f"- TFLite p50 latency is {p50:.3f} ms per request, "
                 f"{p50 / saved:.2f}x the SavedModel's on this machine.")
  return lines


def _image(path: str) -> str:
  with open(path, "rb") as f:
    data = base64.b64encode(f.read()).decode("ascii")
  return f'<img alt="{os.path.basename(path)}" src="data:image/png;base64,{data}">'


def write_run_report(run) -> str:
  """Writes report/metrics.json, report.md, report.html and figures."""
  directory = run.step_dir("report")
  figures = os.path.join(directory, "figures")
  os.makedirs(figures, exist_ok=True)
  metrics = run.metrics()
  rows = _stage_rows(metrics)
  paths = [plot_quality_against_bytes(rows,
                                      os.path.join(figures, "pareto.png")),
           plot_training(run, os.path.join(figures, "training.png")),
           plot_latency(metrics, os.path.join(figures, "latency.png"))]
  columns = ["stage", *STAGE_METRICS, "params", "vs teacher",
             "vs student alone", "best_epoch", "epochs_trained",
             "training_seconds"]
  table = markdown_table(rows, columns)
  compression = os.path.join(run.step_dir("compressed"),
                             "compression_report.md")
  headline = _headline(metrics)
  config = run.config
  intro = (f"Data: {config.source.dataset}, {run.prepared.num_items - 2} "
           f"items, test split (leave-last-out, full catalog, seen items "
           f"excluded). Distillation loss: {config.distillation_loss}, "
           f"alpha {config.alpha}, temperature {config.temperature}; seed "
           f"{config.seed}.")
  markdown = "\n".join(
      ["# tfdistill run report", "", intro, "", *headline, "",
       "## Stages", "", table, "", "![quality vs size](figures/pareto.png)",
       "", "## Training", "", "![training curves](figures/training.png)", "",
       "## Latency", "", "![latency](figures/latency.png)", "",
       f"Compression details: {os.path.relpath(compression, directory)}", ""])
  with open(os.path.join(directory, "report.md"), "w") as f:
    f.write(markdown)
  html_rows = "".join(
      "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>"
                       for c in columns) + "</tr>" for r in rows)
  page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>tfdistill run report</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto;
       color: #222; line-height: 1.45; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
th {{ background: #f2f2f2; }}
img {{ max-width: 100%; margin: 0.5em 0; }}
.headline li {{ margin: 0.3em 0; }}
</style></head><body>
<h1>tfdistill run report</h1>
<p>{html.escape(intro)}</p>
<ul class="headline">{''.join(f'<li>{html.escape(h[2:])}</li>' for h in headline)}</ul>
<h2>Stages</h2>
<table><tr>{''.join(f'<th>{html.escape(c)}</th>' for c in columns)}</tr>{html_rows}</table>
<h2>Quality against size</h2>{_image(paths[0])}
<h2>Training</h2>{_image(paths[1])}
<h2>Latency</h2>{_image(paths[2])}
</body></html>
"""
  path = os.path.join(directory, "report.html")
  with open(path, "w") as f:
    f.write(page)
  # Last: metrics.json also marks the report step as finished.
  write_json(os.path.join(directory, "metrics.json"), metrics)
  return path


def _cell(value) -> str:
  from tfdistill.reporting import format_cell  # pylint: disable=import-outside-toplevel
  return format_cell(value)

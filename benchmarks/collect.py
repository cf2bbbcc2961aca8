"""Assembles BENCHMARKS.md from the current results in benchmarks/results/.

Each benchmark script writes `<name>.json` and `<name>.md`; this script
puts the current ones under one short section per question, each with its
command and its summary tables (per-seed and per-epoch tables stay in the
result files); the reading of the figures is in benchmarks/NOTES.md,
linked from the page.
Results of earlier configurations stay in benchmarks/results/ and git;
they are not on the page.

    python benchmarks/collect.py
"""

import json
import pathlib
import re

import _common  # pylint: disable=import-error

from tfdistill.reporting import markdown_table

#: (question, [(result name, short title, tables shown)]), in the order
#: of the page; tables are named by the start of their heading (None: all
#: but the per-seed and per-epoch ones).
SECTIONS = (
    ("Quality against the teacher", (
        ("ml1m", "MovieLens-1M, the literature's file, against published "
         "figures", ("tfdistill and the literature", "Targets")),
        ("ml1m_teachers", "MovieLens-1M: the teacher's dropout", None),
        ("ml1m_tables", "MovieLens-1M: product-quantized items, mean or "
         "self-attention", None),
        ("student_ceiling", "MovieLens-1M: what each item table keeps of "
         "the teacher", None),
        ("latest_small", "MovieLens latest-small, the pipeline's student",
         ("tfdistill", "Targets")),
        ("latest_small_strategies", "MovieLens latest-small: two teachers, "
         "a teaching assistant", None),
        ("latest_small_encoders", "MovieLens latest-small: the student's "
         "context encoder", None),
        ("own_teacher", "A TFRS tutorial model trained outside tfdistill",
         None),
        ("synthetic_teacher_objective", "The default teacher: every "
         "position or one target per window (synthetic)", None),
        ("pipeline_default", "`tfdistill pipeline` with no flags",
         ("Summary",)),
    )),
    ("Compression", (
        ("ml1m_compression", "Pruning before QAT against QAT alone, "
         "MovieLens-1M", None),
        ("latest_small_compression", "Each compression step against a "
         "control, latest-small", None),
    )),
    ("Export modes", (
        ("export_modes", "The distilled student", None),
    )),
    ("Speed", (
        ("speed", "Training steps", ("Ratios",)),
        ("latency", "On-device latency against the hardware limit",
         ("Exact top-10", "Approximate top-10 at")),
        ("teacher_objective", "Teacher training: every position against "
         "sliding windows", None),
        ("student_one_pass", "Student training on chunks: one pass "
         "against one window per target", None),
    )),
    ("Scaling", (
        ("scale", "Catalog size and local workers", None),
        ("sampled_softmax", "The student's softmax, dense or sampled",
         ("Mean over seeds",)),
    )),
)
#: Columns a page table keeps (the results file keeps every column), by
#: (result name, table heading prefix).
PAGE_COLUMNS = {
    ("ml1m_teachers", "Each stage"): (
        "configuration", "stage", "val ndcg@10", "ndcg@10", "vs reference",
        "ci95", "best epoch", "epochs trained", "seconds"),
    ("ml1m_tables", "Each stage"): (
        "configuration", "stage", "val ndcg@10", "ndcg@10", "vs reference",
        "ci95", "params", "best epoch", "epochs trained"),
    ("student_ceiling", "Oracle"): (
        "table", "params_vs_teacher", "ndcg@10", "ndcg_vs_teacher"),
    ("ml1m_compression", "Each stage"): (
        "configuration", "stage", "val ndcg@10", "ndcg@10", "vs student_kd",
        "gzip bytes"),
    ("latest_small", "tfdistill"): (
        "model", "hr@10", "ndcg@10", "ndcg@10 95% interval", "params",
        "best epoch", "epochs trained"),
    ("latest_small_encoders", "Each stage"): (
        "configuration", "stage", "ndcg@10", "vs reference", "ci95",
        "params", "best epoch", "epochs trained"),
    ("latest_small_compression", "Each stage"): (
        "configuration", "stage", "ndcg@10", "vs student_kd"),
    ("synthetic_teacher_objective", "Each stage"): (
        "configuration", "stage", "ndcg@10", "vs reference", "ci95",
        "seconds"),
    ("latest_small_strategies", "Each stage"): (
        "configuration", "stage", "ndcg@10", "vs reference", "ci95",
        "params", "best epoch", "epochs trained"),
    ("scale", "Growth"): ("cost", "slope", "at_10M", "at_10M_linear"),
    ("sampled_softmax", "Mean over seeds"): (
        "variant", "seeds", "ndcg@10", "ndcg_vs_dense", "step_ms",
        "step_vs_dense", "best_epochs"),
    ("scale", "Local workers"): (
        "workers", "seconds", "throughput_vs_1", "ndcg@10", "ndcg@10_vs_1"),
    ("latency", "Exact"): (
        "catalog", "quantization", "bytes", "p50_ms", "limit_p50_ms",
        "model_vs_limit"),
    ("teacher_objective", "Targets"): (
        "length", "objective", "negatives", "targets_per_second"),
    ("latency", "Approximate"): (
        "quantization", "probe", "recall_at_10", "p50_ms", "p99_ms",
        "speedup_vs_exact", "bytes"),
}
#: Results whose notes (settings of speed measurements) stay on their
#: result files, which the page links.
NOTES_ON_FILE = frozenset({"speed", "latency", "scale", "teacher_objective",
                           "student_ceiling",
                           "student_one_pass",
                           "sampled_softmax"})
#: Tables left on the result files: the per-seed and per-epoch details.
DETAIL = re.compile(r"^(Per seed|Per epoch)")
MACHINE_KEYS = ("cpu_count", "date", "git_commit")
INTRO = """# Benchmarks

The current figures, one section per question, assembled by
`python benchmarks/collect.py` from `benchmarks/results/<name>.md`; the JSON
beside each holds every number, the per-seed tables and the machine. Run a
heading's command from the repository root to reproduce it. Ratios are
measured within one run; times are this machine's (its CPU and library
versions are in each JSON). Data:
`../shared/data/movielens` (TFDS, offline) and
`../shared/data/ml-1m-sasrec/ml-1m.txt`. What the figures mean (protocol,
noise, each result): [benchmarks/NOTES.md](benchmarks/NOTES.md).
Comparisons: "vs reference" is the change against the first
configuration's same stage (ci95: paired bootstrap over test users), "vs
student_kd" against the row's own distilled student.
"""
#: How every comparison's notes start: its legend, stated once above.
COMPARISON_LEGEND = "vs reference:"


def _parts(markdown: str) -> tuple:
  """(command, [(heading, body)], notes, machine) of a result's Markdown."""
  command, machine, notes = "", "", []
  tables, heading, body = [], None, []
  for line in markdown.splitlines()[1:]:
    if line.startswith("Command: "):
      command = line[len("Command: "):]
    elif line.startswith("Machine: "):
      machine = line[len("Machine: "):]
    elif line.startswith("## "):
      if heading is not None:
        tables.append((heading, "\n".join(body).strip()))
      heading, body = line[3:], []
    elif heading is not None and (line.startswith("|") or not line.strip()
                                  or line.startswith("![")):
      body.append(line)
    elif line.strip():
      notes.append(line)
  if heading is not None:
    tables.append((heading, "\n".join(body).strip()))
  return command, tables, " ".join(notes), machine


#: Rows a result's table shows on the page: {name: (column, values)}.
PAGE_ROWS = {"synthetic_teacher_objective": ("stage", ("teacher",
                                                       "student_kd")),
             # The .tflite a phone runs, and the compressed Keras model
             # whose validation figure a choice reads.
             "ml1m_compression": ("stage", ("compressed", "tflite")),
             # The comparison is of teachers (its students stay on file).
             "ml1m_teachers": ("stage", ("teacher",)),
             "latest_small_compression": ("stage", ("tflite",))}


def _page_table(body: str, columns=None, rows_kept=None) -> str:
  """A Markdown table as the page shows it: only `columns` when given,
  only the rows whose `rows_kept[0]` cell is one of `rows_kept[1]`, and
  without the columns whose every cell equals an earlier column's (e.g.
  recall@10 = hr@10 with one relevant item)."""
  lines = body.splitlines()
  if len(lines) < 3 or not all(l.startswith("|") for l in lines[:2]):
    return body
  table = [l.strip().strip("|").split("|") for l in lines if
           l.startswith("|")]
  if len({len(row) for row in table}) != 1:
    return body
  if rows_kept:
    at = [name.strip() for name in table[0]].index(rows_kept[0])
    table = table[:2] + [row for row in table[2:]
                         if row[at].strip() in rows_kept[1]]
  cells = [[row[j].strip() for row in table[2:]] for j in range(len(table[0]))]
  names = [name.strip() for name in table[0]]
  keep = [j for j in range(len(cells))
          if not any(cells[i] == cells[j] for i in range(1, j))
          and (not columns or names[j] in columns)]
  rows = ["| " + " | ".join(row[j].strip() for j in keep) + " |"
          for row in table]
  rows[1] = "|" + "---|" * len(keep)
  rest = [l for l in lines if not l.startswith("|")]
  return "\n".join(rows + rest)


def _machine(line: str) -> str:
  values = dict(item.split("=", 1) for item in line.split(", ")
                if "=" in item)
  return ", ".join(f"{k}={values[k]}" for k in MACHINE_KEYS if k in values)


def section(results: pathlib.Path, name: str, title: str,
            chosen=None) -> list:
  """The lines of one result on the page ([] when it was not measured)."""
  path = results / f"{name}.md"
  if not path.is_file():
    return []
  command, tables, notes, machine = _parts(path.read_text())
  if chosen:
    shown = [t for t in tables if t[0].startswith(tuple(chosen))]
  else:
    shown = [t for t in tables if not DETAIL.match(t[0])] or tables[:1]
  lines = [f"### {title}", "", command, ""]
  for heading, body in shown:
    columns = next((c for (result, prefix), c in PAGE_COLUMNS.items()
                    if result == name and heading.startswith(prefix)), None)
    lines += [f"**{heading}**", "",
              _page_table(body, columns, PAGE_ROWS.get(name)), ""]
  if (notes and name not in NOTES_ON_FILE
      and not notes.startswith(COMPARISON_LEGEND)):
    lines += [notes, ""]
  if machine:
    lines += [f"<sub>{_machine(machine)}; all figures"
              f"{' and settings' if name in NOTES_ON_FILE else ''} in "
              f"benchmarks/results/{name}.json</sub>", ""]
  figure = results / f"{name}_pareto.png"
  if figure.is_file():
    lines += [f"![{title}: quality against size](benchmarks/results/"
              f"{figure.name})", ""]
  return lines


README_START = "<!-- results:start (written by benchmarks/collect.py) -->"
README_END = "<!-- results:end -->"
README_COLUMNS = ["data", "teacher", "student alone", "distilled",
                  "int8 .tflite", "student / teacher params", "seeds"]


def _row(data, stages: dict, seeds) -> dict:
  """A README row from {stage: (ndcg@10, params)}."""
  def ndcg(stage):
    value = stages.get(stage, (None, None))[0]
    return "" if value is None else f"{value:.4f}"
  teacher, student = stages["teacher"][1], stages["student_kd"][1]
  return {"data": data, "teacher": ndcg("teacher"),
          "student alone": ndcg("student_alone"),
          "distilled": ndcg("student_kd"), "int8 .tflite": ndcg("tflite"),
          "student / teacher params": (f"{student / teacher:.3f}"
                                       if teacher and student else ""),
          "seeds": seeds}


#: The run.py results in the README's table: (result name, data).
RUNNER_ROWS = (("ml1m", "MovieLens-1M (ml-1m.txt)"),
               ("latest_small", "MovieLens latest-small"))


def readme_rows(results: pathlib.Path) -> list:
  """The README's results table: one row per headline benchmark."""
  def load(name):
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None
  rows = []
  for name, data in RUNNER_ROWS:
    found = load(name)
    if found:
      summary = found["summary"]
      rows.append(_row(data, {
          stage: (summary.get(f"{stage}_ndcg@10"), summary.get(
              f"{stage}_params")) for stage in (
                  "teacher", "student_alone", "student_kd", "tflite")},
                       len(found["rows"])))
  own = load("own_teacher")
  if own:
    summary = own["summary"]
    first = own["rows"][0]
    rows.append(_row("latest-small, a TFRS tutorial GRU as the teacher", {
        "teacher": (summary["teacher"], first.get("teacher_params")),
        "student_alone": (summary["student_alone"], None),
        "student_kd": (summary["student_kd"],
                       first.get("student_kd_params"))}, len(own["rows"])))
  default = load("pipeline_default")
  if default:
    metrics = default["metrics"]
    rows.append(_row("synthetic default (`tfdistill pipeline`)", {
        stage: (metrics[stage]["ndcg@10"], metrics[stage].get("params"))
        for stage in ("teacher", "student_alone", "student_kd", "tflite")},
                     1))
  return rows


def readme_block(results: pathlib.Path) -> str:
  return "\n".join([README_START, "",
                    markdown_table(readme_rows(results), README_COLUMNS),
                    "", README_END])


def update_readme(results: pathlib.Path, readme: pathlib.Path) -> None:
  text = readme.read_text()
  start, end = text.index(README_START), text.index(README_END)
  readme.write_text(text[:start] + readme_block(results)
                    + text[end + len(README_END):])


def main(results: pathlib.Path = _common.DEFAULT_OUT,
         out: pathlib.Path = _common.REPO / "BENCHMARKS.md",
         readme: pathlib.Path = _common.REPO / "README.md") -> None:
  parts = [INTRO]
  for question, entries in SECTIONS:
    body = [line for name, title, chosen in entries
            for line in section(results, name, title, chosen)]
    if body:
      parts += [f"## {question}", ""] + body
  out.write_text("\n".join(parts))
  update_readme(results, readme)
  print(f"wrote {out} and the results table of {readme}")


if __name__ == "__main__":
  main()

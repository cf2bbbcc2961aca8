"""Small report helpers shared by the CLI, compression and benchmarks."""

import sys


def fit_verbosity() -> int:
  """`verbose=` for a long `fit`: the progress bar on a terminal, one line
  per epoch when the output goes to a file or a pipe (where a bar's
  carriage returns would pile up as one unreadable line)."""
  return 1 if sys.stdout.isatty() else 2


def format_cell(value) -> str:
  if isinstance(value, float):
    return f"{value:.4g}"
  if isinstance(value, (list, tuple)):
    return "x".join(str(v) for v in value)
  return "" if value is None else str(value)


def markdown_table(rows: list, columns: list) -> str:
  """Rows (dicts) as a Markdown table; floats with 4 significant digits."""
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(format_cell(row.get(c)) for c in columns) + " |"
            for row in rows]
  return "\n".join(lines)

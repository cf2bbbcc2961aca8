"""Small report helpers shared by the CLI, compression and benchmarks."""


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

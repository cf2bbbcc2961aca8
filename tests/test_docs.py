"""The docs cannot drift from what the code and CI do."""

import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]


def _readme_commands() -> list:
  text = (REPO / "README.md").read_text()
  block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
  return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_install_and_test_commands():
  install, tests = _readme_commands()[:2]
  assert "pip install -e ." in install and install.split("&&")[-1].strip(
  ).startswith("tfdistill")
  assert "pytest" in tests


def test_ci_runs_exactly_the_readme_test_command():
  test_command = _readme_commands()[1].split("&&")[-1].strip()
  ci = (REPO / ".ci" / "run").read_text()
  assert test_command in ci.splitlines()


# A measured figure: a percentage, a speed ratio ("1.3x") or a metric value.
_FIGURE = re.compile(r"\d+(\.\d+)?\s?%|\b\d+\.\d+x\b|\b0\.\d{2,}")


def _prose(markdown: str) -> list:
  """The README's running text: no code blocks, tables, inline code,
  headings or HTML comments."""
  text = re.sub(r"```.*?```", "", markdown, flags=re.S)
  text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
  lines = [line for line in text.splitlines()
           if not line.lstrip().startswith(("|", "#"))]
  return [re.sub(r"`[^`]*`", "", line) for line in lines]


def test_readme_prose_holds_no_measured_figure():
  text = (REPO / "README.md").read_text()
  found = [line for line in _prose(text) if _FIGURE.search(line)]
  assert not found, f"figures belong in tables (BENCHMARKS.md): {found}"


def _collect():
  import importlib
  import sys
  sys.path.insert(0, str(REPO / "benchmarks"))
  try:
    return importlib.import_module("collect")
  finally:
    sys.path.remove(str(REPO / "benchmarks"))


def test_benchmarks_page_and_readme_table_are_the_results_files(tmp_path):
  collect = _collect()
  readme = tmp_path / "README.md"
  readme.write_text((REPO / "README.md").read_text())
  page = tmp_path / "BENCHMARKS.md"
  collect.main(REPO / "benchmarks" / "results", page, readme)
  assert page.read_text() == (REPO / "BENCHMARKS.md").read_text(), (
      "BENCHMARKS.md drifted from benchmarks/results: run "
      "python benchmarks/collect.py")
  assert readme.read_text() == (REPO / "README.md").read_text(), (
      "README's results table drifted: run python benchmarks/collect.py")


def test_benchmarks_page_is_current_figures_under_short_headings():
  text = (REPO / "BENCHMARKS.md").read_text()
  headings = [line for line in text.splitlines() if line.startswith("#")]
  assert max(len(h) for h in headings) <= 80
  assert not [h for h in headings if "Earlier" in h]
  assert len(text) < 60_000


def _comments_and_docstrings(path: pathlib.Path) -> list:
  import ast
  import io
  import tokenize
  source = path.read_text()
  texts = [token.string for token in tokenize.generate_tokens(
      io.StringIO(source).readline) if token.type == tokenize.COMMENT]
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                         ast.AsyncFunctionDef)):
      texts.append(ast.get_docstring(node) or "")
  return texts


def test_no_measured_figure_in_library_comments_or_docstrings():
  # A docstring's example (run as a doctest) shows its computed output.
  found = [(str(path.relative_to(REPO)), text[:80])
           for path in sorted((REPO / "tfdistill").rglob("*.py"))
           for text in _comments_and_docstrings(path)
           if _FIGURE.search(re.split(r"\n\s*Examples?:\n", text)[0])]
  assert not found, f"measured figures go stale in code: {found}"


def test_readme_links_point_at_files():
  text = (REPO / "README.md").read_text()
  links = re.findall(r"\]\(([^)#:]+)\)", text)
  assert links
  missing = [link for link in links if not (REPO / link).exists()]
  assert not missing, missing

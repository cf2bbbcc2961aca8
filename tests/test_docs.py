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

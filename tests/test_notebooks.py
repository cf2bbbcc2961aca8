"""The notebooks run top to bottom (tiny settings) and are stored clean."""

import pathlib

import nbformat
from nbclient import NotebookClient
import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] /
                    "notebooks").glob("*.ipynb"))


def test_there_are_four_notebooks():
  assert [p.stem for p in NOTEBOOKS] == [
      "01_quickstart", "02_ranking_and_multitask",
      "03_compress_and_export_tflite", "04_distil_your_own_tfrs_model"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
  notebook = nbformat.read(path, as_version=4)
  for cell in notebook.cells:
    if cell.cell_type == "code":
      assert not cell.outputs and cell.execution_count is None, path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tmp_path, monkeypatch):
  monkeypatch.setenv("TFDISTILL_NOTEBOOK_SCALE", "tiny")
  monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
  notebook = nbformat.read(path, as_version=4)
  NotebookClient(notebook, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(tmp_path)}}).execute()
  errors = [o for c in notebook.cells for o in c.get("outputs", [])
            if o.get("output_type") == "error"]
  assert not errors

"""export/README.md uses the names, shapes and dtypes the exporter writes."""

import pathlib
import re

from tfdistill.export import saved_model as serving
from tfdistill.export import tflite
from tfdistill.export.exporter import ExportConfig
from tfdistill.export.exporter import export_student

DOC = (pathlib.Path(__file__).resolve().parents[2] / "export" /
       "README.md").read_text()


def _block(language: str) -> str:
  return "\n".join(re.findall(rf"```{language}\n(.*?)```", DOC, re.S))


def test_snippets_use_the_tflite_signature_names():
  for language in ("kotlin", "swift"):
    code = _block(language)
    assert f'"{tflite.SIGNATURE}"' in code, language
    for name in (tflite.INPUT, tflite.OUTPUT_IDS, tflite.OUTPUT_SCORES):
      assert f'"{name}"' in code, (language, name)
  assert "IntArray" in _block("kotlin") and "FloatArray" in _block("kotlin")
  assert "Int32" in _block("swift") and "Float32" in _block("swift")


def test_serving_snippets_use_the_serving_signature():
  rest, grpc = _block("bash"), _block("python")
  for code in (rest, grpc):
    assert serving.SERVING_SIGNATURE in code and f'"{tflite.INPUT}"' in code
  assert f'"{serving.OUTPUT_ITEM_IDS}"' in grpc and '"scores"' in grpc
  assert "tf.string" in grpc


def test_manifest_matches_the_doc(tmp_path, tiny_prepared, tiny_train):
  """The shapes/dtypes the doc states are the ones in a real manifest."""

  from conftest import make_student  # pylint: disable=import-outside-toplevel
  from tfdistill.data import examples  # pylint: disable=import-outside-toplevel
  from tfdistill.models.io import save_model  # pylint: disable=import-outside-toplevel
  student = make_student(tiny_prepared)
  contexts = examples.sequence_arrays(tiny_prepared, "train", 6).contexts
  path = save_model(student, str(tmp_path / "m"),
                    vocabulary=tiny_prepared.items, holdout=contexts[:20])
  manifest = export_student(path, str(tmp_path / "e"), ExportConfig(
      top_k=7, latency_runs=0))
  assert manifest["inputs"] == {tflite.INPUT: {"shape": [1, 6],
                                               "dtype": "int32"}}
  assert manifest["outputs"] == {
      tflite.OUTPUT_IDS: {"shape": [1, 7], "dtype": "int32"},
      tflite.OUTPUT_SCORES: {"shape": [1, 7], "dtype": "float32"}}
  assert "int32 `[1, L]`" in DOC and "int32 `[1, K]`" in DOC
  assert "float32 `[1, K]`" in DOC
  assert manifest["padding_id"] == 0 and manifest["oov_id"] == 1
  assert "left-padded with 0" in DOC and "unknown ids -> 1" in DOC
  vocabulary = (tmp_path / "e" / "tflite" / "vocabulary.txt").read_text()
  assert vocabulary.split("\n")[0] == "[PAD]"


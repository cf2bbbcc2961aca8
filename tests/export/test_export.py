"""Exports: every TFLite mode through LiteRT, SavedModel, parity gate."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfdistill.data import examples
from tfdistill.errors import ExportError
from tfdistill.export.exporter import export_student
from tfdistill.export import tflite as tflite_module
from tfdistill.export.exporter import ExportConfig
from tfdistill.export.tflite import LiteRTRecommender

L = 6


@pytest.mark.parametrize("table", [
    dict(kind="mixed", rank=4, head_items=30),
    dict(kind="product_quantized", num_codebooks=4, codewords=16)],
                         ids=lambda table: table["kind"])
def test_factored_table_student_exports_in_int8(table, tiny_prepared,
                                                tiny_train, tmp_path):
  from conftest import make_student  # pylint: disable=import-outside-toplevel
  from tfdistill.models.embeddings import EmbeddingConfig  # pylint: disable=import-outside-toplevel
  from tfdistill.models.io import save_model  # pylint: disable=import-outside-toplevel
  tf_keras.utils.set_random_seed(3)
  student = make_student(tiny_prepared, embedding_dim=16, hidden_dim=16,
                         embedding=EmbeddingConfig(**table))
  student.compile(tf_keras.optimizers.Adam(1e-2), loss=tf_keras.losses
                  .SparseCategoricalCrossentropy(from_logits=True))
  student.fit(tiny_train, epochs=3, verbose=0)
  path = save_model(student, str(tmp_path / "student"),
                    vocabulary=tiny_prepared.items,
                    representative=examples.sequence_arrays(
                        tiny_prepared, "train", L).contexts[:100],
                    holdout=examples.evaluation_set(
                        tiny_prepared, "validation", L).contexts)
  manifest = export_student(path, str(tmp_path / "export"), ExportConfig(
      quantize="int8", top_k=5, latency_runs=5))
  assert manifest["parity"]["passed"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["none", "float16", "dynamic", "int8"])
def test_every_mode_passes_the_parity_gate(mode, saved_student, tmp_path,
                                           tiny_prepared):
  out = str(tmp_path / "export")
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    manifest = export_student(saved_student, out, ExportConfig(
        quantize=mode, saved_model=True, top_k=5, latency_runs=20))
  # The int8 calibrator's own tf.lite.Interpreter does not warn the user
  # about an interpreter tfdistill does not use.
  assert not [w for w in caught if "tf.lite.Interpreter is deprecated"
              in str(w.message)]
  assert manifest["parity"]["passed"]
  if mode == "none":
    assert manifest["parity"]["identical_up_to_ties"] == 1.0
  on_disk = json.load(open(os.path.join(out, "tflite", "manifest.json")))
  assert on_disk["signature"] == "recommend" and on_disk["input"] == "context"
  assert on_disk["inputs"]["context"] == {"shape": [1, L], "dtype": "int32"}
  assert on_disk["outputs"]["item_indices"]["shape"] == [1, 5]
  assert "FlexDelegate" not in on_disk["ops"] and all(
      not op.startswith("Flex") for op in on_disk["ops"])
  assert on_disk["latency"]["tflite"]["p50_ms"] > 0
  lite = LiteRTRecommender(os.path.join(out, "tflite", "model.tflite"))
  context = examples.evaluation_set(tiny_prepared, "test", L).contexts[0]
  ids, scores = lite(context)
  assert not set(ids) & set(context[context > 0]) and (ids >= 2).all()
  assert (np.diff(scores) <= 1e-6).all()
  vocabulary = open(os.path.join(out, "tflite", "vocabulary.txt")).read()
  assert vocabulary.split("\n")[:2] == ["[PAD]", "[OOV]"]
  if mode == "int8":
    # No activation may need a huge int8 range (a masking sentinel did:
    # scale 39, and top-10 agreement fell to 0.7 on a 3000-item catalog).
    scales = [t["quantization"][0] for t in
              lite.interpreter.get_tensor_details()
              if t["dtype"] == np.int8 and t["quantization"][0] > 0]
    assert scales and max(scales) < 1.0, max(scales)
    # The context pooling stays float (selective quantization: int8 rounding
    # of its masks and divisions moved the top-10 most); the Dense layers
    # and the catalog scores run in int8.
    tensors = {t["index"]: t for t in lite.interpreter.get_tensor_details()}
    types = {"pool": set(), "FULLY_CONNECTED": set()}
    for op in lite.interpreter._get_ops_details():  # pylint: disable=protected-access
      for index in op["outputs"]:
        name = tensors[index]["name"]
        key = "pool" if "/pool/" in name else op["op_name"]
        if key in types:
          types[key].add(np.dtype(tensors[index]["dtype"]).name)
    assert types["FULLY_CONNECTED"] == {"int8"}, types
    assert "float32" in types["pool"] and "int8" not in types["pool"], types


def test_saved_model_serves_raw_ids(saved_student, tmp_path, tiny_prepared):
  out = str(tmp_path / "export")
  export_student(saved_student, out, ExportConfig(
      tflite=False, saved_model=True, top_k=4, model_name="recs",
      latency_runs=0))
  version = os.path.join(out, "serving", "recs", "1")
  assert os.path.isfile(os.path.join(version, "assets.extra",
                                     "tf_serving_warmup_requests"))
  loaded = tf.saved_model.load(version)
  assert {"serving_default", "score", "embed"} <= set(loaded.signatures)
  context = tiny_prepared.items.ids(examples.evaluation_set(
      tiny_prepared, "test", L).contexts[:2]).astype(str)
  context[context == "[PAD]"] = ""
  out_ids = loaded.signatures["serving_default"](context=tf.constant(context))
  assert out_ids["item_ids"].shape == (2, 4)
  assert out_ids["item_ids"].dtype == tf.string
  scored = loaded.signatures["score"](context=tf.constant(context),
                                      candidates=out_ids["item_ids"])
  np.testing.assert_allclose(scored["scores"], out_ids["scores"], rtol=1e-5)
  shown = subprocess.run(
      [os.path.join(os.path.dirname(sys.executable), "saved_model_cli"),
       "show", "--dir", version, "--tag_set", "serve", "--signature_def",
       "serving_default"], capture_output=True, text=True, check=True).stdout
  assert "context" in shown and "DT_STRING" in shown and "item_ids" in shown
  # A second export is a new version, never an overwrite.
  export_student(saved_student, out, ExportConfig(
      tflite=False, saved_model=True, model_name="recs", latency_runs=0))
  assert sorted(os.listdir(os.path.join(out, "serving", "recs"))) == ["1",
                                                                      "2"]
  with pytest.raises(ExportError, match="already exists"):
    export_student(saved_student, out, ExportConfig(
        tflite=False, saved_model=True, model_name="recs", version=1,
        latency_runs=0))


def test_modes_converted_from_one_saved_model_are_the_single_conversions(
    tiny_prepared):
  from conftest import make_student  # pylint: disable=import-outside-toplevel
  tf_keras.utils.set_random_seed(4)
  student = make_student(tiny_prepared, embedding_dim=8, hidden_dim=8)
  contexts = examples.sequence_arrays(tiny_prepared, "train", L).contexts
  modes = ("int8", "none", "dynamic")
  together = tflite_module.convert_modes(student, modes, 5, contexts[:50])
  assert list(together) == list(modes)
  for mode in modes:
    alone = tflite_module.convert(student, mode, 5, contexts[:50])
    ids = [LiteRTRecommender(content).recommend_all(contexts[:8])[0]
           for content in (together[mode], alone)]
    np.testing.assert_array_equal(*ids)
    assert len(together[mode]) == len(alone)
  with pytest.raises(ExportError, match="representative"):
    tflite_module.convert_modes(student, ("none", "int8"), 5)


def test_failed_gate_leaves_nothing_behind(saved_student, tmp_path,
                                           monkeypatch):
  """A TFLite model that drifted from the SavedModel must not ship."""
  convert = tflite_module.convert_modes
  rng = np.random.default_rng(0)

  def perturbed(model, *args, **kwargs):
    clone = tf_keras.models.clone_model(model)
    clone.set_weights([w + rng.normal(scale=0.5, size=w.shape).astype(
        w.dtype) for w in model.get_weights()])
    return convert(clone, *args, **kwargs)

  monkeypatch.setattr(tflite_module, "convert_modes", perturbed)
  out = tmp_path / "export"
  with pytest.raises(ExportError, match="parity gate failed"):
    export_student(saved_student, str(out), ExportConfig(
        saved_model=True, latency_runs=0))
  assert os.listdir(out) == []  # no tflite/, no serving/, no staging


def test_bad_input(saved_student, tmp_path):
  with pytest.raises(ExportError, match="unknown quantization"):
    ExportConfig(quantize="int4")
  with pytest.raises(ExportError, match="cannot load a trained model"):
    export_student(str(tmp_path), str(tmp_path / "o"), ExportConfig())
  out = str(tmp_path / "o2")
  export_student(saved_student, out, ExportConfig(latency_runs=0))
  with pytest.raises(ExportError, match="already exists"):
    export_student(saved_student, out, ExportConfig(latency_runs=0))

"""Packaging: Keras 2 routing, the import guard, the console script."""

import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _python(code: str, env_extra: dict = None, cwd: str = None,
            args=()) -> subprocess.CompletedProcess:
  import os
  env = {k: v for k, v in os.environ.items()
         if k not in ("TF_USE_LEGACY_KERAS", "TF_ENABLE_ONEDNN_OPTS")}
  env.update(env_extra or {})
  env["TF_CPP_MIN_LOG_LEVEL"] = "3"
  return subprocess.run([sys.executable, "-c", code, *args],
                        capture_output=True, text=True, env=env, timeout=300,
                        check=False, cwd=cwd)


def test_import_routes_tf_keras_to_keras2():
  result = _python("import tfdistill, tensorflow as tf, os; "
                   "print(os.environ['TF_USE_LEGACY_KERAS'], "
                   "tf.keras.__name__)")
  assert result.returncode == 0, result.stderr
  flag, module = result.stdout.split()
  assert flag == "1"
  assert module.startswith("tf_keras")


_ONEDNN_STATE = ("import os, tfdistill; "
                 "from tensorflow.python.util import _pywrap_util_port as p; "
                 "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], p.IsMklEnabled())")


def test_import_turns_onednn_kernels_off_unless_asked():
  # oneDNN kernels corrupted the heap in about one teacher training in eight
  # on this CPU; the user's own setting wins.
  result = _python(_ONEDNN_STATE)
  assert result.returncode == 0, result.stderr
  assert result.stdout.split() == ["0", "False"]
  result = _python(_ONEDNN_STATE, {"TF_ENABLE_ONEDNN_OPTS": "1"})
  assert result.returncode == 0, result.stderr
  assert result.stdout.split() == ["1", "True"]


def test_import_after_plain_tensorflow_import_still_works():
  # tf.keras resolves lazily, so importing tensorflow first is fine as long
  # as nothing has touched tf.keras yet.
  result = _python("import tensorflow as tf; import tfdistill; "
                   "print(tf.keras.__name__)")
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip().startswith("tf_keras")


def test_import_refuses_tensorflow_bound_to_keras3():
  result = _python("import tensorflow as tf; tf.keras.layers; import tfdistill")
  assert result.returncode != 0
  assert "ImportError" in result.stderr
  assert "TF_USE_LEGACY_KERAS=1" in result.stderr
  assert "Keras 3" in result.stderr


def test_setup_declares_console_script_and_pins():
  text = (REPO / "setup.py").read_text()
  assert "tfdistill=tfdistill.cli:run" in text
  for requirement in ("tensorflow>=2.21,<2.22", "tf-keras>=2.21,<2.22",
                      "importlib_resources", "ai-edge-litert",
                      "tensorflow-model-optimization", "keras-tuner"):
    assert requirement in text


def test_unknown_public_name_raises_attribute_error():
  import tfdistill
  with pytest.raises(AttributeError, match="no attribute 'nope'"):
    getattr(tfdistill, "nope")


def test_one_public_api_every_name_resolves_once():
  """Each package lists its public names once; `tfdistill` offers them
  all, and importing it does not load TensorFlow."""
  result = _python(
      "import sys, importlib, tfdistill; "
      "print('tensorflow' in sys.modules); "
      "names = [n for p in tfdistill._PACKAGES for n in "
      "importlib.import_module('tfdistill.' + p).__all__]; "
      "print(len(names) == len(set(names))); "
      "print(all(getattr(tfdistill, n) is getattr(importlib.import_module("
      "'tfdistill.' + p), n) for p in tfdistill._PACKAGES for n in "
      "importlib.import_module('tfdistill.' + p).__all__))")
  assert result.returncode == 0, result.stderr
  assert result.stdout.split() == ["False", "True", "True"]


def test_configurations_load_without_tensorflow():
  """Every configuration the command line builds, and the presets, load
  without TensorFlow; the modules that build models still offer them."""
  result = _python(
      "import sys, tfdistill; "
      "from tfdistill.pipeline.config import preset; "
      "from tfdistill.cli import options; "
      "from tfdistill.models import StudentConfig, TeacherConfig, "
      "EmbeddingConfig; "
      "from tfdistill.export import ExportConfig, PartitionConfig; "
      "from tfdistill.compress import CompressConfig; "
      "[preset(name) for name in ('tiny', 'default', 'large')]; "
      "print('tensorflow' in sys.modules); "
      "from tfdistill.models.factory import TeacherConfig as T; "
      "from tfdistill.models.students import StudentConfig as S; "
      "from tfdistill.models.embeddings import EmbeddingConfig as E; "
      "from tfdistill.export.exporter import ExportConfig as X; "
      "from tfdistill.export.partitions import PartitionConfig as P; "
      "from tfdistill.compress.pipeline import CompressConfig as C; "
      "print((T, S, E, X, P, C) == (TeacherConfig, StudentConfig, "
      "EmbeddingConfig, ExportConfig, PartitionConfig, CompressConfig))")
  assert result.returncode == 0, result.stderr
  assert result.stdout.split() == ["False", "True"]


@pytest.mark.parametrize("argv,fragment", [
    (["pipeline", "--alpha=2"], "alpha must be in [0, 1]"),
    (["train-teacher", "--preset=huge", "--out=never"], "unknown preset"),
    (["distill", "--distillation_loss=kl+nope", "--out=never"],
     "unknown distillation loss 'nope'"),
    (["export", "--model=never", "--out=never"], "nothing to export"),
    (["export", "--model=never", "--out=never", "--tflite", "--top_k=0"],
     "--top_k must be >= 1"),
])
def test_bad_flags_fail_before_tensorflow_loads(argv, fragment, tmp_path):
  result = _python(
      "import sys; sys.argv = ['tfdistill'] + sys.argv[1:]; "
      "from tfdistill.cli import run\n"
      "try:\n  run()\nexcept SystemExit as stop:\n"
      "  print(stop.code, 'tensorflow' in sys.modules)", cwd=str(tmp_path),
      args=argv)
  assert result.stdout.split() == ["2", "False"], result.stderr
  assert fragment in result.stderr, result.stderr
  assert not list(tmp_path.iterdir())


def test_distillation_flags_hold_for_the_compression_fine_tunes_too():
  """--alpha and --temperature set the compression step's Distiller as
  --quantize sets its quantization: a user asking for T=1 gets T=1 in every
  step. Unset, each keeps the preset's own."""
  code = ("import sys; from absl import flags; "
          "from tfdistill.cli import options; "
          "flags.FLAGS(['tfdistill'] + sys.argv[1:]); "
          "c = options.pipeline_config(); "
          "print(c.alpha, c.temperature, c.fine_tunes.alpha, "
          "c.fine_tunes.temperature, c.quantize, c.fine_tunes.quantize)")
  given = _python(code, args=["--alpha=0.3", "--temperature=1",
                              "--quantize=float16"])
  assert given.stdout.split() == ["0.3", "1.0", "0.3", "1.0", "float16",
                                  "float16"], given.stderr
  unset = _python(code)
  assert unset.stdout.split() == ["0.5", "2.0", "0.5", "2.0", "int8",
                                  "int8"], unset.stderr


def test_the_compression_fine_tunes_distil_as_the_student_did():
  """In the Python API too: a PipelineConfig's compress alpha and
  temperature, unless given, are its own, also after dataclasses.replace;
  config.json stores the values the step uses, and reads back the same."""
  import dataclasses
  from tfdistill.compress import CompressConfig
  from tfdistill.errors import ConfigError
  from tfdistill.pipeline.config import PipelineConfig
  from tfdistill.pipeline.config import preset
  config = PipelineConfig(temperature=0.5, alpha=0.2)
  assert config.compress.temperature is None
  assert (config.fine_tunes.alpha, config.fine_tunes.temperature) == (0.2, 0.5)
  assert config.to_json()["compress"]["temperature"] == 0.5
  moved = dataclasses.replace(config, temperature=1.0)
  assert moved.fine_tunes.temperature == 1.0
  assert preset("tiny", temperature=3.0).fine_tunes.temperature == 3.0
  given = PipelineConfig(temperature=0.5, compress=CompressConfig(
      temperature=2.0, fine_tune_epochs=1))
  assert (given.fine_tunes.alpha, given.fine_tunes.temperature) == (0.5, 2.0)
  stored = given.to_json()
  assert PipelineConfig.from_json(stored).to_json() == stored
  # A config equals its stored form (what a run directory compares).
  assert PipelineConfig.from_json(config.to_json()) == config
  assert hash(PipelineConfig.from_json(config.to_json())) == hash(config)
  assert moved != config
  assert PipelineConfig().to_json()["compress"]["temperature"] == 2.0
  with pytest.raises(ConfigError, match="compress temperature must be > 0"):
    CompressConfig(temperature=0.0)
  with pytest.raises(ConfigError, match="compress alpha must be in"):
    CompressConfig(alpha=1.5)


def test_the_names_the_readme_shows_are_public():
  import re
  import tfdistill
  readme = "\n".join(path.read_text() for path in [REPO / "README.md"] + sorted(
      (REPO / "docs").glob("*.md")))
  shown = set(re.findall(r"`(?:\w+\.)?([A-Z][A-Za-z]+|[a-z]+_[a-z_]+)"
                         r"\(", readme))
  missing = sorted(n for n in shown if not hasattr(tfdistill, n))
  assert not missing, f"README shows names tfdistill does not export: {missing}"

"""`tfdistill pipeline --preset=tiny` end to end, resume, and run-dir rules."""

import csv
import dataclasses
import json
import os
import shutil
import threading

import numpy as np
import pytest
import tf_keras

from cli_runner import assert_user_error
from cli_runner import last_json
from cli_runner import run_cli
from tfdistill.errors import ConfigError
from tfdistill.fileio import write_json
from tfdistill.models.io import MODEL_FILE
from tfdistill.pipeline.config import PipelineConfig
from tfdistill.pipeline.config import preset
from tfdistill.pipeline.run import Run
from tfdistill.pipeline.run import stored_config

STAGES = ("teacher", "student_alone", "student_kd", "compressed", "tflite")


def test_pipeline_writes_metrics_report_and_exports(tiny_run):
  out, printed, _ = tiny_run
  metrics = json.loads((out / "report" / "metrics.json").read_text())
  assert metrics == printed
  for stage in STAGES:
    for key in ("ndcg@10", "hr@10", "recall@10", "params", "path"):
      assert key in metrics[stage], (stage, key)
    assert os.path.exists(metrics[stage]["path"]), stage
  assert metrics["compressed"]["target_sparsity"] == 0.5
  assert 0 < metrics["compressed"]["val_ndcg@10"] <= 1
  assert abs(metrics["compressed"]["sparsity"] - 0.5) < 0.02
  lite = metrics["tflite"]
  assert lite["quantization"] == "int8" and lite["parity"]["passed"]
  assert lite["bytes"] < lite["float_bytes"]
  assert {"p50_ms", "p95_ms", "p99_ms"} <= set(lite["latency_ms"])
  assert metrics["student_kd"]["params"] == metrics["student_alone"]["params"]
  for name in ("report.md", "report.html", "figures/pareto.png",
               "figures/training.png", "figures/latency.png"):
    assert (out / "report" / name).is_file(), name
  html = (out / "report" / "report.html").read_text()
  assert "data:image/png;base64," in html and "Student distilled" in html
  for step in ("teacher", "student_kd"):
    assert list((out / step / "logs").rglob("events.out.tfevents.*"))
    assert (out / step / "training_log.csv").is_file()
  # Each training's kept epoch and the validation NDCG@10 it was kept by.
  for step in ("teacher", "student_alone", "student_kd"):
    with open(out / step / "training_log.csv") as f:
      logged = [float(row["val_ndcg@10"]) for row in csv.DictReader(f)]
    assert len(logged) == metrics[step]["epochs_trained"]
    assert metrics[step]["val_ndcg@10"] == pytest.approx(
        logged[metrics[step]["best_epoch"] - 1]) == pytest.approx(max(logged))
  behind = (metrics["student_kd"]["val_ndcg@10"]
            < metrics["student_alone"]["val_ndcg@10"])
  assert ("the distilled student's best NDCG@10 (" in (
      out / "report" / "report.md").read_text()) == behind
  assert (out / "export" / "serving" / "tfdistill_student" / "1" /
          "saved_model.pb").is_file()


def test_rerun_skips_finished_steps_and_is_repeatable(tiny_run, tmp_path):
  out, printed, _ = tiny_run
  again = run_cli("pipeline", "--preset=tiny", f"--out={out}", "--seed=3")
  assert last_json(again) == printed
  assert "teacher done" not in again.stderr  # nothing was retrained


@pytest.mark.slow
def test_student_path_feeds_export(tiny_run, tmp_path):
  _, metrics, _ = tiny_run
  result = run_cli("export", f"--model={metrics['student_kd']['path']}",
                   f"--out={tmp_path / 'e'}", "--tflite", "--quantize=dynamic",
                   "--top_k=5")
  summary = last_json(result)
  assert summary["parity"]["passed"]
  assert (tmp_path / "e" / "tflite" / "model.tflite").is_file()
  again = run_cli("export", f"--model={metrics['student_kd']['path']}",
                  f"--out={tmp_path / 'e'}", "--tflite")
  assert_user_error(again, "already exists", "--overwrite")


def test_a_copied_run_directory_points_at_its_own_files(tiny_run, tmp_path):
  out, _, _ = tiny_run
  stored = json.loads((out / "student_kd" / "metrics.json").read_text())
  assert stored["path"] == os.path.join("student_kd", "model")
  copy = tmp_path / "copy"
  shutil.copytree(out, copy)
  config = PipelineConfig.from_json(json.loads(
      (copy / "config.json").read_text()))
  metrics = Run(str(copy), config).metrics()
  for stage in STAGES:
    assert metrics[stage]["path"].startswith(str(copy)), stage
    assert os.path.exists(metrics[stage]["path"]), stage
  assert os.path.isdir(metrics["tflite"]["saved_model_path"])


@pytest.mark.slow
def test_cli_user_errors(tiny_run, tmp_path):
  out, _, _ = tiny_run
  assert_user_error(run_cli("pipeline", "--preset=tiny", f"--out={out}",
                            "--alpha=0.9"), "different configuration",
                    "alpha")
  assert_user_error(run_cli("pipeline", "--preset=huge"), "unknown preset")
  assert_user_error(run_cli("export", "--model=/nonexistent", "--tflite",
                            f"--out={tmp_path}/x"), "cannot load")
  assert_user_error(run_cli("export", f"--model={out}/student_kd/model",
                            f"--out={tmp_path}/y"), "nothing to export")
  assert_user_error(run_cli("pipeline", "--alpha=2", f"--out={tmp_path}/z"),
                    "alpha")
  assert_user_error(run_cli("distill", "--tflite", f"--out={tmp_path}/w"),
                    "do not apply")
  assert not (tmp_path / "x").exists() and not (tmp_path / "z").exists()


def test_data_flags_change_only_their_own_fields_of_the_preset(tmp_path):
  # --synthetic_users on the tiny preset keeps the preset's item count and
  # interactions per user (and its prepare settings), as --preset=large
  # --synthetic_users=N keeps its million items.
  out = tmp_path / "r"
  last_json(run_cli("train-teacher", "--preset=tiny", "--synthetic_users=90",
                    "--min_user_interactions=4", "--teacher_epochs=1",
                    f"--out={out}"))
  config = stored_config(str(out))
  tiny = preset("tiny")
  assert config.source.synthetic == dataclasses.replace(
      tiny.source.synthetic, num_users=90)
  assert config.prepare == dataclasses.replace(tiny.prepare,
                                               min_user_interactions=4)


@pytest.mark.slow
def test_flagfile_and_help(tmp_path):
  flagfile = tmp_path / "flags"
  flagfile.write_text("--preset=tiny\n--alpha=0.3\n--compress_epochs=3\n")
  out = run_cli("--help")
  assert "pipeline" in out.stdout and "tune" in out.stdout
  help_text = run_cli("export", "--help").stdout
  assert "--quantize" in help_text and "--saved_model" in help_text
  result = run_cli("train-teacher", f"--flagfile={flagfile}",
                   f"--out={tmp_path / 'r'}", "--teacher_epochs=1",
                   "--teacher_learning_rate=0.004",
                   "--student_learning_rate=0.02",
                   "--student_init=teacher_items",
                   "--table_pruning=magnitude", "--teacher_blocks=2",
                   "--teacher_dropout=0.3")
  summary = last_json(result)
  assert summary["params"] > 0
  config = json.loads((tmp_path / "r" / "config.json").read_text())
  assert config["alpha"] == 0.3 and config["teacher_epochs"] == 1
  assert config["compress"]["fine_tune_epochs"] == 3
  assert config["compress"]["table_pruning"] == "magnitude"
  assert (config["teacher_learning_rate"],
          config["student_learning_rate"]) == (0.004, 0.02)
  assert config["student_init"] == "teacher_items"
  assert config["teacher"]["num_blocks"] == 2  # the tiny preset's has 1
  assert config["teacher"]["dropout"] == 0.3
  no_blocks = run_cli("train-teacher", "--preset=tiny", "--teacher_blocks=0",
                      f"--out={tmp_path / 'none'}")
  assert_user_error(no_blocks, "teacher_blocks")
  assert not (tmp_path / "none").exists()
  assert_user_error(run_cli("train-teacher", "--preset=tiny",
                            "--teacher_dropout=1", f"--out={tmp_path / 'd'}"),
                    "--teacher_dropout")
  assert not (tmp_path / "d").exists()
  bad = run_cli("train-teacher", "--preset=tiny", "--student_learning_rate=0",
                f"--out={tmp_path / 'bad'}")
  assert bad.returncode != 0 and "student_learning_rate" in bad.stderr


def test_run_directories_of_older_versions_still_resume(tmp_path):
  out = str(tmp_path / "old")
  Run(out, preset("tiny")).claim()
  path = os.path.join(out, "config.json")
  with open(path) as f:
    stored = json.load(f)
  # Written before the fields existed.
  del stored["student_init"], stored["compress"]["table_pruning"]
  with open(path, "w") as f:
    json.dump(stored, f)
  # Its finished compression step read both fields.
  os.makedirs(os.path.join(out, "compressed"))
  write_json(os.path.join(out, "compressed", "metrics.json"), {})
  # That run's table was random and pruned by magnitude, the defaults of the
  # time (today's are auto and fisher).
  then = preset("tiny", student_init="random")
  then = dataclasses.replace(then, compress=dataclasses.replace(
      then.compress, table_pruning="magnitude"))
  Run(out, then)
  assert stored_config(out) == then
  with pytest.raises(ConfigError, match="differs in: "
                     "compress.table_pruning, student_init"):
    Run(out, preset("tiny"))


def test_interrupted_training_resumes_from_its_checkpoint(tmp_path,
                                                          monkeypatch):
  config = preset("tiny", teacher_epochs=3)
  run = Run(str(tmp_path / "r"), config)
  original = tf_keras.callbacks.CSVLogger
  monkeypatch.setattr(tf_keras.callbacks, "CSVLogger",
                      lambda *a, **k: _Chain(original(*a, **k)))
  with pytest.raises(KeyboardInterrupt):
    run.teacher()
  monkeypatch.setattr(tf_keras.callbacks, "CSVLogger", original)
  assert os.listdir(tmp_path / "r" / "teacher" / "checkpoints")
  # The interrupted training read its epochs; the students' are not read yet.
  with pytest.raises(ConfigError, match="differs in: teacher_epochs, which "
                     "its steps data, teacher read"):
    Run(str(tmp_path / "r"), dataclasses.replace(config, teacher_epochs=4))
  Run(str(tmp_path / "r"), dataclasses.replace(config, student_epochs=4))
  resumed = Run(str(tmp_path / "r"), config)
  resumed.teacher()
  log = (tmp_path / "r" / "teacher" / "training_log.csv").read_text()
  epochs = [line.split(",")[0] for line in log.strip().splitlines()[1:]]
  assert epochs == ["0", "1", "2"]  # epoch 0 once, then resumed at 1
  assert resumed.done("teacher")


class _Chain(tf_keras.callbacks.CSVLogger):
  """A CSVLogger that interrupts the training after its first epoch."""

  def __init__(self, logger):  # pylint: disable=super-init-not-called
    self.__dict__.update(logger.__dict__)

  def on_epoch_end(self, epoch, logs=None):
    super().on_epoch_end(epoch, logs)
    if epoch == 0:
      raise KeyboardInterrupt


def test_a_run_accepts_changes_that_only_steps_not_started_read(tmp_path):
  out = str(tmp_path / "r")
  config = preset("tiny")
  run = Run(out, config)
  assert run.prepared.num_items  # prepares data/
  run.claim()
  os.makedirs(os.path.join(out, "teacher"))
  write_json(os.path.join(out, "teacher", "metrics.json"), {})
  later = dataclasses.replace(config, min_agreement=0.5, student_epochs=7,
                              temperature=3.0)
  Run(out, later)
  assert stored_config(out) == config  # written when a step next writes
  Run(out, later).claim()
  assert stored_config(out) == later
  for field, value in (("teacher_epochs", 9), ("seed", 1),
                       ("context_length", 5)):
    with pytest.raises(ConfigError, match=f"differs in: {field}, which its "
                       "steps data, teacher read"):
      Run(out, dataclasses.replace(later, **{field: value}))
  with pytest.raises(ConfigError, match="--top_k=100000 is larger than the "
                     "catalog"):
    Run(out, dataclasses.replace(later, top_k=100000))
  assert stored_config(out) == later
  # Another distilled student (Run.distilled_student) read what student_kd
  # reads.
  os.makedirs(os.path.join(out, "from_ensemble"))
  write_json(os.path.join(out, "from_ensemble", "metrics.json"), {})
  with pytest.raises(ConfigError, match="temperature"):
    Run(out, dataclasses.replace(later, temperature=1.0))
  Run(out, dataclasses.replace(later, min_agreement=0.6))


@pytest.mark.slow
def test_a_refused_export_reruns_with_a_lower_gate_alone(tiny_run, tmp_path):
  # The export gate's advice (a lower --min_agreement) needs no retraining.
  out, _, _ = tiny_run
  copy = tmp_path / "copy"
  shutil.copytree(out, copy)
  shutil.rmtree(copy / "export")
  shutil.rmtree(copy / "report")
  model = copy / "compressed" / "model" / MODEL_FILE
  trained = model.stat().st_mtime_ns
  last_json(run_cli("pipeline", "--preset=tiny", "--seed=3",
                    f"--out={copy}", "--min_agreement=0.5"))
  assert stored_config(str(copy)).min_agreement == 0.5
  manifest = json.loads((copy / "export" / "metrics.json").read_text())[
      "manifest"]
  assert manifest["parity"]["min_agreement"] == 0.5
  assert model.stat().st_mtime_ns == trained  # not compressed again
  assert_user_error(run_cli("pipeline", "--preset=tiny", "--seed=3",
                            f"--out={copy}", "--compress_epochs=5"),
                    "differs in: compress.fine_tune_epochs")


def test_run_dir_rules(tmp_path):
  (tmp_path / "other").mkdir()
  (tmp_path / "other" / "file.txt").write_text("x")
  with pytest.raises(ConfigError, match="not a tfdistill run"):
    Run(str(tmp_path / "other"), preset("tiny"))
  with pytest.raises(ConfigError, match="unknown distillation loss"):
    PipelineConfig(distillation_loss="kl+magic")
  config = preset("tiny")
  assert PipelineConfig.from_json(config.to_json()) == config


def test_tflite_quality_is_measured_in_the_exported_mode(tiny_run, tmp_path):
  """The compression report measures int8; an export in another mode must
  not borrow that figure."""
  out = tmp_path / "copy"
  shutil.copytree(tiny_run[0], out)
  shutil.rmtree(out / "export")
  config = PipelineConfig.from_json(json.loads(
      (out / "config.json").read_text()))
  config = dataclasses.replace(config, quantize="dynamic")
  (out / "config.json").write_text(json.dumps(config.to_json()))
  run = Run(str(out), config)
  run.export()
  lite = run.metrics()["tflite"]
  assert lite["quantization"] == "dynamic"
  path = os.path.join(run.step_dir("compressed"), "metrics.json")
  report_mode = json.load(open(path))["tflite_eval"]["quantization"]
  assert report_mode == "int8"
  evaluated = run.step_metrics("export")["tflite_eval"]
  assert evaluated["quantization"] == "dynamic"
  assert lite["ndcg@10"] == evaluated["ndcg@10"]


@pytest.mark.slow
def test_the_runs_export_options_reach_the_exported_models(tiny_run,
                                                           tmp_path):
  """--exclude_length, --more_k and --partitions/--probe shape the run's
  export (probing every partition of the float model is exact search)."""
  out = tmp_path / "copy"
  shutil.copytree(tiny_run[0], out)
  shutil.rmtree(out / "export")
  config = PipelineConfig.from_json(json.loads(
      (out / "config.json").read_text()))
  config = dataclasses.replace(config, exclude_length=3, more_k=(4,),
                               partitions=4, probe=4, min_recall=1.0,
                               quantize="none")
  (out / "config.json").write_text(json.dumps(config.to_json()))
  manifest = Run(str(out), config).export()["manifest"]
  assert set(manifest["signatures"]) == {"recommend", "recommend_excluding",
                                         "recommend_k4"}
  assert manifest["partitions"]["recall_at_k"] == 1.0
  assert (out / "export" / "serving" / "models.config").is_file()


def test_a_run_distils_its_student_from_another_teacher(tiny_run, tmp_path):
  out = tmp_path / "copy"
  shutil.copytree(tiny_run[0], out)
  config = PipelineConfig.from_json(json.loads(
      (out / "config.json").read_text()))
  run = Run(str(out), config)
  teacher = run.teacher()
  student = run.distilled_student("student_pair", [teacher, teacher])
  metrics = run.step_metrics("student_pair")
  teacher_metrics = run.step_metrics("teacher")
  assert metrics["params"] == run.step_metrics("student_kd")["params"]
  assert metrics["params_vs_teacher"] == pytest.approx(
      metrics["params"] / (2 * teacher_metrics["params"]))
  assert (out / "student_pair" / "training_log.csv").is_file()
  assert Run(str(out), config).distilled_student(
      "student_pair", teacher).count_params() == student.count_params()


@pytest.mark.slow
def test_the_student_table_flags_reach_the_runs_students(tiny_run, tmp_path):
  """--student_table and its parameters choose the students' item table on
  the command line: product-quantized students trained alone and distilled
  from a run's teacher, their codes counted in their parameters; a table
  parameter that the table does not read, or values the table refuses, are
  user errors that write nothing."""
  from tfdistill.models.embeddings import ProductQuantizedEmbedding  # pylint: disable=import-outside-toplevel
  from tfdistill.models.io import count_parameters  # pylint: disable=import-outside-toplevel
  from tfdistill.models.io import load_model  # pylint: disable=import-outside-toplevel
  out = tmp_path / "pq"
  shutil.copytree(tiny_run[0], out)
  # This test's copy: its students are trained again with another table.
  for step in ("student_alone", "student_kd", "compressed", "export",
               "report"):
    shutil.rmtree(out / step, ignore_errors=True)
  table = ("--student_table=product_quantized", "--student_table_codebooks=2",
           "--student_table_codewords=4")
  last_json(run_cli("distill", "--preset=tiny", "--seed=3", f"--out={out}",
                    "--student_init=teacher_items", "--student_hidden_dim=12",
                    *table))
  config = json.loads((out / "config.json").read_text())["student"]
  assert config["hidden_dim"] == 12
  assert config["embedding"] == dict(kind="product_quantized", rank=8,
                                     num_buckets=0, head_items=0,
                                     num_codebooks=2, codewords=4)
  for step in ("student_alone", "student_kd"):
    student = load_model(str(out / step / "model"))
    items = student.get_layer("item_embedding")
    assert isinstance(items, ProductQuantizedEmbedding)
    assert items.codes.shape[1] == 2
    metrics = json.loads((out / step / "metrics.json").read_text())
    assert metrics["params"] == count_parameters(student)
    trainable = sum(int(np.prod(w.shape)) for w in student.trainable_weights)
    assert metrics["params"] == trainable + int(items.codes.shape[0]) * 2
  for bad, fragment in (
      (("--student_table_codebooks=2",), "--student_table_codebooks applies "
       "to --student_table=product_quantized, not to the full table"),
      (("--student_table=hash", "--student_table_rank=4"),
       "--student_table_rank applies to --student_table=low_rank/mixed"),
      (("--student_table=low_rank", "--student_table_rank=0"),
       "--student_table_rank"),
      (("--student_table=product_quantized", "--student_dim=6"),
       "--student_table_codebooks) must divide"),
      (("--student_table=low_rank", "--student_table_rank=16"),
       "must be at most the student's embedding_dim (8, --student_dim)")):
    new = tmp_path / "refused"
    assert_user_error(run_cli("distill", "--preset=tiny", f"--out={new}",
                              *bad), fragment)
    assert not new.exists()


def test_concurrent_writers_of_one_json_file_never_collide(tmp_path):
  # Two benchmark processes opening the same run both write its config.json;
  # with one shared temporary name, one writer's rename found no file.
  path = str(tmp_path / "config.json")
  errors = []

  def write(value):
    try:
      for _ in range(200):
        write_json(path, {"writer": value, "padding": "x" * 4096})
    except OSError as error:  # pragma: no cover - the failure being pinned
      errors.append(error)

  threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  assert not errors
  assert json.loads(open(path).read())["writer"] in range(4)
  assert os.listdir(tmp_path) == ["config.json"]  # no temporary file left

"""`tfdistill pipeline --preset=tiny` end to end, resume, and run-dir rules."""

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
from tfdistill.data import examples
from tfdistill.distill import transfer_item_embeddings
from tfdistill.errors import ConfigError
from tfdistill.fileio import write_json
from tfdistill.models.embeddings import EmbeddingConfig
from tfdistill.models.factory import TeacherConfig
from tfdistill.models.io import load_contexts
from tfdistill.pipeline.config import distillation_losses
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
                   "--table_pruning=magnitude", "--teacher_blocks=2")
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
  no_blocks = run_cli("train-teacher", "--preset=tiny", "--teacher_blocks=0",
                      f"--out={tmp_path / 'none'}")
  assert_user_error(no_blocks, "teacher_blocks")
  assert not (tmp_path / "none").exists()
  bad = run_cli("train-teacher", "--preset=tiny", "--student_learning_rate=0",
                f"--out={tmp_path / 'bad'}")
  assert bad.returncode != 0 and "student_learning_rate" in bad.stderr


def test_student_init_from_the_teachers_items(tmp_path):
  run = Run(str(tmp_path / "r"), preset("tiny", teacher_epochs=1,
                                        student_init="teacher_items"))
  teacher = run.teacher()
  distilled, _ = run.student_trainer(teacher)
  alone, _ = run.student_trainer()  # the same seeded initial student
  table = lambda model: model.get_layer("item_embedding").embeddings.numpy()
  assert not np.allclose(table(distilled), table(alone))
  transfer_item_embeddings(alone, teacher)
  np.testing.assert_array_equal(table(distilled), table(alone))
  with pytest.raises(ConfigError, match="student_init 'pca'"):
    preset("tiny", student_init="pca")


def test_the_default_teacher_learns_every_position():
  # The pipeline's default (the README's first command, and a data set
  # given by flags) trains SASRec's way; the tiny and large presets and a
  # TeacherConfig built in Python keep one target per window; the flag
  # chooses either.
  assert preset("default").teacher.objective == "all_positions"
  assert preset("tiny").teacher.objective == "last"
  assert preset("large").teacher.objective == "last"
  assert TeacherConfig().objective == "last"


def test_student_init_auto_falls_back_to_random_where_it_cannot_apply(
    tmp_path):
  # The default: the teacher's items for a full table, random for a table
  # the transfer cannot set (here low-rank), and --student_init=teacher_items
  # on such a table is a configuration error naming the flag.
  assert PipelineConfig().student_init == "auto"
  table = lambda model: model.get_layer("item_embedding").embeddings.numpy()
  full = Run(str(tmp_path / "full"), preset("tiny", teacher_epochs=1))
  teacher = full.teacher()
  distilled, _ = full.student_trainer(teacher)
  assert full.student_init_used == "teacher_items"
  alone, _ = full.student_trainer()
  assert full.student_init_used is None
  transfer_item_embeddings(alone, teacher)
  np.testing.assert_array_equal(table(distilled), table(alone))

  low_rank = preset("tiny", teacher_epochs=1)
  low_rank = dataclasses.replace(low_rank, student=dataclasses.replace(
      low_rank.student, embedding=EmbeddingConfig(kind="low_rank", rank=4)))
  run = Run(str(tmp_path / "low"), low_rank)
  shutil.copytree(full.step_dir("teacher"), run.step_dir("teacher"))
  distilled, _ = run.student_trainer(run.teacher())
  assert run.student_init_used == "random"
  alone, _ = run.student_trainer()
  for mine, same in zip(distilled.get_weights(), alone.get_weights()):
    np.testing.assert_array_equal(mine, same)  # the seeded initial student

  strict = Run(str(tmp_path / "strict"),
               dataclasses.replace(low_rank, student_init="teacher_items"))
  with pytest.raises(ConfigError,
                     match="--student_init=teacher_items does not apply.*"
                     "LowRank"):
    strict.student_trainer(teacher)


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


@pytest.mark.slow
def test_tune_searches_under_the_size_budget_and_writes_a_flagfile(
    tiny_run, tmp_path):
  from absl import flags  # pylint: disable=import-outside-toplevel
  from tfdistill.cli import options  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  out, _, _ = tiny_run
  run = tmp_path / "run"
  shutil.copytree(out, run)
  result = run_cli("tune", "--preset=tiny", f"--out={run}", "--seed=3",
                   "--max_trials=3", "--tune_epochs=1")
  assert last_json(result)["trials"] == 3
  assert "teacher done" not in result.stderr  # the run's teacher is reused
  record = json.loads((run / "tune" / "trials.json").read_text())
  scores = [trial["val_ndcg@10"] for trial in record["trials"]]
  assert len(scores) == 3 and all(0 < score <= 1 for score in scores)
  best = record["trials"][int(np.argmax(scores))]
  assert record["best"] == {name: best[name] for name in record["best"]}
  assert (run / "tune" / "pareto.png").is_file()
  lines = (run / "tune" / "best.flags").read_text().split()
  assert f"--student_dim={best['embedding_dim']}" in lines
  assert f"--distillation_loss={best['distillation_loss']}" in lines
  for line in lines:  # every line is a flag of the command line
    assert line[2:].split("=")[0] in flags.FLAGS, line
  # Under a budget no student meets, no trial trains and each scores 0.
  result = run_cli("tune", "--preset=tiny", f"--out={run}", "--seed=3",
                   "--max_trials=2", "--max_params=1")
  trials = json.loads((run / "tune" / "trials.json").read_text())["trials"]
  assert [(t["over_budget"], t["val_ndcg@10"]) for t in trials] == [
      (True, 0.0)] * 2
  assert "student_loss" not in result.stdout


@pytest.mark.slow
def test_evaluate_scores_a_run_model_on_the_runs_own_data(tiny_run):
  out, metrics, _ = tiny_run
  model = out / "student_kd" / "model"
  result = last_json(run_cli("evaluate", f"--model={model}"))
  assert result["split"] == "test"
  assert result["ndcg@10"] == metrics["student_kd"]["ndcg@10"]
  # Data flags choose another data set, whose vocabulary is not the model's.
  assert_user_error(run_cli("evaluate", f"--model={model}",
                            "--dataset=synthetic"), "another item vocabulary",
                    "--dataset")


def test_step_commands_compress_and_report_reuse_a_finished_run(tiny_run,
                                                                  tmp_path):
  out, metrics, _ = tiny_run
  run = tmp_path / "run"
  shutil.copytree(out, run)
  shutil.rmtree(run / "report")
  flags = ("--preset=tiny", f"--out={run}", "--seed=3")
  compressed = run_cli("compress", *flags)
  assert "compressed done" not in compressed.stderr  # not recomputed
  assert last_json(compressed)["ndcg@10"] == metrics["compressed"]["ndcg@10"]
  report = run_cli("report", *flags)
  assert (run / "report" / "report.html").is_file()
  assert last_json(report)["student_kd"]["ndcg@10"] == (
      metrics["student_kd"]["ndcg@10"])


def test_compression_and_int8_calibration_follow_the_run(tiny_run):
  out, _, _ = tiny_run
  config = stored_config(str(out))
  report = json.loads((out / "compressed" /
                       "compression_report.json").read_text())
  assert report["distillation_loss"] == [
      loss.name for loss in distillation_losses(config.distillation_loss,
                                                config.temperature)]
  assert len(report["distillation_loss"]) == 2  # "kl+ranking", not KL alone
  run = Run(str(out), config)
  train = examples.sequence_arrays(run.prepared, "train",
                                   config.context_length).contexts
  saved = load_contexts(str(out / "student_kd" / "model"))
  np.testing.assert_array_equal(saved, run.save_extras()["representative"])
  # A sample of the whole training set, not its last rows (the last users).
  assert not np.array_equal(saved, train[-len(saved):])
  assert abs((saved == 0).mean() - (train == 0).mean()) < 0.05


@pytest.mark.slow
def test_evaluate_gives_classification_metrics_for_a_ranking_model(
    tiny_run, tmp_path):
  from tfdistill.data.prepare import PreparedData  # pylint: disable=import-outside-toplevel
  from tfdistill.evaluation.rating import rating_metrics  # pylint: disable=import-outside-toplevel
  from tfdistill.models.io import save_model  # pylint: disable=import-outside-toplevel
  from tfdistill.models.students import build_ranking_student  # pylint: disable=import-outside-toplevel
  out = tiny_run[0]
  prepared = PreparedData.load(str(out / "data"))
  model = build_ranking_student(prepared.num_users, prepared.num_items)
  path = save_model(model, str(out.parent / "ranker" / "ranking" / "model"),
                    overwrite=True)
  config = json.loads((out / "config.json").read_text())
  (out.parent / "ranker" / "config.json").write_text(json.dumps(config))
  result = last_json(run_cli("evaluate", f"--model={path}",
                             "--positive_rating=3.5"))
  pairs = examples.pair_arrays(prepared, "test", config["context_length"])
  wanted = rating_metrics(pairs["rating"], model.predict(
      {"user": pairs["user"], "item": pairs["item"]}, verbose=0), 3.5)
  for key in ("accuracy", "precision", "recall", "f1", "rmse"):
    assert result[key] == pytest.approx(wanted[key], abs=1e-6), key
  retrieval = last_json(run_cli("evaluate",
                                f"--model={out}/student_kd/model"))
  assert {"precision@10", "f1@10"} <= set(retrieval)
  assert retrieval["precision@10"] == pytest.approx(retrieval["hr@10"] / 10)


@pytest.mark.slow
def test_a_teacher_trained_on_every_position_distils_every_position(
    tmp_path, monkeypatch):
  # The run trains its causal teacher on chunks of users' sequences and
  # distils its student on the same chunks (one teacher pass per chunk),
  # chunk_batch_size chunks per batch; the student alone trains on the same
  # batches, as one example per target.
  config = preset("tiny", teacher_epochs=1, student_epochs=1,
                  chunk_batch_size=4)
  config = dataclasses.replace(config, teacher=dataclasses.replace(
      config.teacher, objective="all_positions"), compress=dataclasses
                               .replace(config.compress, qat=False))
  batches = []
  chunk_examples = examples.chunk_examples

  def recorded(*args, **kwargs):
    batches.append(kwargs["batch_size"])
    return chunk_examples(*args, **kwargs)
  monkeypatch.setattr(examples, "chunk_examples", recorded)
  run = Run(str(tmp_path / "r"), config)
  run.teacher()
  run.student_kd()
  run.student_alone()
  # The teacher's training, the distillation and the student alone; then
  # the compression fine-tunes distil on chunks too (the Fisher saliency
  # reads them as one example per target).
  assert batches == [4, 4, 4]
  run.compressed()
  assert batches == [4, 4, 4, 4]
  assert run.students_read_chunks()
  # A teacher trained on one target per window: students on windows too.
  assert not Run(str(tmp_path / "w"), preset("tiny")).students_read_chunks()
  for step in ("teacher", "student_kd", "student_alone"):
    assert np.isfinite(run.step_metrics(step)["ndcg@10"])
  with pytest.raises(ConfigError, match="chunk_batch_size"):
    preset("tiny", chunk_batch_size=0)

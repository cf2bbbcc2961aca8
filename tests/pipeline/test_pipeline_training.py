"""What a pipeline run trains: student initialisation, the teacher's
objective, tuning, evaluation and the compression of a run's student."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from cli_runner import assert_user_error
from cli_runner import last_json
from cli_runner import run_cli
from tfdistill.data import examples
from tfdistill.distill import transfer_item_embeddings
from tfdistill.distill.one_pass import OnePassTrainer
from tfdistill.distill.positions import examples_at_every_position
from tfdistill.errors import ConfigError
from tfdistill.models.embeddings import EmbeddingConfig
from tfdistill.models.factory import TeacherConfig
from tfdistill.models.io import load_contexts
from tfdistill.pipeline.config import distillation_losses
from tfdistill.pipeline.config import PipelineConfig
from tfdistill.pipeline.config import preset
from tfdistill.pipeline import run as run_module
from tfdistill.pipeline.run import Run
from tfdistill.pipeline.run import stored_config

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
  # the transfer sets approximately (here low-rank) or cannot set;
  # --student_init=teacher_items sets a low-rank table too, and on a table
  # it cannot set (hashed) is a configuration error naming the flag.
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

  asked = Run(str(tmp_path / "asked"),
              dataclasses.replace(low_rank, student_init="teacher_items"))
  distilled, _ = asked.student_trainer(teacher)
  assert asked.student_init_used == "teacher_items"
  alone, _ = asked.student_trainer()
  transfer_item_embeddings(alone, teacher)
  for mine, same in zip(distilled.get_weights(), alone.get_weights()):
    np.testing.assert_array_equal(mine, same)

  hashed = dataclasses.replace(low_rank, student_init="teacher_items",
                               student=dataclasses.replace(
                                   low_rank.student, embedding=EmbeddingConfig(
                                       kind="hash", num_buckets=20)))
  strict = Run(str(tmp_path / "strict"), hashed)
  with pytest.raises(ConfigError,
                     match="--student_init=teacher_items does not apply.*"
                     "HashEmbedding"):
    strict.student_trainer(teacher)


@pytest.mark.slow
def test_tune_searches_under_the_size_budget_and_writes_a_flagfile(
    tiny_run, tmp_path):
  from absl import flags  # pylint: disable=import-outside-toplevel
  from tfdistill.cli import options  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  out, _, _ = tiny_run
  run = tmp_path / "run"
  shutil.copytree(out, run)
  result = run_cli("tune", "--preset=tiny", f"--out={run}", "--seed=3",
                   "--max_trials=2", "--tune_epochs=1")
  assert last_json(result)["trials"] == 2
  assert "teacher done" not in result.stderr  # the run's teacher is reused
  record = json.loads((run / "tune" / "trials.json").read_text())
  scores = [trial["val_ndcg@10"] for trial in record["trials"]]
  assert len(scores) == 2 and all(0 < score <= 1 for score in scores)
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
  per_target = []
  monkeypatch.setattr(run_module, "examples_at_every_position",
                      lambda *args: per_target.append(args) or
                      examples_at_every_position(*args))
  run = Run(str(tmp_path / "r"), config)
  run.teacher()
  run.student_kd()
  run.student_alone()
  # The teacher's training, the distillation and the student alone; then
  # the compression fine-tunes distil on chunks too (the Fisher saliency
  # reads them as one example per target).
  assert batches == [4, 4, 4]
  # The mean student alone reads the chunks in one pass, as its twin.
  assert per_target == []
  run.compressed()
  assert batches == [4, 4, 4, 4]
  assert run.students_read_chunks()
  # A self-attention student reads them in one causal pass, as its teacher.
  attention = Run(str(tmp_path / "a"), dataclasses.replace(
      config, student=dataclasses.replace(config.student,
                                          encoder="self_attention")))
  assert isinstance(attention.student_trainer(chunks=True)[1],
                    OnePassTrainer)
  # A teacher trained on one target per window: students on windows too.
  assert not Run(str(tmp_path / "w"), preset("tiny")).students_read_chunks()
  for step in ("teacher", "student_kd", "student_alone"):
    assert np.isfinite(run.step_metrics(step)["ndcg@10"])
  with pytest.raises(ConfigError, match="chunk_batch_size"):
    preset("tiny", chunk_batch_size=0)

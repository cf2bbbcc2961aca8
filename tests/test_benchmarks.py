"""The benchmark scripts stay importable, and their statistics are right.

The benchmarks themselves are not run here (they take minutes to hours);
this pins the parts whose errors would silently change the published
figures.
"""

import argparse
import dataclasses
import json
import os
import pathlib
import py_compile
import sys

import numpy as np
import pytest

from tfdistill.evaluation.statistics import paired_bootstrap

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("script", sorted(p.name for p in
                                          BENCHMARKS.glob("*.py")))
def test_script_compiles(script):
  py_compile.compile(str(BENCHMARKS / script), doraise=True)


def _import(name):
  sys.path.insert(0, str(BENCHMARKS))
  try:
    return __import__(name)
  finally:
    sys.path.remove(str(BENCHMARKS))


def _per_user(kd, tflite, users=400, seed=0):
  rng = np.random.default_rng(seed)
  hits = rng.random(users) < 0.5
  return {"teacher": (hits * 1.0).tolist(),
          "student_alone": (hits * 0.5).tolist(),
          "student_kd": (hits * kd).tolist(),
          "compressed": (hits * kd).tolist(),
          "tflite": (hits * tflite).tolist()}


def test_bootstrap_of_exact_ratios_is_a_point():
  # Every user's value is a fixed multiple of the teacher's, so every
  # resample gives the same ratios.
  run = _import("run")
  intervals = paired_bootstrap([_per_user(0.8, 0.76)], run._ratios, 50)  # pylint: disable=protected-access
  np.testing.assert_allclose(
      intervals["student_kd NDCG@10 / teacher NDCG@10"], [0.8, 0.8])
  np.testing.assert_allclose(
      intervals["student_kd NDCG@10 gain over student_alone"], [0.6, 0.6])
  np.testing.assert_allclose(
      intervals["tflite NDCG@10 change vs student_kd"], [-0.05, -0.05])


def test_bootstrap_interval_covers_the_measured_ratio():
  run = _import("run")
  rng = np.random.default_rng(1)
  per_seed = []
  for _ in range(3):
    values = {k: (rng.random(300) < p).astype(float).tolist() for k, p in
              (("teacher", 0.2), ("student_alone", 0.1),
               ("student_kd", 0.15), ("compressed", 0.15))}
    per_seed.append(values)
  low, high = paired_bootstrap(per_seed, run._ratios, 300)[  # pylint: disable=protected-access
      "student_kd NDCG@10 / teacher NDCG@10"]
  measured = (np.mean([np.mean(v["student_kd"]) for v in per_seed]) /
              np.mean([np.mean(v["teacher"]) for v in per_seed]))
  assert low < measured < high
  assert high - low > 0.05  # 900 binary outcomes cannot pin a ratio exactly


def test_recorded_command_runs_from_the_repository_root(monkeypatch):
  common = _import("_common")
  monkeypatch.chdir(BENCHMARKS)
  monkeypatch.setattr(sys, "argv", ["run.py", "latest_small", "--seeds=0"])
  assert common.command_line() == (
      "python benchmarks/run.py latest_small --seeds=0")


def test_collect_shows_current_results_with_command_and_summary(tmp_path):
  sys.path.insert(0, str(BENCHMARKS))
  try:
    import collect  # pylint: disable=import-outside-toplevel,import-error
  finally:
    sys.path.remove(str(BENCHMARKS))
  results = tmp_path / "results"
  results.mkdir()
  table = "| a |\n|---|\n| {} |"
  (results / "own_teacher.md").write_text("\n".join([
      "# A long title", "", "Command: `python benchmarks/own_teacher.py`",
      "", "## Per seed", "", table.format(1), "", "Some notes.", "",
      "Machine: cpu=X, cpu_count=2, tensorflow=2.21.0, date=D, "
      "git_commit=abc, memory_gib=23"]))
  (results / "speed.md").write_text("\n".join([
      "# Speed", "", "Command: `python benchmarks/speed.py`", "",
      "## Ratios", "", table.format(2), "", "## Per seed", "",
      table.format(3)]))
  # An earlier configuration's result is not on the page.
  (results / "quality_latest_small_c1_magnitude.md").write_text(
      "# Earlier\n\nCommand: `x`\n\n## Targets\n\n" + table.format(9))
  out, readme = tmp_path / "BENCHMARKS.md", tmp_path / "README.md"
  readme.write_text(f"a\n{collect.README_START}\nold\n{collect.README_END}"
                    "\nb\n")
  collect.main(results, out, readme)
  page = out.read_text()
  assert page.index("## Quality against the teacher") < page.index(
      "`python benchmarks/own_teacher.py`") < page.index("| 1 |") < (
          page.index("## Speed")) < page.index("| 2 |")
  assert "| 3 |" not in page and "| 9 |" not in page  # per seed, earlier
  assert "Some notes." in page and "git_commit=abc" in page
  assert "memory_gib" not in page
  assert readme.read_text().startswith("a\n" + collect.README_START)
  assert "old" not in readme.read_text()


def test_every_named_configuration_is_a_valid_pipeline_configuration():
  configs = _import("configs")
  assert {"ml1m", "latest_small", "synthetic_tiny"} <= set(
      configs.BENCHMARKS)
  for name, benchmark in configs.BENCHMARKS.items():
    assert benchmark.name == name
    config = configs.pipeline_config(benchmark, seed=1, data_root="/data")
    assert config.seed == 1
    assert set(benchmark.steps) <= set(configs.STEPS)
    if benchmark.start_from:
      # A configuration that starts from another's steps differs from it
      # only in what the steps after them read.
      parent = configs.pipeline_config(
          configs.BENCHMARKS[benchmark.start_from], seed=1,
          data_root="/data")
      assert dataclasses.replace(config, **{
          field: getattr(parent, field)
          for field in configs.READ_AFTER[benchmark.shares]}) == parent, name
  for _, members in configs.COMPARISONS.values():
    assert all(member in configs.BENCHMARKS for member in members)


def test_a_configuration_cannot_change_what_its_shared_steps_read(
    monkeypatch):
  configs = _import("configs")
  monkeypatch.setattr(configs, "BENCHMARKS", dict(configs.BENCHMARKS))
  # Compression settings after shared students: accepted.
  configs.register(configs.derive("latest_small", "x_ok", "",
                                  shares="students",
                                  compress={"fine_tune_epochs": 3}))
  assert configs.BENCHMARKS["x_ok"].start_from == "latest_small"
  # The students' epochs are read by a shared step: refused, named.
  with pytest.raises(ValueError, match="differs from latest_small in "
                     "student_epochs"):
    configs.register(configs.derive("latest_small", "x_bad", "",
                                     shares="students", student_epochs=3))
  with pytest.raises(ValueError, match="teacher_epochs"):
    configs.register(configs.derive("latest_small", "x_bad", "",
                                    teacher_epochs=3))
  # Not sharing: anything may change.
  assert configs.register(configs.derive(
      "latest_small", "x_own", "", shares=None,
      teacher_epochs=3)).start_from is None
  with pytest.raises(ValueError, match="not <configuration"):
    configs.register(configs.derive("latest_small", "x_t", "",
                                    teachers=("nothing:teacher",)))
  with pytest.raises(ValueError, match="shares='everything'"):
    configs.derive("latest_small", "x_s", "", shares="everything")


def test_a_comparison_shows_compressed_stages_against_their_own_student():
  run = _import("run")

  def results(name, kd, tflite, users, gzip_bytes):
    row = {"seed": 0, "teacher_ndcg@10": 0.2, "student_alone_ndcg@10": 0.1,
           "student_kd_ndcg@10": kd, "compressed_ndcg@10": tflite,
           "tflite_ndcg@10": tflite}
    per_user = [{"teacher": users * 2, "student_alone": users,
                 "student_kd": users, "compressed": users}]
    return (name, {"seeds": [0], "rows": [row], "summary": {
        "tflite_gzip_bytes": gzip_bytes, "student_kd_val_ndcg@10": kd + 0.01},
                   "intervals": {}}, per_user)

  out, rows = run.comparison(
      "t", [results("ref", 0.15, 0.15, [0.1, 0.2], 900),
            results("qat", 0.15, 0.12, [0.1, 0.2], 1200)],
      argparse.Namespace(bootstrap_samples=20))
  rows = {(r["configuration"], r["stage"]): r for r in rows}
  # The shared stages (same values) are not rows; the compressed ones are.
  assert sorted(rows) == [("qat", "compressed"), ("qat", "tflite"),
                          ("ref", "compressed"), ("ref", "tflite")]
  assert rows["qat", "tflite"]["vs student_kd"] == pytest.approx(-0.2)
  assert rows["qat", "tflite"]["vs reference"] == pytest.approx(-0.2)
  assert rows["ref", "tflite"]["vs student_kd"] == pytest.approx(0.0)
  # The download each .tflite makes, beside its quality.
  assert (rows["ref", "tflite"]["gzip bytes"],
          rows["qat", "tflite"]["gzip bytes"]) == (900, 1200)
  assert "gzip bytes" not in rows["qat", "compressed"]
  # The validation figure a choice between configurations may read.
  out, rows = run.comparison(
      "t", [results("ref", 0.15, 0.15, [0.1, 0.2], 900),
            results("kd", 0.17, 0.15, [0.2, 0.2], 900)],
      argparse.Namespace(bootstrap_samples=20))
  rows = {(r["configuration"], r["stage"]): r for r in rows}
  assert rows["kd", "student_kd"]["val ndcg@10"] == pytest.approx(0.18)
  assert out["reference"] == "ref"


def test_ml1m_configuration_is_sasrecs_setting():
  configs = _import("configs")
  config = configs.pipeline_config(configs.BENCHMARKS["ml1m"], 0, "/data")
  assert config.source.dataset == "sequences"
  assert config.source.path == "/data/ml-1m-sasrec/ml-1m.txt"
  assert config.context_length == 200
  assert (config.teacher.embedding_dim, config.teacher.num_blocks,
          config.teacher.objective, config.teacher.negatives) == (
              64, 2, "all_positions", "catalog")
  assert configs.BENCHMARKS["ml1m"].data in configs.PUBLISHED


def test_every_ml1m_student_is_within_a_tenth_of_the_teacher():
  # The budget: at most 10% of the teacher's parameters, for every
  # student configuration on ml-1m.txt (its catalog: the committed run's).
  configs = _import("configs")
  from tfdistill.models.students import build_sequential_student  # pylint: disable=import-outside-toplevel
  recorded = json.loads((BENCHMARKS / "results" / "ml1m.json").read_text())
  row = recorded["rows"][0]
  teacher = row["teacher_params"]
  catalog = 3416 + 2  # ml-1m.txt's items, padding and out-of-vocabulary
  students = [b for b in configs.BENCHMARKS.values() if b.data == "ml1m"
              and {"student_alone", "student_kd"} & set(b.steps)]
  assert len(students) >= 5
  for benchmark in students:
    config = configs.pipeline_config(benchmark, 0, "/data")
    student = build_sequential_student(catalog, config.context_length,
                                       config.student)
    assert student.count_params() <= 0.1 * teacher, benchmark.name


def test_a_derived_configuration_changes_only_what_it_names():
  configs = _import("configs")
  base = configs.pipeline_config(configs.BENCHMARKS["ml1m"], 0, "/data")
  derived = configs.BENCHMARKS["ml1m_attention"]
  assert derived.start_from == "ml1m" and derived.shares == "teacher"
  assert derived.steps == ("student_alone", "student_kd")
  config = configs.pipeline_config(derived, 0, "/data")
  assert config.student == dataclasses.replace(base.student,
                                               encoder="attention")
  assert dataclasses.replace(config, student=base.student) == base
  with pytest.raises(KeyError, match="no field 'encodr'"):
    configs.pipeline_config(configs.derive(
        "ml1m", "typo", "", student={"encodr": "gru"}), 0)


def test_a_shared_run_copies_the_base_steps_and_deletes_nothing(tmp_path):
  common = _import("_common")
  from tfdistill.pipeline.config import preset  # pylint: disable=import-outside-toplevel
  base = tmp_path / "base"
  for step in ("data", "teacher"):
    (base / step).mkdir(parents=True)
    (base / step / "metrics.json").write_text("{}")
  # A folder of the user's beside the new run, named as an old version's
  # staging folder was: left alone.
  mine = tmp_path / "new.partial"
  mine.mkdir()
  (mine / "notes.txt").write_text("keep")
  run = common.shared_run(str(base), str(tmp_path / "new"), preset("tiny"))
  assert sorted(p.name for p in (tmp_path / "new").iterdir()) == [
      "config.json", "data", "teacher"]
  assert (mine / "notes.txt").read_text() == "keep"
  assert sorted(p.name for p in tmp_path.iterdir()) == [
      "base", "new", "new.partial"]  # no staging folder left
  assert run.out == str(tmp_path / "new")


def test_runner_targets_are_ratios_of_the_means():
  run = _import("run")
  summary = {"teacher_ndcg@10": 0.2, "student_alone_ndcg@10": 0.1,
             "student_kd_ndcg@10": 0.15, "compressed_ndcg@10": 0.147,
             "teacher_params": 1000, "student_kd_params": 90}
  rows = {r["target"]: r for r in run.targets(
      [summary], {"student_kd NDCG@10 / teacher NDCG@10": [0.7, 0.8]})}
  assert rows["student_kd NDCG@10 / teacher NDCG@10"]["measured"] == (
      pytest.approx(0.75))
  assert rows["student_kd NDCG@10 / teacher NDCG@10"]["met"] is False
  assert rows["student_kd NDCG@10 / teacher NDCG@10"]["ci95"] == "[0.7, 0.8]"
  assert rows["student_kd NDCG@10 gain over student_alone"]["met"] is True
  assert rows["compressed NDCG@10 change vs student_kd"]["measured"] == (
      pytest.approx(-0.02))
  assert rows["student_kd params / teacher params"]["met"] is True
  # Stages not run yet give no target.
  assert [r["target"] for r in run.targets(
      [{"teacher_ndcg@10": 0.2, "student_alone_ndcg@10": 0.1}], {})] == []
  # A seed that has not reached compression is left out of that target
  # only: each ratio is of means over the seeds holding both its stages.
  two = [summary, {"teacher_ndcg@10": 0.4, "student_alone_ndcg@10": 0.2,
                   "student_kd_ndcg@10": 0.3}]
  rows = {r["target"]: r["measured"] for r in run.targets(two, {})}
  assert rows["compressed NDCG@10 change vs student_kd"] == pytest.approx(
      -0.02)
  assert rows["student_kd NDCG@10 / teacher NDCG@10"] == pytest.approx(
      0.45 / 0.6)


def test_a_run_directory_is_completed_by_its_record_only_where_they_agree():
  run = _import("run")
  record = ({"seed": 1, "teacher_ndcg@10": 0.2, "teacher_params": 1000,
             "teacher_seconds": 60.0, "student_alone_ndcg@10": 0.1,
             "student_kd_ndcg@10": 0.12, "student_kd_params": 90,
             "student_kd_best_epoch": 4},
            {"teacher": [0.2, 0.2], "student_alone": [0.1, 0.1],
             "student_kd": [0.0, 0.24]})
  # The run directory lost, the teacher retrained to the same figures.
  row = {"seed": 1, "teacher_ndcg@10": 0.2, "teacher_params": 1000,
         "teacher_best_epoch": 7}
  users = {"teacher": [0.25, 0.15]}
  merged, merged_users = run.with_record(row, users, record)
  # The run's own figures stand; the record adds the stages the run lacks
  # and the teacher's wall time measured before.
  assert merged["teacher_best_epoch"] == 7
  assert merged["teacher_seconds"] == 60.0
  assert merged["student_kd_best_epoch"] == 4
  assert merged["kd_vs_alone"] == pytest.approx(0.2)
  assert merged["kd_vs_teacher"] == pytest.approx(0.6)
  assert merged["params_vs_teacher"] == pytest.approx(0.09)
  assert merged_users == {"teacher": [0.25, 0.15], "student_alone": [0.1, 0.1],
                          "student_kd": [0.0, 0.24]}
  assert row == {"seed": 1, "teacher_ndcg@10": 0.2, "teacher_params": 1000,
                 "teacher_best_epoch": 7}  # the run's own row is not changed
  # A teacher retrained to other weights: the record's students learnt
  # from another teacher, so nothing of the record is mixed in.
  assert run.with_record({**row, "teacher_ndcg@10": 0.21}, users,
                         record) is None


def test_runner_refuses_missing_data_and_writes_nothing(tmp_path, capsys):
  run = _import("run")
  with pytest.raises(SystemExit) as error:
    run.main(["ml1m", f"--data_root={tmp_path / 'none'}",
              f"--work_dir={tmp_path / 'runs'}", f"--out={tmp_path / 'out'}"])
  assert error.value.code == 2
  assert "ml-1m-sasrec/ml-1m.txt, which does not exist" in (
      capsys.readouterr().err)
  assert list(tmp_path.iterdir()) == []
  with pytest.raises(SystemExit):
    run.main(["no_such_configuration", f"--work_dir={tmp_path}"])
  assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_runner_compares_configurations_on_shared_steps(tmp_path,
                                                        monkeypatch):
  run = _import("run")
  args = [f"--work_dir={tmp_path / 'runs'}", f"--out={tmp_path / 'out'}",
          "--bootstrap_samples=50", "--steps=teacher,student_alone,student_kd"]
  assert run.main(["synthetic_tiny_encoders"] + args) == 0
  parent = tmp_path / "runs" / "synthetic_tiny" / "seed0"
  child = tmp_path / "runs" / "synthetic_tiny_gru" / "seed0"
  # The parent's teacher trained once and copied: the same metrics.
  assert (parent / "teacher" / "metrics.json").read_text() == (
      child / "teacher" / "metrics.json").read_text()
  assert sorted(p.name for p in child.iterdir() if p.is_dir()) == [
      "data", "student_alone", "student_kd", "teacher"]
  results = json.loads((tmp_path / "out" /
                        "synthetic_tiny_gru.json").read_text())
  row = results["rows"][0]
  for stage in ("teacher", "student_alone", "student_kd"):
    assert 0 < row[f"{stage}_ndcg@10"] <= 1
    assert 1 <= row[f"{stage}_best_epoch"] <= row[f"{stage}_epochs_trained"]
  assert row["kd_vs_alone"] == pytest.approx(
      row["student_kd_ndcg@10"] / row["student_alone_ndcg@10"] - 1)
  assert "student_alone_seconds" in row and "teacher_seconds" not in row
  # Never below the epochs' own time (a resumed step's wall misses some).
  assert row["student_alone_seconds"] >= row["student_alone_training_seconds"]
  assert results["configuration"]["start_from"] == "synthetic_tiny"
  assert "| tfdistill student distilled |" in (
      tmp_path / "out" / "synthetic_tiny_gru.md").read_text()
  compared = json.loads((tmp_path / "out" /
                         "synthetic_tiny_encoders.json").read_text())
  rows = {(r["configuration"], r["stage"]): r for r in compared["rows"]}
  assert compared["reference"] == "synthetic_tiny"
  # The shared teacher is the same in both: not a row of the comparison.
  assert sorted(rows) == [(name, stage) for name in (
      "synthetic_tiny", "synthetic_tiny_gru") for stage in (
          "student_alone", "student_kd")]
  assert rows["synthetic_tiny_gru", "student_kd"]["ci95"].startswith("[")
  gru = rows["synthetic_tiny_gru", "student_kd"]
  mean = rows["synthetic_tiny", "student_kd"]
  assert gru["vs reference"] == pytest.approx(
      gru["ndcg@10"] / mean["ndcg@10"] - 1)
  # A rerun reads the finished steps: the same figures, nothing retrained.
  stamp = (child / "student_kd" / "metrics.json").stat().st_mtime_ns
  assert run.main(["synthetic_tiny_encoders"] + args) == 0
  assert json.loads((tmp_path / "out" / "synthetic_tiny_encoders.json")
                    .read_text())["rows"] == compared["rows"]
  assert (child / "student_kd" / "metrics.json").stat().st_mtime_ns == stamp
  # --report_only trains nothing: a configuration never started is left
  # out, and a comparison without its reference writes no table.
  empty = [f"--work_dir={tmp_path / 'none'}", f"--out={tmp_path / 'out2'}"]
  assert run.main(["synthetic_tiny_encoders", "--report_only"] + empty) == 0
  assert not (tmp_path / "none").exists() and not (tmp_path / "out2").exists()
  assert run.main(["synthetic_tiny_encoders", "--report_only"] + args) == 0
  assert json.loads((tmp_path / "out" / "synthetic_tiny_encoders.json")
                    .read_text())["rows"] == compared["rows"]
  # On another machine (the run directories gone), the seeds recorded in
  # the results files are reported and compared, not trained again.
  elsewhere = [f"--work_dir={tmp_path / 'elsewhere'}"] + args[1:]
  assert run.main(["synthetic_tiny_encoders"] + elsewhere) == 0
  assert not (tmp_path / "elsewhere").exists()
  again = json.loads((tmp_path / "out" / "synthetic_tiny_encoders.json")
                     .read_text())["rows"]
  assert [(r["configuration"], r["stage"], r["ndcg@10"]) for r in again] == [
      (r["configuration"], r["stage"], r["ndcg@10"]) for r in compared["rows"]]
  # Configurations that share the students (compression alone differs)
  # and that distil from another configuration's model, on the same runs.
  configs = _import("configs")
  monkeypatch.setattr(configs, "BENCHMARKS", dict(configs.BENCHMARKS))
  monkeypatch.setattr(configs, "COMPARISONS", dict(configs.COMPARISONS))
  configs.register(configs.derive(
      "synthetic_tiny", "tiny_qat", "QAT alone", shares="students",
      compress={"target_sparsity": 0.0}, steps=("compressed", "export")))
  configs.register(configs.derive(
      "synthetic_tiny", "tiny_wide", "a wider student",
      student={"embedding_dim": 16}, steps=("student_kd",)))
  configs.register(configs.derive(
      "synthetic_tiny", "tiny_via", "through the wider student",
      steps=("student_kd",), teachers=("tiny_wide:student_kd",)))
  # The reference compresses nothing here (its own steps stop at the
  # students), so only tiny_qat compresses and exports.
  configs.register(configs.derive(
      "synthetic_tiny", "tiny_ref", "the students", shares="students",
      steps=("student_kd",)))
  configs.compare("tiny_cmp", "t", "tiny_ref", "tiny_qat", "tiny_via")
  assert run.main(["tiny_cmp"] + args[:3]) == 0
  runs = tmp_path / "runs"
  base, qat = runs / "synthetic_tiny" / "seed0", runs / "tiny_qat" / "seed0"
  # The students were trained once and copied; only compression differs:
  # the preset prunes to 50%, tiny_qat's override to nothing.
  for step in ("teacher", "student_alone", "student_kd"):
    assert (base / step / "metrics.json").read_text() == (
        qat / step / "metrics.json").read_text()
  assert json.loads((qat / "compressed" / "metrics.json").read_text())[
      "sparsity"] == pytest.approx(0.0, abs=0.01)
  assert json.loads((base / "config.json").read_text())["compress"][
      "target_sparsity"] == 0.5
  assert not (base / "compressed").exists()
  # The assistant (tiny_wide's distilled student) trained in its own run
  # and taught tiny_via's student; tiny_via's teacher is the shared one.
  wide = json.loads((runs / "tiny_wide" / "seed0" / "student_kd" /
                     "metrics.json").read_text())
  via = json.loads((runs / "tiny_via" / "seed0" / "student_kd" /
                    "metrics.json").read_text())
  own = json.loads((base / "student_kd" / "metrics.json").read_text())
  assert wide["params"] > via["params"] == own["params"]
  assert via["ndcg@10"] != own["ndcg@10"]
  assert via["params_vs_teacher"] == pytest.approx(
      via["params"] / wide["params"])
  rows = {(r["configuration"], r["stage"]): r for r in json.loads(
      (tmp_path / "out" / "tiny_cmp.json").read_text())["rows"]}
  assert ("tiny_qat", "teacher") not in rows  # shared by all: not compared
  # A stage only tiny_qat ran is on its own table, not compared (a
  # comparison's "vs student_kd" is pinned by
  # test_a_comparison_shows_compressed_stages_against_their_own_student).
  assert ("tiny_qat", "tflite") not in rows
  lite = json.loads((tmp_path / "out" / "tiny_qat.json").read_text())[
      "rows"][0]
  assert 0 < lite["tflite_ndcg@10"] <= 1
  assert ("tiny_via", "student_kd") in rows
  assert rows["tiny_via", "student_kd"]["vs reference"] == pytest.approx(
      via["ndcg@10"] / own["ndcg@10"] - 1)


def test_per_user_values_of_a_stage_trained_again_are_measured_again(
    tmp_path, monkeypatch):
  run_module = _import("run")
  measured = []

  class FakeRun:
    out = str(tmp_path)
    mean = {"teacher": 0.25, "student_alone": 0.5}

    def done(self, stage):
      return stage in self.mean

    def step_metrics(self, stage):
      return {"ndcg@10": self.mean[stage]}

    def evaluation(self, split):
      return split

    def __getattr__(self, stage):
      return lambda: stage

  class FakeMetrics:
    def __init__(self, ks):
      self.model = None

    def per_example(self, name):
      return np.full(2, FakeRun.mean[self.model])

  def evaluate(model, test, metrics):
    measured.append(model)
    metrics.model = model

  monkeypatch.setattr(run_module, "RankingMetrics", FakeMetrics)
  monkeypatch.setattr(run_module, "evaluate_retrieval", evaluate)
  # The teacher's kept values give its mean; the student alone's are those
  # of a model since replaced (another mean).
  (tmp_path / run_module.PER_USER_FILE).write_text(json.dumps(
      {"teacher": [0.0, 0.5], "student_alone": [0.1, 0.1]}))
  values = run_module.per_user_ndcg(FakeRun())
  assert measured == ["student_alone"]
  assert values == {"teacher": [0.0, 0.5], "student_alone": [0.5, 0.5]}
  assert json.loads((tmp_path / run_module.PER_USER_FILE).read_text()) == (
      values)
  run_module.per_user_ndcg(FakeRun())
  assert measured == ["student_alone"]  # nothing measured twice


def test_a_record_written_before_a_field_existed_is_still_comparable():
  run_module = _import("run")
  configs = _import("configs")
  current = configs.pipeline_config(configs.BENCHMARKS["ml1m"], 0,
                                    "/data").to_json()
  older = json.loads(json.dumps(current))
  # A results file written before product-quantized tables existed.
  for field in ("num_codebooks", "codewords"):
    del older["student"]["embedding"][field]
  older["seed"] = 2
  older["source"]["path"] = "/elsewhere/ml-1m-sasrec/ml-1m.txt"
  assert run_module._comparable(older) == run_module._comparable(current)
  older["student"]["embedding_dim"] = 16
  assert run_module._comparable(older) != run_module._comparable(current)


def test_an_oracle_table_as_wide_as_the_teachers_rank_recovers_it():
  """student_ceiling's oracle: a teacher whose scores have rank 4 in its
  items is followed exactly by free queries and a 4-wide table started from
  the items' principal directions (the KL falls to zero, the top-10 is the
  teacher's), and a 2-wide table cannot (its KL stays well above)."""
  ceiling = _import("student_ceiling")
  from tfdistill.distill.embedding_transfer import principal_projection  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  items = rng.normal(size=(60, 4))
  logits = (rng.normal(size=(30, 4)) @ items.T).astype(np.float32)
  fits = {}
  for width in (4, 2):
    rows, _ = principal_projection(items, width)
    oracle = ceiling.Oracle(ceiling._least_squares_queries(logits, rows),  # pylint: disable=protected-access
                            rows=rows)
    fits[width] = ceiling.fit(oracle, logits, temperature=0.5,
                              learning_rate=0.01, max_steps=300,
                              tolerance=1e-3)
    fits[width]["top"] = np.argsort(-oracle.scores().numpy(), axis=1)[:, :10]
  assert fits[4]["kl"] < 1e-4
  np.testing.assert_array_equal(fits[4]["top"],
                                np.argsort(-logits, axis=1)[:, :10])
  assert fits[2]["kl"] > 100 * max(fits[4]["kl"], 1e-6)

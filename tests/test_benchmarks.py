"""The benchmark scripts stay importable, and their statistics are right.

The benchmarks themselves are not run here (they take minutes to hours);
this pins the parts whose errors would silently change the published
figures.
"""

import dataclasses
import json
import os
import pathlib
import py_compile
import sys

import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def quality():
  sys.path.insert(0, str(BENCHMARKS))
  try:
    import quality as module  # pylint: disable=import-outside-toplevel,import-error
  finally:
    sys.path.remove(str(BENCHMARKS))
  return module


@pytest.mark.parametrize("script", sorted(p.name for p in
                                          BENCHMARKS.glob("*.py")))
def test_script_compiles(script):
  py_compile.compile(str(BENCHMARKS / script), doraise=True)


def _per_user(kd, tflite, users=400, seed=0):
  rng = np.random.default_rng(seed)
  hits = rng.random(users) < 0.5
  return {"teacher": (hits * 1.0).tolist(),
          "student_alone": (hits * 0.5).tolist(),
          "student_kd": (hits * kd).tolist(),
          "compressed": (hits * kd).tolist(),
          "tflite": (hits * tflite).tolist()}


def test_bootstrap_of_exact_ratios_is_a_point(quality):
  # Every user's value is a fixed multiple of the teacher's, so every
  # resample gives the same ratios.
  intervals = quality.bootstrap_targets([_per_user(0.8, 0.76)],
                                        samples=50)
  np.testing.assert_allclose(
      intervals["student_kd NDCG@10 / teacher NDCG@10"], [0.8, 0.8])
  np.testing.assert_allclose(
      intervals["student_kd NDCG@10 gain over student_alone"], [0.6, 0.6])
  np.testing.assert_allclose(
      intervals["pruned + quantized TFLite NDCG@10 change vs student_kd"],
      [-0.05, -0.05])


def test_bootstrap_interval_covers_the_measured_ratio(quality):
  rng = np.random.default_rng(1)
  per_seed = []
  for _ in range(3):
    values = {k: (rng.random(300) < p).astype(float).tolist() for k, p in
              (("teacher", 0.2), ("student_alone", 0.1),
               ("student_kd", 0.15), ("compressed", 0.15), ("tflite", 0.15))}
    per_seed.append(values)
  low, high = quality.bootstrap_targets(per_seed, samples=300)[
      "student_kd NDCG@10 / teacher NDCG@10"]
  measured = (np.mean([np.mean(v["student_kd"]) for v in per_seed]) /
              np.mean([np.mean(v["teacher"]) for v in per_seed]))
  assert low < measured < high
  assert high - low > 0.05  # 900 binary outcomes cannot pin a ratio exactly


def test_targets_report_interval_and_verdict(quality):
  variants = [
      {"variant": "teacher", "params": 100, "ndcg@10": 0.1},
      {"variant": "student_alone", "params": 8, "ndcg@10": 0.05},
      {"variant": "student_kd", "params": 8, "ndcg@10": 0.08,
       "params_vs_teacher": 0.08, "ndcg_vs_teacher": 0.8,
       "ndcg_vs_student_alone": 0.6},
      {"variant": "tflite", "params": 8, "ndcg@10": 0.079,
       "ndcg_vs_student_kd": -0.0125, "bytes": 25, "float_bytes": 100}]
  rows = {r["target"]: r for r in quality.targets(
      variants, {"student_kd NDCG@10 / teacher NDCG@10": [0.7, 0.9]})}
  assert rows["student_kd NDCG@10 / teacher NDCG@10"]["met"] is False
  assert rows["student_kd NDCG@10 / teacher NDCG@10"]["ci95"] == "[0.7, 0.9]"
  assert rows["quantized .tflite bytes / float32 .tflite bytes"]["met"]
  assert rows["pruned + quantized TFLite NDCG@10 change vs student_kd"]["met"]


def test_best_distilled_student_is_chosen_on_validation(quality):
  seeds = [{"student_kd": 0.05, "student_multi_teacher": 0.06,
            "student_teaching_assistant": 0.04},
           {"student_kd": 0.05, "student_multi_teacher": 0.05,
            "student_teaching_assistant": 0.065}]
  # Means 0.05, 0.055 and 0.0525 (seed 1 alone would pick the assistant).
  assert quality.best_distilled(seeds) == "student_multi_teacher"
  # A seed without the extra variants is left out of the comparison...
  assert quality.best_distilled(seeds + [{"student_kd": 0.5}]) == (
      "student_multi_teacher")
  # ... unless no seed has them.
  assert quality.best_distilled([{"student_kd": 0.5}]) == "student_kd"


def test_targets_name_a_better_distilled_student_than_student_kd(quality):
  variants = [
      {"variant": "teacher", "params": 100, "ndcg@10": 0.1},
      {"variant": "student_kd", "params": 8, "params_vs_teacher": 0.08,
       "ndcg_vs_teacher": 0.8, "ndcg_vs_student_alone": 0.1},
      {"variant": "student_multi_teacher", "params": 8,
       "ndcg_vs_teacher": 0.95, "ndcg_vs_student_alone": 0.3},
      {"variant": "tflite", "params": 8, "ndcg_vs_student_kd": 0.0}]
  assert len(quality.targets(variants)) == 4
  rows = {r["target"]: r["met"] for r in quality.targets(
      variants, best="student_multi_teacher")}
  label = "best distilled student on validation (student_multi_teacher)"
  assert rows[f"{label} NDCG@10 / teacher NDCG@10"] is True
  assert rows[f"{label} NDCG@10 gain over student_alone"] is True
  assert rows["student_kd NDCG@10 / teacher NDCG@10"] is False


def test_a_variant_of_fewer_seeds_is_compared_on_its_own_seeds(quality):
  def seed(teacher, alone, kd, extra=None):
    rows = [{"variant": "teacher", "params": 100, "ndcg@10": teacher},
            {"variant": "student_alone", "params": 8, "ndcg@10": alone},
            {"variant": "student_kd", "params": 8, "ndcg@10": kd}]
    if extra is not None:
      rows.append({"variant": "student_multi_teacher", "params": 8,
                   "ndcg@10": extra})
    return rows
  variants = {v["variant"]: v for v in quality.aggregate(
      [seed(0.10, 0.04, 0.06, extra=0.09), seed(0.30, 0.20, 0.28)])}
  kd = variants["student_kd"]
  assert kd["ndcg@10"] == pytest.approx(0.17)
  assert kd["ndcg_vs_teacher"] == pytest.approx(0.34 / 0.40)
  assert kd["params_vs_teacher"] == pytest.approx(0.08)
  extra = variants["student_multi_teacher"]
  assert extra["seeds"] == 1
  # Against seed 0's references, not the two-seed means.
  assert extra["ndcg_vs_teacher"] == pytest.approx(0.9)
  assert extra["ndcg_vs_student_kd"] == pytest.approx(0.5)
  assert extra["ndcg_vs_student_alone"] == pytest.approx(1.25)


def test_recorded_command_runs_from_the_repository_root(monkeypatch):
  sys.path.insert(0, str(BENCHMARKS))
  try:
    import _common  # pylint: disable=import-outside-toplevel,import-error
  finally:
    sys.path.remove(str(BENCHMARKS))
  monkeypatch.chdir(BENCHMARKS)
  monkeypatch.setattr(sys, "argv", ["quality.py", "--seeds=0"])
  assert _common.command_line() == "python benchmarks/quality.py --seeds=0"


def test_compression_changes_are_against_the_same_seeds_students():
  sys.path.insert(0, str(BENCHMARKS))
  try:
    import compression  # pylint: disable=import-outside-toplevel,import-error
  finally:
    sys.path.remove(str(BENCHMARKS))

  def report(kd, after, lite, sparsity):
    return {"steps": [{"ndcg@10": kd, "sparsity": 0.0},
                      {"ndcg@10": after, "sparsity": sparsity,
                       "tflite_int8_bytes": 30}],
            "tflite": {"ndcg@10": lite, "quantization": "int8"}}
  rows = [compression.row(0, "pruned_50", report(0.10, 0.09, 0.08, 0.5)),
          compression.row(1, "pruned_50", report(0.30, 0.30, 0.33, 0.5)),
          compression.row(0, "qat_only", report(0.10, 0.10, 0.10, 0.0))]
  table = {r["variant"]: r for r in compression.summarize(rows)}
  pruned = table["pruned_50"]
  assert pruned["seeds"] == 2 and pruned["int8_bytes"] == 30
  assert pruned["float_change"] == pytest.approx(0.39 / 0.40 - 1)
  assert pruned["tflite_change"] == pytest.approx(0.41 / 0.40 - 1)
  assert pruned["tflite_change_per_seed"] == "-20.0% / +10.0%"
  assert table["qat_only"]["tflite_change"] == pytest.approx(0.0)


def _curves(teacher, alone, kd, val_alone, val_kd):
  """One seed's curves: every user's NDCG a fixed multiple of a base."""
  base = np.random.default_rng(0).random(200)
  return {"teacher": {"test": (base * teacher).tolist(), "validation": 1.0},
          "alone": {"test": [(base * a).tolist() for a in alone],
                    "validation": list(val_alone)},
          "kd": {"test": [(base * k).tolist() for k in kd],
                 "validation": list(val_kd)}}


def test_training_budget_marks_the_epochs_meeting_both_targets(tmp_path):
  sys.path.insert(0, str(BENCHMARKS))
  try:
    import training_budget  # pylint: disable=import-outside-toplevel,import-error
  finally:
    sys.path.remove(str(BENCHMARKS))
  # Epoch 1: kd 0.6 of the teacher, +20% over alone; epoch 2: 0.95 and
  # +26.7%; epoch 3: 0.95 but only +5.6%. Validation: only epoch 1 meets.
  curves = [_curves(1.0, (0.5, 0.75, 0.9), (0.6, 0.95, 0.95),
                    (0.7, 0.9, 0.95), (0.9, 0.95, 0.99))] * 2
  rows = training_budget.epoch_rows(curves, 3, samples=20)
  np.testing.assert_allclose([r["kd_vs_teacher"] for r in rows],
                             [0.6, 0.95, 0.95])
  np.testing.assert_allclose([r["kd_vs_alone"] for r in rows],
                             [0.2, 0.95 / 0.75 - 1, 0.95 / 0.9 - 1])
  assert [r["both_met"] for r in rows] == [False, True, False]
  assert [r["val_both_met"] for r in rows] == [True, False, False]
  # Exact multiples: every bootstrap draw gives the same ratio.
  assert rows[1]["kd_vs_teacher_ci95"] == "[0.95, 0.95]"


def test_student_init_compares_every_student_with_the_same_baseline(
    tmp_path):
  sys.path.insert(0, str(BENCHMARKS))
  try:
    import student_init  # pylint: disable=import-outside-toplevel,import-error
  finally:
    sys.path.remove(str(BENCHMARKS))
  # Two epochs. At the last: alone 0.8 of the teacher, kd 0.84, hard labels
  # with the teacher's table 0.9, distilled with it 1.0.
  curves = []
  for _ in range(2):
    seed = _curves(1.0, (0.5, 0.8), (0.6, 0.84), (0.7, 0.8), (0.7, 0.85))
    base = np.asarray(seed["teacher"]["test"])
    for name, last in (("alone_teacher_items", 0.9),
                       ("kd_teacher_items", 1.0)):
      seed[name] = {"test": [(base * 0.7).tolist(), (base * last).tolist()],
                    "validation": [0.8, 1.0], "variance_kept": 0.86}
    curves.append(seed)
  rows, per_epoch = student_init.variant_rows(curves, 2, samples=20)
  by_name = {r["variant"]: r for r in rows}
  assert list(by_name) == ["teacher", "alone", "kd", "alone_teacher_items",
                           "kd_teacher_items"]
  np.testing.assert_allclose(
      [by_name[n]["vs_teacher"] for n in by_name if n != "teacher"],
      [0.8, 0.84, 0.9, 1.0])
  np.testing.assert_allclose(
      [by_name[n]["vs_alone"] for n in by_name if n != "teacher"],
      [0.0, 0.05, 0.125, 0.25])
  assert [by_name[n].get("both_met") for n in by_name] == [
      None, None, False, False, True]
  assert by_name["kd_teacher_items"]["vs_alone_ci95"] == "[0.25, 0.25]"
  # The per-epoch rows are kd_teacher_items's: 0.7 of the teacher at epoch
  # 1 (+40% over alone's 0.5), both targets only at epoch 2.
  np.testing.assert_allclose([r["kd_vs_teacher"] for r in per_epoch],
                             [0.7, 1.0])
  assert [r["both_met"] for r in per_epoch] == [False, True]
  assert [r["val_both_met"] for r in per_epoch] == [False, True]
  seeds = student_init.seed_rows(curves, [0, 1])
  assert seeds[1]["seed"] == 1 and seeds[1]["variance_kept"] == 0.86
  np.testing.assert_allclose(seeds[0]["kd_teacher_items"],
                             np.mean(curves[0]["teacher"]["test"]))


def test_result_names_tag_what_differs_from_the_defaults(quality):
  parse = quality.build_parser().parse_args
  assert quality.result_suffix(parse([])) == ""
  first = parse(["--student_epochs=5", "--student_init=random",
                 "--compress_epochs=1", "--table_pruning=magnitude"])
  assert quality.result_suffix(first) == "_e5_random_c1_magnitude"
  assert quality.result_suffix(parse(["--student_encoder=gru"])) == "_gru"
  one_block = parse(["--teacher_blocks=1", "--seeds=0"])
  assert quality.result_suffix(one_block) == "_b1"
  # A teacher of another size has runs of its own, whose teacher is not the
  # base run's.
  assert quality.run_directory("w", "latest-small", 0, "mean",
                               teacher_blocks=1) == os.path.join(
                                   "w", "latest-small_seed0_mean_b1")
  assert quality._config(one_block, 0).teacher.num_blocks == 1
  sys.path.insert(0, str(BENCHMARKS))
  try:
    import compression  # pylint: disable=import-outside-toplevel,import-error
  finally:
    sys.path.remove(str(BENCHMARKS))
  defaults = compression.COMPRESSION_DEFAULTS
  args = quality.build_parser(defaults).parse_args([])
  assert (args.compress_epochs, args.table_pruning) == (1, "magnitude")
  assert args.student_init == "teacher_items"
  assert quality.result_suffix(args, defaults) == ""
  assert quality.result_suffix(quality.build_parser(defaults).parse_args(
      ["--student_init=random"]), defaults) == "_random"


def test_a_run_starts_from_the_base_runs_teacher(quality, tmp_path,
                                                 monkeypatch):
  trained = []

  def fake_teacher(run):  # what Run.teacher leaves behind, without training
    trained.append(run.out)
    for step in ("data", "teacher"):
      os.makedirs(run.step_dir(step), exist_ok=True)
    os.makedirs(os.path.join(run.step_dir("teacher"), "model"))
    pathlib.Path(run.step_dir("teacher"), "model",
                 "tfdistill_model.json").write_text("{}")
    pathlib.Path(run.step_dir("teacher"), "metrics.json").write_text("{}")

  monkeypatch.setattr(quality.Run, "teacher", fake_teacher)
  flags = ["--quick", f"--work_dir={tmp_path}"]
  # A fresh run of the defaults trains the seed's base teacher first (the
  # other scripts reuse it), then starts from a copy of it.
  run = quality.run_for(quality.build_parser().parse_args(flags), 0)
  root = quality.run_directory(str(tmp_path), "quick", 0, "mean")
  assert trained == [root]
  assert run.out == root + "_teacher_items_c2_fisher"
  assert run.config.student_init == "teacher_items"
  assert quality.stored_config(root).student_init == "random"
  assert run.done("teacher") and os.path.isdir(run.step_dir("data"))
  # Another setting of the same seed shares the base teacher as it is.
  other = quality.run_for(quality.build_parser().parse_args(
      flags + ["--student_init=random", "--min_agreement=0.8"]), 0)
  assert trained == [root] and other.done("teacher")
  assert other.out == root + "_c2_fisher"
  # The base run itself is the run of the base flags.
  base = quality.run_for(quality.build_parser().parse_args(
      flags + ["--student_init=random", "--table_pruning=magnitude",
               "--compress_epochs=1"]), 0)
  assert base.out == root
  # A base of another teacher configuration is not shared.
  seed1 = quality.run_for(quality.build_parser().parse_args(
      flags + ["--student_init=random",
               "--table_pruning=magnitude", "--compress_epochs=1"]), 1)
  seed1.claim()  # what its first step writes
  config = json.loads((tmp_path / seed1.out / "config.json").read_text())
  config["teacher_epochs"] += 1
  (tmp_path / seed1.out / "config.json").write_text(json.dumps(config))
  fresh = quality.run_for(quality.build_parser().parse_args(flags), 1)
  assert not fresh.done("teacher") and len(trained) == 1


def test_a_loss_variant_is_the_runs_student_kd_with_that_loss_alone(
    quality, tmp_path, monkeypatch):
  trained = []

  def fake_teacher(run):
    for step in ("data", "teacher"):
      os.makedirs(run.step_dir(step), exist_ok=True)
    pathlib.Path(run.step_dir("teacher"), "metrics.json").write_text("{}")

  def fake_student_kd(run):  # what Run.student_kd leaves behind
    trained.append((run.out, run.config.distillation_loss))
    os.makedirs(run.step_dir("student_kd"), exist_ok=True)
    pathlib.Path(run.step_dir("student_kd"), "metrics.json").write_text(
        json.dumps({"params": 8, "ndcg@10": 0.1, "hr@10": 0.2,
                    "recall@10": 0.2, "mrr": 0.05}))

  monkeypatch.setattr(quality.Run, "teacher", fake_teacher)
  monkeypatch.setattr(quality.Run, "student_kd", fake_student_kd)
  monkeypatch.setattr(quality.Run, "evaluation", lambda run, split: None)
  monkeypatch.setattr(quality, "_validation_ndcg", lambda model, data: {
      quality.VALIDATION_NDCG: 0.3})
  args = quality.build_parser().parse_args(
      ["--quick", f"--work_dir={tmp_path}", "--loss=kl+hint"])
  run = quality.run_for(args, 0)
  rows = quality.loss_rows(args, 0, ["kl", "kl+hint", "mse"])
  # --loss itself is the run's student_kd: not trained again.
  assert [r["variant"] for r in rows] == ["student_kd_kl", "student_kd_mse"]
  assert [loss for _, loss in trained] == ["kl", "mse"]
  assert rows[0]["ndcg@10"] == 0.1 and rows[0][quality.VALIDATION_NDCG] == 0.3
  for out, loss in trained:
    assert out == f"{run.out}_loss_{loss}"
    # The run's configuration with only the loss changed, and its teacher.
    assert quality.stored_config(out) == quality.dataclasses.replace(
        run.config, distillation_loss=loss)
    assert os.path.isfile(os.path.join(out, "teacher", "metrics.json"))
  # A rerun reads the rows kept in the loss runs.
  assert quality.loss_rows(args, 0, ["kl", "mse"]) == rows
  assert len(trained) == 2
  assert "kl_teacher_items" not in quality.LOSS_VARIANTS
  assert set(quality.LOSS_VARIANTS) < set(quality.LOSSES)


def test_a_loss_variant_can_be_the_best_distilled_student(quality):
  seeds = [{"student_kd": 0.05, "student_kd_kl": 0.06},
           {"student_kd": 0.05, "student_kd_kl": 0.055}]
  assert quality.best_distilled(seeds) == "student_kd"  # not a candidate
  assert quality.best_distilled(
      seeds, quality.DISTILLED + ("student_kd_kl",)) == "student_kd_kl"


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


def _import(name):
  sys.path.insert(0, str(BENCHMARKS))
  try:
    return __import__(name)
  finally:
    sys.path.remove(str(BENCHMARKS))


def test_every_named_configuration_is_a_valid_pipeline_configuration(
    quality):
  configs = _import("configs")
  assert {"ml1m", "latest_small", "synthetic_tiny"} <= set(
      configs.BENCHMARKS)
  for name, benchmark in configs.BENCHMARKS.items():
    assert benchmark.name == name
    config = configs.pipeline_config(benchmark, seed=1, data_root="/data")
    assert config.seed == 1
    assert set(benchmark.steps) <= set(configs.STEPS)
    if benchmark.teacher_from:
      # A configuration that starts from another's teacher differs from it
      # only in what the steps after the teacher read.
      parent = configs.pipeline_config(
          configs.BENCHMARKS[benchmark.teacher_from], seed=1,
          data_root="/data")
      assert dataclasses.replace(config, **{
          field: getattr(parent, field)
          for field in quality.AFTER_TEACHER}) == parent, name


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


def test_a_derived_configuration_changes_only_what_it_names():
  configs = _import("configs")
  base = configs.pipeline_config(configs.BENCHMARKS["ml1m"], 0, "/data")
  derived = configs.BENCHMARKS["ml1m_attention"]
  assert derived.teacher_from == "ml1m"
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
      summary, {"student_kd NDCG@10 / teacher NDCG@10": [0.7, 0.8]})}
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
      {"teacher_ndcg@10": 0.2, "student_alone_ndcg@10": 0.1}, {})] == []


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
def test_runner_compares_configurations_on_a_shared_teacher(tmp_path):
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
  assert results["configuration"]["teacher_from"] == "synthetic_tiny"
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

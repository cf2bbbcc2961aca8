"""Runs named benchmark configurations (configs.py) and writes their tables.

For each seed, one pipeline run in `<work_dir>/<name>/seed<N>` (teacher,
student alone, distilled student, compressed, exported .tflite; each
training stops after the configuration's patience without a better
validation NDCG@10 and keeps its best epoch), then a table per
configuration: every stage's test HR@10 and NDCG@10 (per-user
leave-last-out, full catalog, earlier items excluded) with the published
figures on the same data beside them, the distillation targets with 95%
paired bootstrap intervals over test users, and per seed the best and
trained epochs and wall times of every step.

    python benchmarks/run.py ml1m                  # seeds and steps of ml1m
    python benchmarks/run.py latest_small --seeds=0 --steps=teacher,student_alone
    python benchmarks/run.py --list

Runs resume: each seed's run directory keeps the finished steps (and a
resumed training continues from its last epoch). Writes
benchmarks/results/<name>.{json,md}; the JSON keeps every seed's figures
and per-user NDCG@10, so that seeds measured on other machines (their run
directories gone) are reported beside new ones: `--seeds=0,1` after a run
of seed 0 trains seed 1 only.
"""

import argparse
import dataclasses
import os
import sys
import time

import _common  # pylint: disable=import-error
import configs  # pylint: disable=import-error

import numpy as np

from tfdistill.distill import TeacherEnsemble
from tfdistill.evaluation.evaluate import evaluate_retrieval
from tfdistill.evaluation.ranking import RankingMetrics
from tfdistill.evaluation.statistics import paired_bootstrap
from tfdistill.evaluation.statistics import t_interval
from tfdistill.fileio import read_json
from tfdistill.fileio import write_json
from tfdistill.pipeline.config import PipelineConfig
from tfdistill.pipeline.report import compressed_label
from tfdistill.pipeline.run import Run

#: The stages of the table, after the steps that produce them.
STAGES = ("teacher", "student_alone", "student_kd", "compressed", "tflite")
STAGE_NAMES = {"teacher": "teacher", "student_alone": "student alone",
               "student_kd": "student distilled",
               # As the configuration compressed (`report`).
               "compressed": "student pruned + QAT",
               "tflite": "student .tflite"}
#: The stages evaluated per test user for the paired intervals (the .tflite
#: stage's figure is the export step's own LiteRT evaluation).
PER_USER_STAGES = STAGES[:4]
#: The stages after compression, also compared with their own distilled
#: student in a comparison's table.
COMPRESSED_STAGES = ("compressed", "tflite")
#: The stage a step's figures are reported as.
STEP_STAGE = {"export": "tflite"}
#: Where a results file keeps each seed's per-user NDCG@10 (4 decimals).
PER_USER_KEY = "per_user_ndcg"
TIMINGS_FILE = "benchmark_seconds.json"
PER_USER_FILE = "benchmark_per_user.json"


#: The relative targets: {name: (numerator, denominator, offset)}, keys of
#: a seed's row; each is mean(numerator) / mean(denominator) - offset.
RATIOS = {
    "student_kd params / teacher params": (
        "student_kd_params", "teacher_params", 0),
    "student_kd NDCG@10 / teacher NDCG@10": (
        "student_kd_ndcg@10", "teacher_ndcg@10", 0),
    "student_kd NDCG@10 gain over student_alone": (
        "student_kd_ndcg@10", "student_alone_ndcg@10", 1),
    **{f"{stage} NDCG@10 change vs student_kd": (
        f"{stage}_ndcg@10", "student_kd_ndcg@10", 1)
       for stage in COMPRESSED_STAGES}}


def _ratios(means: dict) -> dict:
  """The relative targets from {stage: mean NDCG@10} (the bootstrap's)."""
  keyed = {f"{stage}_ndcg@10": value for stage, value in means.items()}
  return {name: keyed[top] / keyed[bottom] - offset
          for name, (top, bottom, offset) in RATIOS.items()
          if top in keyed and bottom in keyed}


#: (target, operator, goal) of the relative targets.
GOALS = (("student_kd params / teacher params", "<=", 0.10),
         ("student_kd NDCG@10 / teacher NDCG@10", ">=", 0.90),
         ("student_kd NDCG@10 gain over student_alone", ">=", 0.20),
         ("compressed NDCG@10 change vs student_kd", ">=", -0.03),
         ("tflite NDCG@10 change vs student_kd", ">=", -0.03))


def targets(rows: list, intervals: dict) -> list:
  """The relative targets, each measured on the means over the seeds whose
  rows hold both of its figures."""
  measured = {}
  for name, (top, bottom, offset) in RATIOS.items():
    both = [row for row in rows if top in row and bottom in row]
    if both:
      measured[name] = (np.mean([row[top] for row in both])
                        / np.mean([row[bottom] for row in both]) - offset)
  out = []
  for name, op, goal in GOALS:
    if name in measured:
      value = float(measured[name])
      out.append({"target": name, "measured": value, "goal": f"{op} {goal}",
                  "met": value <= goal if op == "<=" else value >= goal,
                  "ci95": ("[{:.3g}, {:.3g}]".format(*intervals[name])
                           if name in intervals else "")})
  return out


def open_run(benchmark, seed: int, args) -> Run:
  """The seed's run; a new one of a configuration with `start_from`
  starts with copies of that configuration's finished shared steps
  (trained first when missing)."""
  out = os.path.join(args.work_dir, benchmark.name, f"seed{seed}")
  config = configs.pipeline_config(benchmark, seed, args.data_root)
  if benchmark.start_from and not os.path.isdir(out):
    parent = configs.BENCHMARKS[benchmark.start_from]
    shared = configs.SHARED_STEPS[benchmark.shares]
    base = open_run(parent, seed, args)
    for step in shared[1:]:
      if not base.done(step):
        print(f"{benchmark.name}: running {parent.name}'s seed {seed} "
              f"{step} step first", flush=True)
        run_step(parent, base, step, args)
    return _common.shared_run(base.out, out, config, shared)
  return Run(out, config)


def teacher_of(benchmark, seed: int, args):
  """The model the distilled student of `benchmark` learns from, when its
  `teachers` name other configurations' models (else None: the run's own
  teacher): one model, or a confidence-weighted ensemble of several."""
  if not benchmark.teachers:
    return None
  models = []
  for source in benchmark.teachers:
    name, step = source.split(":")
    other = configs.BENCHMARKS[name]
    # A fresh load for each: a Distiller freezes its teachers in place.
    run = open_run(other, seed, args)
    if not run.done(step):
      print(f"{benchmark.name}: running {name}'s seed {seed} {step} step "
            "first", flush=True)
      run_step(other, run, step, args)
    models.append(getattr(Run(run.out, run.config), step)())
  return models[0] if len(models) == 1 else TeacherEnsemble(
      models, weighting="confidence")


def run_step(benchmark, run: Run, step: str, args):
  """Runs (or loads) one step of `benchmark`'s run: the pipeline's, with
  the distilled student learning from `benchmark.teachers` when named."""
  if step == "student_kd" and benchmark.teachers:
    return run.distilled_student(
        step, teacher_of(benchmark, run.config.seed, args))
  return getattr(run, step)()


def _timings(run: Run) -> dict:
  """{step: wall seconds} of the steps timed in the run directory."""
  path = os.path.join(run.out, TIMINGS_FILE)
  return read_json(path) if os.path.isfile(path) else {}


def _timed(benchmark, run: Run, step: str, args) -> None:
  """Runs a step; records its wall time when this process finished it (a
  resumed step's earlier processes are in its training_seconds), never
  the moment it takes to read a step finished before. The file is read
  again before writing: another process may have timed another step of
  the same run meanwhile (--steps=student_alone beside student_kd)."""
  finished_before = run.done(step)
  start = time.time()
  run_step(benchmark, run, step, args)
  if not finished_before:
    write_json(os.path.join(run.out, TIMINGS_FILE),
               _timings(run) | {step: time.time() - start})


def per_user_ndcg(run: Run) -> dict:
  """{stage: NDCG@10 per test user} of the finished stages, the same users
  in the same order (kept in the run directory)."""
  path = os.path.join(run.out, PER_USER_FILE)
  values = read_json(path) if os.path.isfile(path) else {}
  # A stage trained again since (its step directory replaced) no longer
  # has the mean its kept values give: those are measured again.
  missing = [stage for stage in PER_USER_STAGES if run.done(stage) and (
      stage not in values or not np.isclose(
          np.mean(values[stage]), run.step_metrics(stage)["ndcg@10"],
          rtol=1e-4, atol=1e-6))]
  if missing:
    test = run.evaluation("test")
    for stage in missing:
      metrics = RankingMetrics((10,))
      evaluate_retrieval(getattr(run, stage)(), test, metrics=metrics)
      values[stage] = metrics.per_example("ndcg@10").tolist()
    write_json(path, values)
  return values


def seed_row(run: Run, seed: int) -> dict:
  """One seed's figures: every finished stage's test metrics, parameters,
  epochs and seconds, and the relative targets."""
  timings = _timings(run)
  stages = (run.metrics() if run.done("export") else
            {step: run.step_metrics(step) for step in STAGES[:4]
             if run.done(step)})
  row = {"seed": seed}
  for stage in STAGES:
    for key in ("hr@10", "ndcg@10", "val_ndcg@10", "params", "best_epoch",
                "epochs_trained", "training_seconds"):
      if stages.get(stage, {}).get(key) is not None:
        row[f"{stage}_{key}"] = stages[stage][key]
    if stage in timings:
      # A step resumed by this process timed only its last part; its
      # epochs' time summed over every process is its training_seconds.
      row[f"{stage}_seconds"] = max(
          timings[stage], stages.get(stage, {}).get("training_seconds") or 0)
  if "tflite" in stages:
    row["tflite_bytes"] = stages["tflite"]["bytes"]
    if stages["tflite"].get("gzip_bytes") is not None:
      # What a pruned model saves: its zeros compress in the download.
      row["tflite_gzip_bytes"] = stages["tflite"]["gzip_bytes"]
    agreement = (stages["tflite"].get("parity") or {}).get("agreement")
    if agreement is not None:
      row["tflite_agreement"] = agreement
  return _with_ratios(row)


def _with_ratios(row: dict) -> dict:
  """`row` with the ratios of its stages' figures."""
  if "student_kd_ndcg@10" in row and "teacher_ndcg@10" in row:
    row["kd_vs_teacher"] = (row["student_kd_ndcg@10"]
                            / row["teacher_ndcg@10"])
    row["params_vs_teacher"] = (row["student_kd_params"]
                                / row["teacher_params"])
  if "student_kd_ndcg@10" in row and "student_alone_ndcg@10" in row:
    row["kd_vs_alone"] = (row["student_kd_ndcg@10"]
                          / row["student_alone_ndcg@10"] - 1)
  return row


def with_record(row: dict, per_user: dict, record: tuple):
  """A seed's run completed with the stages only its results-file record
  holds: (row, per-user NDCG@10), or None when a stage both hold has a
  different NDCG@10 (the run retrained it to other weights, and the
  record's later stages learnt from those it no longer has).

  Args:
    row, per_user: the run directory's `seed_row` and `per_user_ndcg`.
    record: (row, per-user NDCG@10) of the same seed and configuration in
      the results file, measured where that run directory is gone.
  """
  recorded_row, recorded_users = record
  stages = [s for s in STAGES if f"{s}_ndcg@10" in recorded_row]
  both = [s for s in stages if f"{s}_ndcg@10" in row]
  if any(row[f"{s}_ndcg@10"] != recorded_row[f"{s}_ndcg@10"] for s in both):
    return None
  # The record's figures of the same models fill what the run lacks (the
  # wall time of a step trained before the run directory was lost).
  merged = {**{k: v for k, v in recorded_row.items()
               if any(k.startswith(f"{s}_") for s in stages)}, **row}
  users = {**{s: v for s, v in recorded_users.items() if s not in both},
           **per_user}
  return _with_ratios(merged), users


def _comparable(config: dict) -> dict:
  """A configuration's JSON without its seed and its data's folders (a
  record made on another machine reads the same files elsewhere), with
  the fields added since it was written at their defaults."""
  config = PipelineConfig.from_json(config).to_json()
  source = {key: (os.path.basename(os.path.normpath(value))
                  if key in ("path", "manual_dir", "data_dir") and value
                  else value) for key, value in config["source"].items()}
  return dict(config, seed=None, source=source)


def recorded_seeds(benchmark, args) -> dict:
  """{seed: (row, {stage: NDCG@10 per test user})} kept in the results
  file of an earlier run of the same configuration: a seed measured on
  another machine, whose run directory is gone, is reported (and compared)
  without training it again."""
  path = os.path.join(args.out, f"{benchmark.name}.json")
  if not os.path.isfile(path):
    return {}
  results = read_json(path)
  wanted = configs.pipeline_config(benchmark, 0, args.data_root).to_json()
  if (PER_USER_KEY not in results or _comparable(
      results["pipeline_config"]) != _comparable(wanted)):
    return {}
  return {row["seed"]: (row, results[PER_USER_KEY][str(row["seed"])])
          for row in results["rows"]
          if str(row["seed"]) in results[PER_USER_KEY]}


def _has_run(benchmark, seed: int, args) -> bool:
  return os.path.isfile(os.path.join(args.work_dir, benchmark.name,
                                     f"seed{seed}", "config.json"))


def run_benchmark(benchmark, args) -> tuple:
  """Runs the steps of every seed; returns the results to report and each
  seed's {stage: NDCG@10 per test user} (None, None: --report_only and no
  seed started). A seed with no run directory whose record in the results
  file holds every stage asked for is taken from that record; a run
  directory is completed with the record's stages it lacks when the stages
  both hold agree (`with_record`)."""
  seeds = ([int(s) for s in args.seeds.split(",")] if args.seeds
           else list(benchmark.seeds))
  steps = args.steps.split(",") if args.steps else list(benchmark.steps)
  records = recorded_seeds(benchmark, args)
  if args.report_only:
    seeds = [seed for seed in seeds
             if _has_run(benchmark, seed, args) or seed in records]
    steps = []
  if not seeds:
    return None, None
  rows, per_user = [], []
  for seed in seeds:
    if not _has_run(benchmark, seed, args) and seed in records and all(
        f"{STEP_STAGE.get(step, step)}_ndcg@10" in records[seed][0]
        for step in steps):
      rows.append(records[seed][0])
      per_user.append(records[seed][1])
      continue
    run = open_run(benchmark, seed, args)
    run.claim()
    for step in steps:
      _timed(benchmark, run, step, args)
    row, users = seed_row(run, seed), per_user_ndcg(run)
    if seed in records:
      merged = with_record(row, users, records[seed])
      if merged is None:
        print(f"{benchmark.name} seed {seed}: the run directory's figures "
              "differ from the results file's; reporting the run "
              "directory's stages alone", flush=True)
      else:
        row, users = merged
    rows.append(row)
    per_user.append(users)
  numeric = sorted({k for r in rows for k, v in r.items()
                    if k != "seed" and isinstance(v, (int, float))})
  summary = {k: float(np.mean([r[k] for r in rows if k in r]))
             for k in numeric}
  seed_intervals = {k: t_interval([r[k] for r in rows])
                    for k in numeric if len(rows) > 1
                    and all(k in r for r in rows)}
  common = set.intersection(*(set(values) for values in per_user))
  bootstrap = paired_bootstrap(
      [{stage: values[stage] for stage in common} for values in per_user],
      _ratios, args.bootstrap_samples) if common else {}
  return {"benchmark": benchmark.name, "seeds": seeds, "rows": rows,
          "summary": summary, "intervals": seed_intervals,
          "bootstrap_intervals": bootstrap,
          "targets": targets(rows, bootstrap),
          "published": list(configs.PUBLISHED.get(benchmark.data, ())),
          "configuration": dataclasses.asdict(benchmark),
          "pipeline_config": configs.pipeline_config(
              benchmark, seeds[0], args.data_root).to_json(),
          "bootstrap_samples": args.bootstrap_samples,
          PER_USER_KEY: {str(seed): {stage: [round(v, 4) for v in values]
                                     for stage, values in users.items()}
                         for seed, users in zip(seeds, per_user)}}, per_user


def _interval(results: dict, key: str) -> str:
  if key in results["intervals"]:
    return "[{:.4f}, {:.4f}]".format(*results["intervals"][key])
  return "one seed" if len(results["rows"]) < 2 else ""


def report(benchmark, results: dict, out: str):
  """Writes <out>/<name>.{json,md}; returns the Markdown path."""
  summary, rows = results["summary"], results["rows"]
  compress = results["pipeline_config"]["compress"]
  names = dict(STAGE_NAMES, compressed="student {}".format(compressed_label(
      compress["target_sparsity"], compress["qat"])))
  ours = [{"model": f"tfdistill {names[stage]}",
           "hr@10": summary.get(f"{stage}_hr@10"),
           "ndcg@10": summary.get(f"{stage}_ndcg@10"),
           "ndcg@10 95% interval": _interval(results, f"{stage}_ndcg@10"),
           "params": summary.get(f"{stage}_params"),
           "best epoch": summary.get(f"{stage}_best_epoch"),
           "epochs trained": summary.get(f"{stage}_epochs_trained"),
           "source": "this run, {} seed(s)".format(
               sum(f"{stage}_ndcg@10" in row for row in rows))}
          for stage in STAGES if f"{stage}_ndcg@10" in summary]
  columns = ["seed"] + [f"{s}_{k}" for s in STAGES
                        for k in ("hr@10", "ndcg@10")] + [
                            "kd_vs_teacher", "kd_vs_alone",
                            "params_vs_teacher", "tflite_bytes",
                            "tflite_agreement"] + [
                                f"{s}_{k}" for s in STAGES[:4]
                                for k in ("best_epoch", "epochs_trained",
                                          "seconds")]
  columns = [c for c in columns if any(c in row for row in rows)]
  config = results["pipeline_config"]
  teacher, student = config["teacher"], config["student"]
  notes = (
      f"Teacher: {teacher['num_blocks']} blocks, d={teacher['embedding_dim']}"
      f", {teacher['num_heads']} head(s), objective {teacher['objective']}, "
      f"negatives {teacher['negatives']}, L={config['context_length']}, "
      f"at most {config['teacher_epochs']} epochs. Students: "
      f"{student['encoder']} encoder, d={student['embedding_dim']}, "
      f"{student['embedding']['kind']} item table, at most "
      f"{config['student_epochs']} epochs; distilled with "
      f"{config['distillation_loss']} (alpha {config['alpha']}, temperature "
      f"{config['temperature']}, item table {config['student_init']}). "
      f"Patience {config['early_stopping_patience']}. " + benchmark.notes)
  return _common.write_report(
      out, benchmark.name, benchmark.title, results,
      [("tfdistill" + (" and the literature" if results["published"]
                       else ""), ours + results["published"],
        ["model", "hr@10", "ndcg@10", "ndcg@10 95% interval", "params",
         "best epoch", "epochs trained", "source"]),
       ("Targets", results["targets"],
        ["target", "measured", "goal", "met", "ci95"]),
       ("Per seed", rows, columns)], notes=notes.strip())


def comparison(title: str, members: list, args) -> tuple:
  """One table of several configurations' results.

  Args:
    members: [(name, results, per_user)] from `run_benchmark`, the first
      the reference.

  Returns:
    (results, rows): the stages on which the configurations differ, each
    with the change of its mean NDCG@10 against the reference's same stage
    on the seeds both ran and its 95% paired bootstrap interval over test
    users.
  """
  reference, ref_results, ref_users = members[0]
  ref_seeds = ref_results["seeds"]
  rows, changes = [], {}
  for name, results, per_user in members:
    seeds = [s for s in results["seeds"] if s in ref_seeds]
    for stage in STAGES:
      values = [r.get(f"{stage}_ndcg@10") for r in results["rows"]]
      if any(v is None for v in values):
        continue
      row = {"configuration": name, "stage": stage, "seeds": len(values),
             "ndcg@10": float(np.mean(values)),
             "ndcg@10 95% interval": _interval(results, f"{stage}_ndcg@10"),
             # What the epoch kept was chosen by, and what a choice
             # between configurations may read.
             "val ndcg@10": results["summary"].get(f"{stage}_val_ndcg@10"),
             "params": results["summary"].get(f"{stage}_params"),
             "best epoch": results["summary"].get(f"{stage}_best_epoch"),
             "epochs trained": results["summary"].get(
                 f"{stage}_epochs_trained"),
             "seconds": results["summary"].get(f"{stage}_seconds")}
      if stage == "tflite":
        row["gzip bytes"] = results["summary"].get("tflite_gzip_bytes")
      if stage in COMPRESSED_STAGES:
        kd = [r.get("student_kd_ndcg@10") for r in results["rows"]]
        if all(v is not None for v in kd):
          row["vs student_kd"] = float(np.mean(values) / np.mean(kd) - 1)
      ours = {r["seed"]: r.get(f"{stage}_ndcg@10") for r in results["rows"]}
      theirs = {r["seed"]: r.get(f"{stage}_ndcg@10")
                for r in ref_results["rows"]}
      if name != reference and all(theirs.get(s) is not None and ours[s]
                                   is not None for s in seeds) and seeds:
        key = f"{name} {stage} vs {reference}"
        row["vs reference"] = (np.mean([ours[s] for s in seeds]) /
                               np.mean([theirs[s] for s in seeds]) - 1)
        users = [(per_user[results["seeds"].index(s)],
                  ref_users[ref_seeds.index(s)]) for s in seeds]
        if all(stage in mine and stage in ref for mine, ref in users):
          low, high = paired_bootstrap(
              [{"ours": mine[stage], "reference": ref[stage]}
               for mine, ref in users],
              lambda means: {"change": means["ours"] / means["reference"]
                             - 1}, args.bootstrap_samples)["change"]
          row["ci95"] = f"[{low:.3g}, {high:.3g}]"
          changes[key] = [low, high]
      rows.append(row)
  # Only the stages that differ between configurations: a shared teacher,
  # or a stage only one of them ran, is in that configuration's own table.
  values = {}
  for row in rows:
    values.setdefault(row["stage"], []).append(row["ndcg@10"])
  rows = [row for row in rows if len(values[row["stage"]]) > 1
          and len(set(values[row["stage"]])) > 1]
  return {"title": title, "reference": reference,
          "configurations": [name for name, _, _ in members], "rows": rows,
          "intervals": changes,
          "bootstrap_samples": args.bootstrap_samples}, rows


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n")[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("names", nargs="*", help="configurations or "
                      "comparisons of configs.py to run (--list shows them)")
  parser.add_argument("--list", action="store_true",
                      help="print the configurations and exit")
  parser.add_argument("--seeds", default="", help="comma-separated seeds "
                      "(default: the configuration's)")
  parser.add_argument("--steps", default="", help="pipeline steps to run, "
                      f"of {','.join(configs.STEPS)} (default: the "
                      "configuration's); the table reports those finished")
  parser.add_argument("--report_only", action="store_true",
                      help="train nothing: the tables of the finished "
                      "steps of the seeds already started")
  parser.add_argument("--data_root", default=str(configs.DATA_ROOT),
                      help="folder holding ml-1m-sasrec/ and movielens/")
  parser.add_argument("--bootstrap_samples", type=int, default=2000)
  parser.add_argument("--work_dir", default=str(_common.DEFAULT_OUT / "runs"))
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  return parser


def main(argv=None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.list or not args.names:
    for name, benchmark in configs.BENCHMARKS.items():
      print(f"{name:28s} {benchmark.title}")
    for name, (title, members) in configs.COMPARISONS.items():
      print(f"{name:28s} {title}: {', '.join(members)}")
    return 0
  for name in args.names:
    if name not in configs.BENCHMARKS and name not in configs.COMPARISONS:
      parser.error(f"unknown configuration {name!r}; run.py --list shows "
                   "them")
    for member in configs.COMPARISONS.get(name, (None, [name]))[1]:
      benchmark = configs.BENCHMARKS[member]
      if benchmark.data in configs.DATA_FILES:
        path = os.path.join(args.data_root,
                            configs.DATA_FILES[benchmark.data])
        if not os.path.isfile(path):
          parser.error(f"{member} reads {path}, which does not exist; pass "
                       "--data_root (the data folder beside the "
                       "repository)")
    for step in (args.steps.split(",") if args.steps else ()):
      if step not in configs.STEPS:
        parser.error(f"--steps: unknown step {step!r}; choose from "
                     f"{','.join(configs.STEPS)}")
  done = {}

  def run_one(name):
    if name not in done:
      benchmark = configs.BENCHMARKS[name]
      results, per_user = run_benchmark(benchmark, args)
      # A comparison's --report_only leaves its members' own tables as the
      # commands that measured them wrote them.
      if results is not None and not (args.report_only
                                      and name not in args.names):
        print(report(benchmark, results, args.out).read_text())
      done[name] = (name, results, per_user)
    return done[name]

  for name in args.names:
    if name in configs.BENCHMARKS:
      run_one(name)
      continue
    title, members = configs.COMPARISONS[name]
    measured = [m for m in map(run_one, members) if m[1] is not None]
    if not measured or measured[0][0] != members[0]:
      print(f"{name}: {members[0]} has no finished run to compare with")
      continue
    members = [m[0] for m in measured]
    results, rows = comparison(title, measured, args)
    path = _common.write_report(
        args.out, name, title, results,
        [(f"Each stage against {members[0]}'s", rows,
          ["configuration", "stage", "seeds", "ndcg@10",
           "ndcg@10 95% interval", "vs reference", "ci95", "vs student_kd",
           "params", "gzip bytes", "val ndcg@10", "best epoch",
           "epochs trained", "seconds"])],
        notes=f"vs reference: against {members[0]}'s same stage and seeds "
        "(ci95: paired bootstrap over test users); vs student_kd: against "
        "its own distilled student; gzip bytes: the .tflite gzipped, the "
        "download a pruned model's zeros shrink; seconds: wall time on a "
        "shared machine.")
    print(path.read_text())
  return 0


if __name__ == "__main__":
  sys.exit(main())

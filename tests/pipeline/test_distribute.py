"""Training under tf.distribute: two local worker processes with TF_CONFIG
against one process, and the checks on TF_CONFIG."""

import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

from cli_runner import assert_user_error
from cli_runner import run_cli
from tfdistill.distribute import cluster_from_environment
from tfdistill.distribute import is_chief_task
from tfdistill.distribute import local_tf_configs
from tfdistill.errors import ConfigError

HELPER = pathlib.Path(__file__).with_name("multi_worker_run.py")


def _start(out, strategy: str, tf_config: str = "",
           *extra: str) -> subprocess.Popen:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("TF_CONFIG", None)
  if tf_config:
    env["TF_CONFIG"] = tf_config
  return subprocess.Popen([sys.executable, str(HELPER), str(out), strategy,
                           *extra],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env)


def _finish(process: subprocess.Popen) -> dict:
  stdout, stderr = process.communicate(timeout=600)
  assert process.returncode == 0, stderr[-3000:]
  return json.loads(stdout.strip().splitlines()[-1])


def _epochs_logged(run) -> list:
  log = run / "teacher" / "training_log.csv"
  if not log.is_file():
    return []
  return [int(line.split(",")[0]) for line in
          log.read_text().splitlines()[1:] if line]


def _weight_differences(a_dir, b_dir) -> tuple:
  """(median, largest) absolute difference of two saved models' weights."""
  import tfdistill  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  from tfdistill.models.io import load_model  # pylint: disable=import-outside-toplevel
  a = load_model(str(a_dir / "model")).get_weights()
  b = load_model(str(b_dir / "model")).get_weights()
  differences = np.concatenate([np.abs(x - y).ravel() for x, y in zip(a, b)])
  return np.median(differences), differences.max()


@pytest.mark.slow
def test_killed_workers_restart_and_train_as_one_process(tmp_path):
  """Two workers train the teacher and distil the student as one process
  does; killed mid-run (as a preempted job is), they resume.

  Both workers are killed once the teacher's first epoch's checkpoint is
  written, and started again with new ports: training resumes after that
  epoch, each epoch is logged once, and the other worker writes nothing in
  the run directory (its own copies go to a temporary folder of its own,
  removed when it ends).

  Tolerance: the two runs sum the same gradients in another order, so the
  models differ at rounding level from a single process's; Adam turns
  rounding-level gradients of rarely seen item rows into steps of up to
  the learning rate (2e-3) per epoch, so a few weights move by a few 1e-3
  while the typical one stays within 1e-4, and the test metrics agree."""
  epochs, run = "3", tmp_path / "run"
  alone = _start(tmp_path / "alone", "default", "", epochs)
  workers = [_start(run, "multi_worker", tf_config, epochs)
             for tf_config in local_tf_configs(2)]
  deadline = time.time() + 300
  while not _epochs_logged(run):
    assert time.time() < deadline and all(
        w.poll() is None for w in workers), "no epoch finished"
    time.sleep(0.05)
  for worker in workers:
    worker.kill()
    worker.wait()
  interrupted = _epochs_logged(run)
  assert len(interrupted) < int(epochs), "finished before the interrupt"
  workers = [_start(run, "multi_worker", tf_config, epochs)
             for tf_config in local_tf_configs(2)]
  chief, other = [_finish(w) for w in workers]
  single = _finish(alone)
  assert chief["chief"] and not other["chief"]
  assert other["writes"] == [], other["writes"]
  assert not os.path.exists(other["own"])
  assert sorted(os.listdir(run)) == [
      "config.json", "data", "student_kd", "teacher"]
  assert not list(run.rglob("*workertemp*"))
  assert _epochs_logged(run) == list(range(int(epochs)))
  assert abs(chief["ndcg"] - single["ndcg"]) < 1e-3
  # The student learns from those two teachers, so it starts from their
  # differences: a looser typical bound for it.
  for step, typical, largest in (("teacher", 1e-4, 5e-3),
                                 ("student_kd", 5e-4, 2e-2)):
    median, most = _weight_differences(run / step, tmp_path / "alone" / step)
    assert median < typical and most < largest, (step, median, most)


@pytest.mark.parametrize("value,fragment", [
    ("", "needs the TF_CONFIG environment variable"),
    ("{not json", "not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "needs a \"cluster\""),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker"}}',
     "cluster.worker[0] is 'localhost'"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, '
     '"task": {"type": "worker", "index": 2}}', "task 'worker' 2 is not in"),
    ('{"cluster": {"ps": ["a:1"], "worker": ["b:2"]}, '
     '"task": {"type": "worker", "index": 0}}', "task type 'ps'"),
])
def test_tf_config_errors_name_what_to_fix(monkeypatch, value, fragment):
  monkeypatch.setenv("TF_CONFIG", value)
  with pytest.raises(ConfigError, match=None) as error:
    cluster_from_environment()
  assert fragment in str(error.value), str(error.value)


def test_the_chief_is_the_chief_task_else_worker_zero():
  two = {"worker": ["a:1", "b:2"]}
  assert is_chief_task({"cluster": two, "task": {"type": "worker",
                                                 "index": 0}})
  assert not is_chief_task({"cluster": two, "task": {"type": "worker",
                                                     "index": 1}})
  with_chief = dict(two, chief=["c:3"])
  assert is_chief_task({"cluster": with_chief, "task": {"type": "chief"}})
  assert not is_chief_task({"cluster": with_chief, "task": {
      "type": "worker", "index": 0}})


def test_an_unreachable_worker_from_the_command_line(tmp_path):
  out = tmp_path / "run"
  tf_config = local_tf_configs(2)[0]
  other = json.loads(tf_config)["cluster"]["worker"][1]
  result = run_cli("distill", "--preset=tiny", f"--out={out}",
                   "--strategy=multi_worker", "--worker_timeout=3",
                   env={"TF_CONFIG": tf_config})
  assert_user_error(result, f"cannot reach worker 1 at {other}", "within 3 s")
  assert not out.exists()

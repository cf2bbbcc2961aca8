"""An interrupted training, resumed, ends where the uninterrupted one does.

The same `tfdistill train-teacher` (dropout on, shuffled data) runs once
uninterrupted and once interrupted in the middle of an epoch: by SIGINT,
then, on the second attempt, by SIGKILL. The resumed run's metrics must
equal the uninterrupted run's exactly.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from cli_runner import assert_user_error
from cli_runner import last_json
from cli_runner import run_cli

# A hundred-odd steps per epoch, so that a signal lands inside an epoch
# (the signal waits a fraction of the shortest epoch seen); every epoch runs
# (no early stopping), and five remain after the first interruption, so
# that a slow epoch under the load of parallel tests cannot push the signal
# past the end of the training.
ARGS = ("train-teacher", "--preset=tiny", "--synthetic_users=300",
        "--synthetic_items=600", "--synthetic_interactions_per_user=30",
        "--teacher_epochs=8", "--early_stopping_patience=0", "--seed=4")


# `python -m tfdistill` with Python's SIGINT handler: a shell that starts
# the tests in the background (`pytest ... &`) hands its children SIGINT
# ignored, and Python keeps an ignored SIGINT ignored.
_WITH_SIGINT = ("import signal, sys; "
                "signal.signal(signal.SIGINT, signal.default_int_handler); "
                "sys.argv[0] = 'tfdistill'; "
                "from tfdistill.cli import run; run()")


def _rows(out) -> int:
  path = os.path.join(out, "teacher", "training_log.csv")
  if not os.path.isfile(path):
    return 0
  with open(path) as f:
    return max(0, len(f.read().strip().splitlines()) - 1)


def _interrupt(out, after_epochs: int, sig):
  """Starts the training and sends `sig` a little into the epoch after
  `after_epochs` finished epochs (counted in its training log).

  Returns the finished process and the number of logged epochs when the
  signal was sent."""
  command = [sys.executable, "-c", _WITH_SIGINT, *ARGS, f"--out={out}"]
  process = subprocess.Popen(command, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  deadline = time.time() + 300
  seen = {}
  while _rows(out) < after_epochs and process.poll() is None:
    seen.setdefault(_rows(out), time.time())
    assert time.time() < deadline, "the training did not progress"
    time.sleep(0.01)
  seen.setdefault(_rows(out), time.time())
  # The shortest epoch seen (never the first, which traces the graphs):
  # a third of it is inside the next epoch.
  epochs = [seen[k] - seen[k - 1] for k in range(2, after_epochs + 1)
            if k in seen and k - 1 in seen]
  time.sleep(0.3 * min(epochs + [0.5]))
  at_signal = _rows(out)
  process.send_signal(sig)
  stdout, stderr = process.communicate(timeout=300)
  return subprocess.CompletedProcess(command, process.returncode, stdout,
                                     stderr), at_signal


@pytest.mark.slow
def test_sigint_then_sigkill_mid_epoch_resume_to_the_uninterrupted_result(
    tmp_path):
  reference = last_json(run_cli(*ARGS, f"--out={tmp_path / 'a'}"))
  out = str(tmp_path / "b")
  first, at_signal = _interrupt(out, 2, signal.SIGINT)
  assert first.returncode == 130, (
      first.returncode, f"{at_signal} epochs logged at the signal, "
      f"{_rows(out)} at the end", first.stderr[-2000:])
  assert "interrupted; rerun the same command" in first.stderr
  assert not os.path.exists(os.path.join(out, "teacher", "metrics.json"))
  second, _ = _interrupt(out, 3, signal.SIGKILL)
  assert second.returncode == -signal.SIGKILL
  assert not os.path.exists(os.path.join(out, "teacher", "metrics.json"))
  # Kept for the next test of a damaged checkpoint.
  shutil.copytree(out, tmp_path / "c")
  resumed = run_cli(*ARGS, f"--out={out}")
  assert "resuming from" in resumed.stderr
  assert last_json(resumed) == {**reference, "path": last_json(resumed)[
      "path"]}

  # A checkpoint damaged on disk: one line naming --force, then --force
  # trains from scratch, to the same result.
  damaged = str(tmp_path / "c")
  checkpoints = os.path.join(damaged, "teacher", "checkpoints")
  data = [os.path.join(root, name) for root, _, names in os.walk(checkpoints)
          for name in names if ".data-" in name]
  assert data, os.listdir(checkpoints)
  for path in data:
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)
  assert_user_error(run_cli(*ARGS, f"--out={damaged}"), "checkpoints",
                    "cannot be read", "--force")
  forced = last_json(run_cli(*ARGS, f"--out={damaged}", "--force"))
  assert forced["ndcg@10"] == reference["ndcg@10"]


class _StopAfterEpoch(object):
  """Makes the run's CSVLogger raise KeyboardInterrupt after epoch 1."""

  def __init__(self, monkeypatch):
    import tf_keras  # pylint: disable=import-outside-toplevel
    original = tf_keras.callbacks.CSVLogger

    class Stopping(original):

      def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if epoch == 1:
          raise KeyboardInterrupt

    self.patch = lambda: monkeypatch.setattr(tf_keras.callbacks, "CSVLogger",
                                             Stopping)
    self.undo = lambda: monkeypatch.setattr(tf_keras.callbacks, "CSVLogger",
                                            original)


@pytest.mark.slow
def test_every_random_draw_resumes_mixed_negatives_and_sampled_losses(
    tmp_path, monkeypatch):
  """Dropout, "mixed" negatives (uniform samples) and the losses that
  sample columns (listwise, relaxed ranking) draw the same after a resume."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  from tfdistill.pipeline.config import preset  # pylint: disable=import-outside-toplevel
  from tfdistill.pipeline.run import Run  # pylint: disable=import-outside-toplevel
  base = preset("tiny", teacher_epochs=3, student_epochs=3,
                distillation_loss="listwise+relaxed_ranking")
  config = dataclasses.replace(base, teacher=dataclasses.replace(
      base.teacher, negatives="mixed", num_extra_negatives=32))
  whole = Run(str(tmp_path / "a"), config)
  whole.student_kd()
  stop = _StopAfterEpoch(monkeypatch)
  for step in ("teacher", "student_kd"):
    stop.patch()
    try:
      getattr(Run(str(tmp_path / "b"), config), step)()
      raise AssertionError(f"{step} was not interrupted")
    except KeyboardInterrupt:
      pass
    stop.undo()
    getattr(Run(str(tmp_path / "b"), config), step)()
  resumed = Run(str(tmp_path / "b"), config)
  for step in ("teacher", "student_kd"):
    assert resumed.step_metrics(step)["ndcg@10"] == whole.step_metrics(
        step)["ndcg@10"], step

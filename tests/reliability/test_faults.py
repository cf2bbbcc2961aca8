"""Faults of the machine (a full disk, a read-only location) and bugs.

A fault is one line naming the path, exit 2, and leaves the finished steps
intact and resumable; a bug keeps its traceback and asks to be reported.
The disk and the read-only location are real: small tmpfs mounts (these
tests skip where mounting is not allowed, e.g. without root).
"""

import contextlib
import json
import os
import subprocess
import sys

import pytest

from cli_runner import assert_user_error
from cli_runner import last_json
from cli_runner import run_cli
from test_user_errors import snapshot


@contextlib.contextmanager
def tmpfs(path, size: str, read_only: bool = False):
  os.makedirs(path)
  options = f"size={size}" + (",ro" if read_only else "")
  mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs",
                            str(path)], capture_output=True, check=False)
  if mounted.returncode != 0:
    pytest.skip(f"cannot mount a tmpfs here (needs root): "
                f"{mounted.stderr.decode().strip()}")
  try:
    yield str(path)
  finally:
    subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder) -> str:
  """Fills the file system of `folder`; returns the filler's path."""
  path = os.path.join(folder, "filler")
  with open(path, "wb") as f:
    try:
      while True:
        f.write(b"\0" * (1 << 16))
        f.flush()
    except OSError:
      pass
  return path


@pytest.mark.slow
def test_a_full_disk_keeps_finished_steps_and_resumes(tmp_path, tiny_run):
  with tmpfs(tmp_path / "fs", "16m") as fs:
    out = os.path.join(fs, "run")
    teacher = run_cli("train-teacher", "--preset=tiny", "--seed=3",
                      f"--out={out}")
    assert teacher.returncode == 0, teacher.stderr[-2000:]
    finished = {k: v for k, v in snapshot(out).items()
                if k.startswith(("teacher", "data", "config.json"))}
    filler = fill(fs)
    full = run_cli("distill", "--preset=tiny", "--seed=3", f"--out={out}")
    line = assert_user_error(full, "no space left on device")
    assert "rerun the same command" in line
    after = snapshot(out)
    assert {k: after.get(k) for k in finished} == finished
    os.remove(filler)
    resumed = run_cli("distill", "--preset=tiny", "--seed=3", f"--out={out}")
    assert "teacher done" not in resumed.stderr  # not trained again
    # The same student as an uninterrupted run with the same seed.
    assert last_json(resumed)["ndcg@10"] == \
        tiny_run[1]["student_kd"]["ndcg@10"]


def test_an_export_onto_a_full_disk_leaves_nothing(tmp_path, tiny_run):
  with tmpfs(tmp_path / "fs", "1m") as fs:
    fill(fs)
    before = snapshot(fs)
    result = run_cli("export", f"--model={tiny_run[0]}/student_kd/model",
                     f"--out={fs}/e", "--tflite", "--saved_model")
    assert_user_error(result, "no space left on device")
    leftover = set(snapshot(fs)) - set(before)
    assert not any(p.startswith(os.path.join("e", "tflite")) or
                   p.startswith(os.path.join("e", "serving"))
                   for p in leftover), leftover


@pytest.mark.parametrize("command", [
    ["data", "--synthetic_users=50"],
    ["pipeline", "--preset=tiny"],
])
def test_a_read_only_location_is_one_line(tmp_path, command):
  with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
    result = run_cli(*command, f"--out={ro}/out")
    assert_user_error(result, "read-only file system", ro)


def _run_patched(code: str, *argv) -> subprocess.CompletedProcess:
  """The CLI in a subprocess after `code` ran (to inject a failure)."""
  script = (f"import sys, tfdistill\n{code}\n"
            "from tfdistill.cli import run\n"
            f"run(['tfdistill', *{list(argv)!r}])\n")
  return subprocess.run([sys.executable, "-c", script], capture_output=True,
                        text=True, check=False, timeout=300,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def test_an_os_fault_anywhere_is_one_line_naming_the_path():
  result = _run_patched(
      "import errno\n"
      "import tfdistill.cli.commands as c\n"
      "def broken():\n"
      "  raise OSError(errno.EACCES, 'Permission denied', '/srv/x/items.txt')\n"
      "c.COMMANDS['data'] = c.COMMANDS['data'].__class__(\n"
      "    'data', broken, '', c.COMMANDS['data'].flags)\n", "data")
  assert_user_error(result, "/srv/x/items.txt", "permission denied")


def test_a_bug_keeps_its_traceback_and_asks_to_be_reported():
  result = _run_patched(
      "import tfdistill.cli.commands as c\n"
      "def broken():\n"
      "  return {}['missing']\n"
      "c.COMMANDS['data'] = c.COMMANDS['data'].__class__(\n"
      "    'data', broken, '', c.COMMANDS['data'].flags)\n", "data")
  assert result.returncode == 1
  assert "Traceback" in result.stderr and "KeyError" in result.stderr
  assert "internal error" in result.stderr and "report" in result.stderr


def test_describe_maps_tensorflow_file_errors():
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfdistill.cli import faults  # pylint: disable=import-outside-toplevel
  error = tf.errors.ResourceExhaustedError(
      None, None, "/r/ckpt.data-00000; No space left on device")
  assert "no space left on device" in faults.describe(error)
  assert faults.describe(ValueError("a bug")) is None
  assert faults.describe(KeyError("x")) is None
  wrapped = RuntimeError("while saving")
  wrapped.__cause__ = OSError(30, "Read-only file system", "/ro/f")
  assert faults.describe(wrapped).startswith("/ro/f: read-only")
  assert json.dumps(faults.describe(OSError(28, "x", "/a")))

"""Runs the tfdistill command line in a subprocess, as a user would."""

import json
import os
import subprocess
import sys


def run_cli(*args, timeout: float = 900, env: dict = None, cwd: str = None
           ) -> subprocess.CompletedProcess:
  full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  full_env.update(env or {})
  return subprocess.run([sys.executable, "-m", "tfdistill", *args],
                        capture_output=True, text=True, timeout=timeout,
                        env=full_env, cwd=cwd, check=False)


def last_json(result: subprocess.CompletedProcess) -> dict:
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def assert_user_error(result: subprocess.CompletedProcess, *fragments) -> str:
  """Exit status 2, one line on stderr, no traceback."""
  assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
  lines = [l for l in result.stderr.splitlines() if "error:" in l]
  assert len(lines) == 1, result.stderr
  assert "Traceback" not in result.stderr
  for fragment in fragments:
    assert fragment in lines[0], lines[0]
  return lines[0]

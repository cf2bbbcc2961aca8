"""Shared helpers of the benchmark scripts: flags, machine info, reports.

Every benchmark writes `<out>/<name>.json` (all measurements plus the
machine) and `<out>/<name>.md` (a Markdown table for BENCHMARKS.md).
"""

import datetime
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys

import numpy as np

from tfdistill.reporting import markdown_table

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_MOVIELENS = REPO.parent / "shared" / "data" / "movielens"
DEFAULT_OUT = REPO / "benchmarks" / "results"


def _onednn_enabled() -> bool:
  from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  return bool(_pywrap_util_port.IsMklEnabled())


def machine_info() -> dict:
  """CPU, cores, memory, Python and library versions of this run."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  import tf_keras  # pylint: disable=import-outside-toplevel
  info = {"python": platform.python_version(), "platform": platform.platform(),
          "cpu_count": os.cpu_count(), "tensorflow": tf.__version__,
          "tf_keras": tf_keras.__version__,
          # TensorFlow's oneDNN kernels (off by default since 2026-12-01:
          # BUILD.md; tables without this field ran with them on).
          "onednn": _onednn_enabled(),
          "date": datetime.datetime.now().isoformat(timespec="seconds")}
  try:
    with open("/proc/cpuinfo") as f:
      names = [line.split(":", 1)[1].strip() for line in f
               if line.startswith("model name")]
    info["cpu"] = names[0] if names else platform.processor()
    with open("/proc/meminfo") as f:
      info["memory_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
  except OSError:
    info["cpu"] = platform.processor()
  try:
    info["git_commit"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=True,
        capture_output=True, text=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    pass
  return info


def mean_and_std(rows: list, keys) -> dict:
  """{key: mean, key_std: std} over the rows holding a value for each key
  (keys no row holds are left out)."""
  out = {}
  for key in keys:
    values = [r[key] for r in rows if r.get(key) is not None]
    if values:
      out[key] = float(np.mean(values))
      out[f"{key}_std"] = float(np.std(values))
  return out


def command_line() -> str:
  """This run's command, runnable from the repository root."""
  script = pathlib.Path(sys.argv[0]).resolve()
  try:
    script = script.relative_to(REPO)
  except ValueError:
    pass
  return " ".join(["python", str(script)] + sys.argv[1:])


def write_report(out_dir, name: str, title: str, results: dict,
                 tables: list, notes: str = "",
                 measured: dict = None) -> pathlib.Path:
  """Writes <name>.json and <name>.md; returns the Markdown path.

  Args:
    tables: [(heading, rows, columns)].
    measured: The "machine" and "command" of the run that measured the
      figures, when this call only re-derives statistics from them
      (default: this run's).
  """
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  machine = (measured or {}).get("machine") or machine_info()
  payload = dict(results, machine=machine,
                 command=(measured or {}).get("command") or command_line())
  (out / f"{name}.json").write_text(json.dumps(payload, indent=2,
                                               default=str) + "\n")
  parts = [f"# {title}", "", f"Command: `{payload['command']}`", ""]
  for heading, rows, columns in tables:
    parts += [f"## {heading}", "", markdown_table(rows, columns), ""]
  if notes:
    parts += [notes, ""]
  parts += ["Machine: " + ", ".join(f"{k}={v}" for k, v in machine.items()),
            ""]
  path = out / f"{name}.md"
  path.write_text("\n".join(parts))
  return path


def shared_run(base_dir: str, out: str, config,
               steps=("data", "teacher")):
  """The run of `config` in `out`, started (when `out` does not exist yet)
  with copies of the finished `steps` of the run in `base_dir`: for a
  configuration that differs from the base's only after those steps.

  The copies go to a fresh staging folder of this call's own, renamed to
  `out` when complete (removed if the copy fails): nothing else is deleted.
  """
  from tfdistill.errors import ConfigError  # pylint: disable=import-outside-toplevel
  from tfdistill.fileio import atomic_directory  # pylint: disable=import-outside-toplevel
  from tfdistill.pipeline.run import Run  # pylint: disable=import-outside-toplevel
  if not os.path.isdir(out):
    with atomic_directory(out, False, ConfigError, f"{out} is a file; "
                          "choose another --work_dir.", markers=(),
                          prefix=".shared-run-") as staging:
      Run(staging, config).claim()  # config.json
      for step in steps:
        shutil.copytree(os.path.join(base_dir, step),
                        os.path.join(staging, step))
  return Run(out, config)

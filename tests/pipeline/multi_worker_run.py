"""One worker of a tiny multi-worker run (a subprocess of test_distribute).

    python multi_worker_run.py OUT multi_worker   # with TF_CONFIG set
    python multi_worker_run.py OUT default        # the single-process twin
    python multi_worker_run.py OUT multi_worker 6 # the teacher for 6 epochs

Trains the tiny preset's teacher (one epoch unless told) and distils its
student (one epoch) without dropout
(so that every replica computes what one process would), and prints one
JSON line: whether this worker is the chief, its own folder, and every
path under OUT that this process opened for writing, created, renamed or
removed from Python.
"""

import builtins
import dataclasses
import json
import os
import shutil
import sys
import tempfile

import tfdistill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)

from tfdistill.distribute import make_strategy
from tfdistill.pipeline.config import preset
from tfdistill.pipeline.run import Run

OUT = os.path.realpath(sys.argv[1])
WRITES = []


def _audit(function, path_arguments=(0,), mode_argument=None):
  def audited(*args, **kwargs):
    mode = (args[mode_argument] if mode_argument is not None and
            len(args) > mode_argument else kwargs.get("mode", "r"))
    if mode_argument is None or any(c in str(mode) for c in "wax+"):
      for i in path_arguments:
        if i < len(args) and isinstance(args[i], (str, os.PathLike)):
          path = os.path.realpath(os.fspath(args[i]))
          if path == OUT or path.startswith(OUT + os.sep):
            WRITES.append(f"{function.__name__} {path}")
      if "dir" in kwargs and kwargs["dir"] and os.path.realpath(
          kwargs["dir"]).startswith(OUT):
        WRITES.append(f"{function.__name__} in {kwargs['dir']}")
    return function(*args, **kwargs)
  return audited


def main():
  builtins.open = _audit(builtins.open, mode_argument=1)
  for module, name, paths in ((os, "makedirs", (0,)), (os, "mkdir", (0,)),
                              (os, "replace", (0, 1)), (os, "rename", (0, 1)),
                              (os, "remove", (0,)), (os, "unlink", (0,)),
                              (shutil, "rmtree", (0,)),
                              (tempfile, "mkdtemp", ())):
    setattr(module, name, _audit(getattr(module, name), paths))
  strategy = make_strategy(sys.argv[2], worker_timeout=60)
  base = preset("tiny", seed=3)
  config = dataclasses.replace(
      base, teacher=dataclasses.replace(base.teacher, dropout=0.0),
      student=dataclasses.replace(base.student, dropout=0.0),
      teacher_epochs=int(sys.argv[3]) if len(sys.argv) > 3 else 1,
      student_epochs=1, early_stopping_patience=0)
  run = Run(sys.argv[1], config, strategy=strategy)
  run.student_kd()
  print(json.dumps({"chief": run.chief, "own": run.out,
                    "ndcg": run.step_metrics("student_kd")["ndcg@10"],
                    "writes": WRITES if not run.chief else len(WRITES)}),
        flush=True)


if __name__ == "__main__":
  main()

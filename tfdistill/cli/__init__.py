"""The `tfdistill` command line: thin commands over the Python API.

Usage: tfdistill <command> [--flags]; `tfdistill <command> --help` lists the
flags of one command. User errors print one line and exit with status 2.
"""

import inspect
import os
import sys
import traceback
from typing import Optional

# Keep TensorFlow's C++ start-up chatter out of the command line's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfdistill  # pylint: disable=g-import-not-at-top,unused-import  # Sets TF_USE_LEGACY_KERAS.
from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
from absl import logging  # pylint: disable=g-import-not-at-top

from tfdistill.cli import commands  # pylint: disable=g-import-not-at-top
from tfdistill.cli import faults  # pylint: disable=g-import-not-at-top
from tfdistill.errors import TfdistillError  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
_PROG = "tfdistill"
# Flags absl defines for every program; they may be used with any command.
_GLOBAL_FLAGS = frozenset(("flagfile", "verbosity", "v", "logtostderr",
                           "alsologtostderr", "log_dir", "stderrthreshold",
                           "showprefixforinfo", "only_check_args", "pdb",
                           "pdb_post_mortem", "run_with_pdb",
                           "run_with_profiling", "profile_file",
                           "use_cprofile_for_profiling", "logger_levels", "helpshort", "helpfull", "helpxml",
                           "help", "undefok"))


def _fail(message: str, command: Optional[str] = None) -> None:
  where = f"{_PROG} {command}" if command else _PROG
  sys.stderr.write(f"{where}: error: {message}\n")
  sys.exit(2)


def _start_tensorflow_quietly() -> None:
  """Imports TensorFlow and enumerates its devices with file descriptor 2
  on /dev/null: their native start-up lines (absl's InitializeLog warning,
  CUDA probes on a machine without a GPU) ignore TF_CPP_MIN_LOG_LEVEL since
  TensorFlow 2.19. `--verbosity=...` keeps them."""
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(os.devnull, "w") as null:
      os.dup2(null.fileno(), 2)
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    tf.config.list_physical_devices()
  finally:
    os.dup2(saved, 2)
    os.close(saved)


def _usage() -> str:
  lines = [f"usage: {_PROG} <command> [--flags]   ({_PROG} <command> --help)",
           "", "commands:"]
  for command in commands.COMMANDS.values():
    lines.append(f"  {command.name:<14} {command.summary}")
  return "\n".join(lines)


def _command_help(command: commands.Command) -> str:
  lines = [f"usage: {_PROG} {command.name} [--flags]", "",
           inspect.cleandoc(command.function.__doc__), "", "flags:"]
  for name in command.flags:
    flag = FLAGS[name]
    lines.append(f"  --{name}: {flag.help}")
    lines.append(f"      (default: {flag.default_as_str or 'none'})")
  lines.append("  --flagfile: read flags from a file (one --flag=value per "
               "line).")
  return "\n".join(lines)


def _split_command(argv: list) -> tuple:
  positional = [a for a in argv[1:] if not a.startswith("-")]
  return (positional[0] if positional else None), positional[1:]


def _parse_flags(argv: list) -> list:
  """absl flags parser that reports user errors in one line (exit 2)."""
  name, _ = _split_command(argv)
  if any(a in ("--help", "-h", "--helpshort") for a in argv[1:]):
    command = commands.COMMANDS.get(name)
    print(_command_help(command) if command else _usage())
    sys.exit(0)
  try:
    return FLAGS(argv)
  except flags.Error as error:
    _fail(str(error), name)


def _main(argv: list) -> int:
  name, extra = _split_command(argv)
  if name is None:
    _fail(f"no command given.\n{_usage()}")
  command = commands.COMMANDS.get(name)
  if command is None:
    _fail(f"unknown command {name!r}; choose one of "
          f"{', '.join(commands.COMMANDS)}.")
  if extra:
    _fail(f"unexpected argument(s) {extra}; flags are written --name=value.",
          name)
  foreign = [f for f in FLAGS if FLAGS[f].present and f not in command.flags
             and f not in _GLOBAL_FLAGS]
  if foreign:
    _fail(f"flag(s) {', '.join('--' + f for f in sorted(set(foreign)))} do "
          f"not apply to `{name}`; see `{_PROG} {name} --help`.", name)
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.INFO)
  try:
    if command.check is not None:
      command.check()  # before TensorFlow loads: bad flags fail at once
    if not FLAGS["verbosity"].present and (
        name != "data" or FLAGS.dataset.startswith("movielens/")):
      _start_tensorflow_quietly()
    return command.function() or 0
  except TfdistillError as error:
    _fail(str(error), name)
  except KeyboardInterrupt:
    sys.stderr.write(f"{_PROG} {name}: interrupted; rerun the same command "
                     "to resume from the last checkpoint.\n")
    return 130
  except Exception as error:  # pylint: disable=broad-except
    message = faults.describe(error)
    if message is not None:
      _fail(message, name)
    # Not the user's input and not the machine: a bug. Keep its traceback.
    traceback.print_exc()
    sys.stderr.write(
        f"{_PROG} {name}: internal error ({type(error).__name__}): this is a "
        "bug in tfdistill, not a problem with your input; please report it "
        "with the command line and the traceback above.\n")
    return 1


def run(argv: Optional[list] = None) -> None:
  """Console-script entry point."""
  app.run(_main, argv=argv if argv is not None else sys.argv,
          flags_parser=_parse_flags)

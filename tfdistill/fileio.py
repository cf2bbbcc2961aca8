"""Safe folder writes: build in a staging folder, then rename into place.

The one rule of every write: tfdistill only ever deletes or replaces what it
wrote itself. A folder it replaces must carry the marker file that tfdistill
writes into it (`Marker`); the working directory, its parents, the home
directory and the filesystem root are never replaced, whatever they hold.
"""

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import uuid
from typing import Sequence


@dataclasses.dataclass(frozen=True)
class Marker:
  """The file by which tfdistill recognises a folder it wrote.

  Attributes:
    path: The file, relative to the folder.
    keys: For a JSON file, keys it must hold (a file of the same name that a
      user wrote, e.g. a `meta.json` of their own, does not count).
  """
  path: str
  keys: tuple = ()

  def found_in(self, directory: str) -> bool:
    path = os.path.join(directory, self.path)
    if not os.path.isfile(path):
      return False
    if not self.keys:
      return True
    try:
      with open(path, encoding="utf-8") as f:
        values = json.load(f)
    except (OSError, ValueError):
      return False
    return isinstance(values, dict) and all(k in values for k in self.keys)


def protected(directory: str) -> bool:
  """Whether `directory` is one that tfdistill never replaces: the working
  directory or one of its parents, the home directory, or the root."""
  target = os.path.realpath(directory)
  cwd = os.path.realpath(os.getcwd())
  home = os.path.realpath(os.path.expanduser("~"))
  if target in (home, os.path.realpath(os.sep)):
    return True
  return cwd == target or cwd.startswith(target.rstrip(os.sep) + os.sep)


def check_replaceable(directory: str, markers: Sequence[Marker], error_type,
                      what: str = "") -> None:
  """Raises `error_type` unless tfdistill may replace `directory`.

  Args:
    directory: An existing path.
    markers: Any one of them identifies a folder tfdistill wrote.
    error_type: The exception class to raise.
    what: How the user named the path (e.g. "--out=runs/a"), for the message.
  """
  name = what or directory
  if not os.path.isdir(directory) or os.path.islink(directory):
    raise error_type(f"{name} is a file, not a folder; choose a folder path.")
  if protected(directory):
    raise error_type(
        f"{name} is the working directory, one of its parents, the home "
        "directory or the root; tfdistill never replaces those. Choose a new "
        "folder.")
  if not any(marker.found_in(directory) for marker in markers):
    expected = " or ".join(m.path for m in markers)
    raise error_type(
        f"{name} was not written by tfdistill (it has no {expected}); "
        "tfdistill only replaces folders it wrote. Choose a new folder, or "
        "move this one away yourself.")


def replace_directory(staging: str, directory: str) -> None:
  """Moves the finished `staging` folder to `directory`, replacing a folder
  already there (the caller checked it with `check_replaceable`)."""
  if not os.path.exists(directory):
    os.replace(staging, directory)
    return
  old = tempfile.mkdtemp(prefix=".replaced-",
                         dir=os.path.dirname(os.path.abspath(directory)))
  aside = os.path.join(old, "old")
  os.replace(directory, aside)
  try:
    os.replace(staging, directory)
  except BaseException:
    os.replace(aside, directory)  # put the old one back
    shutil.rmtree(old, ignore_errors=True)
    raise
  shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(directory: str, overwrite: bool, error_type,
                     exists_message: str, markers: Sequence[Marker],
                     prefix: str = ".staging-"):
  """Yields a staging folder that becomes `directory` when the block ends.

  On any exception the staging folder is removed and `directory` is left as
  it was, so an interrupted write never leaves a half-written folder.

  Raises:
    error_type(exists_message): if `directory` exists and not `overwrite`.
    error_type: if `directory` exists and is not a folder tfdistill wrote
      (none of `markers`), or is protected (see `protected`).
  """
  if os.path.exists(directory):
    if not overwrite:
      if not os.path.isdir(directory):
        raise error_type(f"{directory} is a file, not a folder; choose a "
                         "folder path.")
      raise error_type(exists_message)
    check_replaceable(directory, markers, error_type)
  parent = os.path.dirname(os.path.abspath(directory))
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=prefix, dir=parent)
  try:
    yield staging
    replace_directory(staging, directory)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise


def write_text(path: str, text: str) -> None:
  """Writes `path` whole or not at all: a temporary file of this writer's
  own (two processes may open the same run, e.g. benchmarks in parallel),
  then a rename."""
  partial = f"{path}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial"
  try:
    with open(partial, "w", encoding="utf-8") as f:
      f.write(text)
    os.replace(partial, path)
  finally:
    if os.path.exists(partial):
      os.remove(partial)


def write_json(path: str, values) -> None:
  """`write_text` of `values` as indented JSON."""
  write_text(path, json.dumps(values, indent=2, default=float))


def read_json(path: str):
  with open(path) as f:
    return json.load(f)

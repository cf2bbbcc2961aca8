"""Atomic folder writes: build in a staging folder, then rename into place."""

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_directory(directory: str, overwrite: bool, error_type,
                     exists_message: str, prefix: str = ".staging-"):
  """Yields a staging folder that replaces `directory` when the block ends.

  On any exception the staging folder is removed and `directory` is left as
  it was, so an interrupted write never leaves a half-written folder.

  Raises:
    error_type(exists_message): if `directory` exists and not `overwrite`.
  """
  if os.path.exists(directory) and not overwrite:
    raise error_type(exists_message)
  parent = os.path.dirname(os.path.abspath(directory))
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=prefix, dir=parent)
  try:
    yield staging
    if os.path.exists(directory):
      shutil.rmtree(directory)
    os.replace(staging, directory)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise

"""One line for the faults of the machine a command runs on.

A full disk, a read-only or unwritable location, a path that is a file where
a folder is needed: these are neither the user's input nor a bug, and the
command line reports them as one line naming the path (exit 2), like a user
error. Everything else keeps its traceback (see `tfdistill.cli`).
"""

import errno
from typing import Optional

_ADVICE_RESUME = ("finished steps are kept: fix this and rerun the same "
                  "command to resume.")

#: errno -> (what happened, what to do).
_OS_FAULTS = {
    errno.ENOSPC: ("no space left on device", "free some space; "
                   + _ADVICE_RESUME),
    errno.EDQUOT: ("disk quota exceeded", "free some space; "
                   + _ADVICE_RESUME),
    errno.EROFS: ("read-only file system", "choose a writable location "
                  "(--out)."),
    errno.EACCES: ("permission denied", "choose a location you may write "
                   "to, or fix its permissions."),
    errno.EPERM: ("operation not permitted", "choose a location you may "
                  "write to, or fix its permissions."),
    errno.ENOTDIR: ("a path component is a file, not a folder",
                    "choose a folder path."),
    errno.EISDIR: ("is a folder, not a file", "pass a file path."),
    errno.EEXIST: ("already exists", "choose a new path."),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter path."),
    errno.EIO: ("input/output error", "check the disk; " + _ADVICE_RESUME),
}

#: Phrases of TensorFlow's file-system errors (its C++ code raises them as
#: tf.errors.OpError, not OSError) -> the errno they stand for.
_TF_PHRASES = (("No space left on device", errno.ENOSPC),
               ("Disk quota exceeded", errno.EDQUOT),
               ("Read-only file system", errno.EROFS),
               ("Permission denied", errno.EACCES),
               ("Not a directory", errno.ENOTDIR),
               ("Is a directory", errno.EISDIR))


def _line(path: str, code: int) -> str:
  what, advice = _OS_FAULTS[code]
  return f"{path}: {what}; {advice}" if path else f"{what}; {advice}"


def describe(error: BaseException) -> Optional[str]:
  """The one-line message for an OS fault, or None for anything else."""
  if isinstance(error, OSError) and error.errno in _OS_FAULTS:
    path = error.filename or ""
    if error.filename2:
      path = f"{path} -> {error.filename2}"
    return _line(str(path), error.errno)
  try:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
  except ImportError:  # pragma: no cover
    return None
  if isinstance(error, tf.errors.OpError):
    message = str(getattr(error, "message", error))
    for phrase, code in _TF_PHRASES:
      if phrase in message:
        first = message.strip().splitlines()[0][:300]
        return _line("", code) + f" (TensorFlow: {first})"
  cause = error.__cause__ or error.__context__
  if cause is not None and cause is not error:
    return describe(cause)
  return None

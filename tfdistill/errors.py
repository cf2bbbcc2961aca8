"""Errors raised for problems a user can fix (bad input, bad configuration).

The command line turns these into a one-line message and exit status 2; any
other exception is a bug and keeps its traceback.
"""


class TfdistillError(ValueError):
  """Base class for user-facing errors; the message says what to change."""


class DataError(TfdistillError):
  """A data source is missing, malformed or empty."""


class ConfigError(TfdistillError):
  """A configuration value or flag combination is invalid."""


class ModelError(TfdistillError):
  """A model is missing, untrained or incompatible with another model."""


class ExportError(TfdistillError):
  """An export cannot be written or failed its parity gate."""

"""The commands of the `tfdistill` command line; each wraps library calls."""

import dataclasses
import json
from typing import Callable

from absl import logging

from tfdistill.cli import options
from tfdistill.data.prepare import prepare
from tfdistill.data.sources import load_dataset

FLAGS = options.FLAGS


@dataclasses.dataclass(frozen=True)
class Command:
  name: str
  function: Callable[[], int]
  summary: str
  flags: tuple


def _print_json(values: dict) -> None:
  """The last line of a command's output: one JSON object (for scripts)."""
  print(json.dumps(values, sort_keys=True, default=str), flush=True)


def data() -> int:
  """Prepare and inspect a data set.

  Loads the source, filters rare users/items, builds vocabularies and the
  leave-last-out split, optionally saves it (--out), and prints as its last
  line one JSON object with num_interactions, num_users and num_items (before
  filtering), the counts kept and the split sizes.
  """
  source = options.source_config()
  prepared = prepare(load_dataset(source), options.prepare_config())
  if FLAGS.out:
    prepared.save(FLAGS.out, overwrite=FLAGS.overwrite)
    logging.info("saved prepared data to %s", FLAGS.out)
  summary = prepared.summary()
  for key, value in summary.items():
    print(f"{key:>24}: {value}")
  _print_json(summary)
  return 0


COMMANDS = {
    c.name: c for c in [
        Command("data", data, "prepare and inspect a data set",
                options.DATA_FLAGS + ("out", "overwrite")),
    ]
}

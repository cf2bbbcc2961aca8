"""Shared fixtures: tiny seeded data sets and the offline MovieLens archive."""

import contextlib
import fcntl
import json
import os
import pathlib
import subprocess

import pytest

import tfdistill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
from tfdistill.data.prepare import prepare
from tfdistill.data.prepare import PrepareConfig
from tfdistill.data.sources import load_dataset
from tfdistill.data.sources import SourceConfig
from tfdistill.data.synthetic import SyntheticConfig

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_MOVIELENS = REPO.parent / "shared" / "data" / "movielens"

#: Rough seconds of a test marked slow, of one marked processes, and of
#: any other test.
SLOW_SECONDS, PROCESS_SECONDS, TEST_SECONDS = 30, 6, 2


def pytest_collection_modifyitems(items):
  """The longest files run first.

  The test command distributes whole files to its two processes
  (`--dist loadfile`), in collection order (`--no-loadscope-reorder`;
  xdist's own order, by number of tests, puts a file of a few long tests
  last): a long file collected last keeps one process busy while the other
  has finished. A file's length is estimated from its tests: those marked
  slow, those marked processes (each starts the command line in a new
  process, a few seconds of TensorFlow start-up) and the others. A stable
  sort, so tests keep their order within a file.
  """
  cost = {}
  for item in items:
    seconds = TEST_SECONDS
    if item.get_closest_marker("slow") is not None:
      seconds = SLOW_SECONDS
    elif item.get_closest_marker("processes") is not None:
      seconds = PROCESS_SECONDS
    cost[item.fspath] = cost.get(item.fspath, 0) + seconds
  items.sort(key=lambda item: -cost[item.fspath])


TINY_SYNTHETIC = SyntheticConfig(num_users=120, num_items=80,
                                 mean_interactions_per_user=12, seed=7)


@pytest.fixture(scope="session")
def tiny_synthetic_config():
  return TINY_SYNTHETIC


@pytest.fixture(scope="session")
def tiny_data():
  return load_dataset(SourceConfig(synthetic=TINY_SYNTHETIC))


@pytest.fixture(scope="session")
def tiny_prepared(tiny_data):
  return prepare(tiny_data, PrepareConfig(min_user_interactions=5))


@pytest.fixture(scope="session")
def movielens_dir():
  """../shared/data/movielens, or skip when this machine does not have it."""
  if not (SHARED_MOVIELENS / "ml-latest-small.zip").is_file():
    pytest.skip(f"real MovieLens archive not found at {SHARED_MOVIELENS} "
                "(only present on the project's CI and dev machines)")
  return str(SHARED_MOVIELENS)


@contextlib.contextmanager
def shared_folder(tmp_path_factory, name: str):
  """A folder shared by every process of this test session (pytest-xdist
  workers included), held under an exclusive lock: the first process to
  enter builds what goes in it, the others wait and reuse it."""
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent  # the session's folder, above each worker's own
  folder = root / f"shared-{name}"
  with open(root / f"shared-{name}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      folder.mkdir(exist_ok=True)
      yield folder
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def tfds_cache(tmp_path_factory):
  """One TFDS cache for the whole session, so latest-small is built once."""
  if os.environ.get("TFDISTILL_TEST_TFDS_DIR"):
    return os.environ["TFDISTILL_TEST_TFDS_DIR"]
  with shared_folder(tmp_path_factory, "tfds") as folder:
    return str(folder)


CONTEXT_LENGTH = 6


@pytest.fixture(scope="session")
def context_length():
  return CONTEXT_LENGTH


@pytest.fixture(scope="session")
def tiny_train(tiny_prepared):
  from tfdistill.data.examples import sequence_examples
  return sequence_examples(tiny_prepared, "train", CONTEXT_LENGTH,
                           batch_size=64, shuffle=True, seed=0)


@pytest.fixture(scope="session")
def tiny_teacher(tiny_prepared, tiny_train):
  """A small trained sequential teacher (shared; tests must not train it)."""
  import tf_keras
  from tfdistill.models.factory import build_sequential_teacher
  from tfdistill.models.factory import TeacherConfig
  tf_keras.utils.set_random_seed(0)
  teacher = build_sequential_teacher(
      tiny_prepared, CONTEXT_LENGTH,
      TeacherConfig(embedding_dim=16, num_blocks=1, num_heads=2, ffn_dim=32,
                    dropout=0.0))
  teacher.compile(tf_keras.optimizers.Adam(1e-2))
  teacher.fit(tiny_train, epochs=3, verbose=0)
  return teacher


def make_student(prepared, **overrides):
  """A tiny sequential student."""
  from tfdistill.models.factory import build_student
  from tfdistill.models.students import StudentConfig
  config = dict(embedding_dim=8, hidden_dim=8, dropout=0.0)
  config.update(overrides)
  return build_student(prepared, CONTEXT_LENGTH, StudentConfig(**config))


@pytest.fixture(scope="session")
def trained_tiny_student(tiny_prepared, tiny_train):
  """A tiny student trained for a few epochs (shared; tests must not train
  or change it)."""
  import tf_keras
  tf_keras.utils.set_random_seed(5)
  student = make_student(tiny_prepared, embedding_dim=16, hidden_dim=16)
  student.compile(tf_keras.optimizers.Adam(1e-2),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
  student.fit(tiny_train, epochs=3, verbose=0)
  return student


@pytest.fixture(scope="session")
def saved_student(trained_tiny_student, tiny_prepared, tmp_path_factory):
  """`trained_tiny_student` saved by tfdistill, with its vocabulary, int8
  calibration contexts and held-out contexts."""
  from tfdistill.data import examples
  from tfdistill.models.io import save_model
  train = examples.sequence_arrays(tiny_prepared, "train", CONTEXT_LENGTH)
  holdout = examples.evaluation_set(tiny_prepared, "validation",
                                    CONTEXT_LENGTH)
  return save_model(trained_tiny_student,
                    str(tmp_path_factory.mktemp("m") / "student"),
                    vocabulary=tiny_prepared.items,
                    representative=train.contexts[:100],
                    holdout=holdout.contexts)


@pytest.fixture()
def student_factory(tiny_prepared):
  return lambda **overrides: make_student(tiny_prepared, **overrides)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
  """(run directory, printed metrics, process) of `tfdistill pipeline
  --preset=tiny --seed=3`, run once per session; tests that change a run
  copy it first."""
  from cli_runner import last_json  # pylint: disable=import-outside-toplevel
  from cli_runner import run_cli  # pylint: disable=import-outside-toplevel
  with shared_folder(tmp_path_factory, "tiny-run") as folder:
    out, record = folder / "tiny", folder / "process.json"
    if record.is_file():
      result = subprocess.CompletedProcess(**json.loads(record.read_text()))
    else:
      result = run_cli("pipeline", "--preset=tiny", f"--out={out}",
                       "--seed=3")
      record.write_text(json.dumps(dict(
          args=result.args, returncode=result.returncode,
          stdout=result.stdout, stderr=result.stderr)))
  return out, last_json(result), result

"""The teacher's signals over a whole data set as an Apache Beam job.

    from tfdistill.distill import SavedTeacher, cache_with_beam
    cache_with_beam(SavedTeacher("run/teacher/model"), batches, "cache_dir",
                    top_k=50, num_shards=8)
    distiller = Distiller(student, cached_teacher("cache_dir"))
    distiller.fit(cached_examples("cache_dir", batch_size=256, shuffle=True))

The records are those `cache_teacher_signal` writes in one process, cut into
shards: batch i of the data goes to shard i mod n, so reading the shards in
turn (`cached_examples`) gives back the data order, and the cache equals the
in-process one record for record. The work is one Beam element per shard:
each worker loads the teacher once (`DoFn.setup`) and streams its shard's
input batches through it, so any Beam runner (DirectRunner here; Dataflow,
Flink or Spark through Beam's own pipeline options) spreads the shards over
its workers without code changes. The folder must then be on storage every
worker reaches (e.g. gs:// paths through `tf.io.gfile`).

Writes are resumable and never half-visible: the input batches and the
fingerprints go to `<out>/.work/` first; each output shard is written to a
temporary name and renamed when complete (a rerun with the same data and
teacher skips finished shards); the index `cache.json`, which readers
require, is written last, after every shard is checked.
"""

import hashlib
import logging as pylogging
import os
import re
from typing import Callable, Optional, Sequence

from absl import logging
import tensorflow as tf
from tqdm import tqdm

from tfdistill.distill import cache
from tfdistill.distill.teachers import as_teacher_source
from tfdistill.errors import ConfigError
from tfdistill.errors import DataError
from tfdistill.fileio import Marker
from tfdistill.fileio import check_replaceable
from tfdistill.fileio import read_json
from tfdistill.fileio import write_json
from tfdistill.models.signals import LOGITS


def _import_beam() -> tuple:
  """(apache_beam, PipelineOptions), or Nones without the "beam" extra.
  Beam's import warns on the root logger about Google Cloud clients that
  only its Dataflow runner needs; that warning is kept out of the output."""
  root = pylogging.getLogger()
  level = root.level
  root.setLevel(pylogging.ERROR)
  try:
    import apache_beam  # pylint: disable=import-outside-toplevel
    from apache_beam.options.pipeline_options import PipelineOptions as options  # pylint: disable=import-outside-toplevel
    return apache_beam, options
  except ImportError:
    return None, None
  finally:
    root.setLevel(level)


beam, PipelineOptions = _import_beam()
_DoFn = beam.DoFn if beam is not None else object

_WORK = ".work"
_PROGRESS = "progress.json"
#: A finished sharded cache (its index names its shards).
CACHE_MARKER = Marker(cache.SHARDED_INDEX, keys=("shards", "tensors"))
_FORMAT = "tfdistill-teacher-cache"
#: The names of the shard files tfdistill writes.
_SHARD_FILE = re.compile(r"signals-\d{5}-of-\d{5}\.tfrecord")


class SavedTeacher:
  """Loads a teacher that tfdistill saved (e.g. a run's `teacher/model`):
  a picklable recipe that each Beam worker calls once."""

  def __init__(self, path: str):
    self.path = path

  def __call__(self):
    from tfdistill.models.io import load_model  # pylint: disable=import-outside-toplevel
    return load_model(self.path)

  def __repr__(self) -> str:
    return f"SavedTeacher({self.path!r})"


def _shard_name(kind: str, shard: int, num_shards: int) -> str:
  return f"{kind}-{shard:05d}-of-{num_shards:05d}.tfrecord"


def teacher_fingerprint(source) -> str:
  """SHA-256 of the teacher's weight values, in order (every model the
  source runs); names are left out, Keras renumbers them per load."""
  digest = hashlib.sha256()
  for model in source.models():
    for weight in model.weights:
      digest.update(tf.convert_to_tensor(weight).numpy().tobytes())
  return digest.hexdigest()


def _file_digest(path: str) -> str:
  digest = hashlib.sha256()
  with tf.io.gfile.GFile(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


class _TeacherShards(_DoFn):
  """The Beam DoFn: one shard of input batches in, its cache records out
  (written to the shard's file); yields (shard, records)."""

  def __init__(self, teacher: Callable, work: str, out: str, num_shards: int,
               inputs: dict, signals: tuple, top_k: int):
    super().__init__()
    self.teacher, self.work, self.out = teacher, work, out
    self.num_shards, self.inputs = num_shards, inputs
    self.signals, self.top_k = signals, top_k
    self._source = None

  def setup(self):
    self._source = as_teacher_source(self.teacher())
    self._source.prepare()
    self._parse = cache.record_parser(self.inputs)

  def process(self, shard: int):
    target = os.path.join(self.out, _shard_name("signals", shard,
                                                self.num_shards))
    if tf.io.gfile.exists(target):  # finished by an earlier attempt
      yield shard, sum(1 for _ in tf.data.TFRecordDataset(target))
      return
    source = os.path.join(self.work, _shard_name("inputs", shard,
                                                 self.num_shards))
    partial = f"{target}.partial-{os.getpid()}"
    count = 0
    with tf.io.TFRecordWriter(partial) as writer:
      for serialized in tf.data.TFRecordDataset(source):
        batch = self._parse(serialized)
        labels = batch.pop(cache._LABEL)  # pylint: disable=protected-access
        record = cache.teacher_record(self._source, batch, labels,
                                      self.signals, self.top_k)
        writer.write(cache.serialize_record(record))
        count += 1
    tf.io.gfile.rename(partial, target, overwrite=True)
    yield shard, count


def _serialized_inputs(dataset):
  """The input batches as cache records (features + labels), serialized."""
  for features, labels in tqdm(dataset, desc="reading input batches",
                               unit="batch", leave=False):
    if isinstance(labels, dict):
      raise ConfigError("a teacher cache supports single labels only.")
    yield cache.serialize_record(
        dict(features, **{cache._LABEL: labels}))  # pylint: disable=protected-access


def data_fingerprint(dataset) -> str:
  """SHA-256 of the serialized input batches, as a cache's index keeps it."""
  digest = hashlib.sha256()
  for serialized in _serialized_inputs(dataset):
    digest.update(serialized)
  return digest.hexdigest()


def _write_inputs(dataset, work: str, num_shards: int) -> tuple:
  """Writes the input batches to `num_shards` files (batch i to shard
  i mod n); returns (number of batches, data fingerprint)."""
  digest = hashlib.sha256()
  names = [os.path.join(work, _shard_name("inputs", s, num_shards))
           for s in range(num_shards)]
  writers = [tf.io.TFRecordWriter(name + ".partial") for name in names]
  batches = 0
  try:
    for serialized in _serialized_inputs(dataset):
      digest.update(serialized)
      writers[batches % num_shards].write(serialized)
      batches += 1
  finally:
    for writer in writers:
      writer.close()
  for name in names:
    tf.io.gfile.rename(name + ".partial", name, overwrite=True)
  return batches, digest.hexdigest()


def _prepare_out(out: str, overwrite: bool) -> None:
  """Makes `out` ready: new, our unfinished work (resumed), or our finished
  cache replaced with `overwrite`. Anything else is refused."""
  if not tf.io.gfile.exists(out):
    tf.io.gfile.makedirs(out)
    return
  if not tf.io.gfile.isdir(out):
    raise ConfigError(f"--out={out} is a file, not a folder; choose a folder.")
  if CACHE_MARKER.found_in(out):
    check_replaceable(out, [CACHE_MARKER], ConfigError, what=f"--out={out}")
    index = read_json(os.path.join(out, cache.SHARDED_INDEX))
    # Only the shard files this cache's index names, and only names of the
    # form tfdistill writes (an edited index cannot point elsewhere).
    os.remove(os.path.join(out, cache.SHARDED_INDEX))
    for shard in index["shards"]:
      name = os.path.join(out, shard["file"])
      if _SHARD_FILE.fullmatch(shard["file"]) and os.path.isfile(name):
        os.remove(name)
    return
  entries = set(tf.io.gfile.listdir(out))
  ours = os.path.isfile(os.path.join(out, _WORK, _PROGRESS))
  if entries and not ours:
    raise ConfigError(f"--out={out} is a folder tfdistill did not write and "
                      "it is not empty; choose a new or empty folder.")


def _finished(out: str, fingerprints: dict, dataset) -> dict:
  """The finished cache in `out` when it is of this teacher, data and
  settings (a rerun has nothing to do); else an error naming what
  differs."""
  index = cache.read_sharded_index(out)
  stored = dict(index, num_shards=len(index["shards"]),
                signals=([LOGITS] if index["top_k"] else []) + list(
                    index["representations"]))
  differs = [key for key, value in fingerprints.items()
             if (sorted(stored.get(key)) if key == "signals" else
                 stored.get(key)) != (sorted(value) if key == "signals" else
                                      value)]
  if not differs and index["data_fingerprint"] != data_fingerprint(dataset):
    differs = ["data_fingerprint"]
  if differs:
    raise ConfigError(
        f"--out={out} already holds a teacher cache of another "
        f"{', '.join(d.replace('_', ' ') for d in differs)}; choose another "
        "folder or pass --overwrite to replace it.")
  logging.info("%s already holds this teacher cache; nothing to do.", out)
  return index


def cache_with_beam(teacher: Callable, dataset, out: str, top_k: int = 50,
                    signals: Sequence[str] = (LOGITS,), num_shards: int = 4,
                    pipeline_options: Optional[Sequence[str]] = None,
                    overwrite: bool = False) -> dict:
  """Computes a teacher cache with an Apache Beam pipeline.

  Args:
    teacher: A picklable callable that returns the teacher (a Keras model or
      a `TeacherSource`), called once in this process and once per Beam
      worker, e.g. `SavedTeacher(path)`.
    dataset: Batched `tf.data` of (feature dict, labels) in the order the
      cache should keep (not shuffled).
    out: The cache folder (new, or an unfinished one of the same data and
      teacher, which resumes).
    top_k: How many of the teacher's best items to keep per example.
    signals: "logits" (as its top-K), "hidden", "query_embedding".
    num_shards: How many output files, the unit of parallel work.
    pipeline_options: Beam's own command-line options, e.g.
      `["--runner=DataflowRunner", "--project=...", "--temp_location=..."]`;
      default `["--runner=DirectRunner"]`.
    overwrite: Replace a finished cache already in `out`.

  Returns:
    The cache's index (also written to `<out>/cache.json`).
  """
  if beam is None:
    raise ConfigError("the Beam cache needs apache-beam: pip install "
                      "'tfdistill[beam]'.")
  if num_shards < 1:
    raise ConfigError(f"--shards must be >= 1, got {num_shards}.")
  source = as_teacher_source(teacher())
  signals = cache.check_signals(source, signals, top_k)
  options = list(pipeline_options or ["--runner=DirectRunner"])
  try:
    pipeline = beam.Pipeline(options=PipelineOptions(options))
  except (SystemExit, ValueError) as error:
    raise ConfigError(f"--beam_options={' '.join(options)}: {error}") from error
  fingerprints = {"teacher_fingerprint": teacher_fingerprint(source),
                  "signals": list(signals), "top_k": top_k,
                  "num_shards": num_shards}
  # The teacher on the first batch: its records' spec, and a check that it
  # reads this data before anything is written.
  for features, labels in dataset.take(1):
    source.prepare()
    spec = cache.record_spec(cache.teacher_record(source, features, labels,
                                                  signals, top_k))
    break
  else:
    raise DataError("the data set to cache is empty.")
  if CACHE_MARKER.found_in(out) and not overwrite:
    return _finished(out, fingerprints, dataset)
  _prepare_out(out, overwrite)
  work = os.path.join(out, _WORK)
  tf.io.gfile.makedirs(work)
  progress_path = os.path.join(work, _PROGRESS)
  progress = read_json(progress_path) if os.path.isfile(progress_path) else {}
  if progress and any(progress.get(k) != v for k, v in fingerprints.items()):
    raise ConfigError(
        f"--out={out} holds the unfinished cache of another teacher or other "
        "settings (signals, top_k, shards); rerun with those, or choose "
        "another folder.")
  write_json(progress_path, dict(progress, **fingerprints))
  batches, data_digest = _write_inputs(dataset, work, num_shards)
  if progress.get("data_fingerprint", data_digest) != data_digest:
    raise ConfigError(f"--out={out} holds the unfinished cache of other data "
                      "(its fingerprint differs); choose another folder.")
  write_json(progress_path, dict(fingerprints, data_fingerprint=data_digest))
  inputs = {name: entry for name, entry in spec.items()
            if name in features or name == cache._LABEL}  # pylint: disable=protected-access
  work_fn = _TeacherShards(teacher, work, out, num_shards, inputs, signals,
                           top_k)
  logging.info("caching the teacher's %s over %d batches in %d shards with "
               "Beam (%s)", ", ".join(signals), batches, num_shards,
               " ".join(options))
  with pipeline:
    _ = (pipeline
         | "Shards" >> beam.Create(list(range(num_shards)))
         | "Spread" >> beam.Reshuffle()
         | "Teacher" >> beam.ParDo(work_fn))
  shards = []
  for s in range(num_shards):
    name = _shard_name("signals", s, num_shards)
    path = os.path.join(out, name)
    records = sum(1 for _ in tf.data.TFRecordDataset(path))
    expected = batches // num_shards + (s < batches % num_shards)
    if records != expected:
      raise DataError(f"{path}: {records} batches, expected {expected}; "
                      "rerun to redo it.")
    shards.append({"file": name, "records": records,
                   "bytes": tf.io.gfile.stat(path).length,
                   "sha256": _file_digest(path)})
  index = dict(cache.cache_meta(source, spec, signals, top_k),
               format=_FORMAT, batches=batches, shards=shards,
               data_fingerprint=data_digest,
               teacher_fingerprint=fingerprints["teacher_fingerprint"],
               pipeline_options=options)
  write_json(os.path.join(out, cache.SHARDED_INDEX), index)
  for s in range(num_shards):
    tf.io.gfile.remove(os.path.join(work, _shard_name("inputs", s,
                                                      num_shards)))
  tf.io.gfile.remove(progress_path)
  if not os.listdir(work):  # anything else in it is not tfdistill's
    os.rmdir(work)
  logging.info("wrote the teacher cache %s (%d shards)", out, num_shards)
  return index

"""Precompute a frozen teacher's signals once: distillation skips its forward.

    path = cache_teacher_signal(teacher, train_batches, "run/teacher_top50",
                                top_k=50)
    distiller = Distiller(student, cached_teacher(path))
    distiller.fit(cached_examples(path, batch_size=256, shuffle=True))

The cache holds the teacher's top-K ("logits") and, with `signals=`, its
hidden layer or query embedding per example, e.g. `signals=("hidden",)` for
a `HintDistillation` from the cache. It is a TFRecord file (one record per
batch of examples, every tensor serialized as is) and a JSON spec beside it.
`OnlineTeacher(model, top_k=K)` computes exactly the signals that are
cached, so both paths train the same.
"""

import json
import os
from typing import Optional, Sequence

from absl import logging
import tensorflow as tf
from tqdm import tqdm

from tfdistill.data.examples import finish_dataset
from tfdistill.distill.teachers import CachedTeacher
from tfdistill.distill.teachers import cached_feature
from tfdistill.distill.teachers import check_cacheable
from tfdistill.distill.teachers import as_teacher_source
from tfdistill.distill.teachers import TOP_K_SIGNAL
from tfdistill.distill.teachers import TOP_IDS
from tfdistill.distill.teachers import TOP_SCORES
from tfdistill.errors import ConfigError
from tfdistill.errors import DataError
from tfdistill.fileio import read_json
from tfdistill.models.signals import LOGITS

_LABEL = "__label__"
#: The index file of a sharded cache folder (`tfdistill cache`).
SHARDED_INDEX = "cache.json"


def _spec_path(path: str) -> str:
  return path + ".spec.json"


def _entry(value) -> dict:
  return {"dtype": value.dtype.name, "shape": value.shape.as_list()[1:]}


def check_signals(source, signals: Sequence[str], top_k: int) -> tuple:
  """The distinct `signals` to cache from teacher `source`, checked."""
  signals = tuple(dict.fromkeys(signals))
  check_cacheable(signals)
  if LOGITS in signals and top_k < 1:
    raise ConfigError(f"top_k must be >= 1, got {top_k}.")
  missing = [name for name in signals if name not in source.signal_names]
  if missing:
    raise ConfigError(f"the teacher has no {missing} signal to cache; it "
                      f"provides {', '.join(source.signal_names)}.")
  return signals


def teacher_record(source, features: dict, labels, signals: Sequence[str],
                   top_k: int) -> dict:
  """One batch's cache record: its features, labels and the teacher's
  `signals` (checked by `check_signals`; "logits" kept as the top-K)."""
  if isinstance(labels, dict):
    raise ConfigError("a teacher cache supports single labels only.")
  outputs = source(features, signals=signals)
  record = dict(features, **{_LABEL: labels})
  if LOGITS in signals:
    if TOP_K_SIGNAL in outputs:  # a top-K teacher: its own list
      ids, scores = outputs[TOP_K_SIGNAL]
      if ids.shape[-1] < top_k:
        raise ConfigError(f"the teacher gives its top-{ids.shape[-1]} "
                          f"only; cache top_k <= {ids.shape[-1]}.")
      scores, order = tf.math.top_k(scores, k=top_k)
      ids = tf.gather(ids, order, batch_dims=1)
    else:
      scores, ids = tf.math.top_k(outputs[LOGITS], k=top_k)
    record.update({TOP_IDS: ids, TOP_SCORES: scores})
  for name in signals:
    if name != LOGITS:
      record[cached_feature(name)] = tf.cast(outputs[name], tf.float32)
  return record


def serialize_record(record: dict) -> bytes:
  """A record of tensors as one `tf.train.Example` (each tensor serialized
  as is), the format of every cache file; the same bytes in every process
  (map entries sorted), so files and fingerprints can be compared."""
  return tf.train.Example(features=tf.train.Features(feature={
      name: tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[tf.io.serialize_tensor(value).numpy()]))
      for name, value in record.items()})).SerializeToString(
          deterministic=True)


def record_parser(tensors: dict):
  """Parses what `serialize_record` wrote, given its {name: _entry}."""
  keys = {name: tf.io.FixedLenFeature([], tf.string) for name in tensors}

  def parse(serialized):
    raw = tf.io.parse_single_example(serialized, keys)
    return {name: tf.ensure_shape(
        tf.io.parse_tensor(raw[name], tf.as_dtype(entry["dtype"])),
        [None] + entry["shape"]) for name, entry in tensors.items()}
  return parse


def record_spec(record: dict) -> dict:
  return {name: _entry(value) for name, value in record.items()}


def cache_meta(source, spec: dict, signals: Sequence[str], top_k: int) -> dict:
  """What a cache's spec says besides its tensors."""
  card = source.card()
  return {"tensors": spec, "top_k": top_k if LOGITS in signals else 0,
          "representations": {name: spec[cached_feature(name)]["shape"][-1]
                              for name in signals if name != LOGITS},
          "num_items": card.get("num_items"),
          "vocabulary_fingerprint": card.get("vocabulary_fingerprint", "")}


def cache_teacher_signal(teacher, dataset, path: str, top_k: int = 50,
                         overwrite: bool = False,
                         signals: Sequence[str] = (LOGITS,)) -> str:
  """Runs the teacher once over `dataset` and writes features + signals.

  In one process; `tfdistill.distill.beam_cache.cache_with_beam` writes the
  same records as sharded files with an Apache Beam pipeline.

  Args:
    teacher: A frozen teacher model or any teacher source (`OnlineTeacher`,
      a user's model through `tfdistill.distill.external`, ...).
    dataset: Batched `tf.data` of (feature dict, labels), not shuffled if the
      cache should follow the data order.
    path: Output TFRecord path; `path + ".spec.json"` describes it.
    top_k: How many of the teacher's best items to keep per example (when
      "logits" are cached).
    overwrite: Replace an existing cache.
    signals: The teacher's signals to cache: "logits" (as its top-K),
      "hidden", "query_embedding".

  Returns:
    `path`.
  """
  source = as_teacher_source(teacher)
  signals = check_signals(source, signals, top_k)
  if os.path.exists(path) and not overwrite:
    raise ConfigError(f"{path} already exists; pass overwrite=True.")
  source.prepare()
  spec = None
  partial = path + ".partial"
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with tf.io.TFRecordWriter(partial) as writer:
    for features, labels in tqdm(dataset, desc="caching teacher signals",
                                 unit="batch", leave=False):
      record = teacher_record(source, features, labels, signals, top_k)
      spec = spec or record_spec(record)
      writer.write(serialize_record(record))
  if spec is None:
    os.remove(partial)
    raise DataError("the dataset given to cache_teacher_signal is empty.")
  with open(_spec_path(partial), "w") as f:
    json.dump(cache_meta(source, spec, signals, top_k), f, indent=2)
  os.replace(_spec_path(partial), _spec_path(path))
  os.replace(partial, path)
  logging.info("cached the teacher's %s to %s", ", ".join(signals), path)
  return path


def _read_spec(path: str) -> dict:
  """The spec of the cache at `path`: a TFRecord file with its .spec.json,
  or a folder of shards with its index (`SHARDED_INDEX`)."""
  if os.path.isdir(path):
    return read_sharded_index(path)
  if not os.path.isfile(path) or not os.path.isfile(_spec_path(path)):
    raise DataError(f"{path}: no teacher cache here (expected the TFRecord "
                    "and its .spec.json, or a folder with "
                    f"{SHARDED_INDEX}); create it with cache_teacher_signal "
                    "or `tfdistill cache`.")
  return read_json(_spec_path(path))


def read_sharded_index(directory: str) -> dict:
  """The index of a sharded cache, its shards checked against it."""
  index_path = os.path.join(directory, SHARDED_INDEX)
  if not os.path.isfile(index_path):
    raise DataError(f"{directory}: no teacher cache here (no {SHARDED_INDEX}; "
                    "an unfinished `tfdistill cache` resumes when rerun with "
                    "the same flags).")
  index = read_json(index_path)
  for shard in index["shards"]:
    file = os.path.join(directory, shard["file"])
    size = os.path.getsize(file) if os.path.isfile(file) else None
    if size != shard["bytes"]:
      raise DataError(f"{file}: {'missing' if size is None else f'{size} bytes'}"
                      f", but {SHARDED_INDEX} lists {shard['bytes']} bytes; "
                      "the cache was changed after it was written. Rerun "
                      "`tfdistill cache --overwrite`.")
  return index


def cached_teacher(path: str) -> CachedTeacher:
  """The `CachedTeacher` that reads the cache at `path` (a file written by
  `cache_teacher_signal` or a folder written by `tfdistill cache`)."""
  spec = _read_spec(path)
  return CachedTeacher(spec["num_items"], spec["top_k"],
                       spec["vocabulary_fingerprint"],
                       spec.get("representations"))


def _record_files(path: str, spec: dict, input_context=None):
  """The cache's records in the order they were written; with
  `input_context` (a `tf.distribute.InputContext`), this input pipeline's
  share: whole shards when there are enough of them, else every n-th
  record."""
  if not os.path.isdir(path):
    records = tf.data.TFRecordDataset(path)
    if input_context is not None:
      records = records.shard(input_context.num_input_pipelines,
                              input_context.input_pipeline_id)
    return records
  files = [os.path.join(path, s["file"]) for s in spec["shards"]]
  pipelines = input_context.num_input_pipelines if input_context else 1
  by_file = pipelines > 1 and len(files) >= pipelines
  if by_file:
    files = files[input_context.input_pipeline_id::pipelines]
  # Batch i is the (i // n)-th record of shard i % n: reading the n shards
  # in turn, one record each, restores the order.
  records = tf.data.Dataset.from_tensor_slices(files).interleave(
      tf.data.TFRecordDataset, cycle_length=len(files), block_length=1)
  if pipelines > 1 and not by_file:
    records = records.shard(pipelines, input_context.input_pipeline_id)
  return records


def cached_examples(path: str, batch_size: int = 0, shuffle: bool = False,
                    seed: int = 0, repeat: bool = False,
                    shuffle_buffer: Optional[int] = None,
                    input_context=None):
  """Reads a teacher cache as (features + cached signals, labels) examples.

  Args:
    path: A cache file (`cache_teacher_signal`) or folder (`tfdistill cache`).
    batch_size, shuffle, seed, repeat, shuffle_buffer: As
      `tfdistill.data.examples.finish_dataset`.
    input_context: A `tf.distribute.InputContext` (e.g. in
      `strategy.distribute_datasets_from_function`): each input pipeline
      reads its own shards.
  """
  spec = _read_spec(path)
  parse = record_parser(spec["tensors"])

  def examples(serialized):
    out = parse(serialized)
    label = out.pop(_LABEL)
    return tf.data.Dataset.from_tensor_slices((out, label))

  return finish_dataset(
      _record_files(path, spec, input_context).flat_map(examples),
      batch_size, shuffle, seed, repeat, shuffle_buffer or 100_000)

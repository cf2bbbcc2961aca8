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
from tfdistill.models.signals import LOGITS

_LABEL = "__label__"


def _spec_path(path: str) -> str:
  return path + ".spec.json"


def _entry(value) -> dict:
  return {"dtype": value.dtype.name, "shape": value.shape.as_list()[1:]}


def cache_teacher_signal(teacher, dataset, path: str, top_k: int = 50,
                         overwrite: bool = False,
                         signals: Sequence[str] = (LOGITS,)) -> str:
  """Runs the teacher once over `dataset` and writes features + signals.

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
  signals = tuple(dict.fromkeys(signals))
  check_cacheable(signals)
  with_logits = LOGITS in signals
  if with_logits and top_k < 1:
    raise ConfigError(f"top_k must be >= 1, got {top_k}.")
  if os.path.exists(path) and not overwrite:
    raise ConfigError(f"{path} already exists; pass overwrite=True.")
  source = as_teacher_source(teacher)
  missing = [name for name in signals if name not in source.signal_names]
  if missing:
    raise ConfigError(f"the teacher has no {missing} signal to cache; it "
                      f"provides {', '.join(source.signal_names)}.")
  representations = [name for name in signals if name != LOGITS]
  source.prepare()
  spec = None
  partial = path + ".partial"
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with tf.io.TFRecordWriter(partial) as writer:
    for features, labels in tqdm(dataset, desc="caching teacher signals",
                                 unit="batch", leave=False):
      if isinstance(labels, dict):
        raise ConfigError("cache_teacher_signal supports single labels only.")
      outputs = source(features, signals=signals)
      record = dict(features, **{_LABEL: labels})
      if with_logits:
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
      for name in representations:
        record[cached_feature(name)] = tf.cast(outputs[name], tf.float32)
      if spec is None:
        spec = {name: _entry(value) for name, value in record.items()}
      example = tf.train.Example(features=tf.train.Features(feature={
          name: tf.train.Feature(bytes_list=tf.train.BytesList(
              value=[tf.io.serialize_tensor(value).numpy()]))
          for name, value in record.items()}))
      writer.write(example.SerializeToString())
  if spec is None:
    os.remove(partial)
    raise DataError("the dataset given to cache_teacher_signal is empty.")
  card = source.card()
  meta = {"tensors": spec, "top_k": top_k if with_logits else 0,
          "representations": {name: spec[cached_feature(name)]["shape"][-1]
                              for name in representations},
          "num_items": card.get("num_items"),
          "vocabulary_fingerprint": card.get("vocabulary_fingerprint", "")}
  with open(_spec_path(partial), "w") as f:
    json.dump(meta, f, indent=2)
  os.replace(_spec_path(partial), _spec_path(path))
  os.replace(partial, path)
  logging.info("cached the teacher's %s to %s", ", ".join(signals), path)
  return path


def _read_spec(path: str) -> dict:
  if not os.path.isfile(path) or not os.path.isfile(_spec_path(path)):
    raise DataError(f"{path}: no teacher cache here (expected the TFRecord "
                    "and its .spec.json); create it with "
                    "cache_teacher_signal.")
  with open(_spec_path(path)) as f:
    return json.load(f)


def cached_teacher(path: str) -> CachedTeacher:
  """The `CachedTeacher` that reads the cache at `path`."""
  spec = _read_spec(path)
  return CachedTeacher(spec["num_items"], spec["top_k"],
                       spec["vocabulary_fingerprint"],
                       spec.get("representations"))


def cached_examples(path: str, batch_size: int = 0, shuffle: bool = False,
                    seed: int = 0, repeat: bool = False,
                    shuffle_buffer: Optional[int] = None):
  """Reads a teacher cache as (features + cached signals, labels) examples."""
  tensors = _read_spec(path)["tensors"]
  keys = {name: tf.io.FixedLenFeature([], tf.string) for name in tensors}

  def parse(record):
    raw = tf.io.parse_single_example(record, keys)
    out = {}
    for name, entry in tensors.items():
      value = tf.io.parse_tensor(raw[name], tf.as_dtype(entry["dtype"]))
      out[name] = tf.ensure_shape(value, [None] + entry["shape"])
    label = out.pop(_LABEL)
    return tf.data.Dataset.from_tensor_slices((out, label))

  return finish_dataset(tf.data.TFRecordDataset(path).flat_map(parse),
                        batch_size, shuffle, seed, repeat,
                        shuffle_buffer or 100_000)

"""The teacher cache as an Apache Beam job (DirectRunner), against the
in-process cache."""

import json
import os

import numpy as np
import pytest

import tfdistill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import tensorflow as tf

from cli_runner import assert_user_error
from cli_runner import last_json
from cli_runner import run_cli
from tfdistill.data import examples
from tfdistill.data.prepare import prepare
from tfdistill.data.sources import load_dataset
from tfdistill.distill import beam_cache
from tfdistill.distill.beam_cache import cache_with_beam
from tfdistill.distill.beam_cache import SavedTeacher
from tfdistill.distill.cache import cache_teacher_signal
from tfdistill.distill.cache import cached_examples
from tfdistill.distill.cache import cached_teacher
from tfdistill.errors import ConfigError
from tfdistill.errors import DataError
from tfdistill.models.io import load_model
from tfdistill.models.io import save_model
from tfdistill.pipeline.run import config_of_model


@pytest.fixture(scope="module")
def saved_teacher(tiny_teacher, tmp_path_factory):
  return save_model(tiny_teacher, str(tmp_path_factory.mktemp("beam") /
                                      "teacher"))


def _records(path, **kwargs):
  return [(dict((k, v.numpy()) for k, v in features.items()), labels.numpy())
          for features, labels in cached_examples(path, **kwargs)]


def _assert_same_records(a, b):
  assert len(a) == len(b) and a
  for (features_a, labels_a), (features_b, labels_b) in zip(a, b):
    assert sorted(features_a) == sorted(features_b)
    for name in features_a:
      np.testing.assert_array_equal(features_a[name], features_b[name])
    np.testing.assert_array_equal(labels_a, labels_b)


def test_the_beam_cache_equals_the_in_process_cache(
    tiny_teacher, saved_teacher, tiny_prepared, tmp_path):
  data = examples.sequence_examples(tiny_prepared, "train", 6, batch_size=32)
  signals = ("logits", "hidden")
  in_process = cache_teacher_signal(tiny_teacher, data,
                                    str(tmp_path / "one.tfrecord"), top_k=5,
                                    signals=signals)
  out = str(tmp_path / "beam")
  index = cache_with_beam(SavedTeacher(saved_teacher), data, out, top_k=5,
                          signals=signals, num_shards=3)
  assert sorted(os.listdir(out)) == ["cache.json"] + [
      f"signals-0000{s}-of-00003.tfrecord" for s in range(3)]
  assert index["batches"] == sum(s["records"] for s in index["shards"])
  # Record for record, in the data's order.
  _assert_same_records(_records(in_process), _records(out))
  teacher = cached_teacher(out)
  assert teacher.signal_names == signals and teacher.top_k == 5
  assert teacher.card() == cached_teacher(in_process).card()
  # Per-worker input pipelines read disjoint shares that cover everything.
  whole = _records(out)
  shares = [_records(out, input_context=tf.distribute.InputContext(
      num_input_pipelines=n, input_pipeline_id=i)) for n in (2, 4)
            for i in range(n)]
  assert sum(len(s) for s in shares[:2]) == len(whole)
  assert sum(len(s) for s in shares[2:]) == len(whole)
  # A rerun on the same teacher and data has nothing to do; other settings
  # are refused with the finished cache untouched.
  before = {name: os.path.getmtime(os.path.join(out, name))
            for name in os.listdir(out)}
  assert cache_with_beam(SavedTeacher(saved_teacher), data, out, top_k=5,
                         signals=signals, num_shards=3) == index
  with pytest.raises(ConfigError, match="of another top k"):
    cache_with_beam(SavedTeacher(saved_teacher), data, out, top_k=4,
                    signals=signals, num_shards=3)
  other = examples.sequence_examples(tiny_prepared, "validation", 6,
                                     batch_size=32)
  with pytest.raises(ConfigError, match="of another data fingerprint"):
    cache_with_beam(SavedTeacher(saved_teacher), other, out, top_k=5,
                    signals=signals, num_shards=3)
  assert before == {name: os.path.getmtime(os.path.join(out, name))
                    for name in os.listdir(out)}
  # A changed shard is noticed when the cache is read.
  with open(os.path.join(out, index["shards"][1]["file"]), "ab") as f:
    f.write(b"x")
  with pytest.raises(DataError, match="changed after it was written"):
    cached_teacher(out)


@pytest.mark.slow
def test_an_interrupted_beam_cache_resumes(saved_teacher, tiny_prepared,
                                           tmp_path, monkeypatch):
  data = examples.sequence_examples(tiny_prepared, "validation", 6,
                                    batch_size=16)
  out = str(tmp_path / "cache")
  process = beam_cache._TeacherShards.process  # pylint: disable=protected-access

  def fail_on_shard_one(self, shard):
    if shard == 1:
      raise OSError(28, "No space left on device")
    yield from process(self, shard)
  monkeypatch.setattr(beam_cache._TeacherShards, "process", fail_on_shard_one)  # pylint: disable=protected-access
  with pytest.raises(Exception, match="No space left"):
    cache_with_beam(SavedTeacher(saved_teacher), data, out, top_k=3,
                    num_shards=2)
  assert not os.path.exists(os.path.join(out, "cache.json"))
  with pytest.raises(DataError, match="resumes when rerun"):
    cached_teacher(out)
  monkeypatch.undo()
  index = cache_with_beam(SavedTeacher(saved_teacher), data, out, top_k=3,
                          num_shards=2)
  assert sorted(os.listdir(out)) == ["cache.json",
                                     "signals-00000-of-00002.tfrecord",
                                     "signals-00001-of-00002.tfrecord"]
  fresh = str(tmp_path / "fresh")
  assert cache_with_beam(SavedTeacher(saved_teacher), data, fresh, top_k=3,
                         num_shards=2)["shards"] == index["shards"]


@pytest.mark.slow
def test_the_beam_cache_never_writes_into_a_folder_of_the_users(
    saved_teacher, tiny_prepared, tmp_path):
  data = examples.sequence_examples(tiny_prepared, "validation", 6,
                                    batch_size=16)
  mine = tmp_path / "mine"
  mine.mkdir()
  (mine / "notes.txt").write_text("keep")
  for overwrite in (False, True):
    with pytest.raises(ConfigError, match="did not write"):
      cache_with_beam(SavedTeacher(saved_teacher), data, str(mine), top_k=3,
                      overwrite=overwrite)
  assert os.listdir(mine) == ["notes.txt"]
  # Replacing a finished cache removes only its own shard files, whatever
  # its index says.
  victim = tmp_path / "victim.tfrecord"
  victim.write_text("keep")
  done = tmp_path / "done"
  cache_with_beam(SavedTeacher(saved_teacher), data, str(done), top_k=3,
                  num_shards=1)
  index = json.loads((done / "cache.json").read_text())
  index["shards"].append({"file": "../victim.tfrecord", "bytes": 4})
  (done / "cache.json").write_text(json.dumps(index))
  cache_with_beam(SavedTeacher(saved_teacher), data, str(done), top_k=3,
                  num_shards=1, overwrite=True)
  assert victim.read_text() == "keep"
  assert cached_teacher(str(done)).top_k == 3
  with pytest.raises(ConfigError, match="Beam does not|Unexpected pipeline"):
    cache_with_beam(SavedTeacher(saved_teacher), data, str(tmp_path / "x"),
                    pipeline_options=["--runner=NoSuchRunner"])
  with pytest.raises(ConfigError, match="--shards must be >= 1"):
    cache_with_beam(SavedTeacher(saved_teacher), data, str(tmp_path / "x"),
                    num_shards=0)
  assert not os.path.exists(tmp_path / "x")


@pytest.mark.slow
def test_tfdistill_cache_command(tiny_run, tmp_path):
  run_dir, _, _ = tiny_run
  teacher = os.path.join(run_dir, "teacher", "model")
  out = tmp_path / "cache"
  printed = last_json(run_cli("cache", f"--teacher={teacher}", f"--out={out}",
                              "--shards=2", "--top_k=5"))
  index = json.loads((out / "cache.json").read_text())
  assert printed["batches"] == index["batches"] and printed["shards"] == 2
  assert index["pipeline_options"] == ["--runner=DirectRunner"]
  # The same as the in-process cache of the run's training examples.
  config = config_of_model(teacher)
  data = examples.sequence_examples(
      prepare(load_dataset(config.source), config.prepare), "train",
      config.context_length, batch_size=config.batch_size)
  in_process = cache_teacher_signal(load_model(teacher), data,
                                    str(tmp_path / "one"), top_k=5)
  _assert_same_records(_records(in_process), _records(str(out)))
  # Bad input: one line, exit 2, nothing written (the other cases are the
  # library's, tested above).
  assert_user_error(run_cli("cache", f"--teacher={teacher}",
                            f"--out={tmp_path / 'a'}",
                            "--beam_options=--runner=NoSuchRunner"),
                    "--beam_options")
  assert not os.path.exists(tmp_path / "a")

"""The user's own TFRS models as teachers: in memory and as SavedModels.

Each model of the TFRS tutorials (tfrs_tutorials.py) is trained for a few
steps on the tiny synthetic data, then distilled into a tfdistill student.
The distilled student must agree with its teacher more than the same
student trained alone: the teacher's signals reached the losses.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from cli_runner import assert_user_error
from cli_runner import last_json
from cli_runner import run_cli
from conftest import CONTEXT_LENGTH
from conftest import make_student
import tfrs_tutorials as tutorials
from tfdistill.data import examples
from tfdistill.distill import Distiller
from tfdistill.distill import IndexTeacher
from tfdistill.distill import PointwiseScoreDistillation
from tfdistill.distill import RatingTeacher
from tfdistill.distill import SavedModelTeacher
from tfdistill.distill import SoftTargetKL
from tfdistill.distill import TaskTeachers
from tfdistill.distill import TowerTeacher
from tfdistill.distill.cache import cache_teacher_signal
from tfdistill.distill.cache import cached_examples
from tfdistill.distill.cache import cached_teacher
from tfdistill.errors import ConfigError
from tfdistill.errors import ModelError
from tfdistill.evaluation.agreement import top_k_overlap
from tfdistill.evaluation.evaluate import teacher_score_function
from tfdistill.models.students import build_multitask_student
from tfdistill.models.students import build_ranking_student
from tfdistill.models.students import StudentConfig

L = CONTEXT_LENGTH


@pytest.fixture(scope="module")
def gru(tiny_prepared):
  """Tutorial sequential retrieval (GRU over previous movie ids)."""
  return tutorials.train(tutorials.SequentialRetrieval(
      tutorials.ids(tiny_prepared.items)), tutorials.sequences(
          tiny_prepared, L), epochs=5)


@pytest.fixture(scope="module")
def gru_saved(gru, tiny_prepared, tmp_path_factory):
  """Its serving export: a BruteForce index saved with tf.saved_model."""
  index = tutorials.brute_force(gru.query_model, gru.candidate_model,
                                tutorials.ids(tiny_prepared.items))
  index(tf.constant([[""] * L]))
  path = str(tmp_path_factory.mktemp("saved") / "gru_index")
  tf.saved_model.save(index, path)
  return path


def _distil_and_compare(prepared, teacher, with_users=False, alpha=0.2,
                        epochs=6):
  """(top-10 agreement with the teacher of the distilled student, of the
  same student trained alone), on the test contexts."""
  train = examples.sequence_examples(prepared, "train", L, batch_size=64,
                                     shuffle=True, seed=0,
                                     with_users=with_users)
  agreement = []
  for distil in (True, False):
    tf_keras.utils.set_random_seed(3)
    student = make_student(prepared, embedding_dim=16, hidden_dim=16)
    if distil:
      trainer = Distiller(student=student, teacher=teacher)
      trainer.compile(tf_keras.optimizers.Adam(1e-2), alpha=alpha,
                      distillation_loss=SoftTargetKL())
    else:
      trainer = student
      trainer.compile(tf_keras.optimizers.Adam(1e-2),
                      loss=tf_keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
    trainer.fit(train, epochs=epochs, verbose=0)
    test = examples.evaluation_set(prepared, "test", L)
    teacher_scores = teacher_score_function(teacher)(test)
    agreement.append(top_k_overlap(
        student.predict_on_batch({"context": test.contexts}),
        np.where(teacher_scores > -1e8, teacher_scores, -1e9), k=10))
  return agreement


def test_the_teachers_best_item_is_the_same_item_key_in_every_form(
    gru, gru_saved, tiny_prepared):
  """No off-by-one between the teacher's numbering and the student's: the
  teacher's own best movie id is the student's item of the same key."""
  test = examples.evaluation_set(tiny_prepared, "test", L)
  contexts = test.contexts[:8]
  movie_ids = tutorials.ids(tiny_prepared.items)
  # What the user's model says, in its own terms.
  queries = gru.query_model(tutorials.keys(tiny_prepared.items, contexts))
  scores = queries @ tf.transpose(gru.candidate_model(tf.constant(movie_ids)))
  best_keys = np.asarray(movie_ids)[np.argmax(scores, axis=1)]
  features = {"context": tf.constant(contexts)}
  towers = TowerTeacher.from_tfrs_model(gru, tiny_prepared.items,
                                        context_length=L)
  index = IndexTeacher(tutorials.brute_force(
      gru.query_model, gru.candidate_model, movie_ids), tiny_prepared.items,
                       context_length=L)
  saved = SavedModelTeacher(gru_saved, tiny_prepared.items, context_length=L)
  tokens = np.asarray(tiny_prepared.items.tokens)
  dense = towers(features)["logits"].numpy()
  assert list(tokens[np.argmax(dense, 1)]) == list(best_keys)
  for source in (index, saved):
    ids, _ = source(features)["logits_top_k"]
    assert list(tokens[ids.numpy()[:, 0]]) == list(best_keys)
  assert saved.describe()["vocabulary"]["unknown_to_teacher"] == 0
  assert towers.card()["vocabulary_fingerprint"] == \
      tiny_prepared.items.fingerprint


def test_a_sequential_gru_teacher_in_memory_and_saved(gru, gru_saved,
                                                      tiny_prepared):
  for teacher in (TowerTeacher.from_tfrs_model(gru, tiny_prepared.items,
                                               context_length=L),
                  SavedModelTeacher(gru_saved, tiny_prepared.items,
                                    context_length=L)):
    distilled, alone = _distil_and_compare(tiny_prepared, teacher)
    assert distilled > alone + 0.05, (type(teacher).__name__, distilled,
                                      alone)


def test_a_basic_retrieval_teacher_on_user_ids_and_movie_titles(
    tiny_prepared, tmp_path):
  titles = list(tiny_prepared.item_titles[2:])
  model = tutorials.train(tutorials.BasicRetrieval(
      tutorials.ids(tiny_prepared.users), titles),
                          tutorials.pairs(tiny_prepared,
                                          ("user_id", "movie_title")),
                          epochs=5)
  keys = dict(user_keys=tiny_prepared.users.tokens,
              item_keys=tiny_prepared.item_titles)  # known by title
  in_memory = TowerTeacher.from_tfrs_model(model, tiny_prepared.items,
                                           **keys)
  assert list(in_memory.describe()["inputs"].values()) == ["user"]
  assert in_memory.describe()["vocabulary"]["unknown_to_teacher"] == 0
  index = tutorials.brute_force(model.user_model, model.movie_model, titles)
  index(tf.constant(["1"]))
  tf.saved_model.save(index, str(tmp_path / "basic"))
  saved = SavedModelTeacher(str(tmp_path / "basic"), tiny_prepared.items,
                            **keys)
  for teacher in (in_memory, saved):
    distilled, alone = _distil_and_compare(tiny_prepared, teacher,
                                           with_users=True)
    assert distilled > alone, (type(teacher).__name__, distilled, alone)


def _rating_data(prepared, split):
  return examples.pair_examples(prepared, split, L, batch_size=64,
                                shuffle=split == "train", label="rating")


def _rating_gap(prepared, teacher) -> tuple:
  """(mean squared gap to the teacher's ratings of the distilled ranking
  student, of the same student trained alone), on the training pairs: the
  one learnt the teacher's ratings there, the other the true ones."""
  gaps = []
  test = examples.pair_arrays(prepared, "train", L)
  features = {"user": tf.constant(test["user"]),
              "item": tf.constant(test["item"])}
  wanted = teacher(features, signals=("rating",))["rating"].numpy()[:, 0]
  for distil in (True, False):
    tf_keras.utils.set_random_seed(3)
    student = build_ranking_student(prepared.num_users, prepared.num_items,
                                    embedding_dim=16, hidden_dim=16)
    if distil:
      trainer = Distiller(student=student, teacher=teacher)
      trainer.compile(tf_keras.optimizers.Adam(1e-2), alpha=0.1,
                      student_loss=tf_keras.losses.MeanSquaredError(),
                      distillation_loss=PointwiseScoreDistillation())
    else:
      trainer = student
      trainer.compile(tf_keras.optimizers.Adam(1e-2),
                      loss=tf_keras.losses.MeanSquaredError())
    trainer.fit(_rating_data(prepared, "train"), epochs=15, verbose=0)
    predicted = student.predict_on_batch(features)[:, 0]
    gaps.append(float(np.mean((predicted - wanted) ** 2)))
  return gaps


def test_a_dcn_ranking_teacher_in_memory_and_saved(tiny_prepared, tmp_path):
  dcn = tutorials.train(tutorials.DCN({
      "user_id": tutorials.ids(tiny_prepared.users),
      "movie_id": tutorials.ids(tiny_prepared.items)}),
                        tutorials.pairs(tiny_prepared), epochs=4)
  tf.saved_model.save(dcn, str(tmp_path / "dcn"))
  keys = dict(user_keys=tiny_prepared.users.tokens)
  in_memory = RatingTeacher(dcn, tiny_prepared.items, **keys)
  assert in_memory.describe()["inputs"] == {"movie_id": "item",
                                            "user_id": "user"}
  saved = SavedModelTeacher(str(tmp_path / "dcn"), tiny_prepared.items,
                            **keys)
  assert isinstance(saved, RatingTeacher)
  pairs = examples.pair_arrays(tiny_prepared, "test", L)
  features = {"user": tf.constant(pairs["user"][:5]),
              "item": tf.constant(pairs["item"][:5])}
  np.testing.assert_allclose(saved(features)["rating"],
                             in_memory(features)["rating"], rtol=1e-5)
  for teacher in (in_memory, saved):
    distilled, alone = _rating_gap(tiny_prepared, teacher)
    assert distilled < alone / 4, (type(teacher).__name__, distilled, alone)


@pytest.mark.parametrize("form", ["in_memory", "saved"])
def test_a_multitask_teacher_teaches_both_heads(tiny_prepared, tmp_path,
                                                form):
  model = tutorials.train(tutorials.MultiTask(
      tutorials.ids(tiny_prepared.users), tutorials.ids(tiny_prepared.items)),
                          tutorials.pairs(tiny_prepared), epochs=3)
  keys = dict(user_keys=tiny_prepared.users.tokens)
  if form == "in_memory":
    teacher = TaskTeachers({
        "logits": TowerTeacher.from_tfrs_model(model, tiny_prepared.items,
                                               **keys),
        "rating": RatingTeacher(model, tiny_prepared.items, output=2,
                                **keys)})
  else:  # its serving index and the model itself, saved
    index = tutorials.brute_force(model.user_model, model.movie_model,
                                  tutorials.ids(tiny_prepared.items))
    index(tf.constant(["1"]))
    tf.saved_model.save(index, str(tmp_path / "index"))
    model({"user_id": tf.constant(["1"]), "movie_id": tf.constant(["1"])})
    tf.saved_model.save(model, str(tmp_path / "model"))
    teacher = TaskTeachers({
        "logits": SavedModelTeacher(str(tmp_path / "index"),
                                    tiny_prepared.items, **keys),
        "rating": SavedModelTeacher(str(tmp_path / "model"),
                                    tiny_prepared.items, output="output_3",
                                    **keys)})
  arrays = examples.sequence_arrays(tiny_prepared, "train", L)
  data = tf.data.Dataset.from_tensor_slices((
      {"context": arrays.contexts, "item": arrays.targets,
       "user": arrays.users},
      {"logits": arrays.targets, "rating": arrays.ratings})).batch(64)
  tf_keras.utils.set_random_seed(7)
  student = build_multitask_student(
      tiny_prepared.num_items, L, StudentConfig(embedding_dim=8,
                                                hidden_dim=8),
      tiny_prepared.items.fingerprint)
  distiller = Distiller(student=student, teacher=teacher)
  distiller.compile(
      optimizer=tf_keras.optimizers.Adam(1e-2), alpha=0.5,
      student_loss={"logits": tf_keras.losses.SparseCategoricalCrossentropy(
          from_logits=True), "rating": tf_keras.losses.MeanSquaredError()},
      distillation_loss=[SoftTargetKL(), PointwiseScoreDistillation()])
  history = distiller.fit(data, epochs=3, verbose=0).history
  assert history["pointwise_score_distillation"][-1] < history[
      "pointwise_score_distillation"][0]
  assert history["soft_target_kl"][-1] < history["soft_target_kl"][0]


def test_a_saved_teacher_is_cached_once_and_trains_the_same(
    gru_saved, tiny_prepared, tmp_path):
  teacher = SavedModelTeacher(gru_saved, tiny_prepared.items,
                              context_length=L)
  batches = examples.sequence_examples(tiny_prepared, "train", L,
                                       batch_size=64)
  path = cache_teacher_signal(teacher, batches, str(tmp_path / "cache"),
                              top_k=10)
  cached = next(iter(cached_examples(path, batch_size=64)))[0]
  online_ids, _ = teacher({"context": cached["context"]})["logits_top_k"]
  np.testing.assert_array_equal(cached["teacher_top_ids"],
                                online_ids.numpy()[:, :10])
  assert cached_teacher(path).card()["vocabulary_fingerprint"] == \
      tiny_prepared.items.fingerprint


def test_bad_teachers_are_one_clear_error(gru, gru_saved, tiny_prepared,
                                          tmp_path):
  with pytest.raises(ModelError, match="not a SavedModel"):
    SavedModelTeacher(str(tmp_path), tiny_prepared.items)
  with pytest.raises(ModelError, match="no signature 'rank'.*serving_default"):
    SavedModelTeacher(gru_saved, tiny_prepared.items, signature="rank")
  with pytest.raises(ConfigError, match="no query tower.*query_model"):
    TowerTeacher.from_tfrs_model(gru, tiny_prepared.items,
                                 query_attribute="encoder")
  # Item keys the teacher does not know at all.
  strangers = ["x" + t for t in tiny_prepared.items.tokens]
  with pytest.raises(ConfigError, match="no item of the student"):
    TowerTeacher.from_tfrs_model(gru, tiny_prepared.items,
                                 item_keys=strangers, context_length=L)
  # Some unknown: masked, or refused when strict.
  partial = list(tiny_prepared.items.tokens)
  partial[5] = "unknown-5"
  teacher = TowerTeacher.from_tfrs_model(gru, tiny_prepared.items,
                                         item_keys=partial, context_length=L)
  assert teacher.describe()["vocabulary"]["unknown_to_teacher"] == 1
  logits = teacher({"context": tf.zeros([2, L], tf.int32)})["logits"]
  assert (logits.numpy()[:, 5] < -1e8).all()
  with pytest.raises(ConfigError, match="strict_vocabulary"):
    TowerTeacher.from_tfrs_model(gru, tiny_prepared.items, item_keys=partial,
                                 context_length=L, strict_vocabulary=True)
  # An input the data cannot feed, both sides named.
  with pytest.raises(ConfigError, match="cannot feed.*string_lookup_input.*"
                     "item"):
    TowerTeacher(gru.query_model, gru.candidate_model, tiny_prepared.items)


@pytest.mark.slow
def test_cli_pipeline_distils_from_a_saved_teacher(gru_saved, tmp_path):
  out = tmp_path / "run"
  result = run_cli("pipeline", "--preset=tiny", "--seed=7", f"--out={out}",
                   f"--teacher={gru_saved}", "--teacher_inputs=context=input_1",
                   "--synthetic_users=120", "--synthetic_items=80",
                   "--synthetic_interactions_per_user=12",
                   "--min_user_interactions=5", "--context_length=6")
  metrics = last_json(result)
  assert metrics["student_kd"]["ndcg@10"] > 0
  teacher = json.loads((out / "teacher" / "metrics.json").read_text())
  assert teacher["origin"]["origin"].startswith("SavedModel")
  assert teacher["origin"]["vocabulary"]["unknown_to_teacher"] == 0
  assert teacher["ndcg@10"] == metrics["teacher"]["ndcg@10"] > 0
  assert not (out / "teacher" / "model").exists()  # nothing trained
  report = (out / "report" / "report.md").read_text()
  assert "The teacher is the user's own: SavedModel" in report
  assert_user_error(run_cli("distill", "--preset=tiny", f"--out={tmp_path}/x",
                            f"--teacher={tmp_path}/missing"), "--teacher=")
  assert not os.path.exists(tmp_path / "x")


def test_a_streaming_index_gives_the_brute_force_answer(gru, tiny_prepared):
  import tensorflow_recommenders as tfrs  # pylint: disable=import-outside-toplevel
  movie_ids = tutorials.ids(tiny_prepared.items)
  streaming = tfrs.layers.factorized_top_k.Streaming(gru.query_model, k=10)
  movies = tf.data.Dataset.from_tensor_slices(movie_ids).batch(16)
  streaming.index_from_dataset(movies.map(
      lambda m: (m, gru.candidate_model(m))))
  features = {"context": tf.constant(examples.evaluation_set(
      tiny_prepared, "test", L).contexts[:6])}
  exact = IndexTeacher(tutorials.brute_force(
      gru.query_model, gru.candidate_model, movie_ids), tiny_prepared.items,
                       context_length=L)(features)["logits_top_k"][0]
  streamed = IndexTeacher(streaming, tiny_prepared.items, context_length=L)
  assert streamed.describe()["vocabulary"]["teacher_items"] == len(movie_ids)
  np.testing.assert_array_equal(streamed(features)["logits_top_k"][0][:, :5],
                                exact[:, :5])


class _EmbeddingExport(tf.Module):
  """A SavedModel with a query signature and a candidate signature."""

  def __init__(self, query_model, candidate_model):
    super().__init__()
    self.query_model, self.candidate_model = query_model, candidate_model

  @tf.function(input_signature=[tf.TensorSpec([None, L], tf.string,
                                              name="history")])
  def query(self, history):
    return {"embedding": self.query_model(history)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string,
                                              name="movie_id")])
  def candidates(self, movie_id):
    return {"embedding": self.candidate_model(movie_id)}


@pytest.mark.slow
def test_query_and_candidate_signatures_give_the_towers_scores(
    gru, tiny_prepared, tmp_path):
  module = _EmbeddingExport(gru.query_model, gru.candidate_model)
  tf.saved_model.save(module, str(tmp_path / "towers"), signatures={
      "serving_default": module.query, "candidates": module.candidates})
  saved = SavedModelTeacher(str(tmp_path / "towers"), tiny_prepared.items,
                            candidate_signature="candidates",
                            context_length=L)
  assert isinstance(saved, TowerTeacher)
  # The candidate signature is found when it is the only one that fits.
  found = SavedModelTeacher(str(tmp_path / "towers"), tiny_prepared.items,
                            context_length=L)
  assert isinstance(found, TowerTeacher)
  module.extra = module.candidates
  tf.saved_model.save(module, str(tmp_path / "two"), signatures={
      "serving_default": module.query, "candidates": module.candidates,
      "items": module.extra})
  with pytest.raises(ConfigError, match="candidate_signature"):
    SavedModelTeacher(str(tmp_path / "two"), tiny_prepared.items,
                      context_length=L)
  memory = TowerTeacher.from_tfrs_model(gru, tiny_prepared.items,
                                        context_length=L)
  features = {"context": tf.constant(examples.evaluation_set(
      tiny_prepared, "test", L).contexts[:6])}
  np.testing.assert_allclose(saved(features)["logits"],
                             memory(features)["logits"], rtol=1e-5,
                             atol=1e-5)


def test_tfdistills_own_export_teaches_by_top_k_and_by_scores(tiny_run):
  from tfdistill.data.prepare import PreparedData  # pylint: disable=import-outside-toplevel
  out = tiny_run[0]
  prepared = PreparedData.load(str(out / "data"))
  export = str(out / "export" / "serving" / "tfdistill_student" / "1")
  length = json.loads((out / "config.json").read_text())["context_length"]
  top_k = SavedModelTeacher(export, prepared.items, context_length=length)
  scores = SavedModelTeacher(export, prepared.items, signature="score",
                             context_length=length)
  features = {"context": tf.constant(examples.evaluation_set(
      prepared, "test", length).contexts[:6])}
  ids, _ = top_k(features)["logits_top_k"]
  dense = scores(features)["logits"].numpy()
  assert top_k.describe()["vocabulary"]["unknown_to_teacher"] == 0
  # The export leaves out the context's own items; so does the best of
  # the scores once those are masked.
  for row, context in enumerate(features["context"].numpy()):
    dense[row, context] = -np.inf
  np.testing.assert_array_equal(ids.numpy()[:, 0], np.argmax(dense, 1))


def test_a_ranking_teacher_teaches_a_listwise_student_its_candidate_order(
    tiny_prepared):
  """The ranking teacher scores each example's candidates; the listwise and
  ranking losses distil that order into a student of the same lists."""
  from tfdistill.distill import RankingDistillation  # pylint: disable=import-outside-toplevel
  from tfdistill.models.students import build_listwise_ranking_student  # pylint: disable=import-outside-toplevel
  dcn = tutorials.train(tutorials.DCN({
      "user_id": tutorials.ids(tiny_prepared.users),
      "movie_id": tutorials.ids(tiny_prepared.items)}),
                        tutorials.pairs(tiny_prepared), epochs=4)
  teacher = RatingTeacher(dcn, tiny_prepared.items, candidates=True,
                          user_keys=tiny_prepared.users.tokens)
  train = examples.candidate_examples(tiny_prepared, "train", 10,
                                      batch_size=64, shuffle=True, seed=1)
  features, _ = examples.candidate_arrays(tiny_prepared, "test", 10, seed=2)
  wanted = teacher(features)["logits"].numpy()
  agreement = []
  for distil in (True, False):
    tf_keras.utils.set_random_seed(3)
    student = build_listwise_ranking_student(
        tiny_prepared.num_users, tiny_prepared.num_items, 16, 16)
    if distil:
      trainer = Distiller(student=student, teacher=teacher)
      trainer.compile(tf_keras.optimizers.Adam(1e-2), alpha=0.2,
                      distillation_loss=[SoftTargetKL(),
                                         RankingDistillation(
                                             top_k=3, num_reserved=0)])
    else:
      trainer = student
      trainer.compile(tf_keras.optimizers.Adam(1e-2),
                      loss=tf_keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
    trainer.fit(train, epochs=6, verbose=0)
    scores = student.predict_on_batch(features)
    agreement.append(top_k_overlap(scores, wanted, k=3, num_reserved=0))
  distilled, alone = agreement
  assert distilled > alone + 0.1, (distilled, alone)


def test_a_teacher_of_integer_ids_through_integer_lookup(tiny_prepared):
  """A teacher that numbers items by integers of its own (IntegerLookup):
  the student's items are joined by key, the best key is the same."""
  own = [1000 + i for i in range(tiny_prepared.num_items - 2)]
  item_keys = ["[PAD]", "[OOV]"] + [str(k) for k in own]
  tf.keras.utils.set_random_seed(0)
  query = tf.keras.Sequential([
      tf.keras.layers.IntegerLookup(vocabulary=own, mask_token=None),
      tf.keras.layers.Embedding(len(own) + 1, 8),
      tf.keras.layers.GlobalAveragePooling1D()])
  candidate = tf.keras.Sequential([
      tf.keras.layers.IntegerLookup(vocabulary=own, mask_token=None),
      tf.keras.layers.Embedding(len(own) + 1, 8)])
  query(tf.constant([[1000] * L], tf.int64))
  candidate(tf.constant([1000], tf.int64))
  teacher = TowerTeacher(query, candidate, tiny_prepared.items,
                         item_keys=item_keys, context_length=L)
  assert teacher.describe()["vocabulary"]["unknown_to_teacher"] == 0
  contexts = examples.evaluation_set(tiny_prepared, "test", L).contexts[:5]
  as_ints = np.where(contexts > 0, contexts + 998, 0)  # index i -> 1000+i-2
  scores = query(tf.constant(as_ints, tf.int64)) @ tf.transpose(
      candidate(tf.constant(own, tf.int64)))
  best = np.asarray(own)[np.argmax(scores, 1)]
  logits = teacher({"context": tf.constant(contexts)})["logits"].numpy()
  assert [int(item_keys[i]) for i in np.argmax(logits, 1)] == list(best)


@pytest.mark.slow
def test_cli_takes_a_tfdistill_model_folder_as_teacher(tiny_run, tmp_path):
  out, metrics, _ = tiny_run
  result = run_cli("distill", "--preset=tiny", "--seed=3",
                   f"--out={tmp_path / 'r'}",
                   f"--teacher={out / 'teacher' / 'model'}")
  assert last_json(result)["ndcg@10"] > 0
  teacher = json.loads((tmp_path / "r" / "teacher" / "metrics.json")
                       .read_text())
  assert teacher["ndcg@10"] == pytest.approx(metrics["teacher"]["ndcg@10"])
  assert teacher["params"] == metrics["teacher"]["params"]

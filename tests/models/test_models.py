"""Teachers and students: shapes, parameter counts, training, round trips."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfdistill.data import examples
from tfdistill.errors import ConfigError
from tfdistill.errors import ModelError
from tfdistill.models import layers
from tfdistill.models.embeddings import EmbeddingConfig
from tfdistill.models.embeddings import HashEmbedding
from tfdistill.models.embeddings import LowRankEmbedding
from tfdistill.models.embeddings import MixedDimensionEmbedding
from tfdistill.models.embeddings import ProductQuantizedEmbedding
from tfdistill.models.embeddings import QuotientRemainderEmbedding
from tfdistill.models.factory import build_multitask_teacher
from tfdistill.models.factory import build_ranking_teacher
from tfdistill.models.factory import build_sequential_teacher
from tfdistill.models.factory import build_student
from tfdistill.models.factory import build_two_tower_teacher
from tfdistill.models.factory import TeacherConfig
from tfdistill.models.io import count_parameters
from tfdistill.models.io import dummy_inputs
from tfdistill.models.io import load_model
from tfdistill.models.io import read_model_card
from tfdistill.models.io import save_model
from tfdistill.models.students import build_multitask_student
from tfdistill.models.students import build_ranking_student
from tfdistill.models.students import build_sequential_student
from tfdistill.models.students import build_two_tower_student
from tfdistill.models.students import StudentConfig

L = 6


def _pairs(prepared, label="rating"):
  return examples.pair_examples(prepared, "train", L, batch_size=64,
                                label=label)


def _teachers(prepared):
  """(name, builder, training data factory, inputs for predictions)."""
  small = TeacherConfig(embedding_dim=8, num_blocks=1, num_heads=2,
                        ffn_dim=8, dropout=0.0)
  sequence = lambda: examples.sequence_examples(prepared, "train", L,
                                                batch_size=64)
  return {
      "sequential_catalog": (lambda: build_sequential_teacher(
          prepared, L, small), sequence),
      "sequential_in_batch": (lambda: build_sequential_teacher(
          prepared, L, TeacherConfig(**dict(
              small.__dict__, negatives="in_batch"))), sequence),
      "sequential_mixed": (lambda: build_sequential_teacher(
          prepared, L, TeacherConfig(**dict(
              small.__dict__, negatives="mixed", num_extra_negatives=16))),
                           sequence),
      "two_tower": (lambda: build_two_tower_teacher(
          prepared, L, embedding_dim=8), lambda: _pairs(prepared, None)),
      "ranking": (lambda: build_ranking_teacher(prepared, embedding_dim=8),
                  lambda: _pairs(prepared)),
      "multitask": (lambda: build_multitask_teacher(
          prepared, L, embedding_dim=8), lambda: _pairs(prepared, None)),
  }


TEACHERS = ("sequential_catalog", "sequential_in_batch", "sequential_mixed",
            "two_tower", "ranking", "multitask")


def _outputs(model, inputs):
  out = model(inputs, training=False)
  return {k: v.numpy() for k, v in out.items()} if isinstance(out, dict) else (
      out.numpy())


@pytest.mark.parametrize("kind", TEACHERS)
def test_teacher_trains_and_round_trips(kind, tiny_prepared, tmp_path):
  tf_keras.utils.set_random_seed(0)
  build, data = _teachers(tiny_prepared)[kind]
  teacher = build()
  teacher.compile(tf_keras.optimizers.Adam(2e-2))
  history = teacher.fit(data(), epochs=4, verbose=0).history
  assert history["loss"][-1] < history["loss"][0]
  assert count_parameters(teacher) > 0
  inputs = dummy_inputs(teacher.input_signature, batch_size=3)
  inputs = {k: tf.ones_like(v) * 3 for k, v in inputs.items()}
  expected = _outputs(teacher, inputs)
  path = save_model(teacher, str(tmp_path / kind))
  card = read_model_card(path)
  assert card["parameters"] == count_parameters(teacher)
  restored = load_model(path)
  assert type(restored) is type(teacher)
  assert restored.get_config() == teacher.get_config()
  got = _outputs(restored, inputs)
  for a, b in zip(tf.nest.flatten(expected), tf.nest.flatten(got)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_catalog_softmax_is_exact(tiny_prepared):
  """negatives="catalog": the TFRS loss equals a full softmax by hand."""
  teacher = build_sequential_teacher(tiny_prepared, L, TeacherConfig(
      embedding_dim=8, num_blocks=1, num_heads=2, ffn_dim=8, dropout=0.0))
  features, targets = next(iter(examples.sequence_examples(
      tiny_prepared, "validation", L, batch_size=16)))
  loss = teacher.compute_loss((features, targets), training=False)
  logits = teacher(features).numpy()[:, 2:]  # without [PAD] and [OOV]
  logits -= logits.max(axis=1, keepdims=True)
  log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
  expected = -log_p[np.arange(len(targets)), targets.numpy() - 2].mean()
  assert float(loss) == pytest.approx(expected, rel=1e-4)


def test_save_refuses_to_overwrite(tiny_prepared, tmp_path):
  student = build_student(tiny_prepared, L, StudentConfig(embedding_dim=4))
  path = save_model(student, str(tmp_path / "s"))
  with pytest.raises(ModelError, match="already exists"):
    save_model(student, path)
  save_model(student, path, overwrite=True)
  with pytest.raises(ModelError, match="no tfdistill model"):
    load_model(str(tmp_path))


STUDENTS = [
    StudentConfig(encoder="mean"),
    StudentConfig(encoder="attention"),
    StudentConfig(encoder="cnn"),
    StudentConfig(encoder="gru"),
    StudentConfig(encoder="self_attention"),
    StudentConfig(embedding=EmbeddingConfig("low_rank", rank=4)),
    StudentConfig(embedding=EmbeddingConfig("hash", num_buckets=16)),
    StudentConfig(embedding=EmbeddingConfig("quotient_remainder")),
    StudentConfig(embedding=EmbeddingConfig("mixed", rank=4, head_items=20)),
    StudentConfig(embedding=EmbeddingConfig("product_quantized",
                                            num_codebooks=4, codewords=8)),
]


@pytest.mark.parametrize("config", STUDENTS,
                         ids=lambda c: f"{c.encoder}-{c.embedding.kind}")
def test_student_round_trips(config, tiny_prepared, tmp_path):
  config = StudentConfig(**dict(config.__dict__, embedding_dim=8,
                                hidden_dim=8))
  student = build_student(tiny_prepared, L, config)
  contexts = examples.evaluation_set(tiny_prepared, "test", L).contexts[:4]
  expected = student.predict_on_batch({"context": contexts})
  assert expected.shape == (4, tiny_prepared.num_items)
  restored = load_model(save_model(student, str(tmp_path / "s")))
  np.testing.assert_allclose(restored.predict_on_batch({"context": contexts}),
                             expected, rtol=1e-6)
  assert restored.get_config() == student.get_config()
  assert StudentConfig.from_json(config.to_json()) == config


def test_compressed_tables_have_fewer_parameters(tiny_prepared):
  n, d = 1000, 16
  full = n * d
  low_rank = LowRankEmbedding(n, d, rank=4)
  hashed = HashEmbedding(n, d, num_buckets=100)
  qr = QuotientRemainderEmbedding(n, d)
  for layer in (low_rank, hashed, qr):
    layer.build(None)
  assert count_parameters(low_rank) == n * 4 + 4 * d
  assert count_parameters(hashed) < full / 5
  assert count_parameters(qr) < full / 5
  ids = tf.constant([[0, 1, 999]])
  for layer in (low_rank, hashed, qr):
    assert layer(ids).shape == (1, 3, d)
  # Quotient-remainder gives distinct items distinct vectors.
  vectors = qr(tf.range(n)).numpy()
  assert len(np.unique(vectors.round(6), axis=0)) == n


def test_mixed_dimension_rows_against_their_tables():
  layer = MixedDimensionEmbedding(num_items=10, dim=3, head_items=4, rank=2)
  layer.build(None)
  head = np.arange(12, dtype=np.float32).reshape(4, 3)
  tail = np.arange(12, dtype=np.float32).reshape(6, 2) / 10
  projection = np.array([[1, 0, 2], [0, 1, -1]], np.float32)
  layer.set_weights([head, tail, projection])
  rows = layer(tf.constant([[0, 3, 4, 9]])).numpy()[0]
  # Items 0-3 read the head; item 4 + j reads tail row j times P.
  np.testing.assert_allclose(rows[0], [0, 1, 2])
  np.testing.assert_allclose(rows[1], [9, 10, 11])
  np.testing.assert_allclose(rows[2], [0.0, 0.1, -0.1], atol=1e-6)
  np.testing.assert_allclose(rows[3], [1.0, 1.1, 0.9], atol=1e-6)
  assert count_parameters(layer) == 4 * 3 + 6 * 2 + 2 * 3
  restored = MixedDimensionEmbedding.from_config(layer.get_config())
  assert (restored.head_items, restored.rank) == (4, 2)
  for bad in (dict(head_items=0, rank=2), dict(head_items=10, rank=2),
              dict(head_items=4, rank=4)):
    with pytest.raises(ConfigError, match="mixed embedding"):
      MixedDimensionEmbedding(num_items=10, dim=3, **bad)


def test_product_quantized_rows_against_their_codebooks():
  layer = ProductQuantizedEmbedding(num_items=5, dim=4, num_codebooks=2,
                                    codewords=3)
  layer.build(None)
  codes = np.array([[0, 0], [1, 2], [2, 1], [0, 2], [2, 2]], np.int32)
  books = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
  layer.codes.assign(codes)
  layer.codebooks.assign(books)
  rows = layer(tf.constant([[1, 4], [0, 3]])).numpy()
  # Item 1: codeword 1 of book 0 ([2, 3]), codeword 2 of book 1 ([10, 11]).
  np.testing.assert_array_equal(rows[0, 0], [2, 3, 10, 11])
  np.testing.assert_array_equal(rows[0, 1], [4, 5, 10, 11])
  np.testing.assert_array_equal(rows[1, 0], [0, 1, 6, 7])
  np.testing.assert_array_equal(rows[1, 1], [0, 1, 10, 11])
  # The codes are stored, not trained, and counted: 5 x 2 codes + 2 x 3 x 2.
  assert [w.name for w in layer.trainable_weights] == ["codebooks:0"]
  assert count_parameters(layer) == 5 * 2 + 2 * 3 * 2
  assert layer.get_prunable_weights() == [layer.codebooks]
  # Random codes give distinct items distinct combinations.
  wide = ProductQuantizedEmbedding(num_items=1000, dim=8, num_codebooks=4,
                                   codewords=16)
  wide.build(None)
  codes = wide.codes.numpy()
  assert codes.min() == 0 and codes.max() == 15
  assert len(np.unique(codes, axis=0)) > 990
  # In a student, too: its codes once beside its trainable weights.
  student = build_sequential_student(50, L, StudentConfig(
      embedding_dim=8, embedding=EmbeddingConfig(
          "product_quantized", num_codebooks=2, codewords=4)))
  trainable = sum(int(np.prod(w.shape)) for w in student.trainable_weights)
  assert count_parameters(student) == trainable + 50 * 2
  for bad in (dict(num_codebooks=3, codewords=4),
              dict(num_codebooks=2, codewords=1)):
    with pytest.raises(ConfigError, match="product-quantized"):
      ProductQuantizedEmbedding(num_items=10, dim=4, **bad)
  with pytest.raises(ConfigError, match="must divide the student's"):
    StudentConfig(embedding_dim=6, embedding=EmbeddingConfig(
        "product_quantized", num_codebooks=4))
  for kind in ("low_rank", "mixed"):
    with pytest.raises(ConfigError, match="must be at most the student's"):
      StudentConfig(embedding_dim=8, embedding=EmbeddingConfig(kind, rank=9))
  for bad in (dict(rank=0), dict(num_buckets=-1), dict(head_items=-2)):
    with pytest.raises(ConfigError, match="--student_table_"):
      EmbeddingConfig("hash", **bad)


def test_other_students(tiny_prepared):
  config = StudentConfig(embedding_dim=8, hidden_dim=8)
  fingerprint = tiny_prepared.items.fingerprint
  n, u = tiny_prepared.num_items, tiny_prepared.num_users
  two_tower = build_two_tower_student(n, u, L, config, fingerprint)
  ranking = build_ranking_student(u, n, embedding_dim=4, hidden_dim=8)
  multitask = build_multitask_student(n, L, config, fingerprint)
  batch = {"context": tf.ones([2, L], tf.int32) * 3, "user": tf.constant(
      [1, 2]), "item": tf.constant([3, 4])}
  assert two_tower({k: batch[k] for k in ("context", "user")}).shape == (2, n)
  assert ranking({k: batch[k] for k in ("user", "item")}).shape == (2, 1)
  out = multitask({k: batch[k] for k in ("context", "item")})
  assert out["logits"].shape == (2, n) and out["rating"].shape == (2, 1)
  assert count_parameters(ranking) == (u + n) * 4 + 8 * 8 + 8 + 8 + 1


def test_student_is_a_tenth_of_the_default_teacher(tiny_prepared):
  teacher = build_sequential_teacher(tiny_prepared, L)
  teacher(dummy_inputs(teacher.input_signature))
  student = build_student(tiny_prepared, L, StudentConfig(embedding_dim=8,
                                                          hidden_dim=8))
  assert count_parameters(student) <= 0.1 * count_parameters(teacher)


def test_teacher_query_reads_the_last_position_of_full_blocks(tiny_prepared):
  # The last block computes the last position alone, and the context items
  # may be read from the encoded catalog: both must leave the query as
  # every block's full output would give it.
  teacher = build_sequential_teacher(tiny_prepared, L, TeacherConfig(
      embedding_dim=16, num_blocks=2, num_heads=2, ffn_dim=32))
  x, _ = next(iter(examples.sequence_examples(tiny_prepared, "train", L,
                                              batch_size=64)))
  context = x["context"]
  assert np.any(context.numpy() == 0)  # left padding is covered
  teacher(x)
  hidden = teacher.positions(teacher.item_encoder(context))
  for block in teacher.blocks:
    hidden = block([hidden, context])
  expected = teacher.query_projection(teacher.output_norm(hidden[:, -1]))
  for catalog in (None, teacher.catalog_embeddings()):
    query = teacher.query_signals(x, catalog=catalog)["query_embedding"]
    np.testing.assert_allclose(query.numpy(), expected.numpy(), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("layer", [
    layers.MaskedMean(), layers.PositionWeightedMean(),
    layers.LastPosition(), layers.QueriedPooling(),
    layers.PositionEmbedding(),
    layers.TransformerBlock(num_heads=2, ffn_dim=8),
    layers.ContextAndCatalogIds(10), layers.SplitContextAndCatalog(10),
    layers.CatalogScores(10, "abc"), layers.MaskedBag(10, 4),
    LowRankEmbedding(10, 4, 2), HashEmbedding(10, 4, 3),
    QuotientRemainderEmbedding(10, 4), MixedDimensionEmbedding(10, 4, 3, 2),
    ProductQuantizedEmbedding(10, 4, 2, 3)],
                         ids=lambda layer: type(layer).__name__)
def test_layer_config_round_trip(layer):
  config = layer.get_config()
  clone = type(layer).from_config(config)
  assert clone.get_config() == config
  restored = tf_keras.layers.deserialize(tf_keras.layers.serialize(layer))
  assert type(restored) is type(layer)


def test_bad_configs():
  with pytest.raises(ConfigError, match="encoder"):
    StudentConfig(encoder="lstm")
  with pytest.raises(ConfigError, match="embedding kind"):
    EmbeddingConfig("bloom")
  with pytest.raises(ConfigError, match="divisible"):
    TeacherConfig(embedding_dim=10, num_heads=4)
  with pytest.raises(ConfigError, match="negatives"):
    TeacherConfig(negatives="all")


def test_position_weighted_mean_by_hand():
  pool = layers.PositionWeightedMean()
  embeddings = tf.constant([[[1., 0.], [0., 1.], [2., 2.]],
                            [[1., 1.], [1., 1.], [1., 1.]]])
  ids = tf.constant([[0, 5, 7], [0, 0, 0]])
  pool([embeddings, ids])
  pool.position_logits.assign([3.0, np.log(2.0), 0.0])
  # Row 0: softmax over the non-padding positions 1 and 2 -> 2/3, 1/3.
  # Row 1: all padding pools to zeros.
  np.testing.assert_allclose(pool([embeddings, ids]).numpy(),
                             [[2 / 3, 4 / 3], [0.0, 0.0]], rtol=1e-6)


def test_queried_pooling_by_hand():
  pool = layers.QueriedPooling()
  query = tf.constant([[2., 0.], [1., 1.]])
  keys = tf.constant([[[9., 9.], [1., 0.], [0., 1.]],
                      [[1., 1.], [1., 1.], [1., 1.]]])
  values = tf.constant([[[5., 5.], [1., 0.], [0., 3.]],
                        [[1., 1.], [1., 1.], [1., 1.]]])
  ids = tf.constant([[0, 5, 7], [0, 0, 0]])
  pool([query, keys, values, ids])
  pool.position_logits.assign([7.0, 0.0, 0.5])
  # Row 0, positions 1 and 2 (0 is padding): scores 2/sqrt(2) + 0 and
  # 0/sqrt(2) + 0.5, so weights proportional to exp(sqrt(2)) and exp(0.5).
  w1, w2 = np.exp(np.sqrt(2.0)), np.exp(0.5)
  w1, w2 = w1 / (w1 + w2), w2 / (w1 + w2)
  # Row 1: all padding pools to zeros.
  np.testing.assert_allclose(pool([query, keys, values, ids]).numpy(),
                             [[w1, 3 * w2], [0.0, 0.0]], rtol=1e-6)


def test_attention_student_reads_the_most_recent_item():
  """The attention encoder's query and skip connection are the item at the
  last position of the left-padded context (the most recent one)."""
  student = build_sequential_student(
      50, 4, StudentConfig(encoder="attention", embedding_dim=4, hidden_dim=4,
                           dropout=0.0))
  last = tf_keras.Model(student.input, student.get_layer("last_item").output)
  rows = last.predict_on_batch({"context": np.array(
      [[0, 0, 3, 9], [0, 4, 3, 9], [0, 0, 9, 3]], np.int32)})
  np.testing.assert_allclose(rows[0], rows[1])
  assert not np.allclose(rows[0], rows[2])
  scores = student.predict_on_batch({"context": np.array(
      [[0, 0, 3, 9], [0, 0, 0, 9]], np.int32)})
  assert scores.shape == (2, 50) and not np.allclose(scores[0], scores[1])


def test_cli_student_encoders_are_the_library_ones():
  from absl import flags  # pylint: disable=import-outside-toplevel
  from tfdistill.cli import options  # pylint: disable=import-outside-toplevel,unused-import
  from tfdistill.models.students import ENCODERS  # pylint: disable=import-outside-toplevel
  assert tuple(flags.FLAGS["student_encoder"].parser.enum_values) == ENCODERS

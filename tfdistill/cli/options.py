"""Every command-line flag (option), and the one place that turns flags into configs."""

from absl import flags

from tfdistill.data.prepare import PrepareConfig
from tfdistill.data.sources import dataset_names
from tfdistill.data.sources import SourceConfig
from tfdistill.data.synthetic import SyntheticConfig
from tfdistill.models.configs import EMBEDDING_KINDS
from tfdistill.models.configs import ENCODERS

FLAGS = flags.FLAGS

# Data.
flags.DEFINE_string(
    "dataset", "synthetic",
    f"Data source: {', '.join(dataset_names())}.")
flags.DEFINE_string("path", None,
                    "File for --dataset=grouplens (u.data, ratings.dat, "
                    "ratings.csv), csv, parquet or sequences (user item "
                    "lines in time order, e.g. ml-1m.txt).")
flags.DEFINE_string("columns", None,
                    "Column mapping for csv/parquet, e.g. "
                    "user_id=uid,item_id=iid,timestamp=ts,rating=")
flags.DEFINE_string("item_features", None,
                    "Item titles and genres for --dataset=sequences: a "
                    "GroupLens movies.dat (joined through "
                    "sas_to_original_items.txt beside it, or --item_id_map).")
flags.DEFINE_string("item_id_map", None,
                    "For --dataset=sequences: lines 'sequence_id original_id' "
                    "joining the file's items to --item_features.")
flags.DEFINE_string("data_dir", None, "TFDS cache directory.")
flags.DEFINE_string("manual_dir", None,
                    "Folder holding the GroupLens zip, for offline TFDS "
                    "preparation (e.g. ../shared/data/movielens).")
flags.DEFINE_integer("synthetic_users", SyntheticConfig.num_users,
                     "Users in the synthetic data set.")
flags.DEFINE_integer("synthetic_items", SyntheticConfig.num_items,
                     "Items in the synthetic data set.")
flags.DEFINE_float("synthetic_interactions_per_user",
                   SyntheticConfig.mean_interactions_per_user,
                   "Mean interactions per user in the synthetic data set.")
flags.DEFINE_integer("min_user_interactions",
                     PrepareConfig.min_user_interactions,
                     "Drop users with fewer interactions (>= 3).")
flags.DEFINE_integer("min_item_interactions",
                     PrepareConfig.min_item_interactions,
                     "Drop items with fewer interactions (0: keep every "
                     "item of the item table, cold ones too).")

# Shared.
flags.DEFINE_integer("seed", 0, "Random seed; the same seed repeats a run.")
flags.DEFINE_string("out", None, "Output directory.")
flags.DEFINE_boolean("overwrite", False,
                     "Replace an existing output instead of refusing.")

DATA_FLAGS = ("dataset", "path", "columns", "item_features", "item_id_map",
              "data_dir", "manual_dir",
              "synthetic_users", "synthetic_items",
              "synthetic_interactions_per_user", "min_user_interactions",
              "min_item_interactions", "seed")


def source_config() -> SourceConfig:
  return SourceConfig(
      dataset=FLAGS.dataset, path=FLAGS.path, data_dir=FLAGS.data_dir,
      manual_dir=FLAGS.manual_dir, columns=FLAGS.columns,
      item_features=FLAGS.item_features, item_id_map=FLAGS.item_id_map,
      synthetic=SyntheticConfig(
          num_users=FLAGS.synthetic_users, num_items=FLAGS.synthetic_items,
          mean_interactions_per_user=FLAGS.synthetic_interactions_per_user,
          seed=FLAGS.seed))


def prepare_config() -> PrepareConfig:
  return PrepareConfig(min_user_interactions=FLAGS.min_user_interactions,
                       min_item_interactions=FLAGS.min_item_interactions)

# Pipeline runs.
flags.DEFINE_string("preset", "default",
                    "Run size: default (the full job on the data, < 10 min "
                    "on the synthetic default), tiny (about a minute) or "
                    "large (1,000,000 synthetic items: sampled softmaxes).")
flags.DEFINE_boolean("force", False,
                     "Recompute finished steps (and accept a changed "
                     "configuration in --out).")
flags.DEFINE_integer("context_length", None,
                     "Recent items per example (L); default from --preset.")
flags.DEFINE_string("teacher", None,
                    "A teacher of your own instead of training one: a "
                    "SavedModel folder (e.g. a TF Serving export or a saved "
                    "tfrs factorized_top_k index) or a tfdistill model "
                    "folder. The teacher step then measures it.")
flags.DEFINE_string("teacher_signature", None,
                    "The SavedModel signature to call (serving_default).")
flags.DEFINE_string("teacher_inputs", None,
                    "How the data's features feed the teacher's inputs "
                    "where names and shapes do not tell, e.g. "
                    "context=movie_history,user=user_id.")
flags.DEFINE_enum("teacher_item_key", None, ["id", "title"],
                  "The key by which --teacher knows items (default id).")
flags.DEFINE_boolean("strict_vocabulary", None,
                     "Refuse a --teacher that does not know every item of "
                     "the catalog (default: report and mask them).")
flags.DEFINE_enum("teacher_objective", None, ["last", "all_positions"],
                  "How the teacher trains: all_positions (causal attention, "
                  "a target at every position of a user's sequence; the "
                  "default preset's) or last (one target per context "
                  "window; the tiny and large presets').")
flags.DEFINE_enum("teacher_negatives", None, ["in_batch", "mixed", "catalog"],
                  "What the teacher's softmax runs over: catalog (every "
                  "item, the default), mixed (the batch's items plus "
                  "--teacher_extra_negatives uniform items, logQ-corrected: "
                  "for large catalogs) or in_batch.")
flags.DEFINE_integer("teacher_extra_negatives", None,
                     "Uniform items per step of --teacher_negatives=mixed "
                     "(default 256).")
flags.DEFINE_integer("chunk_batch_size", None,
                     "With --teacher_objective=all_positions: chunks of a "
                     "user's sequence (up to --context_length targets each) "
                     "per batch of the teacher and of its distilled student "
                     "(default 32).")
flags.DEFINE_integer("teacher_epochs", None, "Teacher training epochs.")
flags.DEFINE_integer("teacher_dim", None, "Teacher embedding size.")
flags.DEFINE_float("teacher_dropout", None,
                   "Teacher dropout rate, in [0, 1) (default: the preset's).")
flags.DEFINE_integer("teacher_blocks", None,
                     "Teacher transformer blocks, >= 1. One block makes the "
                     "online teacher's pass to its hidden layer (all a hint "
                     "needs) cheaper (BENCHMARKS.md, step times).")
flags.DEFINE_float("teacher_learning_rate", None,
                   "Teacher's Adam learning rate, > 0.")
flags.DEFINE_integer("student_epochs", None, "Student training epochs.")
flags.DEFINE_integer("early_stopping_patience", None,
                     "Every training stops after this many epochs without a "
                     "better validation NDCG@10 and keeps its best epoch "
                     "(default 2; 0: train every epoch, keep the best).")
flags.DEFINE_integer("student_negatives", None,
                     "The student's hard loss: 0 (default) for the softmax "
                     "over the whole catalog; N > 0 estimates it from the "
                     "label, the teacher's top-K and N uniform items per "
                     "step, for catalogs too large to score every step "
                     "(docs/scaling_out.md).")
flags.DEFINE_float("student_learning_rate", None,
                   "Student's Adam learning rate, alone and distilled, > 0.")
flags.DEFINE_integer("student_dim", None, "Student embedding size.")
flags.DEFINE_enum("student_init", None, ["auto", "random", "teacher_items"],
                  "How the distilled student's item table starts: "
                  "teacher_items (the teacher's item embeddings projected on "
                  "their top principal directions; a low-rank or mixed table "
                  "takes their closest factored form, a product-quantized "
                  "one their k-means codes), random, or auto "
                  "(default: teacher_items where the transfer is exact, i.e. "
                  "one retrieval teacher and a full item table, else random).")
flags.DEFINE_enum("student_encoder", None, list(ENCODERS),
                  "Student context encoder.")
flags.DEFINE_integer("student_hidden_dim", None,
                     "Size of the student encoder's hidden layer (and of a "
                     "gru's state, a cnn's filters, a self_attention "
                     "block's feed-forward layer).")
flags.DEFINE_enum("student_table", None, list(EMBEDDING_KINDS),
                  "The student's item table: full (one row per item, the "
                  "default), low_rank (rows x rank times rank x dim), hash "
                  "(two hashed rows per item), quotient_remainder, mixed "
                  "(full-width rows for the most frequent items, "
                  "projected narrow rows for the rest) or product_quantized "
                  "(each item a code per codebook; with "
                  "--student_init=teacher_items the codes quantize the "
                  "teacher's items).")
flags.DEFINE_integer("student_table_rank", None,
                     "--student_table=low_rank: the inner rank; mixed: the "
                     "width of the narrow rows (default 8).")
flags.DEFINE_integer("student_table_buckets", None,
                     "--student_table=hash: rows shared by the items "
                     "(default 0: a quarter of the catalog).")
flags.DEFINE_integer("student_table_head_items", None,
                     "--student_table=mixed: the most frequent items with "
                     "full-width rows (default 0: an eighth of the catalog).")
flags.DEFINE_integer("student_table_codebooks", None,
                     "--student_table=product_quantized: codebooks, the "
                     "slices of an item vector; must divide --student_dim "
                     "(default 4).")
flags.DEFINE_integer("student_table_codewords", None,
                     "--student_table=product_quantized: codewords per "
                     "codebook (default 128).")
flags.DEFINE_string("distillation_loss", None,
                    "kl, mse, listwise, ranking, ranking_centered, "
                    "relaxed_ranking, contrastive or hint; combine with '+', "
                    "e.g. kl+ranking.")
flags.DEFINE_float("alpha", None, "Weight of the hard-label loss, in [0, 1], "
                   "when distilling and in the compression step's "
                   "fine-tunes.")
flags.DEFINE_float("temperature", None, "Distillation softmax temperature, "
                   "> 0, when distilling and in the compression step's "
                   "fine-tunes.")
flags.DEFINE_float("target_sparsity", None,
                   "Pruning target in [0, 1); 0 disables pruning.")
flags.DEFINE_enum("table_pruning", None, ["fisher", "magnitude"],
                  "How item tables are pruned: fisher (default: once, keeping "
                  "the entries whose loss saliency w^2 * F, F estimated on "
                  "the training data, is largest) or magnitude (TF-MOT's "
                  "gradual magnitude pruning, like the other layers).")
flags.DEFINE_boolean("qat", None, "Quantization-aware training.")
flags.DEFINE_float("low_rank_energy", None,
                   "SVD factorization keeping this spectral energy (0: off).")
flags.DEFINE_integer("clusters", None, "Weight clusters per kernel (0: off).")
flags.DEFINE_integer("compress_epochs", None,
                     "Fine-tune epochs after each compression step (pruning, "
                     "clustering, QAT); the default preset uses 2, the tiny "
                     "one 1 (the latest_small_compression benchmark "
                     "measures the choice).")

# Export.
flags.DEFINE_string("model", None,
                    "Folder of a saved model, e.g. <run>/student_kd/model.")
flags.DEFINE_boolean("tflite", False, "Export the TFLite model.")
flags.DEFINE_boolean("saved_model", False,
                     "Export the TF Serving SavedModel.")
flags.DEFINE_enum("quantize", None, ["none", "float16", "dynamic", "int8"],
                  "TFLite quantization (default none for export, int8 in "
                  "the pipeline).")
flags.DEFINE_integer("top_k", None, "Items returned per request (10).")
flags.DEFINE_string("model_name", None, "TF Serving model name.")
flags.DEFINE_integer("version", None,
                     "TF Serving version (default: the next free one).")
flags.DEFINE_float("min_agreement", None,
                   "Parity gate: least mean top-K agreement with the "
                   "SavedModel (default per mode).")
flags.DEFINE_integer("exclude_length", 0,
                     "TFLite: also a \"recommend_excluding\" signature "
                     "taking this many item indices to leave out (0: none).")
flags.DEFINE_list("more_k", [], "TFLite: further K, each a "
                  "\"recommend_k<K>\" signature, e.g. 50,100.")
flags.DEFINE_integer("partitions", 0,
                     "Approximate top-K: k-means partitions of the catalog "
                     "inside the model (0: exact search, -1: about "
                     "sqrt(catalog)).")
flags.DEFINE_integer("probe", 0, "Approximate top-K: partitions scored per "
                     "request (0: automatic).")
flags.DEFINE_float("min_recall", 0.9,
                   "Approximate top-K gate: least recall@K against exact "
                   "search on held-out contexts.")
flags.DEFINE_string("vocabulary", None,
                    "items.txt for a model saved without one.")
flags.DEFINE_string("representative_data", None,
                    ".npy int32 contexts for int8 calibration.")
flags.DEFINE_enum("split", "test", ["validation", "test"],
                  "Split to evaluate on.")
flags.DEFINE_float("positive_rating", 4.0,
                   "For ranking models: the rating from which an "
                   "interaction counts as positive (accuracy, precision, "
                   "recall, F1, AUC).")

# Where training runs.
flags.DEFINE_enum("strategy", "default", ["default", "mirrored",
                                          "multi_worker"],
                  "tf.distribute strategy: default (one device), mirrored "
                  "(this machine's devices) or multi_worker "
                  "(MultiWorkerMirroredStrategy from TF_CONFIG; run the same "
                  "command on every worker).")
flags.DEFINE_float("worker_timeout", 120.0,
                   "multi_worker: seconds to wait for every worker of "
                   "TF_CONFIG to join.")

# Teacher cache (Beam).
flags.DEFINE_list("signals", ["logits"],
                  "cache: the teacher's signals to keep: logits (as its "
                  "top-K), hidden, query_embedding.")
flags.DEFINE_integer("shards", 4, "cache: output files, the unit of "
                     "parallel work of the Beam pipeline.")
flags.DEFINE_integer("batch_size", None,
                     "cache: examples per cached batch (default: the run's, "
                     "256).")
flags.DEFINE_string("beam_options", "--runner=DirectRunner",
                    "cache: Apache Beam's own pipeline options, e.g. "
                    "'--runner=DataflowRunner --project=P --region=R "
                    "--temp_location=gs://B/tmp'.")

# Tuning.
flags.DEFINE_integer("max_trials", 8, "keras-tuner trials.")
flags.DEFINE_integer("max_params", None, "Budget: most student parameters.")
flags.DEFINE_integer("max_tflite_bytes", None,
                     "Budget: largest float32 .tflite in bytes.")
flags.DEFINE_integer("tune_epochs", 2, "Epochs per tuning trial.")

#: The item table's flags: the `EmbeddingConfig` field each sets and the
#: table kinds that read it.
TABLE_FLAGS = {
    "student_table_rank": ("rank", ("low_rank", "mixed")),
    "student_table_buckets": ("num_buckets", ("hash",)),
    "student_table_head_items": ("head_items", ("mixed",)),
    "student_table_codebooks": ("num_codebooks", ("product_quantized",)),
    "student_table_codewords": ("codewords", ("product_quantized",)),
}

RUN_FLAGS = DATA_FLAGS + (
    "out", "preset", "force", "context_length", "teacher",
    "teacher_signature", "teacher_inputs", "teacher_item_key",
    "strict_vocabulary", "teacher_objective", "teacher_negatives",
    "teacher_extra_negatives", "chunk_batch_size",
    "teacher_epochs",
    "teacher_learning_rate", "teacher_dim", "teacher_blocks",
    "teacher_dropout", "student_epochs", "early_stopping_patience", "student_negatives",
    "student_learning_rate", "student_dim", "student_encoder",
    "student_hidden_dim", "student_table", *TABLE_FLAGS, "student_init",
    "distillation_loss", "alpha", "temperature", "target_sparsity",
    "table_pruning", "qat",
    "low_rank_energy", "clusters", "compress_epochs", "quantize", "top_k",
    "min_agreement", "exclude_length", "more_k", "partitions", "probe",
    "min_recall")
TRAIN_FLAGS = RUN_FLAGS + ("strategy", "worker_timeout")
CACHE_FLAGS = DATA_FLAGS + ("teacher", "out", "overwrite", "context_length",
                            "top_k", "signals", "shards", "batch_size",
                            "beam_options")
EXPORT_FLAGS = ("model", "out", "tflite", "saved_model", "quantize", "top_k",
                "model_name", "version", "overwrite", "min_agreement",
                "exclude_length", "more_k", "partitions", "probe",
                "min_recall", "vocabulary", "representative_data")


def _present(name: str) -> bool:
  return FLAGS[name].present


def data_flags_given() -> list:
  """The data flags (`DATA_FLAGS`) given on the command line."""
  return [name for name in DATA_FLAGS if _present(name)]


def integers(flag: str) -> tuple:
  """A list flag's values as integers."""
  from tfdistill.errors import ConfigError  # pylint: disable=import-outside-toplevel
  try:
    return tuple(int(v) for v in FLAGS[flag].value)
  except ValueError as error:
    raise ConfigError(f"--{flag}={','.join(FLAGS[flag].value)} must be a "
                      "comma-separated list of integers.") from error


def pipeline_config():
  """The preset, with every flag given on the command line applied."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  from tfdistill.errors import ConfigError  # pylint: disable=import-outside-toplevel
  from tfdistill.pipeline.config import preset  # pylint: disable=import-outside-toplevel
  base = preset(FLAGS.preset)
  values = {}
  data_given = [f for f in data_flags_given() if f != "seed"]
  if data_given:
    # The preset's data settings, with each data flag given applied (e.g.
    # --preset=large --synthetic_users=1000 keeps the million items).
    synthetic = dataclasses.replace(base.source.synthetic, seed=FLAGS.seed)
    for flag, field in (("synthetic_users", "num_users"),
                        ("synthetic_items", "num_items"),
                        ("synthetic_interactions_per_user",
                         "mean_interactions_per_user")):
      if _present(flag):
        synthetic = dataclasses.replace(synthetic,
                                        **{field: FLAGS[flag].value})
    values["source"] = dataclasses.replace(source_config(),
                                           synthetic=synthetic)
    values["prepare"] = dataclasses.replace(base.prepare, **{
        flag: FLAGS[flag].value for flag in ("min_user_interactions",
                                             "min_item_interactions")
        if _present(flag)})
  elif _present("seed"):
    values["source"] = dataclasses.replace(
        base.source, synthetic=dataclasses.replace(base.source.synthetic,
                                                   seed=FLAGS.seed))
  for flag, field in (("context_length", "context_length"),
                      ("chunk_batch_size", "chunk_batch_size"),
                      ("teacher_epochs", "teacher_epochs"),
                      ("student_epochs", "student_epochs"),
                      ("early_stopping_patience", "early_stopping_patience"),
                      ("student_negatives", "student_negatives"),
                      ("teacher_learning_rate", "teacher_learning_rate"),
                      ("student_learning_rate", "student_learning_rate"),
                      ("student_init", "student_init"),
                      ("distillation_loss", "distillation_loss"),
                      ("alpha", "alpha"), ("temperature", "temperature"),
                      ("quantize", "quantize"), ("top_k", "top_k"),
                      ("min_agreement", "min_agreement"),
                      ("exclude_length", "exclude_length"),
                      ("partitions", "partitions"), ("probe", "probe"),
                      ("min_recall", "min_recall"),
                      ("seed", "seed"), ("teacher", "teacher_path"),
                      ("teacher_signature", "teacher_signature"),
                      ("teacher_inputs", "teacher_inputs"),
                      ("teacher_item_key", "teacher_item_key"),
                      ("strict_vocabulary", "strict_vocabulary")):
    if _present(flag):
      values[field] = FLAGS[flag].value
  if _present("more_k"):
    values["more_k"] = integers("more_k")
  teacher = {}
  if _present("teacher_dim"):
    dim = FLAGS.teacher_dim
    teacher["embedding_dim"] = dim
    teacher["num_heads"] = (base.teacher.num_heads
                            if dim % base.teacher.num_heads == 0 else 1)
  if _present("teacher_blocks"):
    teacher["num_blocks"] = FLAGS.teacher_blocks
  if _present("teacher_dropout"):
    teacher["dropout"] = FLAGS.teacher_dropout
  if _present("teacher_objective"):
    teacher["objective"] = FLAGS.teacher_objective
  if _present("teacher_negatives"):
    teacher["negatives"] = FLAGS.teacher_negatives
  if _present("teacher_extra_negatives"):
    teacher["num_extra_negatives"] = FLAGS.teacher_extra_negatives
  if teacher:
    values["teacher"] = dataclasses.replace(base.teacher, **teacher)
  student = {}
  if _present("student_dim"):
    student["embedding_dim"] = FLAGS.student_dim
  if _present("student_encoder"):
    student["encoder"] = FLAGS.student_encoder
  if _present("student_hidden_dim"):
    student["hidden_dim"] = FLAGS.student_hidden_dim
  table = _student_table(base.student.embedding)
  if table is not None:
    student["embedding"] = table
  if student:
    values["student"] = dataclasses.replace(base.student, **student)
  compress = {}
  for flag in ("target_sparsity", "table_pruning", "qat", "low_rank_energy",
               "clusters"):
    if _present(flag):
      compress[flag] = FLAGS[flag].value
  if _present("compress_epochs"):
    compress["fine_tune_epochs"] = FLAGS.compress_epochs
  # --quantize holds for the compression report too (--alpha and
  # --temperature reach its fine-tunes through PipelineConfig.fine_tunes).
  if _present("quantize"):
    compress["quantize"] = FLAGS.quantize
  if compress:
    values["compress"] = dataclasses.replace(base.compress, **compress)
  if not values:
    return base
  try:
    return dataclasses.replace(base, **values)
  except TypeError as error:
    raise ConfigError(str(error)) from error


def _student_table(base):
  """The preset's item table (`base`, an `EmbeddingConfig`) with the table
  flags given applied, or None when none is given. A table parameter that
  the table's kind does not read is an error, not silently ignored."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  from tfdistill.errors import ConfigError  # pylint: disable=import-outside-toplevel
  given = [flag for flag in TABLE_FLAGS if _present(flag)]
  if not given and not _present("student_table"):
    return None
  kind = FLAGS.student_table if _present("student_table") else base.kind
  # A new kind starts from that kind's defaults, not the preset's table's.
  table = (base if kind == base.kind else
           dataclasses.replace(type(base)(), kind=kind))
  for flag in given:
    field, kinds = TABLE_FLAGS[flag]
    if kind not in kinds:
      raise ConfigError(f"--{flag} applies to --student_table="
                        f"{'/'.join(kinds)}, not to the {kind} table; give "
                        f"--student_table={kinds[0]} or leave --{flag} out.")
    table = dataclasses.replace(table, **{field: FLAGS[flag].value})
  return table

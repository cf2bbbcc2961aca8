"""Configuration of a pipeline run, its presets and the distillation losses."""

import dataclasses
import json
import os
from typing import Optional

from tfdistill.compress.config import CompressConfig
from tfdistill.data.prepare import PrepareConfig
from tfdistill.data.sources import SourceConfig
from tfdistill.data.synthetic import check_seed
from tfdistill.data.synthetic import SyntheticConfig
from tfdistill.distill.teacher_inputs import parse_inputs
from tfdistill.errors import ConfigError
from tfdistill.errors import ExportError
from tfdistill.export.config import ExportConfig
from tfdistill.models.configs import EmbeddingConfig
from tfdistill.models.configs import StudentConfig
from tfdistill.models.configs import TeacherConfig

# Distillation losses by name ("a+b" combines several): the class in
# `tfdistill.distill` and its arguments at a temperature. Named here, built
# by `distillation_losses`, so that this module loads without TensorFlow.
LOSSES = {
    "kl": ("SoftTargetKL", lambda t: dict(temperature=t)),
    # Differs from "kl" only with a top-K teacher signal (see SoftTargetKL).
    "kl_teacher_items": ("SoftTargetKL", lambda t: dict(
        temperature=t, normalize_over="teacher_items")),
    "mse": ("SoftTargetMSE", lambda t: dict(temperature=t)),
    "listwise": ("ListwiseDistillation", lambda t: dict(
        temperature=t, num_candidates=1000)),
    "ranking": ("RankingDistillation", lambda t: dict(top_k=10)),
    # The same, its scores measured from the student's mean over the
    # catalog: a common offset of every score no longer lowers it.
    "ranking_centered": ("RankingDistillation", lambda t: dict(
        top_k=10, centered=True)),
    "relaxed_ranking": ("RelaxedRankingDistillation",
                        lambda t: dict(top_k=10)),
    "contrastive": ("ContrastiveAlignment", lambda t: {}),
    "hint": ("HintDistillation", lambda t: {}),
}


def distillation_loss_names(spec: str) -> list:
  """"kl+ranking" -> ["kl", "ranking"]; raises ConfigError on an unknown
  name."""
  names = spec.split("+")
  for name in names:
    if name not in LOSSES:
      raise ConfigError(f"unknown distillation loss {name!r}; choose from "
                        f"{', '.join(LOSSES)} (combine with '+').")
  return names


def distillation_losses(spec: str, temperature: float) -> list:
  """"kl+ranking" -> [SoftTargetKL(T), RankingDistillation()]."""
  from tfdistill import distill  # pylint: disable=import-outside-toplevel
  losses = []
  for name in distillation_loss_names(spec):
    kind, arguments = LOSSES[name]
    losses.append(getattr(distill, kind)(**arguments(temperature)))
  return losses

STUDENT_INITS = ("auto", "random", "teacher_items")
TEACHER_ITEM_KEYS = ("id", "title")
# What a run directory written before a field existed used (its default then).
LEGACY_DEFAULTS = {"student_init": "random", "early_stopping_patience": 0,
                   "compress": {"table_pruning": "magnitude"}}


@dataclasses.dataclass(frozen=True, eq=False)
class PipelineConfig:
  """Everything that determines a run's results (stored in config.json).

  Two configs are equal when they run the same (their config.json): a
  compress alpha or temperature left None equals the value it follows.
  """
  source: SourceConfig = SourceConfig()
  prepare: PrepareConfig = PrepareConfig()
  context_length: int = 20
  batch_size: int = 256
  # Chunks of users' sequences per batch when training on every position
  # (a teacher with objective "all_positions", and its distilled student):
  # each chunk holds up to context_length targets.
  chunk_batch_size: int = 32
  # The teacher learns every position of a user's sequence in one pass
  # (SASRec's formulation): the synthetic_teacher_objective benchmark
  # compares it with one target per context window. Its dropout is chosen
  # on validation NDCG@10 (synthetic_teacher_dropout; on MovieLens-1M,
  # ml1m_teachers).
  teacher: TeacherConfig = TeacherConfig(embedding_dim=64, num_blocks=2,
                                         num_heads=2, ffn_dim=128,
                                         dropout=0.1,
                                         objective="all_positions")
  # Epochs and learning rates chosen on the synthetic default.
  teacher_epochs: int = 8
  teacher_learning_rate: float = 5e-3
  student: StudentConfig = StudentConfig(embedding_dim=16, hidden_dim=64)
  # An upper bound: early stopping ends both students' trainings (the
  # student alone learns more slowly than its distilled twin, and a
  # comparison with a student that was still improving says nothing).
  student_epochs: int = 20
  student_learning_rate: float = 1e-2
  # Every training (teacher, student alone, distilled student) stops after
  # this many epochs without a better validation NDCG@10 and keeps its best
  # epoch (0: all epochs, still the best one kept): the same rule for the
  # student alone and its distilled twin.
  early_stopping_patience: int = 2
  # How the distilled student's item table starts: "teacher_items" (the
  # teacher's item embeddings projected on their top principal directions,
  # in a low-rank or mixed-dimension table their closest factored form, in
  # a product-quantized one their k-means codes;
  # tfdistill.distill.transfer_item_embeddings), "random", or "auto" (the
  # teacher's items where the transfer is exact: one retrieval teacher and
  # a full item table; random otherwise, e.g. for a low-rank, mixed,
  # product-quantized, hashed or QR table or several teachers); the
  # latest_small_student_init benchmark compares them.
  student_init: str = "auto"
  # The student's hard loss (alone and distilled): 0 for the softmax over
  # the whole catalog, else a softmax estimated from the label, the
  # teacher's top-K and this many uniform items per step
  # (tfdistill.distill.SampledCatalogSoftmax), for catalogs too large to
  # score at every step.
  student_negatives: int = 0
  distillation_loss: str = "kl+ranking"
  alpha: float = 0.5
  temperature: float = 2.0
  # Fine-tune epochs per compression step (the latest_small_compression
  # benchmark compares them). Its alpha and temperature, unless given, are
  # alpha and temperature above (`fine_tunes`).
  compress: CompressConfig = CompressConfig(fine_tune_epochs=2)
  quantize: str = "int8"
  top_k: int = 10
  # Parity gate of the export step (None: the exporter's default per mode).
  min_agreement: Optional[float] = None
  # Export options (tfdistill.export.ExportConfig): the TFLite model's
  # exclusion signature and further K, approximate top-K and its gate.
  exclude_length: int = 0
  more_k: tuple = ()
  partitions: int = 0
  probe: int = 0
  min_recall: float = 0.9
  seed: int = 0
  # A teacher of the user's own instead of one the run trains: a SavedModel
  # folder or a tfdistill model folder (tfdistill.distill.saved_teacher).
  teacher_path: str = ""
  teacher_signature: str = "serving_default"
  # "feature=teacher_input,..." where the mapping cannot be inferred.
  teacher_inputs: str = ""
  # The key by which the teacher knows items: "id" or "title".
  teacher_item_key: str = "id"
  strict_vocabulary: bool = False

  def __post_init__(self):
    check_seed(self.seed)
    distillation_loss_names(self.distillation_loss)
    if not 0.0 <= self.alpha <= 1.0:
      raise ConfigError(f"alpha must be in [0, 1], got {self.alpha}.")
    if self.min_agreement is not None and not 0 <= self.min_agreement <= 1:
      raise ConfigError(f"min_agreement must be in [0, 1], got "
                        f"{self.min_agreement}.")
    try:  # the export options, checked before any work
      ExportConfig(top_k=self.top_k, exclude_length=self.exclude_length,
                   more_k=tuple(self.more_k), partitions=self.partitions,
                   probe=self.probe, min_recall=self.min_recall)
    except ExportError as error:
      raise ConfigError(str(error)) from error
    if self.student_init not in STUDENT_INITS:
      raise ConfigError(f"unknown student_init {self.student_init!r}; choose "
                        f"one of {STUDENT_INITS}.")
    if self.teacher_item_key not in TEACHER_ITEM_KEYS:
      raise ConfigError(f"--teacher_item_key must be one of "
                        f"{TEACHER_ITEM_KEYS}, got {self.teacher_item_key!r}.")
    if self.teacher_path and not os.path.isdir(self.teacher_path):
      raise ConfigError(f"--teacher={self.teacher_path} is not a folder; pass "
                        "a SavedModel folder (with saved_model.pb) or a "
                        "tfdistill model folder.")
    parse_inputs(self.teacher_inputs)
    if self.temperature <= 0:
      raise ConfigError(f"temperature must be > 0, got {self.temperature}.")
    if self.chunk_batch_size < 1:
      raise ConfigError(f"--chunk_batch_size must be >= 1, got "
                        f"{self.chunk_batch_size}.")
    for name in ("teacher_learning_rate", "student_learning_rate"):
      if not getattr(self, name) > 0:
        raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}.")
    if self.student_negatives < 0:
      raise ConfigError(f"--student_negatives must be >= 0 (0: the softmax "
                        f"over the catalog), got {self.student_negatives}.")
    if self.early_stopping_patience < 0:
      raise ConfigError(f"--early_stopping_patience must be >= 0, got "
                        f"{self.early_stopping_patience}.")
    for name in ("teacher_epochs", "student_epochs", "context_length",
                 "batch_size", "top_k"):
      if getattr(self, name) < 1:
        raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}.")

  @property
  def fine_tunes(self) -> CompressConfig:
    """`compress` as the compression step runs it: its fine-tunes distil
    with `alpha` and `temperature` where `compress` leaves them None."""
    follow = {name: getattr(self, name) for name in ("alpha", "temperature")
              if getattr(self.compress, name) is None}
    return dataclasses.replace(self.compress, **follow)

  def to_json(self) -> dict:
    """The config as stored in config.json (`compress` as `fine_tunes`)."""
    return json.loads(json.dumps(dict(
        dataclasses.asdict(self), compress=self.fine_tunes.to_json())))

  def __eq__(self, other) -> bool:
    if not isinstance(other, PipelineConfig):
      return NotImplemented
    return self.to_json() == other.to_json()

  def __hash__(self) -> int:
    return hash(json.dumps(self.to_json(), sort_keys=True))

  @classmethod
  def from_json(cls, values: dict) -> "PipelineConfig":
    values = dict(values)
    source = dict(values.pop("source"))
    source["synthetic"] = SyntheticConfig(**source["synthetic"])
    student = dict(values.pop("student"))
    student["embedding"] = EmbeddingConfig(**student["embedding"])
    return cls(source=SourceConfig(**source),
               prepare=PrepareConfig(**values.pop("prepare")),
               teacher=TeacherConfig(**values.pop("teacher")),
               student=StudentConfig(**student),
               compress=CompressConfig(**values.pop("compress")),
               more_k=tuple(values.pop("more_k", ())), **values)


TINY_SYNTHETIC = SyntheticConfig(num_users=200, num_items=150,
                                 mean_interactions_per_user=15)

PRESETS = {
    # Every step at toy size: about a minute (tests, smoke checks).
    "tiny": dict(
        source=SourceConfig(synthetic=TINY_SYNTHETIC), context_length=8,
        batch_size=64,
        teacher=TeacherConfig(embedding_dim=16, num_blocks=1, num_heads=2,
                              ffn_dim=32, dropout=0.1),
        teacher_epochs=2, teacher_learning_rate=2e-3,
        student=StudentConfig(embedding_dim=8, hidden_dim=16),
        student_epochs=2, student_learning_rate=2e-3,
        compress=CompressConfig(fine_tune_epochs=1)),
    # The README's first command: the embedded synthetic default, < 10 min.
    "default": {},
    # A million-item catalog with the synthetic data's popularity skew:
    # every softmax sampled (the teacher's over the batch's items and
    # uniform ones, the student's over its label, the teacher's top-K and
    # uniform ones).
    "large": dict(
        source=SourceConfig(synthetic=SyntheticConfig(
            num_users=20_000, num_items=1_000_000,
            mean_interactions_per_user=40.0)),
        # The catalog is every generated item, most of them never seen in
        # training (the long tail of a real catalog).
        prepare=PrepareConfig(min_item_interactions=0),
        teacher=TeacherConfig(embedding_dim=64, num_blocks=2, num_heads=2,
                              ffn_dim=128, negatives="mixed",
                              num_extra_negatives=1024),
        teacher_epochs=3, student_epochs=3, student_negatives=1024,
        compress=CompressConfig(fine_tune_epochs=1)),
}


def preset(name: str, **overrides) -> PipelineConfig:
  if name not in PRESETS:
    raise ConfigError(f"unknown preset {name!r}; choose one of "
                      f"{', '.join(PRESETS)}.")
  values = dict(PRESETS[name])
  values.update(overrides)
  return PipelineConfig(**values)


#: The steps of a pipeline run in the order they read its configuration.
READ_ORDER = ("data", "teacher", "student_alone", "student_kd", "compressed",
              "export", "report")
#: The first step that reads a `PipelineConfig` field (every field not
#: named here is read from the data step on). A run directory accepts a
#: configuration that differs from its config.json only in fields that no
#: step it has started reads.
FIRST_READER = {
    **dict.fromkeys(("teacher", "teacher_epochs", "teacher_learning_rate",
                     "early_stopping_patience"), "teacher"),
    **dict.fromkeys(("student", "student_epochs", "student_learning_rate",
                     "student_negatives"), "student_alone"),
    **dict.fromkeys(("student_init", "distillation_loss", "alpha",
                     "temperature"), "student_kd"),
    "compress": "compressed",
    **dict.fromkeys(("quantize", "top_k", "min_agreement", "exclude_length",
                     "more_k", "partitions", "probe", "min_recall"),
                    "export")}


def fields_read(steps) -> set:
  """The top-level `PipelineConfig` fields that any of `steps` (names in
  READ_ORDER) reads."""
  last = max((READ_ORDER.index(step) for step in steps), default=-1)
  return {field.name for field in dataclasses.fields(PipelineConfig)
          if READ_ORDER.index(FIRST_READER.get(field.name, "data")) <= last}


def migrate_stored_config(stored: dict) -> dict:
  """A stored config.json with the fields added since it was written at
  what its run used (the default of the time: LEGACY_DEFAULTS, else today's);
  unreadable ones as stored."""
  values = {**LEGACY_DEFAULTS, **stored}
  for key, legacy in LEGACY_DEFAULTS.items():
    if isinstance(legacy, dict) and isinstance(stored.get(key), dict):
      values[key] = {**legacy, **stored[key]}
  try:
    return PipelineConfig.from_json(values).to_json()
  except (TypeError, KeyError, ValueError, ConfigError):
    return stored

"""The named benchmark configurations that `run.py` runs.

A configuration is a name and what differs from `tfdistill pipeline`'s
default configuration: the data, nested overrides of `PipelineConfig`, the
steps to run and, when it differs from another configuration only after
the teacher (or the students), the configuration whose finished steps it
starts from. Its name is its run directory (`<work_dir>/<name>/seed<N>`) and its
result files (`benchmarks/results/<name>.{json,md}`). A comparison is a named
list of configurations, reported in one table. A new one is a few lines:

    register(derive("ml1m", "ml1m_gru", "GRU students",
                    student={"encoder": "gru"},
                    steps=("student_alone", "student_kd")))
    compare("ml1m_gru_vs_mean", "GRU and mean students", "ml1m", "ml1m_gru")

and `python benchmarks/run.py ml1m_gru_vs_mean`.
"""

import dataclasses
import os
from typing import Optional

import _common  # pylint: disable=import-error

import tfdistill  # noqa: F401  (Keras 2 before TensorFlow loads)

from tfdistill.data.sources import SourceConfig
from tfdistill.pipeline.config import fields_read
from tfdistill.pipeline.config import PipelineConfig
from tfdistill.pipeline.config import preset
from tfdistill.pipeline.config import PRESETS

#: The pipeline's steps, in order; a configuration runs a prefix of them
#: or a subset (the table reports the stages finished).
STEPS = ("teacher", "student_alone", "student_kd", "compressed", "export")

DATA_ROOT = _common.REPO.parent / "shared" / "data"

#: Where each data name's files are, relative to the data root.
DATA_FILES = {"ml1m": "ml-1m-sasrec/ml-1m.txt",
              "latest-small": "movielens/ml-latest-small.zip"}

#: Published full-catalog figures on the same file and protocol, shown
#: beside tfdistill's (../shared/data/README.md).
PUBLISHED = {"ml1m": (
    {"model": "SASRec+ (full softmax, d=64, 2 blocks, L=200)",
     "hr@10": 0.3152, "ndcg@10": 0.1821,
     "source": "Klenitskiy & Vasilev, RecSys 2023"},
    {"model": "gSASRec (256 negatives, gBCE), d=128",
     "hr@10": 0.3003, "ndcg@10": 0.1726,
     "source": "Petrov & Macdonald, RecSys 2023"},
    {"model": "BERT4Rec", "hr@10": 0.2843, "ndcg@10": 0.1537,
     "source": "Klenitskiy & Vasilev, RecSys 2023"},
)}


#: The steps a configuration can start from copies of (`Benchmark.shares`),
#: and the `PipelineConfig` fields only the steps after them read: a
#: configuration sharing them with another may differ from it in these only.
SHARED_STEPS = {
    "teacher": ("data", "teacher"),
    "students": ("data", "teacher", "student_alone", "student_kd")}
READ_AFTER = {
    shares: tuple(sorted(
        {field.name for field in dataclasses.fields(PipelineConfig)}
        - fields_read(steps)))
    for shares, steps in SHARED_STEPS.items()}


@dataclasses.dataclass(frozen=True)
class Benchmark:
  """One named configuration.

  Attributes:
    name: Run directory and result file name.
    title: The heading of its result table.
    data: "synthetic" (the embedded default), "latest-small" or "ml1m".
    overrides: `PipelineConfig` fields that differ from the default preset;
      a nested configuration (teacher, student, compress, ...) as a dict of
      the fields that differ from the preset's.
    steps: The pipeline steps `run.py` runs by default.
    seeds: The seeds `run.py` runs by default.
    start_from: A configuration that differs from this one only after the
      steps `shares` names: a new run directory starts with copies of that
      configuration's finished steps (trained first when missing).
    shares: "teacher" (data and teacher) or "students" (also both
      students: for a configuration that differs only in compression or
      export).
    teachers: What the distilled student learns from instead of the run's
      own teacher: "<configuration>:<step>" names, the same seed's model of
      that step (a teacher, or a distilled student as a teaching
      assistant); several form a confidence-weighted `TeacherEnsemble`.
    notes: What the result page says under the tables.
  """
  name: str
  title: str
  data: str = "synthetic"
  overrides: dict = dataclasses.field(default_factory=dict)
  steps: tuple = STEPS
  seeds: tuple = (0, 1, 2)
  start_from: Optional[str] = None
  shares: str = "teacher"
  teachers: tuple = ()
  notes: str = ""


def _replace(value, overrides: dict):
  """`value` (a dataclass) with `overrides`, nested dicts applied to the
  nested dataclasses."""
  changes = {}
  for key, new in overrides.items():
    if not hasattr(value, key):
      raise KeyError(f"{type(value).__name__} has no field {key!r}")
    old = getattr(value, key)
    changes[key] = (_replace(old, new) if isinstance(new, dict)
                    and dataclasses.is_dataclass(old) else new)
  return dataclasses.replace(value, **changes)


def data_source(data: str, data_root=DATA_ROOT) -> SourceConfig:
  if data == "synthetic":
    return SourceConfig()
  path = os.path.join(str(data_root), DATA_FILES[data])
  if data == "ml1m":
    return SourceConfig(dataset="sequences", path=path)
  return SourceConfig(dataset="movielens/latest-small-ratings",
                      manual_dir=os.path.dirname(path),
                      data_dir=os.environ.get("TFDS_DATA_DIR") or None)


def pipeline_config(benchmark: Benchmark, seed: int,
                    data_root=DATA_ROOT) -> PipelineConfig:
  """The `PipelineConfig` of one seed of `benchmark`."""
  config = preset("default", seed=seed,
                  source=data_source(benchmark.data, data_root))
  return _replace(config, benchmark.overrides)


BENCHMARKS = {}


def register(benchmark: Benchmark) -> Benchmark:
  """Adds `benchmark`; refuses a duplicate name, an unknown reference, and
  a configuration that differs from its `start_from` in a field a shared
  step reads."""
  if benchmark.name in BENCHMARKS:
    raise ValueError(f"benchmark {benchmark.name!r} is defined twice")
  for source in benchmark.teachers:
    name, _, step = source.partition(":")
    if name not in BENCHMARKS or step not in STEPS[:3]:
      raise ValueError(f"{benchmark.name}: teacher {source!r} is not "
                       "<configuration defined above>:<teacher, "
                       "student_alone or student_kd>")
  if benchmark.start_from:
    if benchmark.start_from not in BENCHMARKS:
      raise ValueError(f"{benchmark.name}: start_from "
                       f"{benchmark.start_from!r} is not defined above it")
    parent = BENCHMARKS[benchmark.start_from]
    mine, theirs = (pipeline_config(b, 0, "/data") for b in (benchmark,
                                                              parent))
    fields = READ_AFTER[benchmark.shares]
    differ = [field.name for field in dataclasses.fields(mine)
              if field.name not in fields and getattr(mine, field.name)
              != getattr(theirs, field.name)]
    if differ:
      raise ValueError(
          f"{benchmark.name} differs from {parent.name} in "
          f"{', '.join(differ)}, which the shared steps "
          f"({', '.join(SHARED_STEPS[benchmark.shares])}) read")
  BENCHMARKS[benchmark.name] = benchmark
  return benchmark


#: Named comparisons: {name: (title, [configuration names])}; `run.py NAME`
#: runs each configuration and writes one table of them all, each stage
#: against the first configuration's on the same seeds.
COMPARISONS = {}


def compare(name: str, title: str, *names: str) -> None:
  if name in COMPARISONS or name in BENCHMARKS:
    raise ValueError(f"{name!r} is defined twice")
  for member in names:
    if member not in BENCHMARKS:
      raise ValueError(f"comparison {name}: {member!r} is not defined")
  COMPARISONS[name] = (title, names)


def _merge(base: dict, changes: dict) -> dict:
  merged = dict(base)
  for key, value in changes.items():
    merged[key] = (_merge(base[key], value) if isinstance(value, dict)
                   and isinstance(base.get(key), dict) else value)
  return merged


def derive(base: str, name: str, title: str, shares: Optional[str] = "teacher",
           **changes) -> Benchmark:
  """A configuration of `base` with `changes`: `Benchmark` fields (steps,
  seeds, teachers, notes) or `PipelineConfig` overrides (nested dicts
  merged). It starts from copies of `base`'s steps that `shares` names
  ("teacher", "students"), or from nothing when `shares` is None."""
  parent = BENCHMARKS[base]
  fields = {field.name for field in dataclasses.fields(Benchmark)}
  own = {key: changes.pop(key) for key in list(changes) if key in fields}
  if shares is not None and shares not in SHARED_STEPS:
    raise ValueError(f"{name}: shares={shares!r}; choose from "
                     f"{', '.join(SHARED_STEPS)} or None")
  start = None
  if shares is not None:
    start = base
    # A chain of shared teachers starts from its root.
    if shares == "teacher" and parent.start_from:
      start = parent.start_from
  own = {"notes": "", "teachers": (), **own}
  return dataclasses.replace(
      parent, name=name, title=title,
      overrides=_merge(parent.overrides, changes), **own,
      start_from=start, shares=shares or "teacher")


# ------------------------------------------------------------- MovieLens-1M
register(Benchmark(
    name="ml1m",
    title="MovieLens-1M (ml-1m.txt): tfdistill against the published "
    "figures (leave-last-out, full catalog, earlier items excluded)",
    data="ml1m",
    overrides=dict(
        context_length=200, chunk_batch_size=32,
        # SASRec's formulation: causal self-attention trained on every
        # position with the full softmax over the catalog, item ids only.
        # Dropout 0.1 as in the published SASRec+ configuration's code,
        # chosen on validation NDCG@10 over 0.2 (ml1m_teachers).
        teacher=dict(embedding_dim=64, num_blocks=2, num_heads=1, ffn_dim=64,
                     dropout=0.1, negatives="catalog",
                     objective="all_positions"),
        teacher_learning_rate=1e-3,
        student=dict(encoder="mean", embedding_dim=8, hidden_dim=32,
                     dropout=0.1),
        student_learning_rate=1e-2,
        # Caps meant to be out of reach: every training stops after 10
        # epochs without a better validation NDCG@10 and restores its best
        # epoch; the table reports the best and the last epoch of each.
        teacher_epochs=150, student_epochs=60, early_stopping_patience=10,
        # Chosen on validation NDCG@10 among the losses of
        # ml1m_distillation: the KL alone at temperature 0.5 (the
        # pipeline's default kl+ranking at temperature 2 is
        # ml1m_kl_ranking there).
        # The compression step's fine-tunes distil with the same.
        distillation_loss="kl", temperature=0.5,
        # QAT alone, no pruning: chosen on validation NDCG@10 over 50%
        # pruning, with one or three fine-tune epochs (ml1m_compression).
        compress=dict(fine_tune_epochs=1, target_sparsity=0.0),
        # A 3,418-item catalog scored in 8 dimensions has near-ties at the
        # tenth place that int8 rounding swaps (the gate reads 256 users);
        # the .tflite's own NDCG@10 over every test user is in the table.
        min_agreement=0.75),
    notes="Protocol differences: the published SASRec+ and BERT4Rec figures "
    "use every user's last item as test (as here); gSASRec's hold out 512 "
    "validation users."))

# ml1m's teacher at the pipeline's default dropout (0.2), the rest as
# ml1m's.
register(derive("ml1m", "ml1m_teacher_dropout02", "MovieLens-1M, the "
                "teacher with dropout 0.2", shares=None,
                teacher={"dropout": 0.2}, steps=("teacher",)))
compare("ml1m_teachers", "MovieLens-1M: the teacher's dropout", "ml1m",
        "ml1m_teacher_dropout02")

register(derive("ml1m", "ml1m_attention", "MovieLens-1M, the student's "
                "context pooled by attention queried by its last item",
                student={"encoder": "attention"},
                steps=("student_alone", "student_kd")))

# The 10% budget spent differently: a GRU encoder; or 32 dimensions for
# the 480 most frequent items (the most read and most often the target)
# and 4 projected to 32 for the rest, at the parameters of the 8-wide
# table.
register(derive("ml1m", "ml1m_gru", "MovieLens-1M, GRU students",
                student={"encoder": "gru", "hidden_dim": 16},
                steps=("student_alone", "student_kd")))
register(derive("ml1m", "ml1m_mixed", "MovieLens-1M, students with a "
                "mixed-dimension item table",
                student={"embedding_dim": 32, "embedding": {
                    "kind": "mixed", "head_items": 480, "rank": 4}},
                steps=("student_alone", "student_kd")))
# The same student distilled from the teacher's items (its head rows the
# teacher's projected items, its tail their best rank-4 form) instead of a
# random table; its student alone is ml1m_mixed's.
register(derive("ml1m_mixed", "ml1m_mixed_teacher_items", "MovieLens-1M, "
                "the mixed-dimension student's table from the teacher's "
                "items", student_init="teacher_items", steps=("student_kd",)))
# SASRec's own encoder at the student's width: one self-attention block
# over the 8-wide items and their positions, a 16-wide feed-forward layer
# (the 10% budget leaves room for no more).
register(derive("ml1m", "ml1m_self_attention", "MovieLens-1M, students "
                "with one self-attention block",
                student={"encoder": "self_attention", "hidden_dim": 16},
                # The losses its committed results were measured with.
                distillation_loss="kl+ranking", temperature=2.0,
                steps=("student_alone", "student_kd")))
# The 10% budget spent on a product-quantized table: 64-wide items (the
# teacher's width), each 4 codes into 4 codebooks of 128 16-wide codewords
# (the codes counted as parameters). The distilled student's codes are the
# teacher's items quantized; the student alone's are random.
register(derive("ml1m", "ml1m_pq", "MovieLens-1M, students with a "
                "product-quantized item table",
                student={"embedding_dim": 64, "embedding": {
                    "kind": "product_quantized", "num_codebooks": 4,
                    "codewords": 128}},
                student_init="teacher_items",
                steps=("student_alone", "student_kd")))
# SASRec's encoder in the student, which the narrow full table left no
# room for: one self-attention block over 32-wide product-quantized items
# (4 codebooks of 64 codewords) and their positions.
register(derive("ml1m_pq", "ml1m_pq_self_attention", "MovieLens-1M, "
                "self-attention students with a product-quantized item table",
                student={"encoder": "self_attention", "embedding_dim": 32,
                         "hidden_dim": 16, "embedding": {"codewords": 64}}))
compare("ml1m_tables", "MovieLens-1M: the 10% student's item table and "
        "encoder at the teacher of dropout 0.1", "ml1m", "ml1m_pq",
        "ml1m_pq_self_attention")

compare("ml1m_students", "MovieLens-1M: the 10% student's encoder and item "
        "table", "ml1m", "ml1m_mixed", "ml1m_mixed_teacher_items", "ml1m_gru",
        "ml1m_attention", "ml1m_self_attention")

# The distilled student's losses and item table on ml1m, each a student_kd
# step on ml1m's teacher, against ml1m's (the KL alone at temperature
# 0.5): the pipeline's default losses, the same with the ranking term
# centred, the KL at temperature 1 (alpha 0.5 and 0.1) and 0.25,
# latest-small's losses (kl+hint) and a random item table.
register(derive("ml1m", "ml1m_kl_ranking", "MovieLens-1M, distilled with "
                "the pipeline's default kl+ranking at temperature 2",
                distillation_loss="kl+ranking", temperature=2.0,
                steps=("student_kd",)))
# The ranking term's scores measured from the student's mean over the
# catalog: the uncentred term falls with a common offset of every score,
# which the softmax losses beside it do not see.
register(derive("ml1m", "ml1m_ranking_centered", "MovieLens-1M, distilled "
                "with kl+ranking_centered", temperature=2.0,
                distillation_loss="kl+ranking_centered",
                steps=("student_kd",)))
# These two run no compression step; their compress settings are those of
# the run directories they were measured in.
register(derive("ml1m", "ml1m_kl_t1", "MovieLens-1M, distilled with the KL "
                "alone at temperature 1", temperature=1.0,
                compress={"temperature": 2.0}, steps=("student_kd",)))
register(derive("ml1m", "ml1m_kl_t1_alpha01", "MovieLens-1M, distilled "
                "with the KL alone at temperature 1, alpha 0.1", alpha=0.1,
                temperature=1.0, compress={"temperature": 2.0, "alpha": 0.5},
                steps=("student_kd",)))
register(derive("ml1m", "ml1m_kl_t025", "MovieLens-1M, distilled with the "
                "KL alone at temperature 0.25", temperature=0.25,
                steps=("student_kd",)))
register(derive("ml1m", "ml1m_kl_hint", "MovieLens-1M, distilled with "
                "kl+hint", distillation_loss="kl+hint", steps=("student_kd",)))
register(derive("ml1m", "ml1m_random_init", "MovieLens-1M, the distilled "
                "student's item table random", student_init="random",
                steps=("student_kd",)))
compare("ml1m_distillation", "MovieLens-1M: the distilled student's losses "
        "and item table", "ml1m", "ml1m_kl_ranking", "ml1m_ranking_centered",
        "ml1m_kl_t1", "ml1m_kl_t1_alpha01", "ml1m_kl_t025",
        "ml1m_random_init")

# The compression step on ml1m's distilled student (QAT alone, one
# fine-tune epoch) against 50% pruning (Fisher saliency for the item table)
# before QAT, with one or three fine-tune epochs per step.
register(derive("ml1m", "ml1m_pruned", "MovieLens-1M compressed: 50% "
                "pruning, then QAT", shares="students",
                compress={"target_sparsity": 0.5}, min_agreement=0.8,
                steps=("compressed", "export")))
register(derive("ml1m", "ml1m_fisher_3_epochs", "MovieLens-1M compressed: "
                "50% pruning, then QAT, three fine-tune epochs per step",
                shares="students",
                compress={"target_sparsity": 0.5, "fine_tune_epochs": 3},
                min_agreement=0.8, steps=("compressed", "export")))
compare("ml1m_compression", "MovieLens-1M: pruning before QAT against QAT "
        "alone, on the same distilled student", "ml1m", "ml1m_pruned",
        "ml1m_fisher_3_epochs")

register(derive("ml1m", "ml1m_quick", "MovieLens-1M smoke run (2 teacher "
                "epochs, 1 student epoch)", shares=None,
                teacher_epochs=2, student_epochs=1, seeds=(0,)))

# --------------------------------------------------- MovieLens latest-small
register(Benchmark(
    name="latest_small",
    title="MovieLens latest-small: the pipeline's student under early "
    "stopping (leave-last-out, full catalog, earlier items excluded)",
    data="latest-small",
    overrides=dict(
        # Dropout 0.2: latest-small's teachers have not been measured at
        # the pipeline's default (0.1).
        teacher=dict(embedding_dim=128, num_heads=4, ffn_dim=256,
                     dropout=0.2, objective="last"),
        teacher_epochs=10, teacher_learning_rate=2e-3,
        student_epochs=30, student_learning_rate=2e-3,
        student_init="teacher_items", distillation_loss="kl+hint",
        # latest-small's 610 validation users make the validation curve
        # noisy: a short patience stops a student that is still improving.
        early_stopping_patience=10,
        compress=dict(fine_tune_epochs=2, table_pruning="fisher"),
        # The measured agreement and the .tflite's own NDCG@10 are in the
        # table; the gate only stops an export that is broken.
        min_agreement=0.85),
    notes="Teacher d=128, 4 heads; students from the teacher's item table, "
    "distilled with kl+hint; every training under early stopping."))

register(derive("latest_small", "latest_small_all_positions",
                "MovieLens latest-small, a teacher trained on every "
                "position", shares=None, teacher={"objective": "all_positions"},
                # The student alone does not read the teacher: latest_small's.
                steps=("teacher", "student_kd")))
compare("latest_small_teacher_objective", "MovieLens latest-small: the "
        "teacher trained on one target per window or every position",
        "latest_small", "latest_small_all_positions")
for _encoder in ("gru", "attention", "self_attention"):
  register(derive("latest_small", f"latest_small_{_encoder}",
                  f"MovieLens latest-small, {_encoder} students",
                  student={"encoder": _encoder},
                  steps=("student_alone", "student_kd")))
# One distilled student per loss alone, beside the configuration's kl+hint.
_LOSSES = ("kl", "mse", "listwise", "ranking", "relaxed_ranking",
           "contrastive", "hint")
for _loss in _LOSSES:
  register(derive("latest_small", f"latest_small_{_loss}",
                  f"MovieLens latest-small, distilled with {_loss} alone",
                  distillation_loss=_loss, steps=("student_kd",)))
compare("latest_small_losses", "MovieLens latest-small: each distillation "
        "loss alone", "latest_small",
        *(f"latest_small_{loss}" for loss in _LOSSES))
compare("latest_small_encoders", "MovieLens latest-small: the student's "
        "context encoder", "latest_small", "latest_small_gru",
        "latest_small_attention", "latest_small_self_attention")
register(derive("latest_small", "latest_small_random_init", "MovieLens "
                "latest-small, the distilled student's item table random",
                student_init="random", steps=("student_kd",)))
compare("latest_small_student_init", "MovieLens latest-small: the distilled "
        "student's item table from the teacher's items or random",
        "latest_small", "latest_small_random_init")

# Each compression step against a control, on the same distilled students:
# latest_small compresses with 50% pruning (item table by Fisher saliency),
# then pruning-preserving QAT, two fine-tune epochs each.
_COMPRESSIONS = {
    "qat_only": ("QAT alone, no pruning (the control)",
                 dict(target_sparsity=0.0)),
    "magnitude": ("the item table pruned gradually by magnitude",
                  dict(table_pruning="magnitude")),
    "fisher_1_epoch": ("one fine-tune epoch per step",
                       dict(fine_tune_epochs=1)),
    "fisher_4_epochs": ("four fine-tune epochs per step",
                        dict(fine_tune_epochs=4)),
    "hard_labels": ("fine-tuned on the hard labels alone",
                    dict(alpha=1.0)),
}
for _name, (_title, _compress) in _COMPRESSIONS.items():
  register(derive("latest_small", f"latest_small_{_name}",
                  f"MovieLens latest-small compressed: {_title}",
                  shares="students", compress=_compress,
                  steps=("compressed", "export")))
compare("latest_small_compression", "MovieLens latest-small: each "
        "compression step against a control, on the same distilled "
        "students", "latest_small",
        *(f"latest_small_{name}" for name in _COMPRESSIONS))

# Distillation strategies beyond one teacher: an ensemble of the teacher
# and a one-block teacher, and a teaching assistant (a student four times
# as wide, distilled from the teacher) between teacher and student. Their
# students' item tables start random (the teacher's items transfer from one
# retrieval teacher only), as latest_small_random_init's do.
register(derive("latest_small", "latest_small_b1", "MovieLens "
                "latest-small, a one-block teacher", shares=None,
                teacher={"num_blocks": 1}, steps=("teacher",)))
register(derive("latest_small", "latest_small_multi_teacher",
                "MovieLens latest-small, the student distilled from two "
                "teachers (confidence-weighted)", steps=("student_kd",),
                student_init="auto",
                teachers=("latest_small:teacher", "latest_small_b1:teacher")))
register(derive("latest_small", "latest_small_assistant", "MovieLens "
                "latest-small, the teaching assistant (a 4x wider student)",
                student={"embedding_dim": 64, "hidden_dim": 256},
                steps=("student_kd",)))
register(derive("latest_small", "latest_small_via_assistant",
                "MovieLens latest-small, the student distilled from the "
                "teaching assistant", steps=("student_kd",),
                student_init="auto",
                teachers=("latest_small_assistant:student_kd",)))
compare("latest_small_strategies", "MovieLens latest-small: one teacher, "
        "two teachers, a teaching assistant", "latest_small",
        "latest_small_random_init", "latest_small_multi_teacher",
        "latest_small_via_assistant")

# ------------------------------------------------ the embedded synthetic data
register(Benchmark(
    name="synthetic_default",
    title="The embedded synthetic data, `tfdistill pipeline`'s defaults"))

register(derive("synthetic_default", "synthetic_last_target",
                "The embedded synthetic data, a teacher trained on one "
                "target per context window", shares=None,
                teacher={"objective": "last"}))
compare("synthetic_teacher_objective", "The default pipeline's teacher: "
        "every position or one target per window", "synthetic_default",
        "synthetic_last_target")
register(derive("synthetic_default", "synthetic_teacher_dropout02",
                "The embedded synthetic data, the teacher with dropout 0.2",
                shares=None, teacher={"dropout": 0.2}, steps=("teacher",)))
compare("synthetic_teacher_dropout", "The default pipeline's teacher: "
        "dropout 0.1 or 0.2", "synthetic_default",
        "synthetic_teacher_dropout02")

# ------------------------------------------------------- synthetic smoke runs
register(Benchmark(
    name="synthetic_tiny",
    title="Synthetic smoke run (the tiny preset: every step in about a "
    "minute)",
    overrides={key: (dataclasses.asdict(value) if dataclasses.is_dataclass(
        value) else value) for key, value in PRESETS["tiny"].items()},
    seeds=(0,)))

register(derive("synthetic_tiny", "synthetic_tiny_gru", "Synthetic smoke "
                "run, GRU students on the tiny run's teacher",
                student={"encoder": "gru"},
                steps=("student_alone", "student_kd")))
compare("synthetic_tiny_encoders", "Synthetic smoke run: mean and GRU "
        "students", "synthetic_tiny", "synthetic_tiny_gru")

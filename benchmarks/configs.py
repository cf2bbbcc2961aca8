"""The named benchmark configurations that `run.py` runs.

A configuration is a name and what differs from `tfdistill pipeline`'s
default configuration: the data, nested overrides of `PipelineConfig`, the
steps to run and, when it differs from another configuration only after
the teacher, the configuration whose data and trained teacher it starts
from. Its name is its run directory (`<work_dir>/<name>/seed<N>`) and its
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
    teacher_from: A configuration that differs from this one only after
      the teacher: a new run directory starts with copies of its data and
      teacher steps (trained first when missing).
    notes: What the result page says under the tables.
  """
  name: str
  title: str
  data: str = "synthetic"
  overrides: dict = dataclasses.field(default_factory=dict)
  steps: tuple = STEPS
  seeds: tuple = (0, 1, 2)
  teacher_from: Optional[str] = None
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
  if benchmark.name in BENCHMARKS:
    raise ValueError(f"benchmark {benchmark.name!r} is defined twice")
  if benchmark.teacher_from and benchmark.teacher_from not in BENCHMARKS:
    raise ValueError(f"{benchmark.name}: teacher_from "
                     f"{benchmark.teacher_from!r} is not defined above it")
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


def derive(base: str, name: str, title: str, share_teacher: bool = True,
           **changes) -> Benchmark:
  """A configuration of `base` with `changes`: `Benchmark` fields (steps,
  seeds, notes) or `PipelineConfig` overrides (nested dicts merged). It
  starts from `base`'s teacher unless `share_teacher` is False."""
  parent = BENCHMARKS[base]
  fields = {field.name for field in dataclasses.fields(Benchmark)}
  own = {key: changes.pop(key) for key in list(changes) if key in fields}
  return dataclasses.replace(
      parent, name=name, title=title, notes="",
      overrides=_merge(parent.overrides, changes), **own,
      teacher_from=(parent.teacher_from or base) if share_teacher else None)


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
        teacher=dict(embedding_dim=64, num_blocks=2, num_heads=1, ffn_dim=64,
                     dropout=0.2, negatives="catalog",
                     objective="all_positions"),
        teacher_epochs=80, teacher_learning_rate=1e-3,
        student=dict(encoder="mean", embedding_dim=8, hidden_dim=32,
                     dropout=0.1),
        student_epochs=20, student_learning_rate=1e-2,
        early_stopping_patience=10,
        compress=dict(fine_tune_epochs=1),
        # A 3,418-item catalog scored in 8 dimensions has near-ties at the
        # tenth place that int8 rounding swaps; the measured agreement and
        # the .tflite's own NDCG@10 are in the table.
        min_agreement=0.85),
    notes="Protocol differences: the published SASRec+ and BERT4Rec figures "
    "use every user's last item as test (as here); gSASRec's hold out 512 "
    "validation users."))

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
compare("ml1m_students", "MovieLens-1M: the 10% student's encoder and item "
        "table", "ml1m", "ml1m_mixed", "ml1m_gru", "ml1m_attention")

register(derive("ml1m", "ml1m_quick", "MovieLens-1M smoke run (2 teacher "
                "epochs, 1 student epoch)", share_teacher=False,
                teacher_epochs=2, student_epochs=1, seeds=(0,)))

# --------------------------------------------------- MovieLens latest-small
register(Benchmark(
    name="latest_small",
    title="MovieLens latest-small: the pipeline's student under early "
    "stopping (leave-last-out, full catalog, earlier items excluded)",
    data="latest-small",
    overrides=dict(
        teacher=dict(embedding_dim=128, num_heads=4, ffn_dim=256),
        teacher_epochs=10, teacher_learning_rate=2e-3,
        student_epochs=30, student_learning_rate=2e-3,
        student_init="teacher_items", distillation_loss="kl+hint",
        # latest-small's 610 validation users make the validation curve
        # noisy: a short patience stops a student that is still improving.
        early_stopping_patience=10,
        compress=dict(fine_tune_epochs=2, table_pruning="fisher")),
    # The question is the distillation gain under the same early stopping;
    # compression has its own benchmark.
    steps=("teacher", "student_alone", "student_kd"),
    notes="The headline configuration of quality.py (teacher d=128, 4 "
    "heads; students from the teacher's item table, kl+hint), with every "
    "training under early stopping."))

for _encoder in ("gru", "attention"):
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
        "latest_small_attention")

# ------------------------------------------------ the embedded synthetic data
register(Benchmark(
    name="synthetic_default",
    title="The embedded synthetic data, `tfdistill pipeline`'s defaults"))

register(derive("synthetic_default", "synthetic_all_positions",
                "The embedded synthetic data, a teacher trained on every "
                "position (SASRec's objective)", share_teacher=False,
                teacher={"objective": "all_positions"}))
compare("synthetic_teacher_objective", "The default pipeline's teacher: "
        "one target per window or every position", "synthetic_default",
        "synthetic_all_positions")

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

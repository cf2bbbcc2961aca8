"""Which compression steps to run (`CompressConfig`).

A plain dataclass that checks its values and imports no TensorFlow, so that
the command line's flags are checked before TensorFlow loads
(`tfdistill.compress.compress_student` does the work).
"""

import dataclasses
from typing import Optional

from tfdistill.errors import ConfigError
from tfdistill.export.config import QUANTIZATION_MODES

#: How item tables are pruned (`CompressConfig.table_pruning`).
TABLE_PRUNING = ("magnitude", "fisher")


def check_table_pruning(value: str) -> str:
  if value not in TABLE_PRUNING:
    raise ConfigError(f"unknown table_pruning {value!r}; choose one of "
                      f"{', '.join(TABLE_PRUNING)}.")
  return value


def check_sparsity(value: float, what: str = "target sparsity") -> float:
  if not 0.0 <= value < 1.0:
    raise ConfigError(f"{what} must be in [0, 1), got {value}.")
  return float(value)


@dataclasses.dataclass(frozen=True)
class CompressConfig:
  """Which compression steps to run.

  Attributes:
    low_rank_energy: If > 0, factorize Dense kernels and Embedding tables
      keeping this fraction of spectral energy, then fine-tune.
    target_sparsity: If > 0, prune to this sparsity (tables as
      `table_pruning` says, other layers by magnitude).
    schedule, structured, layer_sparsity: See `PruningConfig`.
    table_pruning: How item tables are pruned: "fisher" (once, by
      saliency w^2 * F estimated on the training data, then held while the
      other layers are pruned gradually) or "magnitude" (TF-MOT's gradual
      magnitude pruning, like the other layers). See `PruningConfig`.
    clusters: If > 0, cluster Dense kernels to this many values.
    qat: Quantization-aware training (pruning-preserving after pruning).
    quantize: TFLite post-training mode measured in the report.
    fine_tune_epochs: Epochs after each step (pruning reaches its target at
      the end of these epochs).
    learning_rate: Adam learning rate of the fine-tunes.
    alpha, temperature: Distiller settings of the fine-tunes when a teacher
      is given. None: in a pipeline, the run's own `alpha` and
      `temperature` (`PipelineConfig.fine_tunes`), so the fine-tunes distil
      as its distilled student did; on its own, alpha 0.5 and the
      distillation losses' own temperatures.
  """
  low_rank_energy: float = 0.0
  target_sparsity: float = 0.5
  schedule: str = "polynomial"
  structured: str = ""
  layer_sparsity: dict = dataclasses.field(default_factory=dict)
  table_pruning: str = "fisher"
  clusters: int = 0
  qat: bool = True
  quantize: str = "int8"
  fine_tune_epochs: int = 2
  learning_rate: float = 1e-3
  alpha: Optional[float] = None
  temperature: Optional[float] = None

  def __post_init__(self):
    check_sparsity(self.target_sparsity)
    check_table_pruning(self.table_pruning)
    if not 0.0 <= self.low_rank_energy <= 1.0:
      raise ConfigError(f"low_rank_energy must be in [0, 1], got "
                        f"{self.low_rank_energy}.")
    if self.quantize not in QUANTIZATION_MODES:
      raise ConfigError(f"unknown quantization {self.quantize!r}; choose one "
                        f"of {', '.join(QUANTIZATION_MODES)}.")
    if self.fine_tune_epochs < 1:
      raise ConfigError("fine_tune_epochs must be >= 1.")
    if self.alpha is not None and not 0.0 <= self.alpha <= 1.0:
      raise ConfigError(f"compress alpha must be in [0, 1], got "
                        f"{self.alpha}.")
    if self.temperature is not None and not self.temperature > 0:
      raise ConfigError(f"compress temperature must be > 0, got "
                        f"{self.temperature}.")

  def to_json(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, values: dict) -> "CompressConfig":
    return cls(**values)

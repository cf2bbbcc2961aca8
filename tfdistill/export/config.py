"""The export's configuration: formats, quantization, top-K and approximate
search.

Plain dataclasses that check their values and import no TensorFlow, so that
the command line's flags are checked before TensorFlow loads
(`tfdistill.export.export_student` does the work).
"""

import dataclasses
import math
from typing import Optional

from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.errors import ExportError

#: TFLite post-training quantization modes.
QUANTIZATION_MODES = ("none", "float16", "dynamic", "int8")
#: Automatic partition count: this many times the square root of the
#: catalog size.
PARTITIONS_PER_SQRT = 4
#: Least number of partitions probed by default.
MIN_PROBE = 8


@dataclasses.dataclass(frozen=True)
class PartitionConfig:
  """Approximate top-K inside the exported model.

  Attributes:
    partitions: Number of partitions P (0: exact search over the catalog;
      -1: `PARTITIONS_PER_SQRT` times the square root of the catalog size).
      The index has about this many (a cluster's last block may be short).
    probe: Partitions whose items are scored per request (default: a
      twentieth of the partitions, at least `MIN_PROBE`; `probe` equal to
      `partitions` scores every partition, i.e. exact search).
    seed: Seed of the k-means initialisation.
  """
  partitions: int = 0
  probe: int = 0
  seed: int = 0

  @property
  def enabled(self) -> bool:
    return self.partitions != 0

  def resolved(self, num_items: int) -> "PartitionConfig":
    """The configuration with automatic values filled in for a catalog."""
    real = num_items - NUM_RESERVED
    partitions = (min(real, max(2, round(PARTITIONS_PER_SQRT * math.sqrt(
        real)))) if self.partitions == -1 else self.partitions)
    if not 2 <= partitions <= real:
      raise ExportError(f"--partitions={self.partitions} must be 0 (exact), "
                        f"-1 (automatic) or in [2, {real}] for a catalog of "
                        f"{real} items.")
    probe = self.probe or min(partitions, max(MIN_PROBE,
                                               math.ceil(partitions / 20)))
    if not 1 <= probe <= partitions:
      raise ExportError(f"--probe={self.probe} must be in [1, {partitions}] "
                        f"(the number of partitions).")
    return dataclasses.replace(self, partitions=partitions, probe=probe)


@dataclasses.dataclass(frozen=True)
class ExportConfig:
  """What to export and how.

  Attributes:
    tflite, saved_model: Which formats (at least one).
    quantize: TFLite mode: "none", "float16", "dynamic" or "int8".
    top_k: Items returned per request.
    model_name: TF Serving model name (default: the model's name).
    version: TF Serving version (default: next free number).
    overwrite: Replace an existing tflite/ folder or serving version.
    min_agreement: Parity threshold (default per mode, see above).
    latency_runs: Requests timed per format (0 skips latency).
    exclude_length: E of the TFLite "recommend_excluding" signature (item
      ids to leave out per request; 0: no such signature). The SavedModel's
      "recommend" signature takes any number.
    more_k: Further K offered by the TFLite model, one "recommend_k{K}"
      signature each (the SavedModel's "recommend" takes k per request).
    partitions: Approximate top-K: number of catalog partitions (0: exact
      search, -1: automatic), see `PartitionConfig`.
    probe: Partitions scored per request (0: automatic).
    min_recall: Least recall@K of the approximate top-K against exact
      search on the held-out contexts.
  """
  tflite: bool = True
  saved_model: bool = False
  quantize: str = "none"
  top_k: int = 10
  model_name: str = ""
  version: int = 0
  overwrite: bool = False
  min_agreement: Optional[float] = None
  latency_runs: int = 200
  exclude_length: int = 0
  more_k: tuple = ()
  partitions: int = 0
  probe: int = 0
  min_recall: float = 0.9

  def __post_init__(self):
    if not (self.tflite or self.saved_model):
      raise ExportError("nothing to export: ask for --tflite and/or "
                        "--saved_model.")
    if self.quantize not in QUANTIZATION_MODES:
      raise ExportError(f"unknown quantization {self.quantize!r}; choose one "
                        f"of {', '.join(QUANTIZATION_MODES)}.")
    if self.top_k < 1:
      raise ExportError(f"--top_k must be >= 1, got {self.top_k}.")
    if self.version < 0:
      raise ExportError(f"--version must be a positive integer (TF Serving "
                        f"only loads numeric version folders >= 1), got "
                        f"{self.version}; leave it out for the next free "
                        "one.")
    if self.min_agreement is not None and not 0 <= self.min_agreement <= 1:
      raise ExportError(f"min_agreement must be in [0, 1], got "
                        f"{self.min_agreement}.")
    if not 0 <= self.min_recall <= 1:
      raise ExportError(f"--min_recall must be in [0, 1], got "
                        f"{self.min_recall}.")
    if self.exclude_length < 0:
      raise ExportError(f"--exclude_length must be >= 0, got "
                        f"{self.exclude_length}.")
    if any(k < 1 for k in self.more_k) or self.top_k in self.more_k:
      raise ExportError(f"--more_k={','.join(map(str, self.more_k))} must "
                        f"list K >= 1 other than --top_k={self.top_k}.")
    if self.partitions < -1 or self.partitions == 1 or self.probe < 0:
      raise ExportError(f"--partitions={self.partitions} must be 0 (exact "
                        f"search), -1 (automatic) or at least 2, and --probe "
                        f"(={self.probe}) >= 0.")

  @property
  def partition_config(self) -> PartitionConfig:
    return PartitionConfig(self.partitions, self.probe)

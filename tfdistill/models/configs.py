"""The configurations of tfdistill's models: teacher, student and item table.

Plain dataclasses that check their values and import no TensorFlow, so that
a configuration (and the command line's flags) can be checked before
TensorFlow loads. The models are built from them in `tfdistill.models`.
"""

import dataclasses

from tfdistill.errors import ConfigError

#: What the sequential teacher's softmax runs over.
NEGATIVES = ("in_batch", "mixed", "catalog")
#: How the sequential teacher is trained: "last" (one target per example,
#: the item after its context window) or "all_positions" (causal attention,
#: a target at every position of a chunk of a user's sequence).
OBJECTIVES = ("last", "all_positions")

#: The kinds of item table (`EmbeddingConfig.kind`).
EMBEDDING_KINDS = ("full", "low_rank", "hash", "quotient_remainder", "mixed",
                   "product_quantized")
#: The sequential student's context encoders (`StudentConfig.encoder`).
ENCODERS = ("mean", "attention", "cnn", "gru", "self_attention")


@dataclasses.dataclass(frozen=True)
class EmbeddingConfig:
  """Which item table a student uses.

  Attributes:
    kind: "full", "low_rank", "hash", "quotient_remainder", "mixed" or
      "product_quantized".
    rank: Inner rank of "low_rank"; width of the projected tail rows of
      "mixed".
    num_buckets: Buckets of "hash" (default: a quarter of the catalog).
    head_items: The items of "mixed" with full-width rows: the first ones of
      the vocabulary, the most frequent (default: an eighth of the catalog).
    num_codebooks: Codebooks of "product_quantized" (the slices of an item
      vector; they must divide the student's width).
    codewords: Codewords per codebook of "product_quantized".
  """
  kind: str = "full"
  rank: int = 8
  num_buckets: int = 0
  head_items: int = 0
  num_codebooks: int = 4
  codewords: int = 128

  def __post_init__(self):
    if self.kind not in EMBEDDING_KINDS:
      raise ConfigError(f"unknown embedding kind {self.kind!r}; choose one of "
                        f"{EMBEDDING_KINDS}.")
    if self.num_codebooks < 1 or self.codewords < 2:
      raise ConfigError(f"product_quantized needs num_codebooks >= 1 and "
                        f"codewords >= 2 (--student_table_codebooks, "
                        f"--student_table_codewords), got "
                        f"{self.num_codebooks} and {self.codewords}.")
    if self.rank < 1:
      raise ConfigError(f"the item table's rank must be >= 1 "
                        f"(--student_table_rank), got {self.rank}.")
    if self.num_buckets < 0 or self.head_items < 0:
      raise ConfigError(f"num_buckets and head_items must be >= 0, 0 for "
                        f"the default (--student_table_buckets, "
                        f"--student_table_head_items), got "
                        f"{self.num_buckets} and {self.head_items}.")


@dataclasses.dataclass(frozen=True)
class StudentConfig:
  """Architecture of a sequential student.

  Attributes:
    encoder: "mean" (position-weighted bag of items), "attention" (the
      items pooled by attention queried by the most recent one, beside that
      item), "cnn" (1-D convolution over the sequence), "gru" (recurrent) or
      "self_attention" (one pre-norm self-attention block over the items
      and their positions, SASRec's encoder, read at the most recent item;
      its feed-forward layer is `hidden_dim` wide).
    embedding_dim: Size of item and query embeddings.
    hidden_dim: Size of the encoder's hidden layer.
    embedding: The item table (full, low-rank, hashing, quotient-remainder).
    dropout: Dropout before the query projection.
  """
  encoder: str = "mean"
  embedding_dim: int = 32
  hidden_dim: int = 64
  embedding: EmbeddingConfig = EmbeddingConfig()
  dropout: float = 0.1

  def __post_init__(self):
    if self.encoder not in ENCODERS:
      raise ConfigError(f"unknown student encoder {self.encoder!r}; choose one "
                        f"of {ENCODERS}.")
    if self.embedding_dim < 1 or self.hidden_dim < 1:
      raise ConfigError("embedding_dim and hidden_dim must be positive.")
    if not 0.0 <= self.dropout < 1.0:
      raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}.")
    if (self.embedding.kind in ("low_rank", "mixed") and
        self.embedding.rank > self.embedding_dim):
      raise ConfigError(f"{self.embedding.kind}: the table's rank "
                        f"({self.embedding.rank}, --student_table_rank) must "
                        f"be at most the student's embedding_dim "
                        f"({self.embedding_dim}, --student_dim).")
    if (self.embedding.kind == "product_quantized" and
        self.embedding_dim % self.embedding.num_codebooks):
      raise ConfigError(f"product_quantized: num_codebooks "
                        f"({self.embedding.num_codebooks}, "
                        f"--student_table_codebooks) must divide the "
                        f"student's embedding_dim ({self.embedding_dim}, "
                        f"--student_dim).")

  def to_json(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, values: dict) -> "StudentConfig":
    values = dict(values)
    values["embedding"] = EmbeddingConfig(**values.get("embedding", {}))
    return cls(**values)


@dataclasses.dataclass(frozen=True)
class TeacherConfig:
  """Size and training objective of the sequential retrieval teacher.

  Attributes:
    embedding_dim: Item and query embedding size.
    num_blocks, num_heads, ffn_dim, dropout: Transformer size.
    negatives: "in_batch", "mixed" or "catalog" (see `RetrievalTeacher`).
    num_extra_negatives: Uniform negatives per batch for "mixed".
    sampling_bias_correction: logQ correction for sampled negatives.
    temperature: Softmax temperature of the retrieval task.
    objective: "last" (one target per context window) or "all_positions"
      (causal attention and a target at every position of a sequence
      chunk: a pass over a user's sequence trains all of its targets).
  """
  embedding_dim: int = 128
  num_blocks: int = 2
  num_heads: int = 4
  ffn_dim: int = 256
  dropout: float = 0.2
  negatives: str = "catalog"
  num_extra_negatives: int = 256
  sampling_bias_correction: bool = True
  temperature: float = 1.0
  objective: str = "last"

  def __post_init__(self):
    if self.objective not in OBJECTIVES:
      raise ConfigError(f"unknown teacher objective {self.objective!r} "
                        f"(--teacher_objective); choose one of "
                        f"{OBJECTIVES}.")
    if self.num_blocks < 1 or self.num_heads < 1:
      raise ConfigError(
          f"the teacher needs at least one block and one head "
          f"(--teacher_blocks), got num_blocks={self.num_blocks}, "
          f"num_heads={self.num_heads}.")
    if not 0.0 <= self.dropout < 1.0:
      raise ConfigError(f"the teacher's dropout must be in [0, 1) "
                        f"(--teacher_dropout), got {self.dropout}.")
    if self.negatives not in NEGATIVES:
      raise ConfigError(f"unknown negatives {self.negatives!r}; choose one of "
                        f"{NEGATIVES}.")
    if self.num_extra_negatives < 0:
      raise ConfigError(f"--teacher_extra_negatives must be >= 0, got "
                        f"{self.num_extra_negatives}.")
    if self.embedding_dim % self.num_heads:
      raise ConfigError(f"embedding_dim {self.embedding_dim} must be divisible "
                        f"by num_heads {self.num_heads}.")

"""Low-rank factorization of trained Dense kernels and Embedding tables.

A matrix W (m x n) is replaced by A (m x r) @ B (r x n) from its truncated
SVD: W = U S V^T, A = U_r S_r^(1/2), B = S_r^(1/2) V_r^T. The squared
Frobenius error is exactly the sum of the discarded squared singular values.
The rank comes from the retained energy (sum of kept s^2 / sum of all s^2)
or from a size target; a short fine-tune afterwards recovers quality.
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

from tfdistill.compress.pruning import _check_student
from tfdistill.errors import ConfigError
from tfdistill.models.embeddings import LowRankEmbedding
from tfdistill.models.registry import register


def truncated_svd(matrix: np.ndarray, rank: int):
  """(A, B, squared_error) with A @ B the best rank-`rank` approximation."""
  matrix = np.asarray(matrix, np.float64)
  if not 1 <= rank <= min(matrix.shape):
    raise ConfigError(f"rank {rank} is not in [1, {min(matrix.shape)}] for a "
                      f"{matrix.shape[0]}x{matrix.shape[1]} matrix.")
  u, s, vt = np.linalg.svd(matrix, full_matrices=False)
  root = np.sqrt(s[:rank])
  a = u[:, :rank] * root
  b = root[:, None] * vt[:rank]
  return (a.astype(np.float32), b.astype(np.float32),
          float(np.sum(s[rank:] ** 2)))


def choose_rank(singular_values: np.ndarray, shape: Sequence[int],
                energy: Optional[float] = None,
                size_fraction: Optional[float] = None) -> int:
  """Smallest rank keeping `energy`, or largest within `size_fraction`.

  Args:
    singular_values: Descending singular values.
    shape: (m, n) of the matrix.
    energy: Fraction of sum(s^2) to keep, in (0, 1].
    size_fraction: Parameters of the factors, r (m + n), as a fraction of m n.
  """
  m, n = shape
  full = min(m, n)
  if (energy is None) == (size_fraction is None):
    raise ConfigError("give exactly one of energy and size_fraction.")
  if energy is not None:
    if not 0.0 < energy <= 1.0:
      raise ConfigError(f"energy must be in (0, 1], got {energy}.")
    power = np.asarray(singular_values, np.float64) ** 2
    kept = np.cumsum(power) / power.sum()
    return int(min(full, np.searchsorted(kept, energy - 1e-12) + 1))
  if not 0.0 < size_fraction <= 1.0:
    raise ConfigError(f"size_fraction must be in (0, 1], got "
                      f"{size_fraction}.")
  return int(max(1, min(full, np.floor(size_fraction * m * n / (m + n)))))


@register
class FactorizedDense(tf_keras.layers.Layer,
                      tfmot.sparsity.keras.PrunableLayer):
  """Dense with a rank-r kernel: activation(x @ A @ B + bias)."""

  def __init__(self, units: int, rank: int, activation=None,
               use_bias: bool = True, **kwargs):
    super().__init__(**kwargs)
    self.units, self.rank, self.use_bias = units, rank, use_bias
    self.activation = tf_keras.activations.get(activation)

  def build(self, input_shape):
    self.kernel_a = self.add_weight(name="kernel_a",
                                    shape=(input_shape[-1], self.rank))
    self.kernel_b = self.add_weight(name="kernel_b",
                                    shape=(self.rank, self.units))
    self.bias = self.add_weight(name="bias", shape=(self.units,),
                                initializer="zeros") if self.use_bias else None
    super().build(input_shape)

  def call(self, inputs):
    out = tf.matmul(tf.matmul(inputs, self.kernel_a), self.kernel_b)
    if self.bias is not None:
      out = out + self.bias
    return self.activation(out)

  def get_prunable_weights(self):
    return [self.kernel_a, self.kernel_b]

  def get_config(self):
    return dict(super().get_config(), units=self.units, rank=self.rank,
                activation=tf_keras.activations.serialize(self.activation),
                use_bias=self.use_bias)


def factorize_student(model: tf_keras.Model, energy: Optional[float] = 0.9,
                      size_fraction: Optional[float] = None,
                      rank: Optional[int] = None,
                      layers: Optional[Sequence[str]] = None):
  """Replaces Dense kernels and Embedding tables by truncated SVD factors.

  A layer is factorized only if that saves parameters. Exactly one of
  `energy`, `size_fraction` and `rank` chooses each layer's rank.

  Args:
    model: A trained functional student.
    layers: Names of layers to consider (default: every Dense/Embedding).

  Returns:
    (new model, [per-layer dict: layer, shape, rank, energy, squared_error,
    parameters before and after]).
  """
  _check_student(model)
  if rank is not None:
    energy = size_fraction = None
  elif size_fraction is not None:
    energy = None
  plans, report = {}, []
  for layer in model.layers:
    if layers is not None and layer.name not in layers:
      continue
    if isinstance(layer, tf_keras.layers.Embedding):
      matrix = layer.embeddings.numpy()
    elif isinstance(layer, tf_keras.layers.Dense):
      matrix = layer.kernel.numpy()
    else:
      if layers is not None:
        raise ConfigError(f"layer {layer.name!r} ({type(layer).__name__}) "
                          "is not a Dense or Embedding layer.")
      continue
    s = np.linalg.svd(matrix, compute_uv=False)
    r = rank if rank is not None else choose_rank(
        s, matrix.shape, energy=energy, size_fraction=size_fraction)
    if r > min(matrix.shape):
      raise ConfigError(f"rank {r} is larger than layer {layer.name!r}'s "
                        f"{matrix.shape[0]}x{matrix.shape[1]} matrix allows "
                        f"({min(matrix.shape)}).")
    if r * sum(matrix.shape) >= matrix.size:
      continue  # no saving
    a, b, error = truncated_svd(matrix, r)
    plans[layer.name] = (r, a, b)
    report.append({"layer": layer.name, "shape": list(matrix.shape),
                   "rank": r, "energy": float(np.sum(s[:r] ** 2) /
                                              np.sum(s ** 2)),
                   "squared_error": error,
                   "parameters_before": int(matrix.size),
                   "parameters_after": int(r * sum(matrix.shape))})

  def replace(layer):
    if layer.name not in plans:
      return layer.__class__.from_config(layer.get_config())
    r = plans[layer.name][0]
    if isinstance(layer, tf_keras.layers.Embedding):
      return LowRankEmbedding(layer.input_dim, layer.output_dim, r,
                              name=layer.name)
    return FactorizedDense(layer.units, r, activation=layer.activation,
                           use_bias=layer.use_bias, name=layer.name)

  factorized = tf_keras.models.clone_model(model, clone_function=replace)
  for new, old in zip(factorized.layers, model.layers):
    if new.name in plans:
      _, a, b = plans[new.name]
      values = [a, b] + ([old.bias.numpy()] if getattr(
          old, "bias", None) is not None else [])
      new.set_weights(values)
    elif old.weights:
      new.set_weights(old.get_weights())
  return factorized, report

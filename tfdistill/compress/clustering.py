"""Weight clustering (weight sharing) of a student with TF-MOT.

Each clustered kernel keeps only `number_of_clusters` distinct values, which
compresses well (gzip) and keeps the model's structure.
"""

import tensorflow_model_optimization as tfmot
import tf_keras

from tfdistill.compress.pruning import _check_student
from tfdistill.errors import ConfigError

_clustering = tfmot.clustering.keras


def cluster_student(model: tf_keras.Model, number_of_clusters: int = 16,
                    preserve_sparsity: bool = True) -> tf_keras.Model:
  """Clusters the Dense kernels of a functional student (k-means++ init).

  Args:
    number_of_clusters: Distinct values per kernel (>= 2).
    preserve_sparsity: Keep pruned zeros at zero (sparsity-preserving
      clustering).
  """
  _check_student(model)
  if number_of_clusters < 2:
    raise ConfigError(f"number_of_clusters must be >= 2, got "
                      f"{number_of_clusters}.")
  params = dict(number_of_clusters=number_of_clusters,
                cluster_centroids_init=(
                    _clustering.CentroidInitialization.KMEANS_PLUS_PLUS),
                preserve_sparsity=preserve_sparsity)

  def wrap(layer):
    clone = layer.__class__.from_config(layer.get_config())
    if isinstance(layer, tf_keras.layers.Dense):
      clone.build(layer.input_shape)
      clone.set_weights(layer.get_weights())
      return _clustering.cluster_weights(clone, **params)
    return clone

  clustered = tf_keras.models.clone_model(model, clone_function=wrap)
  for new, old in zip(clustered.layers, model.layers):
    if type(new).__name__ != "ClusterWeights" and old.weights:
      new.set_weights(old.get_weights())
  return clustered


def strip_clustering(model: tf_keras.Model) -> tf_keras.Model:
  return _clustering.strip_clustering(model)

"""Quantization-aware training (QAT) of a student with TF Model Optimization.

`tfmot.quantization.keras.quantize_model` fails on students: their inputs
are integer ids feeding an Embedding, which QAT cannot quantize. Instead the
layers QAT supports are annotated one by one (`quantize_annotate_layer`) and
`quantize_apply` inserts fake-quant ops around them; the embedding tables are
left to post-training quantization in the TFLite converter.

    qat = quantize_student(stripped_student, preserve_sparsity=True)
    qat.compile(...); qat.fit(...)   # or inside a Distiller
"""

from typing import Optional, Sequence

import tensorflow_model_optimization as tfmot
# The default registry is not exported by TF-MOT's public API.
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import default_8bit_quantize_registry
import tf_keras

from tfdistill.compress.pruning import _check_student
from tfdistill.errors import ConfigError
from tfdistill.models.registry import register

_quantize = tfmot.quantization.keras


@register
class Conv1DQuantizeConfig(_quantize.QuantizeConfig):
  """8-bit QAT of a Conv1D: per-tensor kernel and output activation.

  TF-MOT's default registry has no Conv1D entry; TFLite lowers Conv1D to
  Conv2D, whose int8 kernels take these ranges.
  """

  def get_weights_and_quantizers(self, layer):
    return [(layer.kernel, _quantize.quantizers.LastValueQuantizer(
        num_bits=8, symmetric=True, narrow_range=True, per_axis=False))]

  def get_activations_and_quantizers(self, layer):
    return [(layer.activation, _quantize.quantizers.MovingAverageQuantizer(
        num_bits=8, symmetric=False, narrow_range=False, per_axis=False))]

  def set_quantize_weights(self, layer, quantize_weights):
    layer.kernel = quantize_weights[0]

  def set_quantize_activations(self, layer, quantize_activations):
    layer.activation = quantize_activations[0]

  def get_output_quantizers(self, layer):
    return []

  def get_config(self):
    return {}


@register
class EmbeddingQuantizeConfig(_quantize.QuantizeConfig):
  """8-bit QAT of an item table: per-tensor symmetric, as TFLite stores it.

  TF-MOT has no Embedding entry (and `quantize_model` fails on integer-id
  inputs). The table feeds both the context lookup and the catalog scores,
  so its int8 rounding is what separates the float model's top-K from the
  int8 TFLite model's on a large catalog; training through the same rounding
  lets the student adapt to it. The looked-up rows need no activation
  quantizer: a gather keeps the table's scale.
  """

  def get_weights_and_quantizers(self, layer):
    return [(layer.embeddings, _quantize.quantizers.LastValueQuantizer(
        num_bits=8, symmetric=True, narrow_range=True, per_axis=False))]

  def get_activations_and_quantizers(self, layer):
    return []

  def set_quantize_weights(self, layer, quantize_weights):
    layer.embeddings = quantize_weights[0]

  def set_quantize_activations(self, layer, quantize_activations):
    pass

  def get_output_quantizers(self, layer):
    return []

  def get_config(self):
    return {}


class _PrunePreserveRegistry(
    tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    .get_quantize_registry().__class__):
  """TF-MOT 0.8's pruning-preserving registry, minus a false "supported".

  It reports every layer without trainable weights as supported and then
  fails to give it a config when `quantize_apply` asks for the output
  quantization of a layer feeding an annotated one (our ContextAndCatalogIds
  feeding the item table). Only layers the default 8-bit registry knows are
  supported here.
  """

  def supports(self, layer):  # pylint: disable=arguments-differ
    return (super().supports(layer) and default_8bit_quantize_registry
            .Default8BitQuantizeRegistry().supports(layer))


class _PrunePreserveScheme(
    tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme):

  def get_quantize_registry(self):
    return _PrunePreserveRegistry()


# Needed (with TF-MOT's quantize_scope) to load a QAT student.
CUSTOM_CONFIGS = {
    name: config for config in (Conv1DQuantizeConfig, EmbeddingQuantizeConfig)
    for name in (config.__name__, f"tfdistill>{config.__name__}")}

# Layer types QAT handles in a student, and their configs (None: TF-MOT's).
QAT_LAYERS = {tf_keras.layers.Dense: None,
              tf_keras.layers.Conv1D: Conv1DQuantizeConfig,
              tf_keras.layers.Embedding: EmbeddingQuantizeConfig}


def _unwrap(layer):
  return getattr(layer, "layer", layer)


def quantize_student(model: tf_keras.Model,
                     layers: Optional[Sequence[str]] = None,
                     preserve_sparsity: bool = False) -> tf_keras.Model:
  """Applies QAT to the supported layers of a functional student.

  Args:
    model: A trained (and, if pruned, stripped) functional student.
    layers: Names of the layers to quantize; default every Dense, Conv1D
      and plain Embedding. A named layer of
      another type is an error.
    preserve_sparsity: Use the pruning-preserving scheme (collaborative
      optimization) so that zeros from pruning stay zero through QAT.

  Returns:
    A new model with fake-quant ops; weights are copied.

  Raises:
    ConfigError: for an unknown layer name or an unsupported layer type.
  """
  _check_student(model)
  by_name = {layer.name: layer for layer in model.layers}
  if layers is None:
    chosen = {layer.name for layer in model.layers
              if type(layer) in QAT_LAYERS}
  else:
    chosen = set(layers)
    for name in chosen:
      if name not in by_name:
        raise ConfigError(f"no layer named {name!r} in {model.name}; its "
                          f"layers are {sorted(by_name)}.")
      if type(by_name[name]) not in QAT_LAYERS:
        supported = ", ".join(t.__name__ for t in QAT_LAYERS)
        raise ConfigError(
            f"layer {name!r} is a {type(by_name[name]).__name__}, which "
            f"quantization-aware training does not support (supported: "
            f"{supported}); leave it out of the QAT layers and it will be "
            "quantized after training by the TFLite converter "
            "(--quantize=dynamic or int8).")
  if not chosen:
    raise ConfigError(f"{model.name} has no Dense or Conv1D layer for "
                      "quantization-aware training.")

  def annotate(layer):
    clone = layer.__class__.from_config(layer.get_config())
    if layer.name not in chosen:
      return clone
    config_class = QAT_LAYERS[type(layer)]
    return _quantize.quantize_annotate_layer(
        clone, config_class() if config_class else None)

  annotated = tf_keras.models.clone_model(model, clone_function=annotate)
  annotated.set_weights(model.get_weights())
  scheme = (_PrunePreserveScheme() if preserve_sparsity else _quantize.default_8bit
            .Default8BitQuantizeScheme())
  with _quantize.quantize_scope(CUSTOM_CONFIGS):
    return _quantize.quantize_apply(annotated, scheme)


def is_quantization_aware(model) -> bool:
  return any(type(layer).__name__ == "QuantizeWrapperV2"
             or type(layer).__name__ == "QuantizeWrapper"
             for layer in getattr(model, "layers", []))

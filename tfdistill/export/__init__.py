"""Export a student for TF Serving (SavedModel) and phones (TFLite)."""

from tfdistill._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "config": ("ExportConfig", "PartitionConfig"),
    "exporter": ("export_student",),
    "tflite": ("LiteRTRecommender", "embedded_vocabulary"),
})

"""Compression of a student: pruning, quantization-aware training, low-rank
factorization and weight clustering (TF Model Optimization)."""

from tfdistill._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "config": ("CompressConfig",),
    "pipeline": ("compress_student",),
    "pruning": ("PruningConfig", "prune_student", "strip_pruning"),
    "quantization": ("quantize_student",),
    "lowrank": ("factorize_student",),
    "clustering": ("cluster_student", "strip_clustering"),
})

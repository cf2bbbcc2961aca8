"""Metrics: full-catalog ranking, rating prediction and model agreement."""

from tfdistill._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "evaluate": ("evaluate_retrieval", "evaluate_tflite"),
    "ranking": ("RankingMetrics", "STAGE_METRICS"),
    "rating": ("rating_metrics", "binary_metrics"),
    "agreement": ("top_k_overlap",),
    "callbacks": ("RankingEvaluation",),
    "statistics": ("t_interval", "paired_bootstrap"),
})

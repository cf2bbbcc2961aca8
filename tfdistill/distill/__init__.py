"""Distillation: the Distiller, its losses, teacher sources and strategies."""

from tfdistill._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "distiller": ("Distiller", "StopOnNaN", "compiled_trainer"),
    "soft_targets": ("DistillationLoss", "SoftTargetKL", "SoftTargetMSE",
                     "ListwiseDistillation", "MASKED_LOGIT"),
    "ranking_losses": ("RankingDistillation", "RelaxedRankingDistillation"),
    "representation_losses": ("ContrastiveAlignment", "HintDistillation",
                              "PointwiseScoreDistillation"),
    "teachers": ("TeacherSource", "OnlineTeacher", "CachedTeacher",
                 "TeacherEnsemble", "TaskTeachers"),
    "alignment": ("ItemAlignment", "FeatureMapping"),
    "external": ("TowerTeacher", "IndexTeacher", "RatingTeacher"),
    "saved_teacher": ("SavedModelTeacher", "as_external_teacher"),
    "sampled_softmax": ("SampledCatalogSoftmax", "CatalogTrainer"),
    "one_pass": ("OnePassTrainer",),
    "cache": ("cache_teacher_signal", "cached_teacher", "cached_examples"),
    "beam_cache": ("cache_with_beam", "SavedTeacher"),
    "strategies": ("distill_chain", "continual_distill", "warm_start",
                   "FusedRecommender"),
    "embedding_transfer": ("transfer_item_embeddings",),
})

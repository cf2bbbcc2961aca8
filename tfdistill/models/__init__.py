"""Teachers (TFRS models) and students (small functional Keras models)."""

from tfdistill._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "teachers": ("SequentialRetrievalTeacher", "TwoTowerRetrievalTeacher"),
    "ranking": ("DCNRankingTeacher", "MultiTaskTeacher"),
    "configs": ("StudentConfig", "TeacherConfig", "EmbeddingConfig"),
    "students": ("build_sequential_student",
                 "build_two_tower_student", "build_ranking_student",
                 "build_listwise_ranking_student", "build_multitask_student"),
    "factory": ("build_sequential_teacher",
                "build_two_tower_teacher", "build_ranking_teacher",
                "build_multitask_teacher", "build_student"),
    "io": ("save_model", "load_model", "count_parameters"),
})

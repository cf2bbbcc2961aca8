"""Data sources, preparation (vocabularies, filtering, splits) and tf.data views.

Nothing in this package imports models, distillation or export code.
"""

from tfdistill._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "sources": ("SourceConfig", "load_dataset", "dataset_names"),
    "prepare": ("PrepareConfig", "PreparedData", "prepare", "time_window"),
    "synthetic": ("SyntheticConfig",),
    "examples": ("sequence_examples", "pair_examples", "candidate_examples",
                 "chunk_examples", "evaluation_set", "calibration_contexts"),
})

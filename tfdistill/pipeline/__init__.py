"""The end-to-end job: teacher -> distilled student -> compressed -> export."""

from tfdistill._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "config": ("PipelineConfig", "preset"),
    "run": ("Run",),
})

"""The end-to-end job: teacher -> distilled student -> compressed -> export."""

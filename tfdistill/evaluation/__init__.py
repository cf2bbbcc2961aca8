"""Metrics: full-catalog ranking, rating prediction and model agreement."""

"""Data sources, preparation (vocabularies, filtering, splits) and tf.data views.

Nothing in this package imports models, distillation or export code.
"""

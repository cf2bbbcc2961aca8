"""Export a student for TF Serving (SavedModel) and phones (TFLite)."""

"""Teachers (TFRS models) and students (small functional Keras models)."""

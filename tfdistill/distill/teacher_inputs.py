"""The --teacher_inputs mapping, read without TensorFlow (the command line
checks it before TensorFlow loads); `FeatureMapping` applies it."""

from tfdistill.errors import ConfigError


def parse_inputs(spec: str) -> dict:
  """"context=movie_history,user=user_id" -> {"movie_history": "context",
  "user_id": "user"} (teacher input -> student feature)."""
  mapping = {}
  for part in filter(None, (p.strip() for p in (spec or "").split(","))):
    feature, sep, name = part.partition("=")
    if not sep or not feature or not name:
      raise ConfigError(f"--teacher_inputs: {part!r} is not "
                        "student_feature=teacher_input.")
    mapping[name] = feature
  return mapping

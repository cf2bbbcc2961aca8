"""The report's figures: the Pareto front and where its labels go; how long
fits report progress; the warning for a distillation that does not help."""

import io
import sys

from tfdistill.pipeline.report import _stage_rows
from tfdistill.pipeline.report import compressed_label
from tfdistill.pipeline.report import distillation_behind
from tfdistill.pipeline.report import label_heights
from tfdistill.pipeline.report import model_bytes
from tfdistill.pipeline.report import pareto_front
from tfdistill.pipeline.report import plot_pareto
from tfdistill.pipeline.report import plot_quality_against_bytes
from tfdistill.reporting import fit_verbosity


def test_pareto_front_keeps_the_undominated_points_by_size():
  points = [(100, 0.5), (10, 0.3), (10, 0.4), (50, 0.2), (200, 0.45)]
  assert pareto_front(points) == [2, 0]


def test_labels_of_one_size_are_pushed_apart():
  # Three students of one size, two with the same score, and a teacher.
  points = [(10, 0.049), (10, 0.049), (10, 0.051), (100, 0.047)]
  heights = label_heights(points, gap=0.001)
  assert heights[2] == 0.051  # the highest keeps its place
  assert heights[0] == 0.049
  assert abs(heights[1] - 0.048) < 1e-12
  assert heights[3] == 0.047  # alone at its size
  # Points already apart keep their own heights.
  assert label_heights([(10, 0.1), (10, 0.05)], gap=0.01) == [0.1, 0.05]


def test_pareto_figure_is_written(tmp_path):
  rows = [{"label": name, "params": size, "ndcg@10": quality}
          for name, size, quality in (("teacher", 100, 0.047),
                                      ("student_kd", 10, 0.049),
                                      ("tflite", 10, 0.049))]
  for path in (plot_pareto(rows, str(tmp_path / "pareto.png")),
               plot_quality_against_bytes(rows, str(tmp_path / "bytes.png"))):
    with open(path, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_model_bytes_is_the_file_when_there_is_one_else_float32_weights():
  assert model_bytes({"params": 1000, "bytes": 1700}) == 1700  # .tflite
  assert model_bytes({"params": 1000, "bytes": None}) == 4000
  assert model_bytes({"params": 1000}) == 4000


class _Terminal(io.StringIO):

  def isatty(self):
    return True


def test_fits_show_a_bar_on_a_terminal_and_epoch_lines_in_a_log(monkeypatch):
  monkeypatch.setattr(sys, "stdout", _Terminal())
  assert fit_verbosity() == 1
  monkeypatch.setattr(sys, "stdout", io.StringIO())  # a file or a pipe
  assert fit_verbosity() == 2


def test_a_distilled_student_behind_its_twin_on_validation_is_named():
  alone = {"val_ndcg@10": 0.0950, "ndcg@10": 0.09}
  warning = distillation_behind(alone, {"val_ndcg@10": 0.0851})
  assert warning.startswith("On validation")
  assert ("the distilled student's best NDCG@10 (0.0851) is below the "
          "student alone's (0.0950)") in warning
  assert "--distillation_loss" in warning and "--alpha" in warning
  # Level or ahead: nothing; a run directory from before the figure was
  # kept: nothing either.
  assert distillation_behind(alone, {"val_ndcg@10": 0.0950}) is None
  assert distillation_behind(alone, {"val_ndcg@10": 0.1}) is None
  assert distillation_behind({"ndcg@10": 0.09}, {"val_ndcg@10": 0.01}) is None


def test_the_compressed_stage_is_named_by_what_compressed_it():
  assert compressed_label(0.5, True) == "pruned + QAT"
  assert compressed_label(0.0, True) == "QAT"
  assert compressed_label(0.5, False) == "pruned"
  assert compressed_label(0.0, False) == "fine-tuned"
  metrics = {"teacher": {"ndcg@10": 0.2}, "student_alone": {"ndcg@10": 0.1},
             "compressed": {"ndcg@10": 0.1, "target_sparsity": 0.0,
                            "qat": True}}
  labels = [row["stage"] for row in _stage_rows(metrics)]
  assert labels == ["Teacher", "Student alone", "Compressed (QAT)"]
  # A run written before the step recorded "qat" ran the default, QAT.
  del metrics["compressed"]["qat"]
  metrics["compressed"]["target_sparsity"] = 0.5
  assert _stage_rows(metrics)[-1]["stage"] == "Compressed (pruned + QAT)"

"""`tfdistill data` end to end, and the CLI's handling of user errors."""

import shutil
import sys
import pathlib

import pytest

from cli_runner import assert_user_error
from cli_runner import last_json
from cli_runner import run_cli

TINY = ("--synthetic_users=80", "--synthetic_items=60",
        "--synthetic_interactions_per_user=10")


def test_data_prints_counts_as_last_json_line(tmp_path):
  out = tmp_path / "prepared"
  summary = last_json(run_cli("data", *TINY, f"--out={out}", "--seed=1"))
  assert summary["num_users"] == 80 and summary["num_items"] == 60
  splits = summary["splits"]
  assert splits["test"] == splits["validation"] == summary["num_users_kept"]
  assert (splits["train"] + 2 * splits["test"] ==
          summary["num_interactions_kept"])
  assert (out / "meta.json").is_file() and (out / "items.txt").is_file()


def test_same_seed_same_output(tmp_path):
  a = last_json(run_cli("data", *TINY, "--seed=5"))
  b = last_json(run_cli("data", *TINY, "--seed=5"))
  c = last_json(run_cli("data", *TINY, "--seed=6"))
  assert a == b
  assert a != c


def test_existing_output_is_not_overwritten(tmp_path):
  out = tmp_path / "prepared"
  out.mkdir()
  (out / "keep.txt").write_text("mine")
  assert_user_error(run_cli("data", *TINY, f"--out={out}"), "already exists")
  assert (out / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_latest_small_counts(movielens_dir, tfds_cache):
  summary = last_json(run_cli("data", "--dataset=movielens/latest-small-ratings",
                              f"--manual_dir={movielens_dir}",
                              f"--data_dir={tfds_cache}"))
  assert (summary["num_interactions"], summary["num_users"],
          summary["num_items"]) == (100836, 610, 9742)
  assert summary["splits"]["test"] == 610


def test_unknown_dataset_is_one_line_exit_2():
  assert_user_error(run_cli("data", "--dataset=nope"), "unknown data set")


def test_missing_file_is_one_line_exit_2(tmp_path):
  assert_user_error(run_cli("data", "--dataset=grouplens",
                            f"--path={tmp_path / 'u.data'}"), "no such file")


def test_unknown_flag_is_one_line_exit_2():
  assert_user_error(run_cli("data", "--no_such_flag=1"), "no_such_flag")


def test_unknown_command_is_one_line_exit_2():
  assert_user_error(run_cli("frobnicate"), "unknown command")


def test_stray_argument_is_one_line_exit_2():
  assert_user_error(run_cli("data", "extra"), "unexpected argument")


def test_command_help_lists_its_flags():
  result = run_cli("data", "--help")
  assert result.returncode == 0
  assert "--dataset" in result.stdout and "--manual_dir" in result.stdout


def test_console_script_is_installed():
  script = shutil.which("tfdistill") or str(
      pathlib.Path(sys.executable).parent / "tfdistill")
  assert pathlib.Path(script).exists()


START_UP_LINES = ("absl::InitializeLog", "cudart_stub", "cuda_platform",
                  "cpu_feature_guard", "I0000 ", "E0000 ", "W0000 ")


@pytest.mark.slow
def test_commands_print_no_tensorflow_start_up_lines(tiny_run):
  """TensorFlow's native start-up logs ignore TF_CPP_MIN_LOG_LEVEL; the CLI
  starts TensorFlow with them silenced (unless --verbosity asks)."""
  quiet = {"TF_CPP_MIN_LOG_LEVEL": "0"}
  failed = run_cli("export", "--model=/nonexistent", "--out=/tmp/never",
                   "--tflite", env=quiet)
  assert failed.returncode == 2
  assert failed.stderr.strip().count("\n") == 0, failed.stderr
  evaluated = run_cli("evaluate",
                      f"--model={tiny_run[0]}/student_kd/model", env=quiet)
  assert evaluated.returncode == 0, evaluated.stderr[-2000:]
  for line in (evaluated.stdout + evaluated.stderr).splitlines():
    assert not any(p in line for p in START_UP_LINES), line
  loud = run_cli("export", "--model=/nonexistent", "--out=/tmp/never",
                 "--tflite", "--verbosity=0", env=quiet)
  assert any(p in loud.stderr for p in START_UP_LINES)

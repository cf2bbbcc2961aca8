"""Every bad input of issue 35, as a user types it: one line, exit 2, no
traceback, and nothing written or deleted.

Each case builds its inputs in a fresh folder, snapshots the folder, runs
the command there and checks the snapshot is unchanged. A new bad input of
the same class is one more row in `CASES`.
"""

import inspect
import os
import shutil

import pytest

from cli_runner import assert_user_error
from cli_runner import run_cli

# Every case runs the command line in its own process: the file is one of
# the longest, so it starts early (conftest.py).
pytestmark = pytest.mark.processes


def snapshot(root) -> dict:
  """{relative path: file bytes (None for a folder)} under `root`."""
  found = {}
  for folder, dirs, files in os.walk(root):
    for name in dirs:
      found[os.path.relpath(os.path.join(folder, name), root)] = None
    for name in files:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        found[os.path.relpath(path, root)] = f.read()
  return found


def write(path, text) -> str:
  os.makedirs(os.path.dirname(str(path)), exist_ok=True)
  mode = "wb" if isinstance(text, bytes) else "w"
  with open(path, mode) as f:
    f.write(text)
  return str(path)


TABLE = "user_id,item_id,timestamp,rating\n" + "".join(
    f"u{u},i{(u + k) % 7},{1000 + k},4\n" for u in range(6) for k in range(6))


def _copy_run(tiny_run, where) -> str:
  copy = os.path.join(where, "run")
  shutil.copytree(tiny_run[0], copy)
  return copy


def _truncate(path) -> None:
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.truncate(size // 3)


# (id, setup(folder, tiny_run) -> (argv, cwd or None), fragments of the line)
def _overwrite_cwd(d, _):
  write(os.path.join(d, "scratch", "notes.txt"), "x")
  return ["data", "--out=.", "--overwrite", "--synthetic_users=50"], \
      os.path.join(d, "scratch")


def _overwrite_parent(d, _):
  write(os.path.join(d, "a", "notes.txt"), "x")
  os.makedirs(os.path.join(d, "a", "b"))
  return ["data", "--out=..", "--overwrite", "--synthetic_users=50"], \
      os.path.join(d, "a", "b")


def _overwrite_user_folder(d, _):
  write(os.path.join(d, "thesis", "chapter1.tex"), "\\section{One}")
  return ["data", f"--out={d}/thesis", "--overwrite",
          "--synthetic_users=50"], None


def _overwrite_user_meta_json(d, _):
  # A meta.json of the user's own is not tfdistill's marker.
  write(os.path.join(d, "mine", "meta.json"), '{"title": "mine"}')
  return ["data", f"--out={d}/mine", "--overwrite",
          "--synthetic_users=50"], None


def _export_overwrite_user_tflite(d, tiny_run):
  write(os.path.join(d, "e", "tflite", "my_model.tflite"), b"mine")
  return ["export", f"--model={tiny_run[0]}/student_kd/model",
          f"--out={d}/e", "--tflite", "--overwrite"], None


def _data_out_is_file(d, _):
  return ["data", f"--out={write(os.path.join(d, 'f.txt'), 'x')}",
          "--synthetic_users=50"], None


def _pipeline_out_is_file(d, _):
  return ["pipeline", "--preset=tiny",
          f"--out={write(os.path.join(d, 'f.txt'), 'x')}"], None


def _export_out_is_file(d, tiny_run):
  return ["export", f"--model={tiny_run[0]}/student_kd/model", "--tflite",
          f"--out={write(os.path.join(d, 'f.txt'), 'x')}"], None


def _path_without_dataset(d, _):
  return ["data", f"--path={write(os.path.join(d, 't.csv'), TABLE)}"], None


def _synthetic_with_path(d, _):
  return ["pipeline", "--preset=tiny", "--dataset=synthetic",
          f"--path={write(os.path.join(d, 't.csv'), TABLE)}",
          f"--out={d}/r"], None


def _columns_without_table(d, _):
  return ["data", "--columns=user_id=uid"], None


def _timestamp_beyond_int64(d, _):
  table = TABLE.replace(",1003,", ",1e20,", 1)
  return ["data", "--dataset=csv",
          f"--path={write(os.path.join(d, 't.csv'), table)}"], None


def _export_negative_version(d, tiny_run):
  return ["export", f"--model={tiny_run[0]}/student_kd/model",
          f"--out={d}/e", "--saved_model", "--version=-3"], None


def _empty_csv(d, _):
  return ["data", "--dataset=csv",
          f"--path={write(os.path.join(d, 'empty.csv'), '')}"], None


def _binary_csv(d, _):
  return ["data", "--dataset=csv", "--path=" + write(
      os.path.join(d, "b.csv"), bytes(range(256)) * 4)], None


def _columns_empty_user(d, _):
  return ["data", "--dataset=csv", "--columns=user_id=",
          f"--path={write(os.path.join(d, 't.csv'), TABLE)}"], None


def _pipeline_top_k_beyond_catalog(d, _):
  return ["pipeline", "--preset=tiny", "--top_k=100000", f"--out={d}/r"], \
      None


def _export_top_k_beyond_catalog(d, tiny_run):
  return ["export", f"--model={tiny_run[0]}/student_kd/model", "--tflite",
          "--top_k=100000", f"--out={d}/e"], None


def _data_negative_seed(d, _):
  return ["data", "--seed=-5", f"--out={d}/p"], None


def _pipeline_negative_seed(d, _):
  return ["pipeline", "--preset=tiny", "--seed=-5", f"--out={d}/r"], None


def _pipeline_negative_student_negatives(d, _):
  return ["pipeline", "--preset=tiny", "--student_negatives=-1",
          f"--out={d}/r"], None


def _pipeline_partitions_one(d, _):
  return ["pipeline", "--preset=tiny", "--partitions=1", f"--out={d}/r"], None


def _pipeline_more_k_beyond_catalog(d, _):
  return ["pipeline", "--preset=tiny", "--more_k=5,100000",
          f"--out={d}/r"], None


def _export_probe_beyond_partitions(d, run):
  return ["export", f"--model={run[0]}/student_kd/model", f"--out={d}/e",
          "--tflite", "--partitions=4", "--probe=9"], None


def _pipeline_unknown_dataset(d, _):
  return ["pipeline", "--dataset=foo", f"--out={d}/r"], None


def _pipeline_malformed_file(d, _):
  # Fails while loading the data, after the flags were checked: the run
  # directory must not exist afterwards (it would refuse the fix).
  table = TABLE + "u9,i1\n"
  return ["pipeline", "--preset=tiny", "--dataset=csv",
          f"--path={write(os.path.join(d, 't.csv'), table)}",
          f"--out={d}/r"], None


def _ratings_dat_with_commas(d, _):
  return ["data", "--dataset=grouplens", "--path=" + write(
      os.path.join(d, "ratings.dat"), "1,2,5,978300760\n")], None


def _report_of_a_tiny_run_without_preset(d, tiny_run):
  return ["report", f"--out={_copy_run(tiny_run, d)}", "--seed=3"], None


def _evaluate_truncated_model(d, tiny_run):
  run = _copy_run(tiny_run, d)
  _truncate(os.path.join(run, "student_kd", "model", "model.keras"))
  return ["evaluate", f"--model={run}/student_kd/model"], None


def _pipeline_truncated_model(d, tiny_run):
  run = _copy_run(tiny_run, d)
  _truncate(os.path.join(run, "student_kd", "model", "model.keras"))
  return ["pipeline", "--preset=tiny", "--seed=3", f"--out={run}"], None


def _pipeline_truncated_teacher(d, tiny_run):
  run = _copy_run(tiny_run, d)
  weights = os.path.join(run, "teacher", "model", "weights")
  data = [n for n in os.listdir(weights) if ".data-" in n][0]
  _truncate(os.path.join(weights, data))
  return ["train-teacher", "--preset=tiny", "--seed=3", f"--out={run}"], None


CASES = [
    ("overwrite_cwd", _overwrite_cwd, ["--out=.", "working directory"]),
    ("overwrite_parent", _overwrite_parent, ["working directory"]),
    ("overwrite_user_folder", _overwrite_user_folder,
     ["thesis", "not written by tfdistill"]),
    ("overwrite_user_meta_json", _overwrite_user_meta_json,
     ["not written by tfdistill"]),
    ("export_overwrite_user_tflite", _export_overwrite_user_tflite,
     ["tflite", "not written by tfdistill"]),
    ("data_out_is_file", _data_out_is_file, ["f.txt", "is a file"]),
    ("pipeline_out_is_file", _pipeline_out_is_file, ["f.txt", "is a file"]),
    ("export_out_is_file", _export_out_is_file, ["f.txt", "is a file"]),
    ("path_without_dataset", _path_without_dataset,
     ["--path=", "--dataset=synthetic", "--dataset=csv"]),
    ("synthetic_with_path", _synthetic_with_path, ["--path=", "--dataset"]),
    ("columns_without_table", _columns_without_table, ["--columns"]),
    ("timestamp_beyond_int64", _timestamp_beyond_int64,
     ["t.csv:5", "1e20", "int64"]),
    ("export_negative_version", _export_negative_version,
     ["--version", "-3"]),
    ("empty_csv", _empty_csv, ["empty.csv", "empty"]),
    ("binary_csv", _binary_csv, ["b.csv", "UTF-8"]),
    ("columns_empty_user", _columns_empty_user,
     ["--columns", "user_id needs a column"]),
    ("pipeline_top_k_beyond_catalog", _pipeline_top_k_beyond_catalog,
     ["--top_k=100000", "catalog"]),
    ("export_top_k_beyond_catalog", _export_top_k_beyond_catalog,
     ["--top_k=100000", "catalog"]),
    ("data_negative_seed", _data_negative_seed, ["--seed", "-5"]),
    ("pipeline_negative_seed", _pipeline_negative_seed, ["--seed", "-5"]),
    ("pipeline_negative_student_negatives",
     _pipeline_negative_student_negatives, ["--student_negatives", "-1"]),
    ("pipeline_partitions_one", _pipeline_partitions_one,
     ["--partitions=1"]),
    ("pipeline_more_k_beyond_catalog", _pipeline_more_k_beyond_catalog,
     ["--more_k=100000", "catalog"]),
    ("export_probe_beyond_partitions", _export_probe_beyond_partitions,
     ["--probe=9", "[1, 4]"]),
    ("pipeline_unknown_dataset", _pipeline_unknown_dataset,
     ["'foo'", "--dataset"]),
    ("pipeline_malformed_file", _pipeline_malformed_file, ["t.csv:"]),
    ("ratings_dat_with_commas", _ratings_dat_with_commas,
     ["ratings.dat:1", "separated by ','", "'::'"]),
    ("report_of_a_tiny_run_without_preset",
     _report_of_a_tiny_run_without_preset, ["--preset=tiny"]),
    ("evaluate_truncated_model", _evaluate_truncated_model,
     ["model.keras", "truncated or corrupt"]),
    ("pipeline_truncated_model", _pipeline_truncated_model,
     ["model.keras", "truncated or corrupt", "--force"]),
    ("pipeline_truncated_teacher", _pipeline_truncated_teacher,
     ["weights", "truncated or corrupt", "--force"]),
]


def _needs_run(setup) -> bool:
  """Whether a case's setup reads the shared tiny run (its second
  parameter has a name, not `_`)."""
  return list(inspect.signature(setup).parameters)[1] != "_"


# The cases that read the shared tiny run go last: the others start while
# another test process may still be building it.
ORDERED = sorted(CASES, key=lambda case: _needs_run(case[1]))


@pytest.mark.parametrize("setup,fragments", [c[1:] for c in ORDERED],
                         ids=[c[0] for c in ORDERED])
def test_bad_input_is_one_line_and_writes_nothing(setup, fragments, tmp_path,
                                                 request):
  run = request.getfixturevalue("tiny_run") if _needs_run(setup) else None
  argv, cwd = setup(str(tmp_path), run)
  before = snapshot(tmp_path)
  result = run_cli(*argv, cwd=cwd)
  assert_user_error(result, *fragments)
  assert snapshot(tmp_path) == before


def test_a_folder_tfdistill_wrote_is_replaced_with_overwrite(tmp_path):
  out = tmp_path / "prepared"
  assert run_cli("data", f"--out={out}", "--synthetic_users=50").returncode \
      == 0
  again = run_cli("data", f"--out={out}", "--overwrite",
                  "--synthetic_users=60")
  assert again.returncode == 0, again.stderr[-2000:]
  assert '"num_users": 60' in again.stdout
  assert sorted(os.listdir(tmp_path)) == ["prepared"]  # nothing left aside


def test_exact_duplicates_are_dropped_and_counted(tmp_path):
  # u0's last interaction twice: kept, it was both validation and test.
  rows = TABLE.splitlines()
  last_of_u0 = [r for r in rows if r.startswith("u0,")][-1]
  table = "\n".join(rows + [last_of_u0]) + "\n"
  path = write(tmp_path / "t.csv", table)
  result = run_cli("data", "--dataset=csv", f"--path={path}",
                   "--min_user_interactions=3", f"--out={tmp_path}/p")
  assert result.returncode == 0, result.stderr[-2000:]
  assert '"num_duplicates_dropped": 1' in result.stdout
  assert "dropped 1 exact duplicate" in result.stderr
  from tfdistill.data.prepare import PreparedData  # pylint: disable=import-outside-toplevel
  from tfdistill.data.prepare import TEST, VALIDATION  # pylint: disable=import-outside-toplevel
  prepared = PreparedData.load(str(tmp_path / "p"))
  user = prepared.users.lookup(["u0"])[0]
  held_out = prepared.timestamp[(prepared.user == user) & (
      (prepared.split == VALIDATION) | (prepared.split == TEST))]
  assert len(set(held_out)) == 2  # two different interactions


def test_a_step_whose_model_was_deleted_is_redone(tiny_run, tmp_path):
  run = _copy_run(tiny_run, str(tmp_path))
  shutil.rmtree(os.path.join(run, "student_kd", "model"))
  result = run_cli("distill", "--preset=tiny", "--seed=3", f"--out={run}")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "redoing the student_kd step" in result.stderr
  assert os.path.isfile(os.path.join(run, "student_kd", "model",
                                     "tfdistill_model.json"))
  # Seeded, so the redone step gives the same student.
  assert result.stdout.strip().splitlines()[-1].startswith("{")
  import json  # pylint: disable=import-outside-toplevel
  redone = json.loads(result.stdout.strip().splitlines()[-1])
  assert redone["ndcg@10"] == tiny_run[1]["student_kd"]["ndcg@10"]

"""Speed: Distiller step vs student alone, TFLite vs SavedModel, catalog size.

Ratios are measured in one process, the compared sides taking turns (median
of five rounds), so that machine noise affects both sides alike:

* time per training step of the Distiller (online teacher, its forward
  pass compiled with XLA as by default and not; cached teacher top-K with
  three losses, `CACHED_LOSSES`) over the same student trained alone, and
  the online teacher's forward pass alone over the same (what an online
  step costs at least);
* the same online ratios for four teacher sizes (`TEACHER_SIZES`), with
  the dense teacher signal, its top-K and its hidden layer alone (a hint,
  which spares the teacher its catalog scores; `ONLINE_TRAINERS`): how the
  online step follows the teacher's forward pass;
* TFLite (LiteRT, 1 thread) over SavedModel (1 thread) p50 latency per
  request, batch 1;
* TFLite p50 latency and bytes at 1k, 10k and 100k catalog items;
* peak memory (max RSS) of distillation with a 100k-item catalog.

    python benchmarks/speed.py           # ~10 min on 2 CPUs
    python benchmarks/speed.py --quick   # smaller, seconds
"""

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import _common  # pylint: disable=import-error

import tfdistill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import numpy as np
import tensorflow as tf
import tf_keras

from tfdistill.data import examples
from tfdistill.data.prepare import prepare
from tfdistill.data.sources import load_dataset
from tfdistill.data.sources import SourceConfig
from tfdistill.data.synthetic import SyntheticConfig
from tfdistill.distill import Distiller
from tfdistill.distill import HintDistillation
from tfdistill.distill import OnlineTeacher
from tfdistill.distill import RankingDistillation
from tfdistill.distill import SoftTargetKL
from tfdistill.distill.cache import cache_teacher_signal
from tfdistill.distill.cache import cached_examples
from tfdistill.distill.cache import cached_teacher
from tfdistill.distill.teachers import TOP_K_SIGNAL
from tfdistill.export import latency
from tfdistill.export import tflite
from tfdistill.export.exporter import export_student
from tfdistill.export.exporter import ExportConfig
from tfdistill.models.factory import build_sequential_teacher
from tfdistill.models.factory import build_student
from tfdistill.models.factory import TeacherConfig
from tfdistill.models.io import count_parameters
from tfdistill.models.io import save_model
from tfdistill.models.students import build_sequential_student
from tfdistill.models.teachers import SequentialRetrievalTeacher
from tfdistill.models.students import StudentConfig

L, BATCH, TOP_K = 20, 256, 50


def step_times(trainers: dict, steps: int, rounds: int) -> dict:
  """Median seconds per training step of each trainer.

  Steps run through the model's compiled train function (what `fit` runs
  per batch) over batches held in memory, so that the time is the step's,
  not `fit`'s per-call setup or the input pipeline's. Trainers take turns
  (`rounds` times each, after a warm-up), so a slow spell of a shared
  machine hits all of them rather than one; the median drops the spells.

  Args:
    trainers: name -> (compiled model, or a function of a batch iterator;
      dataset of at least one batch).
  """
  functions = {}
  for name, (model, data) in trainers.items():
    function = (model.make_train_function()
                if isinstance(model, tf_keras.Model) else model)
    batches = iter(data.repeat())
    function(batches)  # traces and warms up
    functions[name] = (function, batches)
  samples = {name: [] for name in trainers}
  for _ in range(rounds):
    for name, (function, batches) in functions.items():
      start = time.perf_counter()
      for _ in range(steps):
        outputs = function(batches)
      tf.nest.map_structure(np.asarray, outputs)  # waits for the last step
      samples[name].append((time.perf_counter() - start) / steps)
  return {name: float(np.median(values)) for name, values in samples.items()}


def in_memory(data, batches: int):
  """The first `batches` batches of `data`, read once and kept in memory."""
  data = data.take(batches).cache()
  for _ in data:
    pass
  return data


#: Distillation losses timed with the cached teacher signal.
CACHED_LOSSES = {
    # The online trainer's losses too: KL at T=2 (the student's normaliser at T=2
    # is a second pass over the catalog) and ranking.
    "cached": lambda: [SoftTargetKL(), RankingDistillation(top_k=10)],
    # KL at T=1: the normaliser is the hard loss's (no second pass).
    "cached_kl_t1": lambda: SoftTargetKL(temperature=1.0),
    # KL over the teacher's K items alone: no normaliser over the catalog.
    "cached_teacher_items": lambda: SoftTargetKL(
        normalize_over="teacher_items"),
}


#: The training-step ratios of the report, in order: result key -> label.
TRAINING_RATIOS = (
    ("online_vs_alone",
     "Distiller step / student-alone step (online teacher)"),
    ("online_no_xla_vs_alone",
     "Distiller step / student-alone step (online teacher, its forward pass "
     "not compiled with XLA)"),
    ("teacher_forward_vs_alone",
     "online teacher's forward pass alone / student-alone step"),
    ("online_hint_vs_alone",
     "Distiller step / student-alone step (online teacher, hint only: no "
     "catalog scores)"),
    ("online_hint_1_block_vs_alone",
     "Distiller step / student-alone step (online teacher of 1 block, hint "
     "only)"),
    ("cached_vs_alone",
     "Distiller step / student-alone step (cached top-K, KL at T=2 + "
     "ranking)"),
    ("cached_kl_t1_vs_alone",
     "Distiller step / student-alone step (cached top-K, KL at T=1)"),
    ("cached_teacher_items_vs_alone",
     "Distiller step / student-alone step (cached top-K, KL over the "
     "teacher's items only)"),
    ("cached_hint_vs_alone",
     "Distiller step / student-alone step (cached hidden layer, hint only)"),
)


#: The default teacher with one block: the query pass a hint alone needs
#: costs about a third of the default's.
ONE_BLOCK = "128 wide, 1 block, 4 heads"

#: Teachers of the online-step sweep, the default first (the one the ratios
#: above use): how the online step grows with the teacher's forward pass.
TEACHER_SIZES = {
    "default: 128 wide, 2 blocks, 4 heads": TeacherConfig(),
    ONE_BLOCK: TeacherConfig(num_blocks=1),
    "64 wide, 2 blocks, 2 heads": TeacherConfig(embedding_dim=64, num_heads=2,
                                                ffn_dim=128),
    "32 wide, 1 block, 1 head": TeacherConfig(embedding_dim=32, num_blocks=1,
                                              num_heads=1, ffn_dim=64),
}

#: Online trainers of the sweep: key -> (teacher top-K, losses). Top-K 0 is
#: the dense signal, what `Distiller(teacher=model)` runs by default; the
#: hint reads the teacher's hidden layer alone, so its top-K is moot.
ONLINE_TRAINERS = {
    "online_dense": (0, CACHED_LOSSES["cached"]),
    "online": (TOP_K, CACHED_LOSSES["cached"]),
    "online_kl_t1": (TOP_K, CACHED_LOSSES["cached_kl_t1"]),
    "online_hint": (0, HintDistillation),
}

#: The teacher's forward passes timed alone: key -> (its top-K, the signal
#: read): what the online trainers above ask of the teacher.
TEACHER_FORWARDS = {"teacher_forward_dense": (0, "logits"),
                    "teacher_forward": (TOP_K, TOP_K_SIGNAL),
                    "teacher_forward_hidden": (0, "hidden")}

#: Columns of the sweep's table (ratios to the student-alone step).
TEACHER_SIZE_COLUMNS = (
    "teacher", "params", "student_share", "forward_dense_vs_alone",
    "forward_vs_alone", "forward_hidden_vs_alone", "online_dense_vs_alone",
    "online_vs_alone", "online_kl_t1_vs_alone", "online_hint_vs_alone")


def _trained_teacher(prepared, train, config: TeacherConfig):
  teacher = build_sequential_teacher(prepared, L, config)
  teacher.compile(tf_keras.optimizers.Adam(1e-3))
  teacher.fit(train.take(2), verbose=0)  # builds it; weights don't matter
  return teacher


def _forward(source, signal: str):
  """A teacher source's forward pass as a function of a batch iterator:
  what a step that reads `signal` asks of it (a top-K's sparse ids and
  scores, not their dense scatter, which no sparse loss reads)."""
  asked = "logits" if signal == TOP_K_SIGNAL else signal
  return tf.function(
      lambda batches: source(next(batches)[0], signals=[asked])[signal])


def _distiller(prepared, student_config: StudentConfig, teacher, losses):
  """A Distiller of a new student, compiled with `losses` (one or a list)."""
  distiller = Distiller(student=build_student(prepared, L, student_config),
                        teacher=teacher)
  distiller.compile(optimizer=tf_keras.optimizers.Adam(1e-3),
                    distillation_loss=losses)
  return distiller


def _online_trainers(prepared, teacher, student_config: StudentConfig,
                     prefix: str) -> dict:
  """`prefix`<key> -> online Distiller, and the forward passes they run."""
  trainers, sources = {}, {}
  for key, (top_k, losses) in ONLINE_TRAINERS.items():
    distiller = _distiller(prepared, student_config,
                           OnlineTeacher(teacher, top_k=top_k), losses())
    trainers[prefix + key] = distiller
    sources.setdefault(top_k, distiller.teacher)  # prepared by compile
  for key, (top_k, signal) in TEACHER_FORWARDS.items():
    trainers[prefix + key] = _forward(sources[top_k], signal)
  return trainers


def _teacher_size_rows(times: dict, params: dict, student_params: int) -> list:
  alone = times["student_alone"]
  rows = []
  for index, name in enumerate(TEACHER_SIZES):
    ratios = {key: times[f"size{index}_{key}"] / alone
              for key in (*TEACHER_FORWARDS, *ONLINE_TRAINERS)}
    rows.append({"teacher": name, "params": params[name],
                 "student_share": student_params / params[name],
                 "forward_dense_vs_alone": ratios["teacher_forward_dense"],
                 "forward_vs_alone": ratios["teacher_forward"],
                 "forward_hidden_vs_alone": ratios["teacher_forward_hidden"],
                 **{f"{key}_vs_alone": ratios[key]
                    for key in ONLINE_TRAINERS}})
  return rows


def training_speed(prepared, steps: int, rounds: int, work: str) -> dict:
  train = examples.sequence_examples(prepared, "train", L, batch_size=BATCH)
  student_config = StudentConfig(embedding_dim=16, hidden_dim=64)
  alone = build_student(prepared, L, student_config)
  alone.compile(tf_keras.optimizers.Adam(1e-3),
                loss=tf_keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True))
  teachers = {name: _trained_teacher(prepared, train, config)
              for name, config in TEACHER_SIZES.items()}
  params = {name: count_parameters(t) for name, t in teachers.items()}
  trainers = {}
  for index, teacher in enumerate(teachers.values()):
    trainers.update(_online_trainers(prepared, teacher, student_config,
                                     f"size{index}_"))
  default_teacher = next(iter(teachers.values()))
  trainers["online_no_xla"] = _distiller(
      prepared, student_config,
      OnlineTeacher(default_teacher, top_k=TOP_K, jit_compile=False),
      CACHED_LOSSES["cached"]())
  path = cache_teacher_signal(default_teacher, train.take(steps),
                              f"{work}/cache", top_k=TOP_K)
  cached_data = in_memory(cached_examples(path, batch_size=BATCH), steps)
  # The hint's cache holds the teacher's hidden layer alone, so that the
  # KL trainers' batches stay as they were.
  hidden_path = cache_teacher_signal(default_teacher, train.take(steps),
                                     f"{work}/cache_hidden",
                                     signals=("hidden",))
  hidden_data = in_memory(cached_examples(hidden_path, batch_size=BATCH),
                          steps)
  train = in_memory(train, steps)
  trainers = {"student_alone": (alone, train),
              **{name: (model, train) for name, model in trainers.items()}}
  for name, loss in CACHED_LOSSES.items():
    trainers[f"distiller_{name}"] = (_distiller(
        prepared, student_config, cached_teacher(path), loss()), cached_data)
  trainers["distiller_cached_hint"] = (_distiller(
      prepared, student_config, cached_teacher(hidden_path),
      HintDistillation()), hidden_data)
  times = step_times(trainers, steps, rounds)
  alone_time = times["student_alone"]
  return {"seconds_per_step": times,
          "online_vs_alone": times["size0_online"] / alone_time,
          "online_no_xla_vs_alone": times["online_no_xla"] / alone_time,
          "teacher_forward_vs_alone": times["size0_teacher_forward"] /
                                      alone_time,
          "online_hint_vs_alone": times["size0_online_hint"] / alone_time,
          "online_hint_1_block_vs_alone": times[
              f"size{list(TEACHER_SIZES).index(ONE_BLOCK)}_online_hint"] /
                                          alone_time,
          **{f"{name}_vs_alone": times[f"distiller_{name}"] / alone_time
             for name in (*CACHED_LOSSES, "cached_hint")},
          "teacher_sizes": _teacher_size_rows(times, params,
                                              count_parameters(alone)),
          "steps": steps, "batch_size": BATCH, "rounds": rounds,
          "teacher_top_k": TOP_K}


def serving_latency(prepared, work: str, runs: int) -> dict:
  student = build_student(prepared, L, StudentConfig(embedding_dim=16,
                                                     hidden_dim=64))
  contexts = examples.evaluation_set(prepared, "validation", L).contexts
  path = save_model(student, f"{work}/student", vocabulary=prepared.items,
                    representative=contexts[:200], holdout=contexts[:100])
  rows = {}
  for mode in ("none", "int8"):
    manifest = export_student(path, f"{work}/export_{mode}", ExportConfig(
        tflite=True, saved_model=True, quantize=mode, latency_runs=runs))
    rows[mode] = {"tflite_p50_ms": manifest["latency"]["tflite"]["p50_ms"],
                  "saved_model_p50_ms": manifest["latency"]["saved_model"][
                      "p50_ms"],
                  "tflite_vs_saved_model": manifest["latency"][
                      "tflite_vs_saved_model_p50"],
                  "tflite_bytes": manifest["bytes"]["tflite"],
                  "agreement": manifest["parity"]["agreement"]}
  return rows


def catalog_scaling(sizes, runs: int) -> list:
  rows = []
  rng = np.random.default_rng(0)
  for size in sizes:
    student = build_sequential_student(size, L, StudentConfig(
        embedding_dim=32, hidden_dim=64))
    contexts = rng.integers(2, size, (64, L)).astype(np.int32)
    for mode in ("none", "int8"):
      content = tflite.convert(student, mode, 10, contexts)
      with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(content)
        f.flush()
        timing = latency.measure(tflite_path=f.name, contexts=contexts,
                                 runs=runs)["tflite"]
      rows.append({"catalog": size, "quantization": mode,
                   "bytes": len(content), **timing})
  return rows


def _peak_memory_child(size: int) -> None:
  """Runs in a subprocess: distil with a `size`-item catalog, print max RSS.

  The catalog is exactly `size` items (random next-item examples over all of
  them), so that the teacher's and the student's full-catalog logits have
  that width.
  """
  rng = np.random.default_rng(0)
  contexts = rng.integers(2, size, (20 * BATCH, L)).astype(np.int32)
  targets = rng.integers(2, size, 20 * BATCH).astype(np.int32)
  train = tf.data.Dataset.from_tensor_slices(
      ({"context": contexts}, targets)).batch(BATCH)
  teacher = SequentialRetrievalTeacher(size, L, embedding_dim=64, num_heads=2,
                                       ffn_dim=128, negatives="catalog")
  teacher(next(iter(train))[0])
  distiller = Distiller(student=build_sequential_student(
      size, L, StudentConfig(embedding_dim=16)), teacher=teacher)
  distiller.compile(optimizer=tf_keras.optimizers.Adam(1e-3))
  distiller.fit(train, verbose=0)
  print(size, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_memory(size: int) -> dict:
  done = subprocess.run([sys.executable, __file__, f"--_memory_child={size}"],
                        capture_output=True, text=True, check=True)
  items, kib = done.stdout.strip().splitlines()[-1].split()
  return {"catalog": int(items), "peak_rss_mib": int(kib) / 1024}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  parser.add_argument("--_memory_child", type=int, default=0,
                      help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args._memory_child:  # pylint: disable=protected-access
    _peak_memory_child(args._memory_child)  # pylint: disable=protected-access
    return
  tf_keras.utils.set_random_seed(0)
  quick = args.quick
  synthetic = SyntheticConfig(num_users=300 if quick else 3000,
                              num_items=500 if quick else 9742,
                              mean_interactions_per_user=20 if quick else 33)
  prepared = prepare(load_dataset(SourceConfig(synthetic=synthetic)))
  work = tempfile.mkdtemp(prefix="tfdistill-speed-")
  try:
    results = {
        "training": training_speed(prepared, 5 if quick else 40,
                                  2 if quick else 5, work),
        "latency": serving_latency(prepared, work, 50 if quick else 300),
        "catalog_scaling": catalog_scaling(
            (1000, 10_000) if quick else (1000, 10_000, 100_000),
            50 if quick else 300),
        "peak_memory": peak_memory(5000 if quick else 100_000)}
  finally:
    shutil.rmtree(work, ignore_errors=True)
  rows = [{"measure": label, "ratio": results["training"][key]}
          for key, label in TRAINING_RATIOS]
  rows += [{"measure": f"TFLite / SavedModel p50 latency ({mode})",
            "ratio": row["tflite_vs_saved_model"]}
           for mode, row in results["latency"].items()]
  path = _common.write_report(
      args.out, "speed_quick" if quick else "speed",
      "Speed: training-step and latency ratios", results,
      [("Ratios (measured in one run)", rows, ["measure", "ratio"]),
       ("Online step by teacher size (same run; ratios to the student-alone "
        "step)", results["training"]["teacher_sizes"],
        list(TEACHER_SIZE_COLUMNS)),
       ("TFLite by catalog size (1 thread, batch 1)",
        results["catalog_scaling"],
        ["catalog", "quantization", "bytes", "p50_ms", "p95_ms", "p99_ms"]),
       ("Peak memory of distillation", [results["peak_memory"]],
        ["catalog", "peak_rss_mib"])],
      notes=f"Synthetic data with {prepared.num_items - 2} items, L={L}, "
            f"batch {BATCH}; the teacher is the default TeacherConfig except "
            f"in the teacher-size table. There, student_share is the "
            f"student's parameters over the teacher's; forward is the online "
            f"teacher's forward pass alone (dense: the full-catalog logits, "
            f"what `Distiller(teacher=model)` runs; otherwise its top-{TOP_K}); "
            f"online_dense and online distil with KL at T=2 + ranking, "
            f"online_kl_t1 with KL at T=1 from the top-{TOP_K}, online_hint "
            f"with the hint alone (forward_hidden: the teacher's pass up to "
            f"its hidden layer, all a hint asks of it).")
  print(path.read_text())


if __name__ == "__main__":
  main()

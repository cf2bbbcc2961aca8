"""Student training steps on chunks: one pass over each chunk against one
window per target, alone and distilled, in one run.

A student trains on a batch of chunks of the users' sequences either in
one pass (`OnePassTrainer` alone, the `Distiller`'s one-pass read when
distilled) or on one context window per target
(`examples_at_every_position`, the student compiled with the softmax
cross-entropy alone, the Distiller reading windows). For a mean student
both compute the same losses; a self-attention student's pass is SASRec's
causal formulation, the windows' values at each chunk's last position only
(tests/distill/test_every_position.py). Each trainer runs its
compiled train step over the same batches held in memory, taking turns
(speed.step_times); the ratio is of medians of those rounds.

    python benchmarks/student_one_pass.py             # ml1m's configuration
    python benchmarks/student_one_pass.py --config=synthetic_default
    python benchmarks/student_one_pass.py --config=ml1m_self_attention \
        --name=student_one_pass_self_attention

Writes benchmarks/results/<name>.{json,md} (default student_one_pass).
"""

import argparse
import dataclasses

import _common  # pylint: disable=import-error
import configs  # pylint: disable=import-error
import speed  # pylint: disable=import-error

import tfdistill  # pylint: disable=unused-import  # Keras 2 before TF loads
import numpy as np
import tf_keras

from tfdistill.data import examples
from tfdistill.data.prepare import prepare
from tfdistill.data.sources import load_dataset
from tfdistill.distill import Distiller
from tfdistill.distill.distiller import compiled_trainer
from tfdistill.distill.positions import examples_at_every_position
from tfdistill.models.factory import build_sequential_teacher
from tfdistill.models.factory import build_student
from tfdistill.pipeline.config import distillation_losses


def _trainers(prepared, config, chunks, windows) -> dict:
  """name -> (compiled trainer, its batches) for the four trainers."""
  length = config.context_length
  tf_keras.utils.set_random_seed(config.seed + 1)
  teacher = build_sequential_teacher(prepared, length, dataclasses.replace(
      config.teacher, objective="all_positions"))
  teacher(next(iter(chunks))[0], training=False)

  def student():
    tf_keras.utils.set_random_seed(config.seed + 2)
    return build_student(prepared, length, config.student)

  def optimizer():
    return tf_keras.optimizers.Adam(config.student_learning_rate)

  trainers = {
      "alone_one_pass": (compiled_trainer(student(), optimizer=optimizer(),
                                          chunks=True), chunks),
      "alone_windows": (compiled_trainer(student(), optimizer=optimizer()),
                        windows)}
  for name in ("distilled_one_pass", "distilled_windows"):
    distiller = Distiller(student=student(), teacher=teacher,
                          one_pass=name == "distilled_one_pass")
    distiller.compile(optimizer=optimizer(), alpha=config.alpha,
                      temperature=config.temperature,
                      distillation_loss=distillation_losses(
                          config.distillation_loss, config.temperature))
    trainers[name] = (distiller, chunks)
  return trainers


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", default="ml1m",
                      choices=sorted(configs.BENCHMARKS),
                      help="the named configuration (configs.py): data, "
                      "teacher, student, chunk batch size, losses")
  parser.add_argument("--data_root", default=str(configs.DATA_ROOT))
  parser.add_argument("--steps", type=int, default=10,
                      help="training steps per timing round")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--name", default="student_one_pass")
  parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
  args = parser.parse_args()
  config = configs.pipeline_config(configs.BENCHMARKS[args.config], 0,
                                   args.data_root)
  prepared = prepare(load_dataset(config.source), config.prepare)
  length = config.context_length
  chunks = speed.in_memory(examples.chunk_examples(
      prepared, length, batch_size=config.chunk_batch_size, shuffle=True,
      seed=0), args.steps)
  windows = speed.in_memory(chunks.map(
      lambda x, y: examples_at_every_position(x, y, length)), args.steps)
  targets = sum(int(np.count_nonzero(np.asarray(y))) for _, y in chunks)
  trainers = _trainers(prepared, config, chunks, windows)
  times = speed.step_times(trainers, args.steps, args.rounds)
  rows = [{"trainer": name, "step_seconds": seconds,
           "targets_per_second": targets / args.steps / seconds}
          for name, seconds in times.items()]
  for mode in ("alone", "distilled"):
    rows.append({"trainer": f"{mode}: one pass / windows",
                 "targets_per_second": times[f"{mode}_windows"] /
                 times[f"{mode}_one_pass"]})
  student = config.student
  path = _common.write_report(
      args.out, args.name,
      "Student training on chunks: one pass against one window per target",
      {"rows": rows, "configuration": args.config, "data": prepared.name,
       "targets_per_step": targets / args.steps, "settings": vars(args)},
      [("Median step over rounds (ratio rows: targets per second, one "
        "pass / windows)", rows, ["trainer", "step_seconds",
                                  "targets_per_second"])],
      notes=(f"Data: {prepared.name} ({args.config}): chunks of "
             f"{length} items, {config.chunk_batch_size} per batch, "
             f"{targets / args.steps:.0f} targets per step. Student: "
             f"{student.encoder}, {student.embedding_dim} wide. Distilled: "
             f"the configuration's teacher, causal (untrained: the step's "
             f"time does not depend on its weights), losses {config.distillation_loss}"
             f", alpha {config.alpha}, T={config.temperature}."))
  print(path.read_text())


if __name__ == "__main__":
  main()

"""Distil under MirroredStrategy on two logical CPUs (run as a subprocess).

A separate process because logical devices must be configured before
TensorFlow initialises its runtime, which the test session already did.
"""

import numpy as np

import tfdistill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import tensorflow as tf
import tf_keras

from tfdistill.data import examples
from tfdistill.data.prepare import prepare
from tfdistill.data.prepare import PrepareConfig
from tfdistill.data.sources import load_dataset
from tfdistill.data.sources import SourceConfig
from tfdistill.data.synthetic import SyntheticConfig
from tfdistill.distill import Distiller
from tfdistill.distill import SoftTargetKL
from tfdistill.models.factory import build_sequential_teacher
from tfdistill.models.factory import build_student
from tfdistill.models.factory import TeacherConfig
from tfdistill.models.students import StudentConfig


def main():
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  tf_keras.utils.set_random_seed(0)
  prepared = prepare(load_dataset(SourceConfig(synthetic=SyntheticConfig(
      num_users=100, num_items=60, mean_interactions_per_user=10, seed=3))),
                     PrepareConfig(min_user_interactions=5))
  train = examples.sequence_examples(prepared, "train", 5, batch_size=64,
                                     shuffle=True, seed=0)
  strategy = tf.distribute.MirroredStrategy(
      [d.name for d in tf.config.list_logical_devices("CPU")])
  print(f"replicas={strategy.num_replicas_in_sync}")
  with strategy.scope():
    teacher = build_sequential_teacher(prepared, 5, TeacherConfig(
        embedding_dim=16, num_blocks=1, num_heads=2, ffn_dim=16, dropout=0.0))
    teacher.compile(tf_keras.optimizers.Adam(1e-2))
  teacher.fit(train, epochs=2, verbose=0)
  before = {v.ref(): v.numpy().copy() for v in teacher.variables}
  with strategy.scope():
    student = build_student(prepared, 5, StudentConfig(
        embedding_dim=8, hidden_dim=8, dropout=0.0))
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=tf_keras.optimizers.Adam(1e-2), alpha=0.5,
                      temperature=2.0, distillation_loss=SoftTargetKL())
  history = distiller.fit(train, epochs=4, verbose=0).history
  unchanged = len(before) == len(teacher.variables) and all(
      np.array_equal(before[v.ref()], v.numpy()) for v in teacher.variables)
  print(f"teacher_unchanged={unchanged}")
  print(f"loss_fell={history['loss'][-1] < history['loss'][0]}")


if __name__ == "__main__":
  main()

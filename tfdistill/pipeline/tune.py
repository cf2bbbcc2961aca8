"""`tune`: keras-tuner search over distillation settings under a size budget.

Searches temperature, alpha, distillation loss and student size; the
objective is validation NDCG@10 of the distilled student. Students over the
budget (--max_params, or --max_tflite_bytes of the float32 .tflite) are not
trained and score 0. Writes `<run>/tune/best.flags` (usable as --flagfile),
`trials.json` and `pareto.png` (every trial's size against its quality).
"""

import json
import os

import keras_tuner as kt
import tf_keras

from tfdistill.distill.distiller import Distiller
from tfdistill.errors import ConfigError
from tfdistill.evaluation.evaluate import evaluate_retrieval
from tfdistill.export import tflite
from tfdistill.models.factory import build_student
from tfdistill.models.io import count_parameters
from tfdistill.models.students import StudentConfig
from tfdistill.pipeline.config import distillation_losses
from tfdistill.pipeline.report import plot_pareto
from tfdistill.reporting import fit_verbosity

OBJECTIVE = "val_ndcg@10"
EMBEDDING_DIMS = (8, 16, 32, 64)
LOSS_CHOICES = ("kl", "mse", "ranking", "relaxed_ranking", "kl+ranking")


class DistillationHyperModel(kt.HyperModel):
  """Builds a compiled Distiller per trial; `fit` returns validation NDCG."""

  def __init__(self, run, max_params=None, max_tflite_bytes=None,
               epochs: int = 2):
    super().__init__(name="tfdistill")
    self.run, self.epochs = run, epochs
    self.max_params, self.max_tflite_bytes = max_params, max_tflite_bytes
    self.teacher = run.teacher()
    self.trials = []

  def build(self, hp):
    config = self.run.config
    student = build_student(self.run.prepared, config.context_length,
                            StudentConfig(
                                encoder=config.student.encoder,
                                embedding_dim=hp.Choice("embedding_dim",
                                                        EMBEDDING_DIMS),
                                hidden_dim=config.student.hidden_dim))
    temperature = hp.Choice("temperature", [1.0, 2.0, 4.0])
    distiller = Distiller(student=student, teacher=self.teacher)
    distiller.compile(
        optimizer=tf_keras.optimizers.Adam(config.student_learning_rate),
        alpha=hp.Float("alpha", 0.1, 0.9, step=0.2), temperature=temperature,
        distillation_loss=distillation_losses(
            hp.Choice("distillation_loss", LOSS_CHOICES), temperature))
    return distiller

  def _size(self, student) -> dict:
    size = {"params": count_parameters(student)}
    if self.max_tflite_bytes:
      size["tflite_bytes"] = len(tflite.convert(student, "none"))
    return size

  def fit(self, hp, model, *args, **kwargs):
    size = self._size(model.student)
    over = ((self.max_params and size["params"] > self.max_params) or
            (self.max_tflite_bytes and size["tflite_bytes"]
             > self.max_tflite_bytes))
    score = 0.0
    if not over:
      model.fit(self.run.train_data(), epochs=self.epochs,
                verbose=kwargs.get("verbose", fit_verbosity()),
                callbacks=kwargs.get("callbacks", []))
      score = evaluate_retrieval(model.student,
                                 self.run.evaluation("validation"))[
                                     "ndcg@10"]
    self.trials.append(dict(hp.values, **size, over_budget=bool(over),
                            **{OBJECTIVE: score}))
    return {OBJECTIVE: score}


class _DistillerSearch(kt.RandomSearch):
  """Random search whose trials build and fit the hypermodel's Distiller.

  keras-tuner's own trial (`Tuner.run_trial`) accepts only a model of the
  Keras it imports, which is Keras 3 when the `keras` package is installed;
  a Distiller is a tf_keras model. A `run_trial` that does not call the
  parent's is keras-tuner's documented way to tune anything else."""

  def run_trial(self, trial, *args, **kwargs):
    hp = trial.hyperparameters
    return self.hypermodel.fit(hp, self.hypermodel.build(hp), *args,
                               **kwargs)


def tune(run, max_trials: int = 8, max_params=None, max_tflite_bytes=None,
         epochs: int = 2) -> dict:
  """Runs the search; returns the best hyperparameters and writes files."""
  if max_trials < 1:
    raise ConfigError(f"--max_trials must be >= 1, got {max_trials}.")
  directory = run.step_dir("tune")
  hypermodel = DistillationHyperModel(run, max_params, max_tflite_bytes,
                                      epochs)
  tuner = _DistillerSearch(hypermodel,
                           objective=kt.Objective(OBJECTIVE, "max"),
                           max_trials=max_trials, seed=run.config.seed,
                           directory=directory, project_name="search",
                           overwrite=True)
  tuner.search()
  best = tuner.get_best_hyperparameters(1)[0].values
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "best.flags"), "w") as f:
    f.write(f"--distillation_loss={best['distillation_loss']}\n"
            f"--alpha={best['alpha']:g}\n"
            f"--temperature={best['temperature']:g}\n"
            f"--student_dim={best['embedding_dim']}\n")
  with open(os.path.join(directory, "trials.json"), "w") as f:
    json.dump({"best": best, "trials": hypermodel.trials}, f, indent=2)
  trained = [dict(t, label=f"d={t['embedding_dim']} {t['distillation_loss']}",
                  **{"ndcg@10": t[OBJECTIVE]})
             for t in hypermodel.trials if not t["over_budget"]]
  if trained:
    plot_pareto(trained, os.path.join(directory, "pareto.png"),
                title="Tuning trials: validation NDCG@10 against size")
  return {"best": best, "trials": len(hypermodel.trials),
          "flagfile": os.path.join(directory, "best.flags")}

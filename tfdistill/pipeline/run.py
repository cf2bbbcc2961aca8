"""A pipeline run directory: one folder per step, resumable, repeatable.

    run = Run("runs/ml", preset("default"))
    run.all()          # teacher, student_alone, student_kd, compressed,
                       # export, report
    run.metrics()      # what report/metrics.json holds

Layout: `config.json` (the run's `PipelineConfig`), `data/` (prepared data
and vocabularies), then `teacher/`, `student_alone/`, `student_kd/`,
`compressed/`, `export/` and `report/`. A step is finished when its
`metrics.json` exists; re-running skips finished steps (unless `force`), and
an interrupted training resumes from `<step>/checkpoints` (Keras
`BackupAndRestore`). Every training writes TensorBoard logs to
`<step>/logs` and its epoch curves to `<step>/training_log.csv`.

With a `tf.distribute` strategy (`tfdistill.distribute.make_strategy`) the
models are built and trained under its scope. With several workers, every
worker runs the same steps; the chief alone writes the run directory, the
others read the finished steps there and write their own copies to a
temporary folder of theirs (removed when the process ends), and all resume
from the chief's checkpoints.
"""

import atexit
import contextlib

import os
import shutil
import tempfile
from typing import Optional

import numpy as np

from absl import logging
import tensorflow as tf
import tf_keras

from tfdistill.compress.pipeline import compress_student
from tfdistill.compress.pipeline import EVAL_POOL
from tfdistill.compress.pipeline import write_report as write_compression
from tfdistill.data import examples
from tfdistill.data.prepare import PreparedData
from tfdistill.data.prepare import prepare
from tfdistill.data.sources import load_dataset
from tfdistill.data.vocab import NUM_RESERVED
from tfdistill.distribute import is_chief
from tfdistill.distill.distiller import compiled_trainer
from tfdistill.distill.distiller import reads_chunks
from tfdistill.distill.embedding_transfer import is_full_item_table
from tfdistill.distill.embedding_transfer import transfer_item_embeddings
from tfdistill.distill.positions import examples_at_every_position
from tfdistill.distill.teachers import as_teacher_source
from tfdistill.distill.teachers import OnlineTeacher
from tfdistill.errors import ConfigError
from tfdistill.errors import ExportError
from tfdistill.errors import ModelError
from tfdistill.evaluation.callbacks import RankingEvaluation
from tfdistill.evaluation.evaluate import evaluate_retrieval
from tfdistill.evaluation.evaluate import evaluate_tflite
from tfdistill.evaluation.ranking import STAGE_METRICS
from tfdistill.export import tflite
from tfdistill.export.exporter import export_student
from tfdistill.export.exporter import ExportConfig
from tfdistill.export.partitions import PartitionConfig
from tfdistill.fileio import read_json
from tfdistill.fileio import write_json
from tfdistill.models.factory import build_sequential_teacher
from tfdistill.models.factory import build_student
from tfdistill.models.io import catalog_size
from tfdistill.models.io import count_parameters
from tfdistill.models.io import load_model
from tfdistill.models.io import MODEL_FILE
from tfdistill.models.io import save_model
from tfdistill.pipeline.config import distillation_losses
from tfdistill.pipeline.config import fields_read
from tfdistill.pipeline.config import migrate_stored_config
from tfdistill.pipeline.config import PipelineConfig
from tfdistill.pipeline.config import READ_ORDER
from tfdistill.reporting import fit_verbosity
from tfdistill.resume import BestEpoch
from tfdistill.resume import enable_repeatable_randomness
from tfdistill.resume import RepeatableEpochs

#: The steps of a run, in order.
STEPS = READ_ORDER[1:]
#: The steps that train (under a strategy, every worker takes part).
TRAINING_STEPS = STEPS[:4]
#: The file without which a finished step is redone.
STEP_OUTPUTS = {step: ("model", MODEL_FILE) for step in
                ("teacher", "student_alone", "student_kd", "compressed")}
STEP_OUTPUTS["export"] = ("tflite", "manifest.json")
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"

#: The fields of a step's metrics.json that name a file of the run: stored
#: relative to the run directory, so that it can be moved or copied.
PATH_FIELDS = ("path", "report")
QUALITY_KEYS = STAGE_METRICS + ("mrr",)
_REPRESENTATIVE_SIZE = 256


def _differences(old: dict, new: dict, prefix: str = "") -> list:
  """The fields that differ, nested ones as parent.field."""
  names = []
  for key in sorted(set(old) | set(new)):
    a, b = old.get(key), new.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
      names += _differences(a, b, f"{prefix}{key}.")
    elif a != b:
      names.append(prefix + key)
  return names


def _nearest_preset(values: dict) -> tuple:
  """(name, differing fields) of the preset closest to a stored config."""
  from tfdistill.pipeline.config import PRESETS  # pylint: disable=import-outside-toplevel
  from tfdistill.pipeline.config import preset  # pylint: disable=import-outside-toplevel
  return min(((name, _differences(values, preset(name).to_json()))
              for name in PRESETS), key=lambda entry: len(entry[1]))


def started_steps(out: str) -> list:
  """The steps run directory `out` holds work of, in the order they read
  the configuration: its prepared data, a finished step (its metrics.json)
  or an interrupted training (its checkpoints). A step of another name
  (`Run.distilled_student`) counts as student_kd."""
  started = {"data"} if os.path.isdir(os.path.join(out, "data")) else set()
  for name in (os.listdir(out) if os.path.isdir(out) else ()):
    if os.path.isfile(os.path.join(out, name, METRICS_FILE)) or (
        os.path.isdir(os.path.join(out, name, "checkpoints")) and
        os.listdir(os.path.join(out, name, "checkpoints"))):
      started.add(name if name in STEPS else "student_kd")
  return [step for step in READ_ORDER if step in started]


def _mismatch_message(out: str, stored: dict, wanted: dict,
                      differences: list, started: list) -> str:
  """Why a run directory refuses a configuration: the `differences` its
  `started` steps read, naming its preset when the two were made from
  different presets."""
  (made, _), (asked, _) = _nearest_preset(stored), _nearest_preset(wanted)
  if made != asked:
    return (f"{out} holds a run made with --preset={made} (this command "
            f"asks for --preset={asked}); pass --preset={made} with the "
            "flags it was made with (its config.json), use another --out, "
            "or --force to recompute it.")
  shown = ", ".join(differences[:8]) + (
      f" and {len(differences) - 8} more" if len(differences) > 8 else "")
  return (f"{out} holds a run with a different configuration (differs in: "
          f"{shown}, which its steps {', '.join(started)} read); "
          "pass the flags it was made with (its config.json), use another "
          "--out, or --force to recompute it with the new one.")


def stored_config(out: str) -> PipelineConfig:
  """The configuration of the run in directory `out`, with the fields added
  since it was written at what it used."""
  return PipelineConfig.from_json(migrate_stored_config(read_json(os.path.join(
      out, CONFIG_FILE))))


def config_of_model(model_dir: str) -> Optional[PipelineConfig]:
  """The configuration of the run a model folder belongs to
  (<run>/<step>/model), or None for a model outside a run."""
  run_dir = os.path.dirname(os.path.dirname(os.path.abspath(model_dir)))
  if not os.path.isfile(os.path.join(run_dir, CONFIG_FILE)):
    return None
  return stored_config(run_dir)


def teacher_parameters(teacher) -> int:
  """Parameters of a teacher source: of its Keras models, else of the
  variables of the SavedModel behind it (0 when unknown)."""
  counted = sum(count_parameters(model) for model in teacher.models())
  loaded = getattr(teacher, "saved_model", None)
  if not counted and loaded is not None:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    variables = {id(v): v for v in tf.train.TrackableView(
        loaded).descendants() if isinstance(v, tf.Variable) and v.trainable}
    counted = int(sum(np.prod(v.shape) for v in variables.values()))
  return counted


def reads_users(teacher) -> bool:
  """Whether a teacher source reads the batch's user index."""
  return teacher is not None and "user" in as_teacher_source(
      teacher).input_signature()


def teaches_every_position(teacher) -> bool:
  """Whether `teacher` (a TeacherSource or None) is a causal sequential
  teacher, trained on every position: its student is then distilled on
  every position of each chunk of a user's sequence, in one teacher pass
  per chunk, as the teacher was trained."""
  return isinstance(teacher, OnlineTeacher) and bool(
      getattr(teacher.model, "causal", False))


def check_checkpoint(directory: str) -> None:
  """Raises ModelError naming the folder unless the latest checkpoint of
  `BackupAndRestore` in it can be read whole."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  latest = None
  for root, _, names in os.walk(directory):
    if "checkpoint" in names:
      latest = tf.train.latest_checkpoint(root) or latest
  try:
    if latest is None:
      raise ValueError("no checkpoint index")
    reader = tf.train.load_checkpoint(latest)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except (tf.errors.OpError, ValueError, IndexError) as error:
    # IndexError: TensorFlow's reader of a truncated file ("Read less bytes
    # than requested").
    first = str(error).strip().splitlines()[0][:200]
    raise ModelError(
        f"{directory}: the checkpoint of an interrupted training cannot be "
        f"read ({first}); rerun with --force to restart this step from "
        "scratch.") from None


class Run:
  """The steps of one pipeline run in `out`.

  Args:
    out: Run directory.
    config: The run's configuration; must match an existing run's
      config.json, unless `force`, in the fields that the steps it has
      started read (`FIRST_READER`).
    force: Recompute every step (and accept a changed configuration).
    strategy: A `tf.distribute` strategy to train under (default: none).
  """

  def __init__(self, out: str, config: PipelineConfig, force: bool = False,
               strategy=None):
    self.out, self.config, self.force = out, config, force
    self.strategy = strategy
    #: Whether this process writes the run directory (`shared`).
    self.chief = is_chief(strategy)
    self.shared = out
    self._prepared = None
    self._models = {}
    self._done_this_run = set()
    self._claimed = False
    # What the last student_trainer(teacher)'s item table started from.
    self.student_init_used = None
    if os.path.exists(out) and not os.path.isdir(out):
      raise ConfigError(f"--out={out} is a file, not a folder; choose a "
                        "folder for the run.")
    path = os.path.join(out, CONFIG_FILE)
    if os.path.isfile(path):
      stored = migrate_stored_config(read_json(path))
      changed = _differences(stored, config.to_json())
      if changed and not force:
        started = started_steps(out)
        read = fields_read(started)
        refused = [name for name in changed if name.split(".")[0] in read]
        if refused:
          raise ConfigError(_mismatch_message(
              out, stored, config.to_json(), refused, started))
        # Only steps not started yet read them: the run goes on with the
        # new values, which config.json records when a step next writes,
        # once the prepared data's checks pass them.
        if "data" in started:
          self._check_fits(self.prepared)
        logging.warning("%s: config.json changes in %s, which no step done "
                        "so far read", out, ", ".join(changed))
    elif os.path.isdir(out) and os.listdir(out):
      raise ConfigError(f"{out} exists and is not a tfdistill run directory "
                        "(no config.json); choose an empty or new --out.")
    # Nothing is written until a step starts (`claim`): a run that fails
    # its checks leaves no state that would refuse the corrected command.
    if not self.chief:
      self.out = tempfile.mkdtemp(prefix="tfdistill-worker-")
      atexit.register(shutil.rmtree, self.out, True)

  def claim(self) -> None:
    """Creates the run directory and writes its config.json (once).

    The steps call it when they first write; call it to start a run
    directory that other files are copied into (e.g. a finished teacher).
    """
    if not self._claimed:
      os.makedirs(self.out, exist_ok=True)
      write_json(os.path.join(self.out, CONFIG_FILE), self.config.to_json())
      self._claimed = True

  # ------------------------------------------------------------ helpers
  def step_dir(self, step: str) -> str:
    return os.path.join(self.out, step)

  def _scope(self):
    """The strategy's scope, for building and training models."""
    return (self.strategy.scope() if self.strategy is not None else
            contextlib.nullcontext())

  def _finished_root(self, step: str) -> str:
    """Where a step's finished files are: this process's own folder, or for
    a worker that is not the chief, the chief's run directory."""
    own = os.path.join(self.out, step, METRICS_FILE)
    if self.chief or step in self._done_this_run or os.path.isfile(own):
      return self.out
    return self.shared

  def done(self, step: str) -> bool:
    """Whether a step is finished: its metrics.json and its model (or
    export) are there. A finished step whose model was deleted is redone."""
    if self.force and step not in self._done_this_run:
      return False
    directory = os.path.join(self._finished_root(step), step)
    if not os.path.isfile(os.path.join(directory, METRICS_FILE)):
      return False
    output = os.path.join(directory, *STEP_OUTPUTS.get(step, ()))
    if step == "teacher" and self.config.teacher_path:
      return True  # the user's teacher: nothing saved
    if step in STEP_OUTPUTS and not os.path.isfile(output):
      logging.warning("%s is missing: redoing the %s step", output, step)
      return False
    return True

  def step_metrics(self, step: str) -> dict:
    """A finished step's metrics.json, its paths resolved against the run
    directory's current location."""
    root = self._finished_root(step)
    metrics = read_json(os.path.join(root, step, METRICS_FILE))
    return {k: (os.path.normpath(os.path.join(root, v))
                if k in PATH_FIELDS and isinstance(v, str) else v)
            for k, v in metrics.items()}

  def _finish(self, step: str, metrics: dict) -> dict:
    self.claim()
    os.makedirs(self.step_dir(step), exist_ok=True)
    stored = {k: (os.path.relpath(v, self.out)
                  if k in PATH_FIELDS and isinstance(v, str) else v)
              for k, v in metrics.items()}
    write_json(os.path.join(self.step_dir(step), METRICS_FILE), stored)
    self._done_this_run.add(step)
    logging.info("%s done: %s", step, {k: metrics.get(k) for k in
                                       ("ndcg@10", "params")})
    return metrics

  @property
  def prepared(self) -> PreparedData:
    if self._prepared is None:
      path = os.path.join(self.out, "data")
      if not os.path.isdir(path) and not self.chief:
        path = os.path.join(self.shared, "data")
      if os.path.isdir(path) and not (self.force and "data" not in
                                      self._done_this_run):
        self._prepared = PreparedData.load(path)
      else:
        prepared = prepare(load_dataset(self.config.source),
                           self.config.prepare)
        self._check_fits(prepared)
        self.claim()
        prepared.save(os.path.join(self.out, "data"), overwrite=True)
        self._prepared = prepared
        self._done_this_run.add("data")
    return self._prepared

  def _check_fits(self, prepared: PreparedData) -> None:
    """Checks, before any training, what the data decides."""
    num_items = prepared.num_items - NUM_RESERVED
    for flag, k in (("top_k", self.config.top_k),
                    *(("more_k", k) for k in self.config.more_k)):
      if k > num_items:
        raise ConfigError(f"--{flag}={k} is larger than the catalog of "
                          f"{prepared.name} ({num_items} items kept); choose "
                          f"--{flag} <= {num_items}.")
    if self.config.partitions:
      try:
        PartitionConfig(self.config.partitions, self.config.probe).resolved(
            prepared.num_items)
      except ExportError as error:
        raise ConfigError(str(error)) from error

  def train_data(self, epoch=None, with_users: bool = False):
    """The training examples, shuffled; with `epoch` (a `RepeatableEpochs`
    variable) in an order that is a function of (seed, epoch); with
    `with_users`, their user index too (for teachers that read it)."""
    return examples.sequence_examples(
        self.prepared, "train", self.config.context_length,
        batch_size=self.config.batch_size, shuffle=True, seed=self.config.seed,
        epoch=epoch, with_users=with_users)

  def chunk_data(self, epoch=None):
    """Chunks of the users' training sequences, a target at every position
    (`examples.chunk_examples`), shuffled as `train_data`."""
    return examples.chunk_examples(
        self.prepared, self.config.context_length,
        batch_size=self.config.chunk_batch_size, shuffle=True,
        seed=self.config.seed, epoch=epoch)

  def evaluation(self, split: str = "test"):
    return examples.evaluation_set(self.prepared, split,
                                   self.config.context_length)

  def save_extras(self) -> dict:
    """What saved students carry for export (computed once per run)."""
    if not hasattr(self, "_extras"):
      self._extras = dict(
          vocabulary=self.prepared.items,
          representative=examples.calibration_contexts(
              self.prepared, self.config.context_length,
              _REPRESENTATIVE_SIZE, self.config.seed),
          holdout=self.evaluation("validation").contexts[
              :_REPRESENTATIVE_SIZE])
    return self._extras

  def _fit(self, step: str, trainer, epochs: int, evaluate_model=None,
           with_users: bool = False, chunks: bool = False,
           per_target: bool = False):
    """fit with checkpoint resume, TensorBoard and validation NDCG; with
    `chunks`, on batches of chunks of the users' sequences, which
    `per_target` turns into one example per target (for a trainer that
    reads examples, not chunks)."""
    self.claim()
    directory = self.step_dir(step)
    os.makedirs(directory, exist_ok=True)
    log = os.path.join(directory, "training_log.csv")
    # Every worker restores the chief's checkpoints (Keras writes a
    # non-chief's into a temporary folder inside them and removes it).
    checkpoints = os.path.join(self.shared, step, "checkpoints")
    best_dir = os.path.join(directory, "best_epoch")
    if self.force and self.chief and os.path.isdir(checkpoints):
      # --force recomputes: an interrupted training's checkpoint (which this
      # step wrote) is not resumed.
      shutil.rmtree(checkpoints)
    if os.path.isdir(checkpoints) and os.listdir(checkpoints):
      check_checkpoint(checkpoints)
      logging.info("%s: resuming from %s", step, checkpoints)
    else:  # a fresh start, not a resume: no state of an earlier training
      if os.path.exists(log):
        os.remove(log)
      if os.path.isdir(best_dir):
        shutil.rmtree(best_dir)
    # After BackupAndRestore: epoch k's data order and dropout are the
    # same whether this process trained epochs 0..k-1 or restored them.
    repeatable = RepeatableEpochs(self.config.seed)
    # Every training stops on validation NDCG@10 and keeps its best epoch:
    # before BackupAndRestore, so that an epoch whose checkpoint was not
    # written is scored again on the resume.
    best = BestEpoch(best_dir, "val_ndcg@10",
                     self.config.early_stopping_patience)
    callbacks = [
        RankingEvaluation(self.evaluation("validation"),
                          model_attribute=evaluate_model or ""),
        best,
        tf_keras.callbacks.BackupAndRestore(checkpoints),
        repeatable,
        tf_keras.callbacks.TensorBoard(os.path.join(directory, "logs")),
        tf_keras.callbacks.CSVLogger(log, append=True)]
    if chunks:  # every position of a chunk of a user's sequence
      data = self.chunk_data(epoch=repeatable.epoch)
      if per_target:
        length = self.config.context_length
        data = data.map(lambda x, y: examples_at_every_position(x, y, length))
    else:
      data = self.train_data(epoch=repeatable.epoch, with_users=with_users)
    if self.strategy is not None:
      # Each worker keeps its share of every global batch (the data come
      # from memory, not files).
      options = tf.data.Options()
      options.experimental_distribute.auto_shard_policy = (
          tf.data.experimental.AutoShardPolicy.DATA)
      data = data.with_options(options)
    if not trainer.built:
      # BackupAndRestore restores the optimizer's slots only into a built
      # model; a subclassed teacher is built by calling it once.
      trainer(next(iter(data.take(1)))[0], training=False)
    trainer.fit(data, epochs=epochs, callbacks=callbacks,
                verbose=fit_verbosity())
    return {"best_epoch": best.best_epoch + 1,
            "epochs_trained": best.epochs_trained,
            "training_seconds": best.training_seconds,
            # What early stopping chose the kept epoch by.
            best.monitor: best.history[best.best_epoch]}

  def _quality(self, model) -> dict:
    result = evaluate_retrieval(model, self.evaluation("test"))
    return {k: float(result[k]) for k in QUALITY_KEYS}

  def _cached(self, step: str, compute):
    """A model step: its saved model when the step is done, else what
    `compute` trains (and saves)."""
    return self._load(step) if self.done(step) else compute()

  def _load(self, step: str):
    if step not in self._models:
      with self._scope():
        self._models[step] = load_model(os.path.join(
            self._finished_root(step), step, "model"))
    return self._models[step]

  def _seed(self, offset: int) -> None:
    """Seeds the models about to be built; their random layers draw from
    generators that `RepeatableEpochs` reseeds at every epoch."""
    enable_repeatable_randomness()
    tf_keras.utils.set_random_seed(self.config.seed + offset)

  # -------------------------------------------------------------- steps
  def external_teacher(self):
    """The user's own teacher (config.teacher_path) as a teacher source,
    its signals in the run's item numbering."""
    if "teacher" not in self._models:
      from tfdistill.distill.saved_teacher import as_external_teacher  # pylint: disable=import-outside-toplevel
      from tfdistill.distill.teacher_inputs import parse_inputs  # pylint: disable=import-outside-toplevel
      config, prepared = self.config, self.prepared
      self._models["teacher"] = as_external_teacher(
          config.teacher_path, prepared.items,
          signature=config.teacher_signature,
          item_keys=(prepared.item_titles if config.teacher_item_key ==
                     "title" else None),
          user_keys=prepared.users.tokens,
          context_length=config.context_length,
          inputs=parse_inputs(config.teacher_inputs),
          strict_vocabulary=config.strict_vocabulary)
    return self._models["teacher"]

  def _external_teacher_step(self):
    """The teacher step of a run given a teacher: measured, not trained."""
    teacher = self.external_teacher()
    if not self.done("teacher"):
      metrics = dict(self._quality(teacher),
                     params=teacher_parameters(teacher),
                     path=os.path.abspath(self.config.teacher_path))
      if hasattr(teacher, "describe"):
        metrics["origin"] = teacher.describe()
      self._finish("teacher", metrics)
    return teacher

  def teacher(self):
    if self.config.teacher_path:
      return self._external_teacher_step()
    return self._cached("teacher", self._train_teacher)

  def _train_teacher(self):
    config = self.config
    self._seed(1)
    with self._scope():
      teacher = build_sequential_teacher(self.prepared, config.context_length,
                                         config.teacher)
      teacher.compile(tf_keras.optimizers.Adam(config.teacher_learning_rate))
      epochs = self._fit("teacher", teacher, config.teacher_epochs,
                         chunks=config.teacher.objective == "all_positions")
    path = save_model(teacher, os.path.join(self.step_dir("teacher"),
                                            "model"), overwrite=True)
    self._models["teacher"] = teacher
    self._finish("teacher", dict(self._quality(teacher), **epochs,
                                 params=count_parameters(teacher), path=path))
    return teacher

  def student_trainer(self, teacher=None, chunks: bool = False) -> tuple:
    """(student, trainer): the run's initial student, compiled as its steps
    train it, alone (trainer = student, or a trainer around it: see
    `compiled_trainer`, and `chunks` for batches of chunks) or in a
    Distiller on `teacher` (a model, a list of models or a `TeacherSource`;
    frozen in place)."""
    config = self.config
    self._seed(2)  # the same initial student with and without a teacher
    student = build_student(self.prepared, config.context_length,
                            config.student)
    self.student_init_used = (None if teacher is None else
                              self.init_item_table(student, teacher))
    return student, compiled_trainer(
        student, teacher,
        tf_keras.optimizers.Adam(config.student_learning_rate),
        alpha=config.alpha, temperature=config.temperature,
        distillation_loss=(None if teacher is None else
                           self.distillation_loss()),
        student_negatives=config.student_negatives, seed=config.seed,
        chunks=chunks, chunk_length=config.context_length)

  def distillation_loss(self) -> list:
    """New objects of the run's distillation losses (config's names)."""
    return distillation_losses(self.config.distillation_loss,
                               self.config.temperature)

  def init_item_table(self, student, teacher) -> str:
    """Applies config.student_init to a student about to be distilled from
    `teacher` (a tfdistill retrieval teacher); returns what its item table
    starts from ("teacher_items" or "random")."""
    if self.config.student_init == "random":
      return "random"
    if self.config.student_init == "auto" and not is_full_item_table(student):
      # A factored table holds an approximation of the teacher's items:
      # asked for with --student_init=teacher_items.
      logging.info("student item table random (--student_init=auto): the "
                   "table is not a full one.")
      return "random"
    try:
      kept = transfer_item_embeddings(student, teacher)
    except ModelError as error:
      if self.config.student_init == "teacher_items":
        raise ConfigError(f"--student_init=teacher_items does not apply: "
                          f"{error} Use --student_init=auto or random.") from None
      logging.info("student item table random (--student_init=auto): %s",
                   error)
      return "random"
    logging.info("student item table from the teacher's items (%.0f%% of "
                 "their variance kept)", 100 * kept)
    return "teacher_items"

  def _student(self, step: str, teacher=None):
    teacher_params = 0
    if teacher is not None:
      teacher = as_teacher_source(teacher)
      # Counted before the Distiller freezes the teacher's weights (a
      # teacher frozen by an earlier Distiller counts 0 and is not compared).
      teacher_params = teacher_parameters(teacher)
    # The student alone sees the batches its distilled twin sees: chunks
    # when the run's own teacher is trained on every position.
    chunks = (teaches_every_position(teacher) if teacher is not None else
              self.students_read_chunks())
    with self._scope():
      student, trainer = self.student_trainer(teacher, chunks)
      epochs = self._fit(step, trainer, self.config.student_epochs,
                         with_users=reads_users(teacher), chunks=chunks,
                         per_target=not reads_chunks(trainer))
    path = save_model(student, os.path.join(self.step_dir(step), "model"),
                      overwrite=True, **self.save_extras())
    self._models[step] = student
    metrics = dict(self._quality(student), **epochs,
                   params=count_parameters(student), path=path)
    if teacher is not None:
      metrics["student_init"] = self.student_init_used
    if teacher_params:
      metrics["params_vs_teacher"] = metrics["params"] / teacher_params
    self._finish(step, metrics)
    if teacher is not None and self.done("student_alone"):
      from tfdistill.pipeline.report import distillation_behind  # pylint: disable=import-outside-toplevel
      behind = distillation_behind(self.step_metrics("student_alone"),
                                   metrics)
      if behind:
        logging.warning("%s: %s", step, behind)
    return student

  def students_read_chunks(self) -> bool:
    """Whether the run's students train on chunks of the users' sequences
    (every position of a chunk per batch), as its own teacher, trained on
    every position, is distilled; else on one context window per target."""
    return (not self.config.teacher_path and
            self.config.teacher.objective == "all_positions")

  def student_alone(self):
    return self._cached("student_alone",
                        lambda: self._student("student_alone"))

  def student_kd(self):
    return self._cached("student_kd",
                        lambda: self._student("student_kd", self.teacher()))

  def distilled_student(self, step: str, teacher):
    """The run's student distilled from another `teacher` in step `step`.

    As `student_kd` (same initial student, loss, epochs; resumable), with a
    model, a list of models (an ensemble) or a `TeacherSource` in place of
    the run's teacher. Its metrics' `params_vs_teacher` counts every model
    of the teacher; pass teachers no other Distiller has frozen.
    """
    return self._cached(step, lambda: self._student(step, teacher))

  def compress(self, config, log_dir=None) -> tuple:
    """`compress_student` on the run's distilled student as `config` says,
    its fine-tunes distilling from the run's teacher with the run's losses;
    returns (model, report, sparse_model)."""
    student, teacher = self.student_kd(), self.teacher()
    self._seed(3)
    if teaches_every_position(as_teacher_source(teacher)):
      train = self.chunk_data()
    else:
      train = self.train_data(with_users=reads_users(teacher))
    with self._scope():
      return compress_student(
          student, train, self.evaluation("test"), config, teacher=teacher,
          representative=self.save_extras()["representative"],
          log_dir=log_dir, distillation_loss=self.distillation_loss(),
          student_negatives=self.config.student_negatives)

  def compressed(self):
    return self._cached("compressed", self._compress_step)

  def _compress_step(self):
    directory = self.step_dir("compressed")
    extras = self.save_extras()
    model, report, _ = self.compress(self.config.fine_tunes,
                                     os.path.join(directory, "logs"))
    write_compression(report, directory)
    path = save_model(model, os.path.join(directory, "model"),
                      overwrite=True, **extras)
    self._models["compressed"] = model
    last = report["steps"][-1]
    # Its validation figure: what a choice between compression settings
    # may read (the test figures are the report's).
    validation = evaluate_retrieval(model, self.evaluation("validation"))
    self._finish("compressed", {
        **{k: last.get(k) for k in STAGE_METRICS},
        "val_ndcg@10": float(validation["ndcg@10"]),
        "params": last["params"], "nonzeros": last["nonzeros"],
        "sparsity": report["summary"]["sparsity"],
        "target_sparsity": self.config.fine_tunes.target_sparsity,
        "qat": self.config.fine_tunes.qat,
        "tflite_eval": report["tflite"], "path": path,
        "report": os.path.join(directory, "compression_report.md")})
    return model

  def export(self) -> dict:
    if self.done("export"):
      return self.step_metrics("export")
    self.compressed()
    out = self.step_dir("export")
    # overwrite: an unfinished export of an interrupted run (only folders
    # the exporter wrote are replaced).
    manifest = export_student(
        os.path.join(self._finished_root("compressed"), "compressed",
                     "model"), out,
        ExportConfig(tflite=True, saved_model=True,
                     quantize=self.config.quantize, top_k=self.config.top_k,
                     min_agreement=self.config.min_agreement,
                     model_name="tfdistill_student", version=1,
                     overwrite=True,
                     exclude_length=self.config.exclude_length,
                     more_k=tuple(self.config.more_k),
                     partitions=self.config.partitions,
                     probe=self.config.probe,
                     min_recall=self.config.min_recall))
    quality = self.step_metrics("compressed")["tflite_eval"]
    if quality["quantization"] != self.config.quantize:
      # The compression report measured another mode: measure this one.
      quality = dict(evaluate_tflite(tflite.convert(
          self.compressed(), self.config.quantize,
          min(EVAL_POOL, catalog_size(self.compressed()) - NUM_RESERVED),
          self.save_extras()["representative"]), self.evaluation("test")),
                     quantization=self.config.quantize)
    return self._finish("export", {"manifest": manifest, "path": out,
                                   "tflite_eval": quality})

  def metrics(self) -> dict:
    """The report's metrics.json: one entry per finished stage (a run
    driven step by step may have left the student alone out)."""
    stages = {step: self.step_metrics(step) for step in
              ("teacher", "student_alone", "student_kd", "compressed")
              if self.done(step)}
    export = self.step_metrics("export")
    manifest = export["manifest"]
    quality = export.get("tflite_eval", stages["compressed"]["tflite_eval"])
    latency = manifest.get("latency", {})
    stages["tflite"] = {
        **{k: quality.get(k) for k in STAGE_METRICS},
        "params": stages["compressed"]["params"],
        "path": os.path.join(export["path"], "tflite", "model.tflite"),
        "bytes": manifest["bytes"]["tflite"],
        "gzip_bytes": manifest["bytes"]["tflite_gzip"],
        "float_bytes": manifest["bytes"]["float32_tflite"],
        "quantization": manifest["quantization"],
        "parity": manifest["parity"],
        "latency_ms": latency.get("tflite", {}),
        "saved_model_latency_ms": latency.get("saved_model", {}),
        "saved_model_path": os.path.join(export["path"], "serving",
                                         "tfdistill_student", "1")}
    return stages

  def report(self) -> str:
    from tfdistill.pipeline.report import write_run_report  # pylint: disable=import-outside-toplevel
    self.export()
    path = write_run_report(self)  # writes report/metrics.json last
    self._done_this_run.add("report")
    return path

  def all(self) -> dict:
    """Every step; its metrics. A worker that is not the chief takes part
    in the trainings only (export and report involve no other worker) and
    returns {}."""
    for step in STEPS if self.chief else TRAINING_STEPS:
      getattr(self, step)()
    return self.metrics() if self.chief else {}

"""Where training runs: one process, several local devices, or a cluster.

    strategy = make_strategy("multi_worker")   # from TF_CONFIG
    run = Run(out, config, strategy=strategy)

`multi_worker` is `tf.distribute.MultiWorkerMirroredStrategy` configured
from the `TF_CONFIG` environment variable, the way TensorFlow jobs run on
Kubernetes, Vertex AI or a cluster of your own: every worker runs the same
command; the chief (the "chief" task, else worker 0) alone writes the run
directory, which must be on storage every worker reads (a shared file
system or a bucket).
"""

import json
import os
import socket
import threading
import time
from typing import Optional

from tfdistill.errors import ConfigError

STRATEGIES = ("default", "mirrored", "multi_worker")
#: Seconds a worker waits for the others to answer.
DEFAULT_WORKER_TIMEOUT = 120.0
_EXAMPLE = ('TF_CONFIG=\'{"cluster": {"worker": ["host0:2222", "host1:2222"]}, '
            '"task": {"type": "worker", "index": 0}}\'')


def _address(value, where: str) -> tuple:
  if not isinstance(value, str) or value.count(":") != 1:
    raise ConfigError(f"TF_CONFIG: {where} is {value!r}; write each task's "
                      "address as host:port.")
  host, port = value.split(":")
  if not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise ConfigError(f"TF_CONFIG: {where} is {value!r}; write each task's "
                      "address as host:port with a port in 1..65535.")
  return host, int(port)


def cluster_from_environment() -> dict:
  """TF_CONFIG, checked: {"cluster": {type: [host:port, ...]}, "task":
  {"type", "index"}}, this task among the cluster's chief or workers."""
  raw = os.environ.get("TF_CONFIG", "")
  if not raw.strip():
    raise ConfigError("--strategy=multi_worker needs the TF_CONFIG "
                      f"environment variable on every worker, e.g. {_EXAMPLE}.")
  try:
    config = json.loads(raw)
  except ValueError as error:
    raise ConfigError(f"TF_CONFIG is not valid JSON ({error}); e.g. "
                      f"{_EXAMPLE}.") from None
  cluster = config.get("cluster") if isinstance(config, dict) else None
  task = config.get("task") if isinstance(config, dict) else None
  if not isinstance(cluster, dict) or not isinstance(task, dict):
    raise ConfigError("TF_CONFIG needs a \"cluster\" and a \"task\" object; "
                      f"e.g. {_EXAMPLE}.")
  if not cluster.get("worker") and not cluster.get("chief"):
    raise ConfigError("TF_CONFIG: the cluster lists no \"worker\" (or "
                      "\"chief\") addresses.")
  for kind, addresses in cluster.items():
    if kind not in ("chief", "worker", "evaluator"):
      raise ConfigError(f"TF_CONFIG: task type {kind!r} is not used by "
                        "--strategy=multi_worker; list \"chief\" and "
                        "\"worker\" tasks.")
    if not isinstance(addresses, list) or not addresses:
      raise ConfigError(f"TF_CONFIG: cluster.{kind} must be a list of "
                        "host:port addresses.")
    for i, address in enumerate(addresses):
      _address(address, f"cluster.{kind}[{i}]")
  kind, index = task.get("type"), task.get("index", 0)
  if kind not in cluster or not isinstance(index, int) or not (
      0 <= index < len(cluster[kind])):
    raise ConfigError(f"TF_CONFIG: task {kind!r} {index!r} is not in the "
                      f"cluster ({', '.join(f'{k}: {len(v)}' for k, v in cluster.items())}).")
  return config


def local_tf_configs(num_workers: int, host: str = "localhost") -> list:
  """TF_CONFIG values for `num_workers` processes on this machine, on free
  loopback ports (to try multi-worker training on one machine)."""
  sockets = [socket.socket() for _ in range(num_workers)]
  try:
    for s in sockets:
      s.bind((host, 0))
    addresses = [f"{host}:{s.getsockname()[1]}" for s in sockets]
  finally:
    for s in sockets:
      s.close()
  return [json.dumps({"cluster": {"worker": addresses},
                      "task": {"type": "worker", "index": index}})
          for index in range(num_workers)]


def is_chief_task(config: dict) -> bool:
  """The chief writes: the "chief" task, else worker 0."""
  kind, index = config["task"]["type"], config["task"].get("index", 0)
  if "chief" in config["cluster"]:
    return kind == "chief"
  return kind == "worker" and index == 0


def _answers(host: str, port: int) -> bool:
  try:
    with socket.create_connection((host, port), timeout=2):
      return True
  except OSError:
    return False


def unreachable_tasks(config: dict) -> list:
  """The other tasks whose port does not answer now, as "type index at
  host:port"."""
  me = (config["task"]["type"], config["task"].get("index", 0))
  missing = []
  for kind, addresses in config["cluster"].items():
    for index, address in enumerate(addresses):
      if kind != "evaluator" and (kind, index) != me and not _answers(
          *_address(address, f"cluster.{kind}[{index}]")):
        missing.append(f"{kind} {index} at {address}")
  return missing


def wait_for_cluster(config: dict, timeout: float) -> None:
  """Waits until every other task of `config` answers on its port, while
  this task answers on its own; raises `ConfigError` naming the tasks that
  did not within `timeout` seconds.

  The multi-worker strategy itself waits for the other tasks without end,
  inside TensorFlow; this check first, with a plain socket on this task's
  port (closed again before the strategy's server takes it over).
  """
  me = config["task"]["type"], config["task"].get("index", 0)
  _, port = _address(config["cluster"][me[0]][me[1]],
                     f"cluster.{me[0]}[{me[1]}]")
  listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
  listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
  try:
    listener.bind(("", port))
  except OSError as error:
    listener.close()
    raise ConfigError(f"TF_CONFIG: this task ({me[0]} {me[1]}) cannot listen "
                      f"on port {port} ({error.strerror or error}); choose a "
                      "free port.") from None
  listener.listen(64)
  listener.settimeout(0.2)
  stop = threading.Event()

  def answer():
    while not stop.is_set():
      try:
        connection, _ = listener.accept()
        connection.close()
      except OSError:
        continue
  thread = threading.Thread(target=answer, daemon=True,
                            name="tfdistill-cluster-check")
  thread.start()
  try:
    deadline = time.monotonic() + timeout
    missing = unreachable_tasks(config)
    while missing and time.monotonic() < deadline:
      time.sleep(0.5)
      missing = unreachable_tasks(config)
  finally:
    stop.set()
    thread.join()
    listener.close()
  if missing:
    raise ConfigError(
        f"cannot reach {', '.join(missing)} within {timeout:.0f} s; start "
        "every worker with the same command and check that the addresses "
        "are reachable from this machine (--worker_timeout sets the wait).")


def make_strategy(name: str, worker_timeout: float = DEFAULT_WORKER_TIMEOUT):
  """The `tf.distribute` strategy `name` names (see `STRATEGIES`).

  Call it before any other TensorFlow work of the process: a multi-worker
  strategy configures the runtime's collective operations. It first waits
  for every task of TF_CONFIG to answer (`wait_for_cluster`), at most
  `worker_timeout` seconds.
  """
  if name not in STRATEGIES:
    raise ConfigError(f"--strategy={name}: choose one of "
                      f"{', '.join(STRATEGIES)}.")
  config = cluster_from_environment() if name == "multi_worker" else None
  if worker_timeout <= 0:
    raise ConfigError(f"--worker_timeout={worker_timeout} must be > 0.")
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  if name == "default":
    return None
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  wait_for_cluster(config, worker_timeout)
  return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy=None) -> bool:
  """Whether this process writes the run's files: always, unless it is a
  non-chief task of a multi-worker strategy."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  spec = resolver.cluster_spec().as_dict()
  return is_chief_task({"cluster": spec, "task": {
      "type": resolver.task_type, "index": resolver.task_id}})


def num_workers(strategy=None) -> int:
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return 1
  spec = resolver.cluster_spec().as_dict()
  return len(spec.get("worker", [])) + len(spec.get("chief", []))


def describe(strategy: Optional[object]) -> str:
  if strategy is None:
    return "default"
  return (f"{type(strategy).__name__} ({strategy.num_replicas_in_sync} "
          f"replicas, {num_workers(strategy)} workers)")

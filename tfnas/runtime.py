"""What a training or search run needs from the runtime: its `tf.distribute` strategy,
its optimizer, the graph options of supernet steps and the step form they take."""

from __future__ import annotations

import contextlib
import json
import os

import keras
import tensorflow as tf

from tfnas.errors import TfnasError
from tfnas.optimizers import SGD


STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(config) -> tf.distribute.Strategy:
  """The default strategy, MirroredStrategy across this machine's devices, or
  MultiWorkerMirroredStrategy across the machines of a cluster.

  `config.strategy`: "default", "mirrored" or "multi_worker". `config.logical_cpus` > 0
  splits the host CPU into that many logical devices first (to test multi-replica code
  on a laptop or CI); it must run before TensorFlow initializes devices. "multi_worker"
  reads the cluster from the `TF_CONFIG` environment variable (`check_tf_config`): every
  worker runs the same command with its own `task.index`; worker 0 is the chief.

  Raises:
    TfnasError: an unknown strategy, or "multi_worker" without a valid TF_CONFIG.
  """
  name = config.strategy
  n_cpu = int(config.logical_cpus or 0)
  if n_cpu:
    cpus = tf.config.list_physical_devices("CPU")
    try:
      tf.config.set_logical_device_configuration(
          cpus[0], [tf.config.LogicalDeviceConfiguration()] * n_cpu)
    except RuntimeError:
      pass  # already initialized (e.g. a second run in one process): keep what exists
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)
  if name == "multi_worker":
    check_tf_config(os.environ.get("TF_CONFIG"))
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise TfnasError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")


def check_tf_config(text: str | None) -> dict:
  """The parsed `TF_CONFIG` of a multi-worker run: {"cluster": {"worker": ["host:port",
  ...]}, "task": {"type": "worker", "index": i}} (TensorFlow's format, as Keras'
  multi-worker guide writes it).

  Raises:
    TfnasError: naming what is missing or wrong.
  """
  expected = ('expected e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:port", "host2:port"]},'
              ' "task": {"type": "worker", "index": 0}}\'')
  if not text:
    raise TfnasError(f"--config.strategy=multi_worker needs the TF_CONFIG environment "
                     f"variable; {expected}")
  try:
    tf_config = json.loads(text)
    workers = tf_config["cluster"]["worker"]
    task = tf_config["task"]
    index = task["index"]
  except (ValueError, KeyError, TypeError) as e:
    raise TfnasError(f"TF_CONFIG {text!r} is not a cluster description ({e!r}); "
                     f"{expected}") from None
  if not isinstance(workers, list) or not workers:
    raise TfnasError(f"TF_CONFIG's cluster.worker {workers!r} must list host:port addresses")
  if task.get("type") != "worker" or not isinstance(index, int) or not 0 <= index < len(workers):
    raise TfnasError(f"TF_CONFIG's task {task!r} must be a worker with an index in "
                     f"[0, {len(workers)})")
  return tf_config


def worker_index(strategy: tf.distribute.Strategy) -> int:
  """This process's index among the cluster's workers (0, the chief, for a single-machine
  strategy). Only the chief writes a run's files; the others keep scratch copies."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return 0
  return int(resolver.task_id or 0)


def apply_gradients(strategy: tf.distribute.Strategy, optimizer, grads, variables) -> None:
  """`optimizer.apply_gradients` on each replica, for per-replica `grads` (a list, one
  per variable; None for none) that an earlier `strategy.run` returned; the optimizer
  all-reduces them. Each gradient is first placed on its replica's device (`tf.identity`
  inside the replica function): a traced function's inputs carry no device, and the
  all-reduce of MultiWorkerMirroredStrategy refuses a gradient without one
  ("destinations can not be empty")."""
  def on_replica(g):
    optimizer.apply_gradients(zip([None if x is None else tf.identity(x) for x in g],
                                  variables))
  strategy.run(on_replica, args=(grads,))


def distribute(strategy: tf.distribute.Strategy, dataset: tf.data.Dataset):
  """`strategy.experimental_distribute_dataset(dataset)`, a dataset of global batches,
  split across workers by element (each worker reads every file; the datasets here are
  decoded in memory, so there are no files to shard)."""
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return strategy.experimental_distribute_dataset(dataset.with_options(options))


@contextlib.contextmanager
def supernet_graphs():
  """Turns Grappler's graph optimizations off while supernet step functions are built.

  A supernet step holds one `switch_case` branch per candidate (and their gradient
  functions); optimizing that graph on its first call took 40-45 s here while the
  steady-state step time was the same with and without it (0.400 vs 0.396 s, spos_cifar
  w0.5 batch 64). The previous options come back on exit (the TFLite converter and
  plain child models are unaffected).
  """
  before = tf.config.optimizer.get_experimental_options()
  tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
  try:
    yield
  finally:
    tf.config.optimizer.set_experimental_options(
        {"disable_meta_optimizer": before.get("disable_meta_optimizer", False)})


def make_optimizer(config, total_steps: int):
  """SGD with Nesterov momentum, linear warm-up then cosine decay to 0 over
  `total_steps`, weight decay off BatchNorm parameters and biases.

  `config.train.lr` is the rate at batch 256, scaled linearly to `config.data.batch_size`;
  `config.train.warmup_fraction` of the steps warm up; `config.train.clip_norm` (optional) clips the
  global gradient norm.
  """
  lr = config.train.lr * config.data.batch_size / 256
  warmup = int(total_steps * config.train.warmup_fraction)
  # Linear warm-up from 0 then cosine decay to 0 (warm-up keeps large-lr SGD stable early).
  schedule = keras.optimizers.schedules.CosineDecay(
      0.0 if warmup else lr, decay_steps=max(1, total_steps - warmup), alpha=0.0,
      warmup_target=lr if warmup else None, warmup_steps=warmup)
  opt = SGD(schedule, momentum=config.train.momentum, nesterov=True,
            weight_decay=config.train.weight_decay, global_clipnorm=config.train.clip_norm or None)
  # No decay on BatchNorm parameters and biases (standard for mobile nets).
  opt.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
  return opt  # Keras' SGD update in fewer graph ops (tfnas.optimizers)


SUPERNET_STEPS = ("eager", "traced")


def supernet_step(config) -> str:
  """`config.train.supernet_step`, "eager" or "traced".

  Raises:
    TfnasError: any other value.
  """
  value = config.train.supernet_step
  if value not in SUPERNET_STEPS:
    raise TfnasError(f"supernet_step {value!r} is not one of {', '.join(SUPERNET_STEPS)}")
  return value

"""What a training or search run needs from the runtime: its `tf.distribute` strategy,
its optimizer, the graph options of supernet steps and the step form they take."""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from tfnas.errors import TfnasError
from tfnas.optimizers import SGD


def make_strategy(config) -> tf.distribute.Strategy:
  """The default strategy, or MirroredStrategy across devices when asked.

  `config.strategy`: "default" or "mirrored". `config.logical_cpus` > 0 splits
  the host CPU into that many logical devices first (to test multi-replica
  code on a laptop or CI); it must run before TensorFlow initializes devices.
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
  raise TfnasError(f"unknown strategy {name!r}; expected 'default' or 'mirrored'")


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

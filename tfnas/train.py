"""Training a resolved architecture from scratch (or fine-tuning it).

`train_and_evaluate(config, workdir)` runs `keras.Model.fit` under a
`tf.distribute` strategy with SGD momentum + cosine decay, label smoothing and
weight decay; it backs up every epoch (or every N steps) so a killed run
resumes where it stopped, logs to TensorBoard, evaluates on the test split and
writes `arch.json`, `data.json`, `metrics.json`, `model.weights.h5` and a float
`model.tflite`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

import keras
import ml_collections
import tensorflow as tf

from tfnas import data as data_lib
from tfnas.errors import TfnasError
from tfnas.export import tflite as tflite_lib
from tfnas.io import atomic_write_json, read_json
from tfnas.models import build_child
from tfnas.spaces import Arch, get_space, parse_arch


def make_strategy(config) -> tf.distribute.Strategy:
  """The default strategy, or MirroredStrategy across devices when asked.

  `config.strategy`: "default" or "mirrored". `config.logical_cpus` > 0 splits
  the host CPU into that many logical devices first (to test multi-replica
  code on a laptop or CI); it must run before TensorFlow initializes devices.
  """
  name = config.get("strategy", "default")
  n_cpu = int(config.get("logical_cpus", 0) or 0)
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


def resolve_arch(space, value) -> Arch:
  """An arch from a config value: a path to an arch.json, or anything parse_arch reads."""
  if isinstance(value, str) and value.endswith(".json"):
    value = read_json(value, "arch file")
  return parse_arch(space, value)


def check_workdir(workdir: str, space_name: str, arch_str: str) -> None:
  """Refuses a workdir that holds another space's or arch's run."""
  path = os.path.join(workdir, "arch.json")
  if not os.path.exists(path):
    return
  with open(path) as f:
    prev = json.load(f)
  if prev.get("space") != space_name or prev.get("canonical") != arch_str:
    raise TfnasError(
        f"workdir {workdir!r} holds a run of {prev.get('canonical', prev.get('space'))!r}, not "
        f"{arch_str!r}; use another --workdir (or delete that one)")


def make_optimizer(config, total_steps: int):
  lr = config.lr * config.batch_size / 256
  warmup = int(total_steps * config.get("warmup_fraction", 0.0))
  # Linear warm-up from 0 then cosine decay to 0 (warm-up keeps large-lr SGD stable early).
  schedule = keras.optimizers.schedules.CosineDecay(
      0.0 if warmup else lr, decay_steps=max(1, total_steps - warmup), alpha=0.0,
      warmup_target=lr if warmup else None, warmup_steps=warmup)
  opt = keras.optimizers.SGD(schedule, momentum=config.momentum, nesterov=True,
                             weight_decay=config.weight_decay,
                             global_clipnorm=config.get("clip_norm") or None)
  # No decay on BatchNorm parameters and biases (standard for mobile nets).
  opt.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
  return opt


def _steps(data, config):
  per_epoch = data.sizes["train"] // config.batch_size
  if config.get("steps_per_epoch"):
    per_epoch = min(per_epoch, config.steps_per_epoch)
  return per_epoch


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains `config.arch` of `config.space` on `config.dataset`; returns metrics."""
  space = get_space(config.space, config.resolution, config.width, config.get("num_classes"))
  arch = resolve_arch(space, config.arch)
  arch_str = arch.to_string(space)
  check_workdir(workdir, space.name, arch_str)
  strategy = make_strategy(config)
  keras.utils.set_random_seed(config.seed)
  data = data_lib.load_from_config(config)
  if data.num_classes != space.head.num_classes:
    space = get_space(config.space, config.resolution, config.width, data.num_classes)
    arch = parse_arch(space, arch.to_string(space))
  os.makedirs(workdir, exist_ok=True)
  atomic_write_json(os.path.join(workdir, "arch.json"), arch.to_json(space))
  atomic_write_json(os.path.join(workdir, "data.json"), {**data.info(), "dataset": config.dataset})
  atomic_write_json(os.path.join(workdir, "config.json"), json.loads(config.to_json_best_effort()))

  steps_per_epoch = _steps(data, config)
  total_steps = steps_per_epoch * config.epochs
  with strategy.scope():
    model = build_child(space, arch, dropout=config.dropout, bn_momentum=config.bn_momentum)
    if config.get("init_weights"):
      _load_weights(model, config.init_weights)
    model.compile(
        optimizer=make_optimizer(config, total_steps),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                  label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
  one_hot = lambda x, y: (x, tf.one_hot(y, data.num_classes))
  train_ds = data.train.map(one_hot).repeat()
  callbacks = [
      keras.callbacks.BackupAndRestore(os.path.join(workdir, "backup"),
                                       save_freq=config.get("backup_steps") or "epoch",
                                       delete_checkpoint=False, double_checkpoint=True),
      keras.callbacks.TensorBoard(os.path.join(workdir, "tb"), update_freq=config.log_every),
  ]
  val_ds = data.val.map(one_hot) if data.val is not None else None
  start = time.time()
  history = model.fit(train_ds, epochs=config.epochs, steps_per_epoch=steps_per_epoch, shuffle=False,
                      validation_data=val_ds, callbacks=callbacks,
                      verbose=config.get("verbose", 2))
  train_seconds = time.time() - start
  test_loss, test_acc = model.evaluate(data.test.map(one_hot), verbose=0)
  model.save_weights(os.path.join(workdir, "model.weights.h5"))
  tflite_path = os.path.join(workdir, "model.tflite")
  tflite_lib.convert_float(model, tflite_path)
  metrics = {
      "space": space.name, "arch": arch_str, "test_accuracy": float(test_acc),
      "test_loss": float(test_loss), "epochs": config.epochs, "steps_per_epoch": steps_per_epoch,
      "train_seconds_last_session": train_seconds, "sizes": data.sizes,
      "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
      "params": int(model.count_params()), "tflite_bytes": os.path.getsize(tflite_path),
      "replicas": strategy.num_replicas_in_sync,
  }
  atomic_write_json(os.path.join(workdir, "metrics.json"), metrics)
  return metrics


def _load_weights(model, path: str):
  if not os.path.exists(path):
    raise TfnasError(f"init_weights {path!r} does not exist")
  model.load_weights(path)

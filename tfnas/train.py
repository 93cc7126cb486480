"""Training a resolved architecture from scratch (or fine-tuning it).

`train_and_evaluate(config, workdir)` runs `keras.Model.fit` under a
`tf.distribute` strategy with SGD momentum + cosine decay, label smoothing and
weight decay; it backs up every epoch (or every N steps) so a killed run
resumes where it stopped, logs to TensorBoard, evaluates on the test split and
writes `arch.json`, `data.json`, `metrics.json`, `model.weights.h5` and a float
`model.tflite`.
"""

from __future__ import annotations

import os
import time

import keras
import ml_collections
import tensorflow as tf

from tfnas import data as data_lib
from tfnas.errors import TfnasError
from tfnas.export import tflite as tflite_lib
from tfnas.io import atomic_path, atomic_write_json, read_json
from tfnas.models import build_child
from tfnas.runtime import make_optimizer, make_strategy
from tfnas.spaces import get_space, parse_arch, resolve_arch
from tfnas.workdir import Workdir


def _steps(data, config):
  per_epoch = data.sizes["train"] // config.data.batch_size
  if config.train.steps_per_epoch:
    per_epoch = min(per_epoch, config.train.steps_per_epoch)
  return per_epoch


def identity(space, arch_str: str, config) -> dict:
  """What a training workdir holds: rerunning with the same values resumes it."""
  return {"space": space.name, "arch": arch_str, "resolution": space.input_shape[0],
          "width": float(config.model.width), "dataset": config.data.dataset}


class StepBackup(keras.callbacks.Callback):
  """Backs up weights and optimizer state every `every` steps (0: every epoch end), and
  the per-epoch history, so a killed run resumes at the step it reached.

  Keras's `BackupAndRestore` resumes at the start of the epoch (re-running its steps
  while the step counter, and so the learning-rate schedule, runs on): a run asked for
  60 steps did 103. Here the step is the optimizer's own iteration count, saved with the
  weights. Files: `<dir>/backup.weights.h5` and `<dir>/state.json` (step and per-epoch
  history), each written atomically, the state first (an epoch logged without its
  weights is run and logged again).
  """

  def __init__(self, directory: str, every: int, history: dict):
    super().__init__()
    self.directory, self.every, self.history = directory, int(every or 0), history

  @staticmethod
  def restore(model, directory: str, steps_per_epoch: int) -> tuple[int, dict]:
    """Loads the backup into `model` (compiled); returns (step, {epoch: logs})."""
    weights = os.path.join(directory, "backup.weights.h5")
    if not os.path.exists(weights):
      return 0, {}
    model.optimizer.build(model.trainable_variables)
    try:
      model.load_weights(weights)
    except Exception as e:  # h5py / keras raise several types for a damaged file
      raise TfnasError(f"cannot resume from {weights!r}: {str(e).splitlines()[0]}; delete "
                       "the workdir's backup/ folder to start over") from None
    step = int(model.optimizer.iterations.numpy())  # the weights' step, not state.json's
    path = os.path.join(directory, "state.json")
    saved = read_json(path, "training state") if os.path.exists(path) else {}
    history = saved.get("history", {}) if isinstance(saved, dict) else {}
    done = {e: logs for e, logs in history.items() if (int(e) + 1) * steps_per_epoch <= step}
    return step, done

  def _save(self):
    step = int(self.model.optimizer.iterations.numpy())
    atomic_write_json(os.path.join(self.directory, "state.json"),
                      {"step": step, "history": self.history})
    with atomic_path(os.path.join(self.directory, "backup.weights.h5")) as tmp:
      self.model.save_weights(tmp)

  def on_train_batch_end(self, batch, logs=None):
    if self.every and int(self.model.optimizer.iterations.numpy()) % self.every == 0:
      self._save()

  def on_epoch_end(self, epoch, logs=None):
    self.history[str(epoch)] = {k: float(v) for k, v in (logs or {}).items()}
    self._save()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains `config.model.arch` of `config.model.space` on `config.data.dataset`; returns metrics.

  Raises:
    TfnasError: bad config values (epochs < 1, an unknown space or arch, ...), a dataset
      that cannot be read, or a workdir holding another binary's output or another run.
      Nothing is written before these checks pass.
  """
  if not isinstance(config.train.epochs, int) or config.train.epochs < 1:
    raise TfnasError(f"epochs {config.train.epochs!r} must be an integer >= 1")
  space = get_space(config.model.space, config.data.resolution, config.model.width,
                    config.data.num_classes)
  arch = resolve_arch(space, config.model.arch)
  arch_str = arch.to_string(space)
  ident = identity(space, arch_str, config)
  wd = Workdir(workdir, "train")
  wd.check(ident)
  if config.strategy == "multi_worker":
    raise TfnasError("--config.strategy=multi_worker is for searches (tfnas.bin.search); "
                     "train a child on one machine's devices with 'mirrored'")
  strategy = make_strategy(config)
  keras.utils.set_random_seed(config.seed)
  data = data_lib.load_from_config(config)
  if data.num_classes != space.head.num_classes:
    space = get_space(config.model.space, config.data.resolution, config.model.width,
                      data.num_classes)
    arch = parse_arch(space, arch.to_string(space))
  wd.start(ident, config, data)
  wd.write_json("arch.json", arch.to_json(space))

  steps_per_epoch = _steps(data, config)
  total_steps = steps_per_epoch * config.train.epochs
  with strategy.scope():
    model = build_child(space, arch, dropout=config.model.dropout,
                        bn_momentum=config.model.bn_momentum)
    if config.train.init_weights:
      _load_weights(model, config.train.init_weights)
    model.compile(
        optimizer=make_optimizer(config, total_steps),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                  label_smoothing=config.train.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    backup_dir = wd.file("backup")
    step, history = StepBackup.restore(model, backup_dir, steps_per_epoch)
  one_hot = lambda x, y: (x, tf.one_hot(y, data.num_classes))
  train_ds = data.train.map(one_hot).repeat()
  callbacks = [
      StepBackup(backup_dir, config.train.backup_steps, history),
      keras.callbacks.TensorBoard(wd.file("tb"), update_freq=config.log_every),
  ]
  val_ds = data.val.map(one_hot) if data.val is not None else None
  fit = lambda first, last, steps: model.fit(
      train_ds, initial_epoch=first, epochs=last, steps_per_epoch=steps, shuffle=False,
      validation_data=val_ds, callbacks=callbacks, verbose=config.verbose)
  start = time.time()
  epoch, offset = divmod(step, steps_per_epoch)
  if step < total_steps and offset:  # killed mid-epoch: finish that epoch's steps only
    fit(epoch, epoch + 1, steps_per_epoch - offset)
    epoch += 1
  if epoch < config.train.epochs:
    fit(epoch, config.train.epochs, steps_per_epoch)
  train_seconds = time.time() - start
  test_loss, test_acc = model.evaluate(data.test.map(one_hot), verbose=0)
  with atomic_path(wd.weights) as tmp:
    model.save_weights(tmp)
  tflite_path = wd.file("model.tflite")
  tflite_lib.convert_float(model, tflite_path)
  epochs = sorted(history, key=int)
  metrics = {
      "space": space.name, "arch": arch_str, "test_accuracy": float(test_acc),
      "test_loss": float(test_loss), "epochs": config.train.epochs,
      "steps_per_epoch": steps_per_epoch,
      "steps": int(model.optimizer.iterations.numpy()),
      "train_seconds_last_session": train_seconds, "sizes": data.sizes,
      "history": {k: [history[e][k] for e in epochs] for k in history[epochs[-1]]},
      "params": int(model.count_params()), "tflite_bytes": os.path.getsize(tflite_path),
      "replicas": strategy.num_replicas_in_sync,
  }
  wd.write_json("metrics.json", metrics)
  return metrics


def _load_weights(model, path: str):
  if not os.path.exists(path):
    raise TfnasError(f"init_weights {path!r} does not exist")
  model.load_weights(path)

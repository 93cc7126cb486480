"""How every search starts and runs, whichever the method (issue 20, item 1): the space
at the data's class count, the workdir's identity check, the cost model, the
`tf.distribute` strategy, the seed, the data and the checkpoint manager (`set_up`), and
the supernet step loop with its logging, TensorBoard and checkpoints (`step_loop`). How
every search ends is `tfnas.search.finish`."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from tfnas import data as data_lib
from tfnas import latency as latency_lib
from tfnas.errors import TfnasError
from tfnas.latency import CostModel
from tfnas.runtime import make_strategy, worker_index
from tfnas.spaces import SearchSpace, get_space
from tfnas.workdir import Workdir


def identity(space: SearchSpace, config, **extra) -> dict:
  """What fixes a search's supernet variables and data, so a rerun in the same workdir
  resumes only the same search: the method, space, its input size and width, the dataset,
  and `extra` (e.g. share_expansion)."""
  return {"method": config.method, "space": space.name, "resolution": space.input_shape[0],
          "width": float(config.model.width), "dataset": config.data.dataset, **extra}


@dataclasses.dataclass
class Setup:
  """What `set_up` made: the sized `space` (its head at the data's class count), the
  checked `workdir` and the run's `ident` in it, the `cost_model` for that space, the
  `strategy` and the `data`. Under MultiWorkerMirroredStrategy (`multi_worker`) every
  worker runs the same search in lockstep (the supernet's collective operations need
  them all); `worker` is this process's index: worker 0 (the chief) writes the run's
  files in `workdir`, the others write theirs in a scratch `workdir`/worker<i>, restore
  the chief's checkpoints (`restore_from`) and measure nothing on the host; the workdir
  must be on a filesystem every worker sees."""
  space: SearchSpace
  workdir: Workdir
  ident: dict
  cost_model: CostModel
  strategy: tf.distribute.Strategy
  data: data_lib.Data
  worker: int = 0
  restore_from: Workdir | None = None
  multi_worker: bool = False  # under MultiWorkerMirroredStrategy

  @property
  def chief(self) -> bool:
    """Whether this process writes the run's files (worker 0, or the only process)."""
    return self.worker == 0


def set_up(config, workdir: str, check_cost_model: Callable[[CostModel], None] | None = None,
           check_data: Callable[[data_lib.Data], None] | None = None,
           **identity_fields) -> Setup:
  """Everything a search needs before its supernet, in the order that fails fastest:
  the space and the workdir check (a workdir of another run is refused before anything
  is loaded), the cost model (`check_cost_model` may refuse it), the strategy (before
  TensorFlow initializes devices), the seed, then the data (`check_data` may refuse it).
  When the data has another class count than the config's space, the space and cost
  model are rebuilt for it.

  Raises:
    TfnasError: from the workdir check, the cost model, the data, or the two checks.
  """
  space = get_space(config.model.space, config.data.resolution, config.model.width,
                    config.data.num_classes)
  ident = identity(space, config, **identity_fields)
  wd = Workdir(workdir, "search")
  wd.check(ident)
  if config.search.precision not in latency_lib.PRECISIONS:
    raise TfnasError(f"--config.search.precision={config.search.precision!r} is not one of "
                     f"{list(latency_lib.PRECISIONS)}")
  cost_model = latency_lib.load(config.search.latency_model, space)
  cost_model.check_precision(config.search.precision, "--config.search.precision")
  if check_cost_model is not None:
    check_cost_model(cost_model)
  strategy = make_strategy(config)
  worker, chief_wd = worker_index(strategy), wd
  if worker:
    wd = Workdir(os.path.join(workdir, f"worker{worker}"), "search")
    wd.check(ident)
  keras.utils.set_random_seed(config.seed)
  data = data_lib.load_from_config(config)
  if check_data is not None:
    check_data(data)
  if data.num_classes != space.head.num_classes:
    space = get_space(config.model.space, config.data.resolution, config.model.width,
                      data.num_classes)
    cost_model = latency_lib.load(config.search.latency_model, space)
  return Setup(space, wd, ident, cost_model, strategy, data, worker, chief_wd,
               config.strategy == "multi_worker")


def worker_fields(setup: Setup) -> dict:
  """{"worker": i} in the report of a worker other than the chief (which runs the same
  search in lockstep in its scratch workdir: the supernet's collective operations, e.g.
  SPOS's cross-replica BatchNorm statistics, need every worker); {} for the chief."""
  return {"worker": setup.worker} if setup.worker else {}


def agreed_step(setup: Setup, step_var: tf.Variable) -> int:
  """The restored step, checked to be the same on every worker of a multi-worker run (a
  worker that restored another checkpoint, e.g. from a workdir that is not shared, would
  sample other paths than the others: a hang or a wrong supernet).

  Raises:
    TfnasError: the workers restored different steps.
  """
  step = int(step_var.numpy())
  if not setup.multi_worker:
    return step
  # Every worker sees the same mean and mean square (a SUM/MEAN all-reduce; no MIN/MAX
  # exists): their variance is 0 exactly when all steps are equal.
  s = setup.strategy
  value = s.run(lambda: tf.constant([step, step * step], tf.float64))
  mean, mean_square = s.reduce("MEAN", value, axis=None).numpy()
  if mean_square - mean * mean > 1e-6:
    raise TfnasError(f"the workers restored checkpoints of different steps (mean "
                     f"{mean:.1f}; worker {setup.worker}: {step}): every worker must see the "
                     f"chief's workdir {setup.restore_from.path!r} (a shared filesystem)")
  return step


class _Checkpoints(tf.train.CheckpointManager):
  """A CheckpointManager that restores from another workdir's checkpoints (the chief's,
  for the other workers of a multi-worker run, which save to scratch copies)."""

  def __init__(self, checkpoint, directory, restore_from: str):
    super().__init__(checkpoint, directory, max_to_keep=2)
    self._restore_from = restore_from

  def restore_or_initialize(self):
    latest = tf.train.latest_checkpoint(self._restore_from)
    if latest is not None:
      self._checkpoint.restore(latest)
    return latest


def checkpoint_manager(setup: Setup, **objects) -> tf.train.CheckpointManager:
  """The run's checkpoints of `objects` in the setup's workdir/ckpt, the last two kept;
  `restore_or_initialize()` restores the chief's latest (this process's own, except on
  the other workers of a multi-worker run)."""
  chief = setup.restore_from or setup.workdir
  return _Checkpoints(tf.train.Checkpoint(**objects), setup.workdir.file("ckpt"),
                      chief.file("ckpt"))


def step_loop(*, start: int, total: int, step_var: tf.Variable,
              manager: tf.train.CheckpointManager, workdir: Workdir, log_every: int,
              checkpoint_every: int, one_step: Callable[[int], dict],
              on_log: Callable[[int, dict], str] | None = None,
              before_checkpoint: Callable[[], None] | None = None) -> float:
  """The supernet step loop of every search: the method gives one step, the loop does the
  rest the same way for both (logging, TensorBoard, checkpoints, resumption).

  Runs `one_step(step)` for each step in [start, total), then sets `step_var` to step + 1.
  Every `log_every` steps and at the last: the mean of each scalar `one_step` returned
  since the previous log line goes to TensorBoard (`train/<name>`, in `workdir`/tb);
  `on_log(step + 1, means)` writes the method's own summaries (inside the writer's
  default context) and returns text for the log line; one line is printed,
  `[supernet] step N/T loss L acc A <text> (s/step, ETA)`. Every `checkpoint_every` steps
  and at the last: `before_checkpoint()` (e.g. flush a history the checkpoint must not get
  ahead of), then a checkpoint numbered step + 1. A killed run restarts from that
  checkpoint (`start` = its step).

  Returns:
    The loop's wall time in seconds.
  """
  writer = tf.summary.create_file_writer(workdir.file("tb"))
  t0, window = time.time(), []
  for step in range(start, total):
    window.append(one_step(step))
    step_var.assign(step + 1)
    done = step + 1 == total
    if (step + 1) % log_every == 0 or done:
      means = {k: float(np.mean([float(w[k]) for w in window])) for k in window[-1]}
      window = []
      with writer.as_default(step=step + 1):
        for k, v in means.items():
          tf.summary.scalar(f"train/{k}", v)
        text = on_log(step + 1, means) if on_log is not None else ""
      rate = (time.time() - t0) / (step + 1 - start)
      scalars = " ".join(f"{'acc' if k == 'accuracy' else k} {v:.3f}" for k, v in means.items())
      print(f"[supernet] step {step + 1}/{total} {scalars}{' ' + text if text else ''} "
            f"({rate:.3f} s/step, ETA {rate * (total - step - 1):.0f} s)", flush=True)
    if (step + 1) % checkpoint_every == 0 or done:
      if before_checkpoint is not None:
        before_checkpoint()
      manager.save(checkpoint_number=step + 1)
  writer.flush()
  return time.time() - t0

"""How every search starts, whichever the method (issue 20, item 1): the space at the
data's class count, the workdir's identity check, the cost model, the `tf.distribute`
strategy, the seed, the data and the checkpoint manager. How every search ends is
`tfnas.search.finish`."""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import keras
import tensorflow as tf

from tfnas import data as data_lib
from tfnas import latency as latency_lib
from tfnas.latency import CostModel
from tfnas.runtime import make_strategy
from tfnas.search import workdir as workdir_lib
from tfnas.spaces import SearchSpace, get_space


@dataclasses.dataclass
class Setup:
  """What `set_up` made: the sized `space` (its head at the data's class count), the
  workdir `ident`, the `cost_model` for that space, the `strategy` and the `data`."""
  space: SearchSpace
  ident: dict
  cost_model: CostModel
  strategy: tf.distribute.Strategy
  data: data_lib.Data


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
  space = get_space(config.space, config.resolution, config.width, config.get("num_classes"))
  ident = workdir_lib.identity(space, config, **identity_fields)
  workdir_lib.check(workdir, ident)
  cost_model = latency_lib.load(config.latency_model, space)
  if check_cost_model is not None:
    check_cost_model(cost_model)
  strategy = make_strategy(config)
  keras.utils.set_random_seed(config.seed)
  data = data_lib.load_from_config(config)
  if check_data is not None:
    check_data(data)
  if data.num_classes != space.head.num_classes:
    space = get_space(config.space, config.resolution, config.width, data.num_classes)
    cost_model = latency_lib.load(config.latency_model, space)
  return Setup(space, ident, cost_model, strategy, data)


def checkpoint_manager(workdir: str, **objects) -> tf.train.CheckpointManager:
  """The run's checkpoints of `objects` in `workdir`/ckpt, the last two kept."""
  return tf.train.CheckpointManager(tf.train.Checkpoint(**objects),
                                    os.path.join(workdir, "ckpt"), max_to_keep=2)

"""The sections and fragments every config file in `configs/` shares (big_vision's
`configs/common.py`).

A config is an `ml_collections.ConfigDict` with four sections and a few run-wide fields
at the top:

  config.data    what is read and how (`tfnas.data.pipeline.load_from_config`)
  config.model   which network (space, width; the arch for training)
  config.train   how weights are trained (optimizer, schedule, steps; the supernet's
                 sampling and step form for searches)
  config.search  how architectures are searched and judged (cost model, target,
                 precision; ProxylessNAS's arch updates or SPOS's evolution)
  config.method, config.seed, config.strategy, config.logical_cpus, config.log_every,
  config.checkpoint_every (steps), config.verbose (Keras fit; training only)

Flags address a field by its section: `--config.data.dataset=folder:PATH`,
`--config.search.target=2.0`. A config file builds the shared part with `base(...)` and
then sets what is its own, so each field a binary reads has its default in exactly one
place and the code reads `config.<section>.<field>` without a fallback:

    common.check_variant(arg)
    c = common.base(dataset="tfds:cifar10", resolution=32, batch_size=128, lr=0.2,
                    weight_decay=3e-4, log_every=200)
    c.method = "spos"
    c.model.space = "spos_cifar"  # ... the method's own fields

`load_sibling(__file__, "spos_cifar10", arg)` builds another config file of the same
folder (configs/ is not a package), for a config that varies one.
"""

from __future__ import annotations

import importlib.util
import os

import ml_collections

VARIANTS = ("", "quick")
# Imagenette (160 px) as ../shared/data holds it; a user's copy: --config.data.dataset=.
IMAGENETTE = "folder:../shared/data/imagenette2-160.tgz"
SECTIONS = ("data", "model", "train", "search")


def data(c: ml_collections.ConfigDict, dataset: str, resolution: int, batch_size: int,
         augment: str = "cifar", val_size: int = 5000, num_classes: int = 10) -> None:
  """The `data` section (`tfnas.data.pipeline.load_from_config`).

  Sets c.data: dataset ("tfds:NAME" or "folder:PATH", a tree or .tar.gz of class
  folders), data_dir (TFDS folder), resolution (input side, px), num_classes, augment
  ("cifar" or "imagenet"), bad_images ("skip": unreadable files warned by name, or
  "error"), val_size (training images held out for validation), train_limit / test_limit
  (use only the first N), cache, batch_size, eval_batch_size (None: batch_size),
  calib_images (training images kept for BN recalibration; 0: none).
  """
  d = c.data = ml_collections.ConfigDict()
  d.dataset = dataset
  d.data_dir = ml_collections.config_dict.placeholder(str)
  d.resolution = resolution
  d.num_classes = num_classes
  d.augment = augment
  d.bad_images = "skip"
  d.val_size = val_size
  d.train_limit = ml_collections.config_dict.placeholder(int)
  d.test_limit = ml_collections.config_dict.placeholder(int)
  d.cache = True
  d.batch_size = batch_size
  d.eval_batch_size = ml_collections.config_dict.placeholder(int)
  d.calib_images = 0


def optimizer(c: ml_collections.ConfigDict, lr: float, weight_decay: float,
              warmup_fraction: float = 0.0) -> None:
  """SGD's fields in the `train` section (`tfnas.runtime.make_optimizer`; the `model` and
  `train` sections must exist): lr (at batch 256, scaled linearly to data.batch_size),
  warmup_fraction (of the steps, linear from 0),
  cosine decay to 0, momentum 0.9 (Nesterov), weight_decay (off BN parameters and
  biases), clip_norm (global gradient norm; 0: off); and the `model` section's
  dropout (before the classifier) and bn_momentum."""
  t = c.train
  t.lr = lr
  t.warmup_fraction = warmup_fraction
  t.clip_norm = 0.0
  t.momentum = 0.9
  t.weight_decay = weight_decay
  m = c.model
  m.dropout = 0.0
  m.bn_momentum = 0.9


def run(c: ml_collections.ConfigDict, log_every: int) -> None:
  """The run-wide fields at the top (`tfnas.runtime.make_strategy`): seed, strategy
  ("default", "mirrored" or, for searches, "multi_worker" with TF_CONFIG), logical_cpus (> 0: split the host CPU into that many
  devices, to test multi-replica code), log_every (steps)."""
  c.seed = 0
  c.strategy = "default"
  c.logical_cpus = 0
  c.log_every = log_every


def base(dataset: str, resolution: int, batch_size: int, lr: float, weight_decay: float,
         log_every: int, **data_kw) -> ml_collections.ConfigDict:
  """A ConfigDict with the `data`, `model`, `train` and `search` sections (the last
  empty) and the run-wide fields."""
  c = ml_collections.ConfigDict()
  for section in SECTIONS[1:]:
    c[section] = ml_collections.ConfigDict()
  data(c, dataset, resolution, batch_size, **data_kw)
  optimizer(c, lr, weight_decay)
  run(c, log_every)
  return c


def override(config: ml_collections.ConfigDict, fields: dict) -> ml_collections.ConfigDict:
  """Sets `fields` by dotted path ({"data.dataset": ..., "seed": 1}), as the
  `--config.<section>.<field>` flags do; returns `config`, locked (no field can be added).

  Raises:
    AttributeError, KeyError: a path that is not a field of `config` (a flat name of a
      sectioned field, a typo), before any field is set.
  """
  config.lock()
  for path in fields:
    holder, *parts = config, *path.split(".")
    for part in parts[:-1]:
      holder = holder.get(part) if isinstance(holder, ml_collections.ConfigDict) else None
    if not isinstance(holder, ml_collections.ConfigDict) or parts[-1] not in holder:
      raise KeyError(f"{path!r} is not a field of the config")
  config.update_from_flattened_dict(fields)
  return config


def check_variant(arg: str) -> None:
  """Raises ValueError naming `arg` when it is not a variant every config has."""
  if arg not in VARIANTS:
    raise ValueError(f"unknown config variant {arg!r}; expected '' or 'quick'")


def load_file(path: str, arg: str = "") -> ml_collections.ConfigDict:
  """`get_config(arg)` of the config file at `path`."""
  name = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def load_sibling(this_file: str, name: str, arg: str = "") -> ml_collections.ConfigDict:
  """`get_config(arg)` of `<name>.py` in the folder of `this_file`."""
  return load_file(os.path.join(os.path.dirname(os.path.abspath(this_file)), f"{name}.py"),
                   arg)

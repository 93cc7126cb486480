"""The fragments every config file in `configs/` shares (big_vision's `configs/common.py`).

A config file builds its `ml_collections.ConfigDict` from these and then sets what is
its own, so each field a binary reads has its default in exactly one place and the code
reads `config.<field>` without a fallback:

    common.check_variant(arg)
    c = common.base(dataset="tfds:cifar10", resolution=32, batch_size=128, lr=0.2,
                    weight_decay=3e-4, log_every=200)
    c.method = "spos"  # ... the method's own fields

`load_sibling(__file__, "spos_cifar10", arg)` builds another config file of the same
folder (configs/ is not a package), for a config that varies one.
"""

from __future__ import annotations

import importlib.util
import os

import ml_collections

VARIANTS = ("", "quick")


def data(c: ml_collections.ConfigDict, dataset: str, resolution: int, batch_size: int,
         augment: str = "cifar", val_size: int = 5000, num_classes: int = 10) -> None:
  """The data fields (`tfnas.data.pipeline.load_from_config`).

  Sets: dataset ("tfds:NAME" or "folder:PATH", a tree or .tar.gz of class folders),
  data_dir (TFDS folder), resolution (input side, px), num_classes, augment ("cifar" or
  "imagenet"), bad_images ("skip": unreadable files warned by name, or "error"), val_size
  (training images held out for validation), train_limit / test_limit (use only the
  first N), cache, batch_size, eval_batch_size (None: batch_size), calib_images (training
  images kept for BN recalibration; 0: none).
  """
  c.dataset = dataset
  c.data_dir = ml_collections.config_dict.placeholder(str)
  c.resolution = resolution
  c.num_classes = num_classes
  c.augment = augment
  c.bad_images = "skip"
  c.val_size = val_size
  c.train_limit = ml_collections.config_dict.placeholder(int)
  c.test_limit = ml_collections.config_dict.placeholder(int)
  c.cache = True
  c.batch_size = batch_size
  c.eval_batch_size = ml_collections.config_dict.placeholder(int)
  c.calib_images = 0


def optimizer(c: ml_collections.ConfigDict, lr: float, weight_decay: float,
              warmup_fraction: float = 0.0) -> None:
  """SGD's fields (`tfnas.runtime.make_optimizer`): lr (at batch 256, scaled linearly to
  batch_size), warmup_fraction (of the steps, linear from 0), cosine decay to 0, momentum
  0.9 (Nesterov), weight_decay (off BN parameters and biases), clip_norm (global gradient
  norm; 0: off), dropout (before the classifier), bn_momentum."""
  c.lr = lr
  c.warmup_fraction = warmup_fraction
  c.clip_norm = 0.0
  c.momentum = 0.9
  c.weight_decay = weight_decay
  c.dropout = 0.0
  c.bn_momentum = 0.9


def run(c: ml_collections.ConfigDict, log_every: int) -> None:
  """The runtime fields (`tfnas.runtime.make_strategy`): seed, strategy ("default" or
  "mirrored"), logical_cpus (> 0: split the host CPU into that many devices, to test
  multi-replica code), log_every (steps)."""
  c.seed = 0
  c.strategy = "default"
  c.logical_cpus = 0
  c.log_every = log_every


def base(dataset: str, resolution: int, batch_size: int, lr: float, weight_decay: float,
         log_every: int, **data_kw) -> ml_collections.ConfigDict:
  """A ConfigDict with `data`, `optimizer` and `run`'s fields."""
  c = ml_collections.ConfigDict()
  data(c, dataset, resolution, batch_size, **data_kw)
  optimizer(c, lr, weight_decay)
  run(c, log_every)
  return c


def check_variant(arg: str) -> None:
  """Raises ValueError naming `arg` when it is not a variant every config has."""
  if arg not in VARIANTS:
    raise ValueError(f"unknown config variant {arg!r}; expected '' or 'quick'")


def load_sibling(this_file: str, name: str, arg: str = "") -> ml_collections.ConfigDict:
  """`get_config(arg)` of `<name>.py` in the folder of `this_file`."""
  path = os.path.join(os.path.dirname(os.path.abspath(this_file)), f"{name}.py")
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)

"""Train a resolved architecture from scratch on CIFAR-10.

Run (quick, a few minutes on 2 cores):
  python -m tfnas.bin.train --config=configs/train_cifar10.py:quick --workdir=/tmp/tfnas_train \
      --config.data.dataset=folder:../shared/data/cifar10-jpg.tar.gz

Full:
  python -m tfnas.bin.train --config=configs/train_cifar10.py --workdir=DIR \
      --config.data.dataset=folder:PATH --config.model.arch=DIR_OF_SEARCH/arch.json
"""

import ml_collections

from tfnas import configs as common


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: "" for the full run, "quick" for a few-minute run."""
  common.check_variant(arg)
  # lr at batch 256, scaled linearly with batch_size.
  c = common.base(dataset="tfds:cifar10", resolution=32, batch_size=128, lr=0.2,
                  weight_decay=5e-4, log_every=50)
  c.model.space = "proxyless_cifar"
  c.model.arch = "all_k3_e3"  # a reference name, canonical string, or a path to arch.json
  c.model.width = 1.0
  c.train.warmup_fraction = 0.02
  c.train.label_smoothing = 0.1
  c.train.epochs = 200
  c.train.steps_per_epoch = ml_collections.config_dict.placeholder(int)
  c.train.init_weights = ml_collections.config_dict.placeholder(str)  # fine-tune from these
  c.train.backup_steps = 0  # 0: back up at the end of every epoch; N: every N steps
  c.verbose = 2
  if arg == "quick":
    c.model.width = 0.5
    c.train.epochs = 3
    c.data.train_limit = 20000
    c.data.val_size = 2000
    c.data.batch_size = 128
    c.train.lr = 0.4
    c.train.warmup_fraction = 0.1
    c.train.weight_decay = 1e-4
  return c

"""Single Path One-Shot on Imagenette (160 px) over `spos_shufflenet` (the paper's space).

Run (quick):
  python -m tfnas.bin.search --config=configs/spos_imagenette.py:quick --workdir=/tmp/spos_in \
      --config.dataset=folder:../shared/data/imagenette2-160.tgz
"""

import ml_collections

from tfnas import configs as common


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: "" (full) or "quick"."""
  common.check_variant(arg)
  c = common.load_sibling(__file__, "spos_cifar10")
  c.space = "spos_shufflenet"
  c.resolution = 160
  c.num_classes = 10
  c.dataset = "folder:../shared/data/imagenette2-160.tgz"
  c.augment = "imagenet"
  c.val_size = 1000
  c.batch_size = 64
  c.eval_batch_size = 100
  c.steps = 30000
  c.calib_images = 1000
  c.val_images = 1000
  # spos_shufflenet at 160 px: about 49 (smallest, narrowest) to 342 (largest, widest) MMACs.
  c.searches = "macs_m<=120;macs_m<=160;macs_m<=200"
  if arg == "quick":
    c.width = 0.5
    c.train_limit = 3000
    c.val_size = 300
    c.batch_size = 16
    c.eval_batch_size = 50
    c.steps = 200
    c.searches = "macs_m<=40;macs_m<=55"
    c.population = 8
    c.generations = 3
    c.top_k = 4
    c.crossovers = 4
    c.mutations = 4
    c.calib_images = 128
    c.val_images = 200
    c.log_every = 25
    c.checkpoint_every = 100
  return c

"""Single Path One-Shot on Imagenette (160 px) over `spos_shufflenet` (the paper's space).

Run (quick):
  python -m tfnas.bin.search --config=configs/spos_imagenette.py:quick --workdir=/tmp/spos_in \
      --config.data.dataset=folder:../shared/data/imagenette2-160.tgz
"""

import ml_collections

from tfnas import configs as common


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: "" (full) or "quick"."""
  common.check_variant(arg)
  c = common.load_sibling(__file__, "spos_cifar10")
  c.model.space = "spos_shufflenet"
  # A data section of its own (the CIFAR-10 config's is replaced whole, field by field).
  common.data(c, common.IMAGENETTE, resolution=160, batch_size=64, augment="imagenet",
              val_size=1000)
  c.data.eval_batch_size = 100
  c.train.steps = 30000
  c.data.calib_images = 1000
  c.search.val_images = 1000
  # spos_shufflenet at 160 px: about 49 (smallest, narrowest) to 342 (largest, widest) MMACs.
  c.search.searches = "macs_m<=120;macs_m<=160;macs_m<=200"
  if arg == "quick":
    c.model.width = 0.5
    c.data.train_limit = 3000
    c.data.val_size = 300
    c.data.batch_size = 16
    c.data.eval_batch_size = 50
    c.train.steps = 200
    c.search.searches = "macs_m<=40;macs_m<=55"
    c.search.population = 8
    c.search.generations = 3
    c.search.top_k = 4
    c.search.crossovers = 4
    c.search.mutations = 4
    c.data.calib_images = 128
    c.search.val_images = 200
    c.log_every = 25
    c.checkpoint_every = 100
  return c

"""ProxylessNAS search on Imagenette (160 px) over `proxyless_mobile`.

Run (quick):
  python -m tfnas.bin.search --config=configs/proxyless_imagenette.py:quick --workdir=/tmp/pnas_in \
      --config.data.dataset=folder:../shared/data/imagenette2-160.tgz
For the Pixel-1 target (the published table is for 224 px input):
  ... --config.data.resolution=224 --config.search.latency_model=lut:../shared/data/latency/proxylessnas_mobile_trim.yaml \
      --config.search.precision=float32 \
      --config.search.target=80
"""

import ml_collections

from tfnas import configs as common


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: "" (full) or "quick"."""
  common.check_variant(arg)
  c = common.load_sibling(__file__, "proxyless_cifar10")
  c.model.space = "proxyless_mobile"
  # A data section of its own (the CIFAR-10 config's is replaced whole, field by field).
  common.data(c, common.IMAGENETTE, resolution=160, batch_size=32, augment="imagenet",
              val_size=1000)
  c.train.steps = 30000
  c.search.warmup_steps = 10000
  c.search.target = 300.0  # MMACs with the default "macs" model; ms with a measured model
  if arg == "quick":
    c.model.width = 0.35
    c.data.resolution = 96
    c.data.train_limit = 2000
    c.data.val_size = 500
    c.train.steps = 60
    c.search.warmup_steps = 20
    c.search.target = 40.0
    c.log_every = 10
    c.checkpoint_every = 30
  return c

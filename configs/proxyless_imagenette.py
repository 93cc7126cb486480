"""ProxylessNAS search on Imagenette (160 px) over `proxyless_mobile`.

Run (quick):
  python -m tfnas.bin.search --config=configs/proxyless_imagenette.py:quick --workdir=/tmp/pnas_in \
      --config.dataset=folder:../shared/data/imagenette2-160.tgz
For the Pixel-1 target (the published table is for 224 px input):
  ... --config.resolution=224 --config.latency_model=lut:../shared/data/latency/proxylessnas_mobile_trim.yaml \
      --config.precision=float32 \
      --config.target=80
"""

import ml_collections

from tfnas import configs as common


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: "" (full) or "quick"."""
  common.check_variant(arg)
  c = common.load_sibling(__file__, "proxyless_cifar10")
  c.space = "proxyless_mobile"
  c.resolution = 160
  c.num_classes = 10
  c.dataset = "folder:../shared/data/imagenette2-160.tgz"
  c.augment = "imagenet"
  c.val_size = 1000
  c.batch_size = 32
  c.steps = 30000
  c.warmup_steps = 10000
  c.target = 300.0  # MMACs with the default "macs" model; ms with a measured model
  if arg == "quick":
    c.width = 0.35
    c.resolution = 96
    c.train_limit = 2000
    c.val_size = 500
    c.steps = 60
    c.warmup_steps = 20
    c.target = 40.0
    c.log_every = 10
    c.checkpoint_every = 30
  return c

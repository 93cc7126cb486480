"""Single Path One-Shot on NAS-Bench-Macro's space (`nasbench_macro`, CIFAR-10 32 px, width
1.0: the benchmark's own network), so every search's report carries the benchmark's
verdict on its pick (`ground_truth`: trained accuracy, rank among the archs within the
same limit, the best of them). The settings `benchmarks/bench_search_quality.py` measured
(BENCHMARKS.md, "Search quality against ground truth").

Run (full: ~10 min of supernet training on 2 cores, then three searches of ~3 min):
  python -m tfnas.bin.search --config=configs/spos_nasbench_macro.py --workdir=runs/spos_macro \
      --config.data.dataset=folder:../shared/data/cifar10-jpg.tar.gz
Quick (a few minutes; the supernet is far from trained, its ranking weak):
  ... --config=configs/spos_nasbench_macro.py:quick
For this CPU's latency, measure the per-op table and search in ms:
  python -m tfnas.bin.latency_fit --measure_lut --space=nasbench_macro --out=runs/lut
  ... --config.search.latency_model=runs/lut/latency_model.json \
      --config.search.searches="latency_ms<=1.0;latency_ms<=1.3"
"""

import ml_collections

from tfnas import configs as common


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: "" (full) or "quick"."""
  common.check_variant(arg)
  c = common.load_sibling(__file__, "spos_cifar10")
  c.model.space = "nasbench_macro"
  c.model.width = 1.0
  c.train.channel_warmup_fraction = 0.0  # no channel choices in this space
  c.data.batch_size = 64
  c.data.eval_batch_size = 250
  # 1,500 steps at batch 64 (2.1 epochs of 45,000 images; ~10 min on 2 cores), lr 0.2 at
  # batch 256 (0.05 here), cosine to 0. Four times longer did not rank better: against
  # NAS-Bench-Macro (200 uniform archs, loss score on 2,000 held-out images) two 1,500-step
  # trainings gave Kendall tau 0.66 and 0.52, a 6,000-step one 0.62 (0.64 halfway), and
  # its searches landed 1.02 points below the best feasible at the median where the
  # second 1,500-step supernet's landed 0.84 (BENCHMARKS.md, "Longer supernet training").
  c.train.steps = 1500
  c.data.calib_images = 256
  c.search.val_images = 2000
  c.search.score = "loss"
  # The 25th, 50th and 75th percentile of the space's MACs (7.7 to 105.7 MMACs), as the
  # benchmark's limits (1,637, 3,278 and 4,922 archs meet them).
  c.search.searches = "macs_m<=45.5398;macs_m<=55.3989;macs_m<=65.4157"
  c.search.latency_model = "macs"
  # Evolution with 40 evaluations per search (population 10, 4 generations) and random
  # search with the same 40: what BENCHMARKS.md measured.
  c.search.population = 10
  c.search.generations = 4
  c.search.top_k = 2
  c.search.crossovers = 5
  c.search.mutations = 5
  c.log_every = 100
  c.checkpoint_every = 500
  if arg == "quick":
    c.data.train_limit = 10000
    c.data.val_size = 1000
    c.train.steps = 600
    c.train.warmup_fraction = 0.1
    c.search.searches = "macs_m<=55.3989"
    c.search.population = 8
    c.search.generations = 3
    c.search.crossovers = 4
    c.search.mutations = 4
    c.search.val_images = 500
    c.log_every = 50
    c.checkpoint_every = 200
  return c

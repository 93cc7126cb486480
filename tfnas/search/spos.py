"""Single Path One-Shot: supernet training with uniform sampling, then evolution.

1. **Supernet training.** Each step samples one architecture (op and mid-channel
   scale per choice block) uniformly, or uniformly among the architectures that
   meet `config.train.sample_constraints` (rejection sampling, the paper's default
   with a FLOPs range), seeded by (seed, step), and trains that single path with
   SGD (Nesterov momentum, cosine, label smoothing, weight decay). The arch is a
   tensor input of one traced step. With `config.train.sampling="strict_fair"` (FairNAS)
   a step instead trains m paths on one batch that together hold every op of every
   block once, and applies their summed gradients in one update (m times the compute
   of a uniform step).
2. **Search.** Every search in `config.search.searches` (e.g. three latency budgets) runs
   on the same trained supernet: evolution (Algorithm 1) with hard constraints
   checked before evaluation, and a random-search baseline with the same number
   of evaluations. A candidate is scored by recalibrating BatchNorm exactly over
   `calib_images` training images (its active path only), then on `val_images`
   held-out validation images: minus the mean cross-entropy (`config.search.score="loss"`,
   the configs' default: it ranks archs better than top-1 does) or top-1
   ("accuracy"); both are recorded. Scores are cached per architecture
   across searches and appended to `candidates.jsonl`, so a killed search
   resumes without re-evaluating.
3. **Outputs.** `search_report.json` (the common schema of `tfnas.search.finish`, plus
   constraints; top candidates with accuracy, predicted latency, MMACs, params;
   evolution vs random), `arch.json` (best of
   the first search) and `arch_<search>.json` for each, `search_progress.png`
   (best accuracy per generation, evolution vs random, and the accuracy-MACs
   front), the child with inherited (sliced) weights after the same BN
   recalibration (`child.weights.h5`, `child.tflite`).

Constraint strings: searches are separated by ";", the limits of one search by
","; a limit is `<metric><=<value>` or `<metric>>=<value>` with metric
`latency_ms` (the latency model's `predict`; needs a model in ms), `macs_m`
(millions of multiply-accumulates) or `params_m` (millions of parameters), e.g.
"latency_ms<=1.2,params_m<=1.5; macs_m<=40".
"""

from __future__ import annotations

import dataclasses
import re
import time

import keras
import numpy as np
import tensorflow as tf

from tfnas.errors import TfnasError
from tfnas.io import append_jsonl, read_jsonl
from tfnas.models.spos import SPOSSupernet
from tfnas.optimizers import dense_gradients
from tfnas.runtime import apply_gradients, distribute, make_optimizer, supernet_graphs, supernet_step
from tfnas.search import finish as finish_lib
from tfnas.search import runner
from tfnas.evolution import Evolution, EvolutionOptions, random_genes, random_search
from tfnas.spaces import Arch, groundtruth, parse_arch, total

METRICS = ("latency_ms", "macs_m", "params_m")


@dataclasses.dataclass(frozen=True)
class Limit:
  """One hard constraint of a search, e.g. `macs_m<=40` (SPOS Sec. 3.3: evolution never
  evaluates an arch that breaks one). `metric` is one of `METRICS` (latency in the cost
  model's unit, MMACs, M params), `op` "<=" or ">=", `value` in the metric's unit."""
  metric: str
  op: str  # "<=" or ">="
  value: float

  def ok(self, x: float) -> bool:
    """Whether a value `x` of the metric meets the limit (boundary included)."""
    return x <= self.value if self.op == "<=" else x >= self.value

  def __str__(self):
    return f"{self.metric}{self.op}{self.value:g}"


def parse_constraints(text: str) -> tuple[Limit, ...]:
  """"macs_m<=40,params_m>=0.5" -> Limits; "" -> no limits."""
  out = []
  for part in filter(None, (p.strip() for p in (text or "").split(","))):
    m = re.fullmatch(r"([a-z_]+)\s*(<=|>=)\s*([0-9.eE+-]+)", part)
    if not m:
      raise TfnasError(f"constraint {part!r} is not '<metric><=<value>' or "
                       f"'<metric>>=<value>' with metric one of {METRICS}")
    metric, op, value = m.groups()
    if metric not in METRICS:
      raise TfnasError(f"constraint {part!r}: unknown metric {metric!r}; expected one of "
                       f"{METRICS}")
    try:
      out.append(Limit(metric, op, float(value)))
    except ValueError:
      raise TfnasError(f"constraint {part!r}: {value!r} is not a number") from None
  return tuple(out)


def parse_searches(text: str) -> list[tuple[Limit, ...]]:
  """`config.search.searches`: ";"-separated constraint sets, each as `parse_constraints`
  reads it ("macs_m<=40; latency_ms<=1.2,params_m<=1.5"); "" is one search without
  limits. Raises TfnasError for a malformed limit or an unknown metric."""
  searches = [parse_constraints(s) for s in (text or "").split(";") if s.strip()]
  return searches or [()]


def gene_choices(space) -> list[int]:
  """Choices per gene: the op of every choice block, then its mid-channel scale (if any)."""
  blocks = space.choice_blocks
  return [len(b.ops) for b in blocks] + (
      [len(b.mid_scales) for b in blocks] if space.has_channel_choices else [])


def arch_of(space, genes) -> Arch:
  """The `Arch` a genome encodes (`gene_choices`' layout: one op index per choice block,
  then one mid-channel scale index per block on spaces with channel choices)."""
  n = len(space.choice_blocks)
  return Arch.create(space, list(genes[:n]),
                     list(genes[n:]) if space.has_channel_choices else None)


def unit_channels(space) -> tuple[int, ...]:
  """Per choice block, the index of the mid-channel scale nearest 1.0 (the ShuffleNet
  block's own width); () for a space without channel choices."""
  if not space.has_channel_choices:
    return ()
  return tuple(int(np.argmin([abs(s - 1.0) for s in b.mid_scales]))
               for b in space.choice_blocks)


def sample_genes(rng, choices, feasible, fixed_channels=None,
                 what: str = "constraints") -> tuple[int, ...]:
  """Uniform over the genomes that satisfy `feasible`; with `fixed_channels` (one index
  per choice block) only the ops are sampled and the channel genes are those."""
  if not fixed_channels:
    return random_genes(rng, choices, feasible, what=what)
  fixed = tuple(fixed_channels)
  ops = random_genes(rng, choices[:len(fixed)], lambda g: feasible(tuple(g) + fixed),
                     what=what)
  return tuple(ops) + fixed


SAMPLINGS = ("uniform", "strict_fair")
SCORES = ("accuracy", "loss")


def strict_fair_genes(rng, choices, n_blocks: int, fixed_channels=None) -> list[tuple]:
  """One step's paths under FairNAS's strict fairness (Chu et al., "FairNAS: Rethinking
  Evaluation Fairness of Weight Sharing Neural Architecture Search", ICCV 2021, Sec. 3.2 and
  Algorithm 1): m paths, m the number of ops per choice block, where path k takes the k-th
  op of an independent random permutation of each block's ops, so every op of every block
  is trained exactly once per step. The caller trains all m on one batch and applies the
  summed gradients once.

  Args:
    rng: numpy Generator.
    choices: Gene choice counts (`gene_choices`): `n_blocks` op genes, then channel genes.
    n_blocks: Number of choice blocks; their op counts must all equal m.
    fixed_channels: Channel gene per block (channel warm-up); None: uniform per path.

  Returns:
    m genomes (tuples of len(choices)).

  Raises:
    TfnasError: the blocks' op counts differ (strict fairness needs one m).
  """
  ops = list(choices[:n_blocks])
  if len(set(ops)) != 1:
    raise TfnasError(f"sampling 'strict_fair' needs every choice block to have the same "
                     f"number of ops; this space's blocks have {sorted(set(ops))}")
  m = ops[0]
  perms = np.array([rng.permutation(m) for _ in range(n_blocks)])  # (blocks, m)
  out = []
  for k in range(m):
    if fixed_channels:
      chans = tuple(fixed_channels)
    else:
      chans = tuple(int(rng.integers(n)) for n in choices[n_blocks:])
    out.append(tuple(int(i) for i in perms[:, k]) + chans)
  return out


def metrics(space, latency, arch: Arch) -> dict:
  """Predicted latency (in the model's unit), MMACs and Mparams of `arch`."""
  cost = total(space, arch)
  name = "latency_ms" if latency.unit == "ms" else f"latency_{latency.unit}"
  return {name: float(latency.predict(arch)), "macs_m": cost.macs / 1e6,
          "params_m": cost.params / 1e6}


def block_terms(space, latency) -> tuple[dict[str, float], list[dict[str, np.ndarray]]]:
  """The additive decomposition of every metric of `metrics` over `space`'s choice blocks.

  Latency (every tfnas latency model is additive), MACs and params are sums of per-block
  terms, each block's term fixed by its own (op, mid-channel scale). Returns
  (base, deltas): `base` the metrics of the all-zeros genome, and for each choice block j
  `deltas[j][metric]`, an array over the block's options (its op index, or op index x
  number of scales + scale index in spaces with channel choices) of the change from base.
  One metric evaluation per (block, option): about a second for spos_cifar's 20 blocks x
  4 ops x 8 scales.
  """
  choices = gene_choices(space)
  n = len(space.choice_blocks)
  base = tuple(0 for _ in choices)
  at_base = metrics(space, latency, arch_of(space, base))
  deltas = []
  for j in range(n):
    options = [(o,) for o in range(choices[j])]
    if space.has_channel_choices:
      options = [(o, c) for o in range(choices[j]) for c in range(choices[n + j])]
    rows = []
    for option in options:
      genes = list(base)
      genes[j] = option[0]
      if len(option) > 1:
        genes[n + j] = option[1]
      rows.append(metrics(space, latency, arch_of(space, genes)))
    deltas.append({k: np.array([r[k] - at_base[k] for r in rows]) for k in at_base})
  return at_base, deltas


def metrics_of_many(space, latency, genes: np.ndarray, terms=None) -> dict[str, np.ndarray]:
  """`metrics` of many genomes at once, from `block_terms` (equal to `metrics` per arch up
  to float rounding): genes (N, len(gene_choices(space))) int -> {metric: (N,) array}."""
  base, deltas = terms or block_terms(space, latency)
  genes = np.asarray(genes)
  n = len(space.choice_blocks)
  out = {}
  for k, v in base.items():
    total_k = np.full(len(genes), v, np.float64)
    for j in range(n):
      option = genes[:, j]
      if space.has_channel_choices:
        option = option * len(space.choice_blocks[j].mid_scales) + genes[:, n + j]
      total_k += deltas[j][k][option]
    out[k] = total_k
  return out


def metric_ranges(space, latency, terms=None) -> dict[str, tuple[float, float]]:
  """Exact (min, max) of every metric over all architectures of `space`: the base
  genome's value plus each block's extreme change (`block_terms`, or `terms` from it)."""
  base, deltas = terms or block_terms(space, latency)
  return {k: (v + sum(float(d[k].min()) for d in deltas),
              v + sum(float(d[k].max()) for d in deltas)) for k, v in base.items()}


def check_feasible(space, latency, searches) -> None:
  """Raises TfnasError for a limit that no architecture of `space` meets (each limit
  alone, against the exact extremes of `metric_ranges`), before anything is trained."""
  ranges = None
  for limits in searches:
    for l in limits:
      ranges = ranges or metric_ranges(space, latency)
      lo, hi = ranges[l.metric]
      tol = 1e-9 * max(1.0, abs(l.value))  # the sums' float rounding
      if (l.op == "<=" and lo > l.value + tol) or (l.op == ">=" and hi < l.value - tol):
        raise TfnasError(
            f"constraint {l}: no architecture of {space.name} meets it ({l.metric} ranges "
            f"from {lo:.4g} to {hi:.4g} in this space); loosen the limit")


def meets(space, latency, arch: Arch, limits) -> bool:
  """Whether `arch` meets every limit (no limits: always)."""
  if not limits:
    return True
  m = metrics(space, latency, arch)
  return all(l.ok(m[l.metric]) for l in limits)


def _evolution_options(config) -> EvolutionOptions:
  """The evolution's options from the `search` section, seeded by `config.seed`."""
  s = config.search
  return EvolutionOptions(s.population, s.generations, s.top_k, s.crossovers, s.mutations,
                          s.mutation_prob, config.seed)


def _check_config(config):
  supernet_step(config)  # raises on a bad value
  _evolution_options(config).check()
  if config.data.val_size <= 0 or config.search.val_images <= 0:
    raise TfnasError("val_size and val_images must be > 0: candidates are scored on the "
                     "held-out validation split")
  if config.data.calib_images <= 0:
    raise TfnasError(f"calib_images {config.data.calib_images} must be > 0 (BN recalibration)")
  if config.train.steps < 0:
    raise TfnasError(f"steps {config.train.steps} must be >= 0")
  warm = config.train.channel_warmup_fraction
  if not 0.0 <= warm < 1.0:
    raise TfnasError(f"channel_warmup_fraction {warm!r} must be in [0, 1)")
  if config.search.score not in SCORES:
    raise TfnasError(f"score {config.search.score!r} is not one of {', '.join(SCORES)} "
                     "(what evolution maximizes: minus the validation loss, or top-1)")
  sampling = config.train.sampling
  if sampling not in SAMPLINGS:
    raise TfnasError(f"sampling {sampling!r} is not one of {list(SAMPLINGS)}")
  if sampling == "strict_fair" and config.train.sample_constraints:
    raise TfnasError(f"sampling 'strict_fair' trains every op of every block each step, so "
                     f"it cannot also keep paths within sample_constraints "
                     f"{config.train.sample_constraints!r}; set one of them")


class SPOSSearch:
  """State of one SPOS run; `run()` trains (or resumes) the supernet, then searches."""

  def __init__(self, config, workdir: str):
    _check_config(config)
    self.config, self.workdir = config, workdir
    self.searches = parse_searches(config.search.searches)
    self.sample_limits = parse_constraints(config.train.sample_constraints)

    def check_cost_model(model):
      for limits in self.searches + [self.sample_limits]:
        for l in limits:
          if l.metric == "latency_ms" and not model.is_latency:
            raise TfnasError(f"constraint {l} needs a latency model in ms; "
                             f"--config.search.latency_model={config.search.latency_model!r} is in "
                             f"{model.unit} (give a lut: or fitted latency_model.json)")

    def check_data(data):
      if data.sizes["val"] < config.search.val_images:
        raise TfnasError(f"val_images {config.search.val_images} is more than the validation split "
                         f"({data.sizes['val']} examples; raise val_size)")

    setup = runner.set_up(config, workdir, check_cost_model, check_data,
                          share_expansion=bool(config.model.share_expansion),
                          choice_bn_affine=bool(config.model.choice_bn_affine))
    self.space, self.ident, self.latency = setup.space, setup.ident, setup.cost_model
    self.setup, self.wd = setup, setup.workdir
    self.strategy, self.data = setup.strategy, setup.data
    check_feasible(self.space, self.latency, self.searches + [self.sample_limits])
    self.choices = gene_choices(self.space)
    self.sampling = config.train.sampling
    if self.sampling == "strict_fair":  # the space's op counts must agree: say so now
      strict_fair_genes(np.random.default_rng(0), self.choices, len(self.space.choice_blocks))
    with self.strategy.scope():
      self.net = SPOSSupernet(self.space, config.model.dropout, config.model.bn_momentum,
                              share_expansion=self.ident["share_expansion"],
                              choice_bn_affine=self.ident["choice_bn_affine"])
      self.opt = make_optimizer(config, config.train.steps)  # warm-up, cosine, no decay on BN
      self.opt.build(self.net.trainable_variables)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    self.manager = runner.checkpoint_manager(setup, net=self.net, opt=self.opt,
                                             step=self.step)
    self.ce = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=config.train.label_smoothing, reduction="sum")
    self.scores: dict[str, float] = {}  # arch key -> what evolution maximizes
    self.evals: dict[str, dict] = {}  # arch key -> {"accuracy", "loss"}
    self._calib = self._eval = self._calib_edges = None
    self._calib_batches = self._val_batches = None

  # --- architectures as genes ---------------------------------------------------------
  def largest(self) -> Arch:
    """The space's "largest" reference at the widest mid-channel scale of every block."""
    blocks = self.space.choice_blocks
    chans = [len(b.mid_scales) - 1 for b in blocks] if self.space.has_channel_choices else None
    return Arch.create(self.space, self.space.reference("largest"), chans)

  def arch_of(self, genes) -> Arch:
    """`arch_of(self.space, genes)`."""
    return arch_of(self.space, genes)

  def genes_of(self, arch: Arch) -> tuple[int, ...]:
    """The genome of `arch`: its op indices, then its channel indices (if any)."""
    return tuple(arch.ops) + tuple(arch.channels or ())

  def _tensors(self, genes):
    n = len(self.space.choice_blocks)
    chans = genes[n:] if self.space.has_channel_choices else (0,) * n
    return tf.constant(genes[:n], tf.int32), tf.constant(chans, tf.int32)

  def metrics(self, genes) -> dict:
    """`metrics` of the arch `genes` encodes: predicted latency, MMACs, M params."""
    return metrics(self.space, self.latency, self.arch_of(genes))

  def feasible(self, genes, limits) -> bool:
    """Whether the arch `genes` encodes meets every `Limit` in `limits`."""
    return meets(self.space, self.latency, self.arch_of(genes), limits)

  # --- supernet training ----------------------------------------------------------------
  def _train_grads(self, images, labels, ops, chans):
    """The gradient of one batch for the paths `ops`, `chans`: (n,) for one path (uniform
    sampling), or (m, n) for m paths whose gradients are summed for one update (FairNAS
    strict fairness). Returns the paths' mean loss and top-1, and a gradient for every
    trainable variable (zeros off the paths). Eagerly, each path's blocks run through
    their own traced functions (see `SPOSSupernet`); traced, as one graph."""
    if ops.shape.rank == 1:
      ops, chans = ops[None], chans[None]
    batch = tf.cast(tf.shape(labels)[0] * self.strategy.num_replicas_in_sync, tf.float32)
    onehot = tf.one_hot(tf.cast(labels, tf.int32), self.space.head.num_classes)
    losses, accs = [], []
    with tf.GradientTape() as tape:
      for k in range(ops.shape[0]):  # static: one traced forward per path
        logits = self.net(images, ops=ops[k], chans=chans[k], bn_mode="train", training=True)
        losses.append(self.ce(onehot, logits) / batch)
        accs.append(tf.reduce_mean(tf.cast(tf.equal(
            tf.argmax(logits, -1, output_type=tf.int32), tf.cast(labels, tf.int32)),
            tf.float32)))
      loss = tf.add_n(losses)
    variables = self.net.trainable_variables
    grads = dense_gradients(tape.gradient(loss, variables), variables, self._zeros)
    paths = float(len(losses))
    return loss / paths * self.strategy.num_replicas_in_sync, tf.add_n(accs) / paths, grads

  def train_step_fn(self):
    """`step(images, labels, ops, chans) -> (loss, top-1)`: one supernet update on one
    (distributed) batch, for one path ((n,) ops and chans) or m paths ((m, n)). With
    `config.train.supernet_step="eager"` the gradient runs eagerly per replica (`_train_grads`)
    and the update of every weight is one traced function; "traced" traces it whole."""
    s, variables = self.strategy, self.net.trainable_variables
    self._zeros = {}

    @tf.function(autograph=False)
    def apply(grads):
      apply_gradients(s, self.opt, grads, variables)

    def step(images, labels, ops, chans):
      loss, acc, grads = s.run(self._train_grads, args=(images, labels, ops, chans))
      apply(grads)
      return s.reduce("MEAN", loss, axis=None), s.reduce("MEAN", acc, axis=None)
    if supernet_step(self.config) == "traced":
      return tf.function(step)  # one graph: a `switch_case` over every path per block
    return step

  def train(self) -> dict:
    """Trains the supernet to `config.train.steps` (SPOS Sec. 3.2: one uniformly sampled path
    per step, or FairNAS's strict-fair m paths), resuming from the last checkpoint; logs
    every `log_every` steps to stdout and TensorBoard. Returns {"steps", "resumed_at"
    (the step it started from), "seconds"} ("seconds" absent when nothing was left)."""
    c, wd, s = self.config, self.wd, self.strategy
    self.manager.restore_or_initialize()
    start = runner.agreed_step(self.setup, self.step)
    if start >= c.train.steps:
      return {"steps": c.train.steps, "resumed_at": start}

    step_fn = self.train_step_fn()

    train = iter(distribute(s, self.data.train.repeat()))
    what = "sample_constraints " + ",".join(map(str, self.sample_limits))
    # Channel warm-up (`channel_warmup_fraction`, 0 = the paper's sampling): the first
    # fraction of the steps samples ops only, every block at its own width (scale 1.0);
    # then ops and widths are uniform.
    ops_only = int(c.train.steps * c.train.channel_warmup_fraction)
    fixed = unit_channels(self.space)
    if ops_only and start < ops_only and fixed:
      print(f"[supernet] steps 1-{ops_only}: ops only (mid-channel scale 1.0); then ops and "
            "channels uniform", flush=True)

    def one_step(step):
      rng = np.random.default_rng([c.seed, 31, step])
      if self.sampling == "strict_fair":
        paths = strict_fair_genes(rng, self.choices, len(self.space.choice_blocks),
                                  fixed if step < ops_only else None)
      else:
        paths = [sample_genes(rng, self.choices,
                              lambda g: self.feasible(g, self.sample_limits),
                              fixed if step < ops_only else None, what=what)]
      tensors = [self._tensors(g) for g in paths]
      images, labels = next(train)
      loss, acc = step_fn(images, labels, tf.stack([o for o, _ in tensors]),
                          tf.stack([ch for _, ch in tensors]))
      return {"loss": loss, "accuracy": acc}

    seconds = runner.step_loop(start=start, total=c.train.steps, step_var=self.step,
                               manager=self.manager, workdir=wd, log_every=c.log_every,
                               checkpoint_every=c.checkpoint_every, one_step=one_step)
    return {"steps": c.train.steps, "resumed_at": start, "seconds": seconds}

  # --- candidate evaluation ---------------------------------------------------------------
  def _prepare_eval(self):
    if self._eval is not None:
      return
    c = self.config
    self._calib = self.net.calibration_fn()
    self._calib_edges = self.net.calibration_edges()
    self._calib_batches = [x for x, _ in self.data.calib]
    val, n = [], 0
    for x, y in self.data.val:
      take = min(int(x.shape[0]), c.search.val_images - n)
      val.append((x[:take], tf.cast(y[:take], tf.int32)))
      n += take
      if n >= c.search.val_images:
        break
    self._val_batches = val

    def correct(images, labels, ops, chans):
      logits = self.net(images, ops=ops, chans=chans, bn_mode="eval", training=False)
      hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                                            labels), tf.int32))
      loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels, tf.cast(logits, tf.float32)))
      return hits, loss
    self._eval = correct
    if supernet_step(c) == "traced":  # as the training step: one graph each
      self._calib, self._eval = tf.function(self._calib), tf.function(correct)

  def recalibrate(self, genes):
    """Exact BatchNorm recalibration of the path `genes` (SPOS Sec. 3.3): its BN
    statistics become the mean and variance over `calib_images` training images."""
    self._prepare_eval()
    ops, chans = self._tensors(genes)
    self.net.recalibrate(self._calib_batches, ops, chans, self._calib, self._calib_edges)

  def scores_per_batch(self, genes) -> np.ndarray:
    """(B, 3) float64: for each of the B validation batches (`val_images` held-out images
    in batches of `eval_batch_size`), [correct top-1 predictions, images, summed
    cross-entropy in nats] of `genes` with inherited weights after exact BN
    recalibration. Nothing is cached or written."""
    self.recalibrate(genes)
    ops, chans = self._tensors(genes)
    rows = []
    for x, y in self._val_batches:
      hits, loss = self._eval(x, y, ops, chans)
      rows.append([int(hits), int(y.shape[0]), float(loss)])
    return np.array(rows, np.float64)

  def correct_per_batch(self, genes) -> np.ndarray:
    """(B, 2) int64: [correct top-1 predictions, images] per validation batch, as
    `scores_per_batch`."""
    return self.scores_per_batch(genes)[:, :2].astype(np.int64)

  def evaluate(self, genes) -> float:
    """The score evolution maximizes for `genes`, with inherited weights after exact BN
    recalibration, on `val_images` held-out images: minus the mean cross-entropy (nats)
    with `config.search.score="loss"`, top-1 with "accuracy". Both are kept (`self.evals`) and
    appended to candidates.jsonl; an arch is evaluated once per supernet step."""
    key = self.arch_of(genes).key()
    if key in self.scores:
      return self.scores[key]
    per_batch = self.scores_per_batch(genes)
    images = per_batch[:, 1].sum()
    ev = {"accuracy": float(per_batch[:, 0].sum() / images),
          "loss": float(per_batch[:, 2].sum() / images)}
    self._keep(key, ev)
    append_jsonl(self.wd.file("candidates.jsonl"),
                 [{"key": key, "genes": list(genes), **ev,
                   "supernet_step": int(self.step.numpy())}])
    return self.scores[key]

  def _keep(self, key: str, ev: dict) -> None:
    self.evals[key] = ev
    self.scores[key] = -ev["loss"] if self.config.search.score == "loss" else ev["accuracy"]

  def load_scores(self) -> None:
    """Reads back the candidates already evaluated on the supernet at its current step
    (`candidates.jsonl`) into `evals` and `scores` (by `config.search.score`), so a rerun
    or another search on the same supernet evaluates nothing twice."""
    path = self.wd.file("candidates.jsonl")
    step = int(self.step.numpy())
    # A line torn by a kill is skipped: that candidate is evaluated again (as is one
    # written before candidates carried their loss).
    for row in read_jsonl(path, "candidate scores"):
      if row.get("supernet_step") == step and "loss" in row:  # other weights do not count
        self._keep(row["key"], {"accuracy": row["accuracy"], "loss": row["loss"]})

  # --- search -------------------------------------------------------------------------------
  def search(self, log=print) -> list[dict]:
    """Runs every search of `config.search.searches` on the trained supernet: evolution (SPOS
    Algorithm 1, hard constraints checked before evaluation) and, with
    `random_baseline`, random search at the same number of evaluations. Resumable (state
    files per supernet step, scores cached in candidates.jsonl). Returns one summary per
    search (name, constraints, best and top candidates, ground truth where known)."""
    c, wd = self.config, self.wd
    self.load_scores()
    opts = _evolution_options(c)
    results = []
    for i, limits in enumerate(self.searches):
      name = _search_name(limits)
      feasible = lambda g, limits=limits: self.feasible(g, limits)
      what = f"constraints {name}"
      t0, n0 = time.time(), len(self.scores)
      # State files are per supernet step: training further (a larger --config.train.steps)
      # makes new weights, and every search starts again on them.
      step = int(self.step.numpy())
      # A state of this slot made for other limits or another score is refused.
      evo = Evolution(self.choices, feasible, self.evaluate, opts, what).run(
          wd.file(f"evolution_{i}_step{step}.json"), log, tag=f"evolution {name}",
          identity={"constraints": name, "score": c.search.score, "val_images": c.search.val_images,
                    "calib_images": c.data.calib_images})
      evo_seconds = time.time() - t0
      rand = None
      if c.search.random_baseline:
        rand = random_search(self.choices, feasible, self.evaluate, evo["evaluations"],
                             c.seed, c.search.population,
                             wd.file(f"random_{i}_step{step}.json"), log, what)
      results.append(self._summarize(name, limits, evo, rand, evo_seconds,
                                     len(self.scores) - n0))
    return results

  def _row(self, genes, score) -> dict:
    arch = self.arch_of(genes)
    return {"arch": arch.to_string(self.space), "score": score,
            **self.evals[arch.key()], **self.metrics(genes)}

  def _summarize(self, name, limits, evo, rand, seconds, new_evals) -> dict:
    c = self.config
    top = [self._row(g, s) for g, s in evo["top"][:c.search.report_top]]
    out = {"name": name, "constraints": [str(l) for l in limits],
           "evolution": {"evaluations": evo["evaluations"], "seconds": seconds,
                         "new_evaluations_this_run": new_evals,
                         "best_per_generation": [h["best_score"] for h in evo["history"]]},
           "top": top, "best": top[0] if top else None,
           "all": [self._row(g, s) for g, s in evo["scores"].items()]}
    if rand is not None:
      best = self._row(*rand["top"][0]) if rand["top"] else None
      out["random"] = {"evaluations": rand["evaluations"], "best": best,
                       "best_per_generation": [h["best_score"] for h in rand["history"]]}
      out["all_random"] = [self._row(g, s) for g, s in rand["scores"].items()]
    # On a space with ground truth (NAS-Bench-Macro at its size): the best candidate among
    # every arch of the space that meets the same limits.
    out["ground_truth"] = None if not top else groundtruth.search_standing(
        self.space, parse_arch(self.space, top[0]["arch"]),
        lambda a: meets(self.space, self.latency, a, limits))
    for l in limits:  # every reported candidate met the limits (checked before evaluation)
      for r in out["all"] + out.get("all_random", []):
        assert l.ok(r[l.metric]), (l, r)
    return out

  # --- the whole run ----------------------------------------------------------------------
  def run(self) -> dict:
    """Trains (or resumes) the supernet, runs every search, then ends through
    `finish.finish` with the first search's best arch (BN recalibrated first). Returns
    the report."""
    c, wd = self.config, self.wd
    wd.start(self.ident, c, self.data)
    with supernet_graphs():
      trained = self.train()
      t0 = time.time()
      results = self.search()
      search_seconds = time.time() - t0
    for r in results:
      if r["best"] is not None:
        wd.write_json(f"arch_{_slug(r['name'])}.json",
                      parse_arch(self.space, r["best"]["arch"]).to_json(self.space))
    first = results[0]
    if first["best"] is None:
      raise TfnasError(f"search {first['name']} found no candidate")
    best = parse_arch(self.space, first["best"]["arch"])
    check = supernet_check([e["accuracy"] for e in self.evals.values()],
                           self.space.head.num_classes, c.search.val_images)
    if not check["learned"]:
      print(f"warning: the supernet scores candidates at chance (median "
            f"{check['median_candidate_accuracy']:.3f} over {check['candidates']} candidates, "
            f"chance {check['chance']:.3f}), so this search ranked noise. Train it longer "
            "(--config.train.steps) before trusting arch.json; see BENCHMARKS.md (Single Path "
            "One-Shot).", flush=True)
    plot(results, wd.file("search_progress.png"))
    wd.write_json("search_results.json", results)
    # The child: the same BN recalibration, then the (sliced) weights copied over.
    with supernet_graphs():
      self.recalibrate(self.genes_of(best))
    limits = self.searches[0]
    # Limits on the cost model's quantity: its own metric, or the spec's MACs / params
    # when the model is "macs" / "params".
    same = {next(k for k in metrics(self.space, self.latency, best) if k.startswith("latency_")),
            {"MMACs": "macs_m", "Mparams": "params_m"}.get(self.latency.unit)}
    return finish_lib.finish(
        wd, method="spos", space=self.space, arch=best, child=self.net.inherit_child(best),
        cost_model=self.latency, cost_model_spec=c.search.latency_model,
        # The first search's upper limit on the cost model's own metric, if it has one.
        target=min((l.value for l in limits if l.metric in same and l.op == "<="),
                   default=None),
        val_data=self.data.val, measure_host=c.search.measure_host and self.setup.chief,
        within_budget=lambda a: meets(self.space, self.latency, a, limits),
        replicas=self.strategy.num_replicas_in_sync, width=c.model.width,
        precision=c.search.precision, extra={
            "constraints": [str(l) for l in limits],
            "sample_constraints": [str(l) for l in self.sample_limits],
            "sampling": self.sampling, "supernet": {"steps": c.train.steps, **trained},
            "search_seconds": search_seconds,
            "searches": [{k: v for k, v in r.items() if not k.startswith("all")}
                         for r in results],
            "score": c.search.score, "calib_images": c.data.calib_images,
            "val_images": c.search.val_images,
            "supernet_check": check, **runner.worker_fields(self.setup)})


def supernet_check(accuracies, num_classes: int, val_images: int) -> dict:
  """Whether the supernet ranks candidates by more than chance.

  A supernet that has not learned scores every candidate near 1/num_classes, and the
  search then picks among noise. `learned` is False when the median evaluated candidate
  is within three binomial standard deviations (over `val_images`) of chance.
  """
  chance = 1.0 / num_classes
  threshold = chance + 3 * float(np.sqrt(chance * (1 - chance) / max(1, val_images)))
  median = float(np.median(accuracies)) if len(accuracies) else float("nan")
  return {"median_candidate_accuracy": median, "chance": chance,
          "threshold": threshold, "candidates": len(accuracies),
          "learned": bool(median > threshold)}


def _search_name(limits) -> str:
  return ",".join(map(str, limits)) or "unconstrained"


def _slug(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9.]+", "_", name.replace("<=", "_le_").replace(">=", "_ge_")).strip("_")


def plot(results: list[dict], path: str) -> None:
  """Best score per generation (evolution vs random, paper Fig. 3) and top-1 vs MACs."""
  from tfnas.io import new_figure, write_png
  fig = new_figure(figsize=(11, 4.2))
  a1, a2 = fig.subplots(1, 2)
  for k, r in enumerate(results):
    color = f"C{k}"
    evo = r["evolution"]["best_per_generation"]
    a1.plot(range(1, len(evo) + 1), evo, "-o", color=color, ms=3, label=f"evolution {r['name']}")
    if "random" in r:
      rnd = r["random"]["best_per_generation"]
      a1.plot(range(1, len(rnd) + 1), rnd, "--", color=color, label=f"random {r['name']}")
    pts = sorted(r["all"] + r.get("all_random", []), key=lambda x: x["macs_m"])
    a2.scatter([p["macs_m"] for p in pts], [p["accuracy"] for p in pts], s=8, color=color,
               alpha=0.5, label=r["name"])
    front, best = [], -1.0
    for p in pts:
      if p["accuracy"] > best:
        front.append(p)
        best = p["accuracy"]
    a2.step([p["macs_m"] for p in front], [p["accuracy"] for p in front], where="post",
            color=color)
  a1.set_xlabel("generation (random: per population-size batch)")
  a1.set_ylabel("best score so far (top-1, or minus the loss)")
  a1.legend(fontsize=7)
  a2.set_xlabel("MMACs")
  a2.set_ylabel("validation top-1 (inherited weights)")
  a2.legend(fontsize=7)
  fig.tight_layout()
  write_png(fig, path, dpi=110)


def search(config, workdir: str) -> dict:
  """The whole SPOS run in `workdir` (train, search, finish); returns the report."""
  return SPOSSearch(config, workdir).run()

"""ProxylessNAS search: alternating weight and architecture steps, then derive.

Weight steps train the supernet's weights on the train split with one sampled
path per block (SGD momentum, cosine). After `warmup_steps`, every
`arch_every` weight steps an architecture step updates alpha on the held-out
validation split (Adam) with one of:
- "two_path": BinaryConnect over two sampled paths per block (Eq. 4), then the
  rescale that keeps the unsampled paths' probabilities (Sec. 3.2.1);
- "full_v2": BinaryConnect over all paths, inactive outputs recomputed in the
  backward pass (Appendix D);
- "full": the weighted sum of all paths (memory/speed contrast only);
- "reinforce": REINFORCE on sampled archs (Eq. 8) with a moving-average
  baseline and the absolute-value reward acc + beta * |lat / target - 1|
  (TuNAS), latency from the latency model (need not be differentiable).
Loss = CE + latency term from the latency model's block costs
(`expected_latency`), "add" or "mul" form; weight decay is in the optimizer.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import tensorflow as tf

from tfnas.errors import TfnasError
from tfnas.io import append_jsonl, atomic_write_bytes, read_jsonl
from tfnas.latency import with_unit
from tfnas.layers.mixed import rescale_alpha
from tfnas.models.supernet import ProxylessSupernet
from tfnas.optimizers import dense_gradients
from tfnas.runtime import apply_gradients, distribute, make_optimizer, supernet_graphs, supernet_step
from tfnas.search import finish as finish_lib
from tfnas.search import pictures
from tfnas.search import runner
from tfnas.search.losses import expected_latency, latency_loss
from tfnas.spaces import Arch

ARCH_MODES = ("two_path", "full_v2", "full", "reinforce")
DERIVES = ("argmax", "target")


def _check_config(config):
  if config.search.arch_mode not in ARCH_MODES:
    raise TfnasError(f"unknown arch_mode {config.search.arch_mode!r}; expected one of {ARCH_MODES}")
  if config.search.latency_form not in ("add", "mul", "abs"):
    raise TfnasError(f"unknown latency_form {config.search.latency_form!r}; expected 'add', 'mul' "
                     "or 'abs'")
  target = config.search.target
  if not target > 0 or (config.search.latency_form == "mul" and target <= 1):
    raise TfnasError(f"target {config.search.target!r} must be > 0 (and > 1 for the 'mul' form)")
  if config.data.val_size <= 0:
    raise TfnasError("val_size must be > 0: architecture steps use the held-out validation split")
  if config.search.derive not in DERIVES:
    raise TfnasError(f"unknown derive {config.search.derive!r}; expected one of {DERIVES}")
  supernet_step(config)  # raises on a bad value
  if config.search.derive == "target" and not 0 < config.search.derive_tolerance < 1:
    raise TfnasError(f"derive_tolerance {config.search.derive_tolerance!r} must be in (0, 1)")


def predicted_range(latency, costs) -> tuple[float, float]:
  """The exact (min, max) of the additive model's prediction over every architecture:
  constant + the sum of each block's cheapest (dearest) op."""
  return (latency.constant + sum(min(c) for c in costs),
          latency.constant + sum(max(c) for c in costs))


def check_target_reachable(latency, costs, target: float, tolerance: float) -> None:
  """Raises TfnasError (before any training) when no architecture's predicted latency can
  be within `tolerance` of `target` (from `predicted_range`)."""
  low, high = predicted_range(latency, costs)
  if target * (1 + tolerance) < low or target * (1 - tolerance) > high:
    raise TfnasError(
        f"target {target:g} {latency.unit} is out of reach: the space's architectures "
        f"predict {low:.4g} to {high:.4g} {latency.unit} (derive='target' needs one within "
        f"{100 * tolerance:g} %)")


def check_latency_form(latency, costs, form: str) -> None:
  """Raises TfnasError (before any training) when the 'mul' loss, CE·(log E[lat] / log
  T)^β (the official ProxylessNAS code's `mul#log`; E[lat] is Eq. 5-6, which the paper's
  Eq. 7 adds instead), is undefined for some architecture. E[lat] is a mixture of the
  archs' predicted latencies, so it can fall to the cheapest arch's; a latency of 1 or
  less (in the model's unit) makes the log zero or negative and the power NaN (seen: a
  1.9 ms host target, E[lat] under 1 ms after 300 steps, NaN alphas)."""
  low, high = predicted_range(latency, costs)
  if form == "mul" and not low > 1:
    raise TfnasError(
        f"latency_form 'mul' needs every architecture's predicted latency above 1 "
        f"{latency.unit} (it takes its log): the space's architectures predict {low:.4g} to "
        f"{high:.4g} {latency.unit}; use --config.search.latency_form=abs (or add)")


class ProxylessSearch:
  """State and steps of one search; `run()` does the whole loop."""

  def __init__(self, config, workdir: str):
    _check_config(config)
    self.config, self.workdir = config, workdir
    setup = runner.set_up(config, workdir)
    self.space, self.ident, self.latency = setup.space, setup.ident, setup.cost_model
    self.setup, self.wd = setup, setup.workdir
    self.strategy, self.data = setup.strategy, setup.data
    self.costs = self.latency.block_costs()
    if config.search.derive == "target":
      check_target_reachable(self.latency, self.costs, config.search.target,
                             config.search.derive_tolerance)
    check_latency_form(self.latency, self.costs, config.search.latency_form)
    self.total_steps = config.train.steps
    with self.strategy.scope():
      self.net = ProxylessSupernet(self.space, config.model.dropout, config.model.bn_momentum)
      # The weights' SGD as every run builds it (cosine to 0 after `warmup_fraction`,
      # `clip_norm`); Keras' exclusion list is replaced, not extended: all names again.
      self.w_opt = make_optimizer(config, self.total_steps)
      self.w_opt.exclude_from_weight_decay(var_names=["gamma", "beta", "bias", "alpha"])
      self.a_opt = keras.optimizers.Adam(config.search.arch_lr, beta_1=config.search.arch_beta1,
                                         beta_2=0.999, epsilon=1e-8)
      self.w_opt.build(self.net.weight_variables)
      self.a_opt.build(self.net.alphas)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
      self.baseline = tf.Variable(0.0, trainable=False, name="reinforce_baseline")
    self.manager = runner.checkpoint_manager(setup, net=self.net, w_opt=self.w_opt,
                                             a_opt=self.a_opt, step=self.step,
                                             baseline=self.baseline)
    self.num_classes = self.data.num_classes
    self.ce = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="sum")

  # --- sampling (explicit, seeded by (seed, step), as tensors) ---------------------------
  def _seed(self, salt: int):
    return tf.stack([tf.constant(self.config.seed * 1000 + salt, tf.int64), self.step])

  def sample_paths(self, salt: int = 0):
    """One path per block from p (uniform while alpha is zero)."""
    out = []
    for j, m in enumerate(self.net.mixed):
      logits = tf.math.log(m.probs())[None]
      seed = self._seed(salt + 7 * j + 1)
      out.append(tf.random.stateless_categorical(logits, 1, seed, dtype=tf.int32)[0, 0])
    return tf.stack(out)

  def sample_two(self):
    """Two distinct paths per block from the multinomial p (Gumbel top-2), and the
    active one of the pair drawn from the softmax over their alphas."""
    active, pairs = [], []
    for j, m in enumerate(self.net.mixed):
      u = tf.random.stateless_uniform([m.num_paths], self._seed(1000 + j), 1e-9, 1.0)
      top2 = tf.math.top_k(tf.math.log(m.probs()) - tf.math.log(-tf.math.log(u)), 2).indices
      pair_logits = tf.gather(m.alpha, top2)[None]
      c = tf.random.stateless_categorical(pair_logits, 1, self._seed(2000 + j),
                                          dtype=tf.int32)[0, 0]
      pairs.append(tf.cast(top2, tf.int32))
      active.append(tf.gather(top2, c))
    return tf.cast(tf.stack(active), tf.int32), tf.stack(pairs)

  # --- steps ------------------------------------------------------------------------------
  def expected_latency(self):
    """E[lat] under the current architecture distribution (Eq. 5-6), a scalar tensor in
    the cost model's unit."""
    return expected_latency(self.net.probs(), self.costs, self.latency.constant)

  # With supernet_step="eager" each step runs eagerly: the sampled paths' traced candidate
  # calls (see `ProxylessSupernet`) and one traced optimizer update, so nothing traces the
  # whole supernet ("traced" wraps the same code in one `tf.function`). The gradient part
  # runs per replica (`strategy.run`); the update runs in a `tf.function` over all weights,
  # inactive paths' gradients zero (as a traced `switch_case` gives them: momentum and
  # weight decay keep acting on every weight).
  def _weight_grads(self, images, labels, paths):
    batch = tf.cast(tf.shape(labels)[0] * self.strategy.num_replicas_in_sync, tf.float32)
    with tf.GradientTape() as tape:
      logits = self.net(images, paths=paths, mode="single", training=True)
      loss = self.ce(labels, logits) / batch
    variables = self.net.weight_variables
    grads = dense_gradients(tape.gradient(loss, variables), variables, self._zeros)
    acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                                          tf.cast(labels, tf.int32)), tf.float32))
    return loss * self.strategy.num_replicas_in_sync, acc, grads

  def _arch_grads(self, images, labels, active, involved, mode):
    batch = tf.cast(tf.shape(labels)[0] * self.strategy.num_replicas_in_sync, tf.float32)
    with tf.GradientTape() as tape:
      logits = self.net(images, paths=active, involved=involved, mode=mode, training=True)
      ce = self.ce(labels, logits) / batch
      lat = self.expected_latency()
      loss = latency_loss(ce, lat, self.config.search.target, self.config.search.latency_form,
                          self.config.search.latency_lambda, self.config.search.latency_beta)
    grads = dense_gradients(tape.gradient(loss, self.net.alphas), self.net.alphas, self._zeros)
    return ce * self.strategy.num_replicas_in_sync, lat, grads

  def _reinforce_step(self, images, labels, paths):
    logits = self.net(images, paths=paths, mode="single", training=False)
    acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                                          tf.cast(labels, tf.int32)), tf.float32))
    return acc

  def build_functions(self):
    """(weight_step, arch_step, reinforce_step), each `fn(images, labels)` on one
    (distributed) batch, returning (loss, accuracy), (objective, E[lat]) and (reward,
    latency). With `config.train.supernet_step="eager"` they run eagerly (see the comment above
    `_weight_grads`); with "traced" the weight and architecture steps are traced whole."""
    s = self.strategy
    mode = {"two_path": "gated", "full_v2": "gated",
            "full": "full"}.get(self.config.search.arch_mode)
    traced_steps = supernet_step(self.config) == "traced"
    w_vars, alphas = self.net.weight_variables, self.net.alphas
    self._zeros = {}

    @tf.function(autograph=False)
    def apply_weights(grads):
      apply_gradients(s, self.w_opt, grads, w_vars)

    @tf.function(autograph=False)
    def apply_alphas(grads, involved):
      old = [tf.identity(a) for a in alphas]
      apply_gradients(s, self.a_opt, grads, alphas)
      if involved is not None:  # two_path: keep the unsampled paths' probabilities
        for j, a in enumerate(alphas):
          a.assign(rescale_alpha(tf.convert_to_tensor(a), old[j], involved[j]))

    # Sampling: ~10 small ops per block, traced once (run eagerly they cost more).
    sample_paths = tf.function(self.sample_paths, autograph=False)
    sample_two = tf.function(self.sample_two, autograph=False)

    def weight_step(images, labels):
      paths = sample_paths()
      loss, acc, grads = s.run(self._weight_grads, args=(images, labels, paths))
      apply_weights(grads)
      return (s.reduce("MEAN", loss, axis=None), s.reduce("MEAN", acc, axis=None))

    def arch_step(images, labels):
      if self.config.search.arch_mode == "two_path":
        active, involved = sample_two()
      else:
        active = sample_paths(salt=500)
        involved = None
      ce, lat, grads = s.run(self._arch_grads, args=(images, labels, active, involved, mode))
      apply_alphas(grads, involved)
      return s.reduce("MEAN", ce, axis=None), s.experimental_local_results(lat)[0]

    @tf.function(autograph=False)
    def apply_reinforce(paths, reward):
      grads = reinforce_gradients(alphas, paths, reward - self.baseline)
      self.a_opt.apply_gradients(zip(grads, alphas))
      m = self.config.search.reinforce_baseline_decay
      self.baseline.assign(m * self.baseline + (1 - m) * reward)

    def reinforce_accuracy(images, labels, paths):
      return s.reduce("MEAN", s.run(self._reinforce_step, args=(images, labels, paths)),
                      axis=None)
    if traced_steps:
      reinforce_accuracy = tf.function(reinforce_accuracy)

    def reinforce_step(images, labels):
      paths = sample_paths(salt=900)
      acc = reinforce_accuracy(images, labels, paths)
      lat = tf.constant(self.latency.predict(list(map(int, paths))), tf.float32)
      beta, target = self.config.search.reinforce_beta, self.config.search.target
      reward = acc + beta * tf.abs(lat / target - 1.0)
      apply_reinforce(paths, reward)
      return reward, lat

    if traced_steps:
      # The same code traced whole: `MixedOp`s become `switch_case`s over every candidate
      # (REINFORCE: its forward pass above; the reward takes the latency model in Python).
      weight_step, arch_step = tf.function(weight_step), tf.function(arch_step)
    return weight_step, arch_step, reinforce_step

  # --- loop -------------------------------------------------------------------------------
  def run(self) -> dict:
    """The search loop from the last checkpoint: `warmup_steps` weight-only steps, then
    weight and architecture steps alternating (Sec. 3.2); checkpoints, alpha history and
    TensorBoard as it goes; then `finish`. Returns the report."""
    c, wd = self.config, self.wd
    wd.start(self.ident, c, self.data)
    self.manager.restore_or_initialize()
    start = runner.agreed_step(self.setup, self.step)
    history_path = wd.file("alpha_history.jsonl")
    # Rows past the restored checkpoint (written before a kill that came ahead of the
    # checkpoint itself) are dropped; those steps are run, and logged, again.
    logged = read_jsonl(history_path, "architecture history")
    if any(h.get("step", 0) > start for h in logged):
      _write_jsonl(history_path, [h for h in logged if h.get("step", 0) <= start])
    history = []  # rows not yet on disk
    weight_step, arch_step, reinforce_step = self.build_functions()
    s = self.strategy
    train = iter(distribute(s, self.data.train.repeat()))
    val = iter(distribute(s, self.data.val.repeat()))
    arch_ce = None  # the last architecture step's objective

    def one_step(step):
      nonlocal arch_ce
      images, labels = next(train)
      loss, acc = weight_step(images, labels)
      warm = c.search.warmup_steps
      if step >= warm and (step - warm) % c.search.arch_every == 0:
        vimages, vlabels = next(val)
        if c.search.arch_mode == "reinforce":
          arch_ce, _ = reinforce_step(vimages, vlabels)
        else:
          arch_ce, _ = arch_step(vimages, vlabels)
      return {"loss": loss, "accuracy": acc}

    def on_log(step, _):  # inside the TensorBoard writer's context
      probs = [p.numpy() for p in self.net.probs()]
      e_lat = float(self.expected_latency())
      tf.summary.scalar("arch/expected_latency", e_lat)
      if arch_ce is not None:
        tf.summary.scalar("arch/objective", arch_ce)
      for m, p in zip(self.net.mixed, probs):
        tf.summary.scalar(f"entropy/{m.block.name}", float(-(p * np.log(p + 1e-12)).sum()))
        for name, v in zip(m.block.op_names, p):
          tf.summary.scalar(f"probs/{m.block.name}/{name}", float(v))
      history.append({"step": step, "expected_latency": e_lat,
                      "alpha": [m.alpha.numpy().round(5).tolist() for m in self.net.mixed]})
      return f"E[lat] {e_lat:.3f} {self.latency.unit}"

    def before_checkpoint():
      # History first: a kill between the two leaves rows past the checkpoint (dropped on
      # resume), never a checkpoint without its rows.
      append_jsonl(history_path, history)
      history.clear()

    with supernet_graphs():
      runner.step_loop(start=start, total=self.total_steps, step_var=self.step,
                       manager=self.manager, workdir=wd, log_every=c.log_every,
                       checkpoint_every=c.checkpoint_every, one_step=one_step, on_log=on_log,
                       before_checkpoint=before_checkpoint)
    return self.finish(history_path)

  def finish(self, history_path: str) -> dict:
    """Derives the arch (`config.search.derive`) and ends the search through `finish.finish`: the
    common report plus how the derivation landed and the final probabilities."""
    c = self.config
    argmax = self.net.derive()
    arch = argmax
    if c.search.derive == "target":
      probs = [m.probs().numpy() for m in self.net.mixed]
      ops = derive_within_target(probs, self.costs, self.latency.constant, c.search.target,
                                 c.search.derive_tolerance)
      arch = Arch.create(self.space, ops)
    predicted, argmax_predicted = self.latency.predict(arch), self.latency.predict(argmax)
    limit = c.search.target * (1 + c.search.derive_tolerance)
    report = finish_lib.finish(
        self.wd, method="proxylessnas", space=self.space, arch=arch,
        child=self.net.inherit_child(arch), cost_model=self.latency,
        cost_model_spec=c.search.latency_model, target=c.search.target, val_data=self.data.val,
        measure_host=c.search.measure_host and self.setup.chief,
        replicas=self.strategy.num_replicas_in_sync,
        width=c.model.width, precision=c.search.precision,
        # Ground truth: the derived arch among all archs whose prediction meets the same
        # budget (within the tolerance above the target).
        within_budget=lambda a: self.latency.predict(a) <= limit,
        extra={
            "arch_mode": c.search.arch_mode, "derive": c.search.derive,
            "derive_tolerance": c.search.derive_tolerance,
            "predicted_over_target": predicted / c.search.target,
            "argmax_arch": argmax.to_string(self.space),
            "argmax_predicted": with_unit(argmax_predicted, self.latency.unit),
            # How far the paper's argmax derivation would have landed (1.0 = on target).
            "argmax_over_target": argmax_predicted / c.search.target,
            "expected_latency_final": with_unit(float(self.expected_latency()),
                                                self.latency.unit),
            "steps": self.total_steps, **runner.worker_fields(self.setup),
            "probs": {m.block.name: dict(zip(m.block.op_names, map(float, m.probs().numpy())))
                      for m in self.net.mixed},
            "alpha_history": os.path.basename(history_path)})
    rows = read_jsonl(history_path, "architecture history")
    if rows:  # every logged step, the last one included
      pictures.draw_or_warn(pictures.draw_probabilities, self.space, rows,
                            self.wd.file("alpha_history.png"), arch)
    return report


def derive_within_target(probs: list, costs: list[list[float]], constant: float,
                         target: float, tolerance: float = 0.05) -> list[int]:
  """The most probable architecture whose predicted latency is within `tolerance` of
  `target`: max sum_j log p_j(o_j) s.t. |constant + sum_j F(o_j) - target| <= tol * target.

  The argmax per block is the most probable architecture overall, but its latency can be
  far from E[lat] when the probabilities are still broad (E[lat] averages over paths the
  argmax does not take). The latency model is additive, so an exact dynamic program over
  blocks with latencies on a grid of target/1000 solves it (the grid's rounding is
  checked against the exact sum afterwards). Raises TfnasError when no arch fits.
  """
  if any(min(c) < 0 for c in costs):
    raise TfnasError("derive='target' needs non-negative block costs")
  step = target / 1000.0
  lo, hi = target * (1 - tolerance) - constant, target * (1 + tolerance) - constant
  grid = [np.round(np.asarray(c, np.float64) / step).astype(np.int64) for c in costs]
  scores = [np.log(np.maximum(np.asarray(p, np.float64), 1e-30)) for p in probs]
  top = int(np.floor(hi / step)) + len(costs)  # latencies above `hi` are never useful
  if top < 0:
    raise TfnasError(f"target {target} is below the latency model's constant {constant:.4g}")
  best = np.full(top + 1, -np.inf)
  best[0] = 0.0
  choice = []
  for g, sc in zip(grid, scores):
    new = np.full(top + 1, -np.inf)
    arg = np.full(top + 1, -1, np.int64)
    for i, (c, v) in enumerate(zip(g, sc)):
      if c > top:
        continue
      cand = np.full(top + 1, -np.inf)
      cand[c:] = best[:top + 1 - c] + v
      better = cand > new
      new[better], arg[better] = cand[better], i
    best = new
    choice.append(arg)
  exact = lambda ops: sum(float(c[i]) for c, i in zip(costs, ops))
  order = np.argsort(-best)
  for t in order:
    if not np.isfinite(best[t]):
      break
    ops, cur = [], int(t)
    for g, arg in zip(reversed(grid), reversed(choice)):
      i = int(arg[cur])
      ops.append(i)
      cur -= int(g[i])
    ops.reverse()
    if lo <= exact(ops) <= hi:
      return ops
  raise TfnasError(f"no architecture of the space has a predicted latency within "
                   f"{100 * tolerance:g} % of target {target}")


def reinforce_gradients(alphas, paths, advantage) -> list:
  """REINFORCE (Eq. 8) for one sampled architecture: the gradient of
  -(R - b) log p(paths) with respect to each block's alpha, -(R - b) (onehot(path) - p)."""
  grads = []
  for j, a in enumerate(alphas):
    p = tf.nn.softmax(a)
    grads.append(-advantage * (tf.one_hot(paths[j], tf.shape(p)[0]) - p))
  return grads


def _write_jsonl(path, rows):
  atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


def search(config, workdir: str) -> dict:
  """The whole ProxylessNAS search in `workdir`; returns the report."""
  return ProxylessSearch(config, workdir).run()

"""ProxylessNAS mixed op: Eq. 4 through tf.custom_gradient, the rescale, full_v2, no retracing."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas.layers.mixed import MixedOp, rescale_alpha
from tfnas.models import SqueezeExcite
from tfnas.spaces import Arch, get_space


@pytest.fixture(scope="module")
def block_and_op():
  space = get_space("proxyless_cifar", resolution=8, width=0.25)
  block = space.choice_blocks[1]  # same-shape block: 6 MBConv paths + zero
  op = MixedOp(block, space.activation, name="mixed")
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=(2,) + block.in_shape).astype(np.float32))
  op(x, active=tf.constant(0))  # build
  op.alpha.assign(rng.normal(size=op.num_paths).astype(np.float32))
  target = tf.constant(rng.normal(size=(2,) + block.out_shape).astype(np.float32))
  return op, x, target


def loss_fn(y, target):
  return tf.reduce_mean((y - target) ** 2)


def analytic_alpha_grad(op, x, target, active, involved):
  """Eq. 4 computed by hand: dL/dg_j = <dL/dy, o_j>, then the softmax Jacobian."""
  outs = [op.run_path(tf.constant(k), x, training=True) for k in range(op.num_paths)]
  y = outs[active]
  with tf.GradientTape() as tape:
    tape.watch(y)
    loss = loss_fn(y, target)
  dy = tape.gradient(loss, y)
  dg = np.array([float(tf.reduce_sum(dy * o)) for o in outs])
  a = op.alpha.numpy()[involved]
  p = np.exp(a - a.max()) / np.exp(a - a.max()).sum()
  grad = np.zeros(op.num_paths)
  for i_pos, i in enumerate(involved):
    grad[i] = sum(dg[j] * p[j_pos] * ((i == j) - p[i_pos]) for j_pos, j in enumerate(involved))
  return grad


@pytest.mark.parametrize("active, involved", [(2, [2, 5]), (5, [1, 5]), (6, [0, 6])])
def test_two_path_alpha_gradient_is_eq4(block_and_op, active, involved):
  op, x, target = block_and_op
  with tf.GradientTape() as tape:
    y = op(x, active=tf.constant(active), involved=tf.constant(involved), mode="gated",
           training=True)
    loss = loss_fn(y, target)
  got = tape.gradient(loss, op.alpha).numpy()
  want = analytic_alpha_grad(op, x, target, active, involved)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
  assert np.count_nonzero(got) <= 2


def test_full_v2_equals_exact_gradient_of_gated_weighted_sum(block_and_op):
  op, x, target = block_and_op
  active = 3
  with tf.GradientTape() as tape:
    y = op(x, active=tf.constant(active), mode="gated", training=True)  # involved = all
    loss = loss_fn(y, target)
  got = tape.gradient(loss, op.alpha).numpy()
  # Exact: y(g) = sum_j g_j o_j(x) at g = one-hot(active); dL/dalpha = J_softmax^T dL/dg.
  outs = tf.stack([op.run_path(tf.constant(k), x, training=True) for k in range(op.num_paths)])
  g = tf.Variable(tf.one_hot(active, op.num_paths))
  with tf.GradientTape() as tape:
    y_ws = tf.tensordot(g, outs, axes=1)
    loss = loss_fn(y_ws, target)
  dg = tape.gradient(loss, g).numpy()
  p = tf.nn.softmax(op.alpha).numpy()
  jac = np.diag(p) - np.outer(p, p)
  np.testing.assert_allclose(got, jac.T @ dg, rtol=1e-4, atol=1e-7)


def test_rescale_keeps_unsampled_probabilities():
  rng = np.random.default_rng(1)
  old = tf.constant(rng.normal(size=7).astype(np.float64))
  involved = tf.constant([1, 4])
  new = tf.tensor_scatter_nd_add(old, involved[:, None], tf.constant([0.7, -0.3], tf.float64))
  fixed = rescale_alpha(new, old, involved)
  p_old, p_new = tf.nn.softmax(old).numpy(), tf.nn.softmax(fixed).numpy()
  others = [0, 2, 3, 5, 6]
  np.testing.assert_allclose(p_new[others], p_old[others], atol=1e-6)
  assert not np.allclose(p_new[[1, 4]], p_old[[1, 4]])


def test_weight_step_trains_only_the_active_path_and_does_not_retrace(block_and_op):
  op, x, target = block_and_op
  traces = []

  @tf.function
  def step(active):
    traces.append(1)
    with tf.GradientTape() as tape:
      loss = loss_fn(op(x, active=active, training=True), target)
    return tape.gradient(loss, op.trainable_weights)

  for k in (0, 3, 5, 3):
    grads = step(tf.constant(k))
    names = [w.path for w, g in zip(op.trainable_weights, grads)
             if g is not None and float(tf.reduce_sum(tf.abs(g))) > 0]
    assert names and all(op.block.ops[k].name in n for n in names), names
  assert len(traces) == 1


def test_full_mode_is_the_weighted_sum(block_and_op):
  op, x, target = block_and_op
  y = op(x, active=tf.constant(0), mode="full", training=False)
  outs = [op.run_path(tf.constant(k), x, training=False) for k in range(op.num_paths)]
  p = tf.nn.softmax(op.alpha)
  np.testing.assert_allclose(y.numpy(), tf.add_n([p[k] * o for k, o in enumerate(outs)]).numpy(),
                             atol=1e-5)


def _toy_search(op, x, target, mode, steps, lat_costs=None, lam=0.0, seed=0):
  """Arch steps only, on a toy task; returns the final probabilities."""
  from tfnas.search.losses import expected_latency, latency_loss
  opt = keras.optimizers.Adam(0.05, beta_1=0.0, beta_2=0.999)
  rng = np.random.default_rng(seed)
  op.alpha.assign(tf.zeros(op.num_paths))
  for step in range(steps):
    p = op.probs().numpy().astype(np.float64)
    p /= p.sum()
    if mode == "two_path":
      involved = rng.choice(op.num_paths, 2, replace=False, p=p)
      pi = np.exp(op.alpha.numpy()[involved]); pi /= pi.sum()
      active = int(involved[rng.choice(2, p=pi)])
      involved_t = tf.constant(involved, tf.int32)
    else:
      active, involved_t = int(rng.choice(op.num_paths, p=p)), None
    old = tf.identity(op.alpha)
    with tf.GradientTape() as tape:
      y = op(x, active=tf.constant(active), involved=involved_t,
             mode="gated" if mode != "full" else "full", training=False)
      ce = loss_fn(y, target)
      loss = ce
      if lat_costs is not None:
        loss = latency_loss(ce, expected_latency([op.probs()], [lat_costs], 0.0), 1.0, "add", lam)
    opt.apply_gradients([(tape.gradient(loss, op.alpha), op.alpha)])
    if mode == "two_path":
      op.alpha.assign(rescale_alpha(tf.convert_to_tensor(op.alpha), old, involved_t))
  return op.probs().numpy()


@pytest.mark.parametrize("mode", ["two_path", "full_v2", "full"])
def test_toy_search_finds_the_clearly_best_candidate(block_and_op, mode):
  op, x, _ = block_and_op
  best = 4
  target = op.run_path(tf.constant(best), x, training=False)  # candidate 4 is exact
  p = _toy_search(op, x, target, mode, steps=150)
  assert int(np.argmax(p)) == best, p


@pytest.mark.parametrize("mode", ["two_path", "full_v2"])
def test_toy_search_where_latency_decides(block_and_op, mode):
  op, x, _ = block_and_op
  # Candidate 0 fits exactly (it wins on accuracy alone), but it is slow; 'zero' (index 6)
  # fits worse and is by far the cheapest: with a strong latency term the search picks it.
  target = op.run_path(tf.constant(0), x, training=False)
  costs = [9.0, 9.0, 6.0, 8.0, 7.0, 10.0, 1.0]
  assert int(np.argmax(_toy_search(op, x, target, mode, steps=150))) == 0
  p = _toy_search(op, x, target, mode, steps=150, lat_costs=costs, lam=5.0)
  assert int(np.argmax(p)) == 6, p


def _toy_reinforce(op, x, target, steps, lat_costs=None, target_ms=1.0, beta=-0.5, seed=0):
  """REINFORCE on the toy task with the search's update (Eq. 8, moving-average baseline);
  reward = -loss (+ TuNAS's beta * |lat / T - 1| with the predicted latency)."""
  from tfnas.search.proxyless import reinforce_gradients
  opt = keras.optimizers.Adam(0.05, beta_1=0.0, beta_2=0.999)
  rng = np.random.default_rng(seed)
  op.alpha.assign(tf.zeros(op.num_paths))
  baseline = None
  for _ in range(steps):
    p = op.probs().numpy().astype(np.float64)
    path = int(rng.choice(op.num_paths, p=p / p.sum()))
    reward = -float(loss_fn(op.run_path(tf.constant(path), x, training=False), target))
    if lat_costs is not None:
      reward += beta * abs(lat_costs[path] / target_ms - 1.0)
    baseline = reward if baseline is None else 0.9 * baseline + 0.1 * reward
    grads = reinforce_gradients([op.alpha], [tf.constant(path)], reward - baseline)
    opt.apply_gradients([(grads[0], op.alpha)])
  return op.probs().numpy()


def test_reinforce_converges_on_the_toy_tasks(block_and_op):
  op, x, _ = block_and_op
  best = 4
  target = op.run_path(tf.constant(best), x, training=False)
  p = _toy_reinforce(op, x, target, steps=300)
  assert int(np.argmax(p)) == best, p
  # Latency decides: candidate 0 fits exactly, 'zero' (6) meets the 1.0 target exactly.
  target = op.run_path(tf.constant(0), x, training=False)
  costs = [9.0, 9.0, 6.0, 8.0, 7.0, 10.0, 1.0]
  p = _toy_reinforce(op, x, target, steps=300, lat_costs=costs, beta=-0.5)
  assert int(np.argmax(p)) == 6, p


def test_abs_latency_loss_pulls_towards_the_target_from_both_sides():
  import tensorflow as tf
  from tfnas.search.losses import latency_loss
  for e, sign in ((0.4, -1.0), (0.6, 1.0)):
    expected = tf.Variable(e)
    with tf.GradientTape() as tape:
      loss = latency_loss(tf.constant(1.0), expected, 0.5, "abs", lam=0.2)
    g = float(tape.gradient(loss, expected))
    assert np.isclose(g, sign * 0.2 / 0.5)
    assert np.isclose(float(loss), 1.0 + 0.2 * abs(e / 0.5 - 1))


def test_derive_within_target_is_the_most_probable_arch_in_the_window():
  import itertools

  from tfnas.errors import TfnasError
  from tfnas.search.proxyless import derive_within_target
  rng = np.random.default_rng(0)
  for trial in range(5):
    probs = [rng.dirichlet(np.ones(3)) for _ in range(5)]
    costs = [list(rng.uniform(0.1, 1.0, 3)) for _ in range(5)]
    target, tol, const = 2.5, 0.05, 0.3
    feasible = [ops for ops in itertools.product(range(3), repeat=5)
                if abs(const + sum(c[i] for c, i in zip(costs, ops)) - target) <= tol * target]
    if not feasible:
      with pytest.raises(TfnasError, match="no architecture"):
        derive_within_target(probs, costs, const, target, tol)
      continue
    want = max(feasible, key=lambda ops: sum(np.log(p[i]) for p, i in zip(probs, ops)))
    got = derive_within_target(probs, costs, const, target, tol)
    score = lambda ops: sum(np.log(p[i]) for p, i in zip(probs, ops))
    assert abs(const + sum(c[i] for c, i in zip(costs, got)) - target) <= tol * target
    assert np.isclose(score(got), score(want)), (trial, got, want)


def test_whole_proxyless_cifar_supernet_steps_eagerly():
  """The full `proxyless_cifar` supernet (21 MixedOps and its fixed first block), one eager
  weight step and one two-path architecture step: the weight step moves only the sampled
  paths (and the fixed parts), the architecture step only the involved alphas. (The search
  binary's traced steps run end to end on `nasbench_macro` in test_search_bin.py.)"""
  from tfnas.models.supernet import ProxylessSupernet
  space = get_space("proxyless_cifar", resolution=32, width=0.25)
  keras.utils.set_random_seed(0)  # seeded weights: the same check every run
  net = ProxylessSupernet(space)
  rng = np.random.default_rng(0)
  n = len(space.choice_blocks)
  images = tf.constant(rng.normal(size=(4, 32, 32, 3)).astype(np.float32))
  labels = tf.constant([0, 1, 2, 3])
  paths = tf.constant(rng.integers(0, 6, size=n), tf.int32)  # MBConv paths (6 = zero)
  net(images, paths=paths)
  ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  with tf.GradientTape() as tape:
    loss = ce(labels, net(images, paths=paths, mode="single", training=True))
  grads = tape.gradient(loss, net.weight_variables)
  moved = {v.path for v, g in zip(net.weight_variables, grads)
           if g is not None and float(tf.reduce_sum(tf.abs(g))) > 0}
  fixed = [part for kind, part in net.parts if kind == "fixed"] + [net.stem, net.head]
  assert len(fixed) == 3 and all(v.path in moved for f in fixed for v in f.trainable_weights)
  for m, k in zip(net.mixed, paths.numpy()):
    name = f"{m.block.name}_{m.block.ops[k].name}_"
    mine = {v.path for v in m.trainable_weights if v is not m.alpha}
    assert mine & moved and all(name in p for p in mine & moved), (m.block.name, mine & moved)
  involved = tf.constant([[k, (k + 1) % 7] for k in paths.numpy()], tf.int32)
  with tf.GradientTape() as tape:
    loss = ce(labels, net(images, paths=paths, involved=involved, mode="gated", training=True))
  for m, g, inv in zip(net.mixed, tape.gradient(loss, net.alphas), involved.numpy()):
    g = g.numpy()
    assert np.all(g[[i for i in range(m.num_paths) if i not in inv]] == 0) and np.any(g[inv])


def test_proxyless_supernet_serves_mobilenetv3_blocks():
  """ofa_mbv3's first 10 blocks (squeeze-and-excitation, ReLU and hard swish stages,
  'zero' on a stage's 3rd and 4th block) and its pooled 1x1 conv: a path of the
  ProxylessNAS supernet equals the child that inherits its weights."""
  import dataclasses

  from tfnas.models.supernet import ProxylessSupernet
  space = get_space("ofa_mbv3", resolution=64, width=0.25)
  space = dataclasses.replace(space, blocks=space.blocks[:10], references=())
  keras.utils.set_random_seed(0)
  net = ProxylessSupernet(space)
  ops = [8, 4, 9, 0, 5, 1, 9, 2, 3]  # k7_e6, k5_e4, zero, k3_e3, ... (9 = zero)
  arch = Arch.create(space, ops)
  x = tf.constant(np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32))
  want = net(x, paths=tf.constant(ops, tf.int32)).numpy()
  child = net.inherit_child(arch)
  assert any(isinstance(l, SqueezeExcite) for l in child.layers)
  np.testing.assert_allclose(child(x, training=False).numpy(), want, rtol=1e-5, atol=1e-5)


def test_eager_paths_equal_the_traced_switch_case_and_share_traces():
  """The searches' eager steps run each sampled candidate through a traced function shared
  by candidates of the same structure (`tfnas.layers.compiled`); a `tf.function` caller
  gets one `switch_case` over all candidates. Both give the same outputs, weight and
  input gradients and BatchNorm moving statistics, in training and inference, and two
  same-structure blocks run one trace."""
  from tfnas.models.supernet import ProxylessSupernet
  space = get_space("proxyless_cifar", resolution=8, width=0.25)
  keras.utils.set_random_seed(0)  # seeded weights: the same check every run
  net = ProxylessSupernet(space)
  a, b = net.mixed[1], net.mixed[2]  # same shapes: the same six structures + zero
  assert a.structure == b.structure
  rng = np.random.default_rng(3)
  x = tf.constant(rng.normal(size=(2,) + a.block.in_shape).astype(np.float32))

  def run(op, k, training):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = op.run_path(k, x, training)
      loss = tf.reduce_sum(y * y)
    variables = [v for v in op.trainable_variables if v is not op.alpha]
    grads = tape.gradient(loss, [x] + variables)
    return [y] + [tf.zeros_like(v) if g is None else g for v, g in zip([x] + variables, grads)]

  traced = tf.function(run)
  for k in range(a.num_paths):
    for training in (True, False):
      stats = [v.numpy() for v in a.non_trainable_variables]
      eager = run(a, k, training)
      moved = [v.numpy() for v in a.non_trainable_variables]
      for v, s in zip(a.non_trainable_variables, stats):
        v.assign(s)
      graph = traced(a, tf.constant(k), training)
      for e, g in zip(eager, graph):
        np.testing.assert_allclose(e.numpy(), g.numpy(), rtol=1e-5, atol=1e-6)
      for v, m in zip(a.non_trainable_variables, moved):
        np.testing.assert_allclose(v.numpy(), m, rtol=1e-6, atol=1e-7)
  # Block b runs block a's traces with its own weights (no new function, no retrace), and
  # matches its own traced switch_case.
  count = lambda: (net.compiled.traces, sum(
      f.experimental_get_tracing_count() for f in net.compiled._fns.values()))
  before = count()
  for k in range(b.num_paths):
    for e, g in zip(run(b, k, True), traced(b, tf.constant(k), True)):
      np.testing.assert_allclose(e.numpy(), g.numpy(), rtol=1e-4, atol=1e-5)
  assert count() == before

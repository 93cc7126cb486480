"""Single Path One-Shot: sampling, sliced channels, BN recalibration, inherited child (the
evolution engine is in test_evolution.py, the search binary end to end in test_spos_bin.py)."""


import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from tfnas import latency as latency_lib
from tfnas.errors import TfnasError
from tfnas.layers.sliced import SlicedBN, SlicedConv
from tfnas.models.spos import SPOSSupernet, expansion_groups
from tfnas.search import spos
from tfnas.evolution import random_genes
from tfnas.spaces import Arch, get_space, total
from tfnas.runtime import supernet_graphs


@pytest.fixture(scope="module")
def space():
  return get_space("spos_cifar", width=0.25)


@pytest.fixture(scope="module")
def net(space):
  keras.utils.set_random_seed(0)  # the same weights whatever ran before in this worker
  return SPOSSupernet(space)


def test_uniform_sampling_passes_chi_square(space):
  choices = spos.gene_choices(space)
  assert choices == [4] * 20 + [8] * 20
  draws = np.array([random_genes(np.random.default_rng([0, 31, step]), choices, lambda g: True)
                    for step in range(4000)])
  for i, n in enumerate(choices):
    counts = np.bincount(draws[:, i], minlength=n)
    assert stats.chisquare(counts).pvalue > 1e-4, (i, counts)
  # Genes are independent: the pair (op of block 0, scale of block 0) is uniform too.
  pair = np.bincount(draws[:, 0] * 8 + draws[:, 20], minlength=32)
  assert stats.chisquare(pair).pvalue > 1e-4


def test_constrained_sampling_respects_its_range(space):
  macs = latency_lib.load("macs", space)
  limits = spos.parse_constraints("macs_m>=9.5,macs_m<=10.5")
  feasible = lambda g: spos.meets(space, macs, spos.arch_of(space, g), limits)
  rng = np.random.default_rng(0)
  got = [total(space, spos.arch_of(space, random_genes(rng, spos.gene_choices(space), feasible))
               ).macs / 1e6 for _ in range(100)]
  assert all(9.5 <= m <= 10.5 for m in got)
  assert max(got) - min(got) > 0.5  # spread over the range, not one arch
  with pytest.raises(TfnasError, match="no architecture met the"):
    random_genes(rng, spos.gene_choices(space), lambda g: False, max_tries=50)


def test_channel_warmup_samples_ops_only_at_unit_width(space):
  # The opt-in channel warm-up: ops uniform (and feasible), every width at scale 1.0.
  unit = spos.unit_channels(space)
  scales = space.choice_blocks[0].mid_scales
  assert len(unit) == 20 and scales[unit[0]] == pytest.approx(1.0)
  macs = latency_lib.load("macs", space)
  limits = spos.parse_constraints("macs_m<=10.5")
  feasible = lambda g: spos.meets(space, macs, spos.arch_of(space, g), limits)
  choices = spos.gene_choices(space)
  draws = np.array([spos.sample_genes(np.random.default_rng([0, 31, s]), choices,
                                      lambda g: True, unit) for s in range(400)])
  assert (draws[:, 20:] == unit).all()
  assert stats.chisquare(np.bincount(draws[:, 0], minlength=4)).pvalue > 1e-4
  limited = [spos.sample_genes(np.random.default_rng([0, 31, s]), choices, feasible,
                               unit) for s in range(50)]
  assert all(feasible(g) and g[20:] == unit for g in limited)
  free = np.array([spos.sample_genes(np.random.default_rng([0, 31, s]), choices,
                                     lambda g: True) for s in range(50)])
  assert len(set(free[:, 20].tolist())) > 3  # without it the widths are sampled too


def test_supernet_check_tells_chance_from_learning():
  at_chance = [0.09, 0.11, 0.1, 0.13, 0.08, 0.12, 0.104]
  check = spos.supernet_check(at_chance, num_classes=10, val_images=1000)
  assert check["threshold"] == pytest.approx(0.1 + 3 * (0.09 / 1000) ** 0.5)
  assert not check["learned"] and check["candidates"] == 7
  # One lucky candidate does not count: the median decides.
  assert not spos.supernet_check(at_chance + [0.6], 10, 1000)["learned"]
  assert spos.supernet_check([0.42, 0.55, 0.38, 0.61], 10, 1000)["learned"]
  # Fewer validation images: wider noise band.
  assert not spos.supernet_check([0.25, 0.3], 10, 16)["learned"]
  assert not spos.supernet_check([], 10, 1000)["learned"]


def test_bad_constraints_are_named():
  for text, match in (("flops<=3", "unknown metric 'flops'"), ("macs_m<3", "is not"),
                      ("macs_m<=x", "is not")):
    with pytest.raises(TfnasError, match=match):
      spos.parse_constraints(text)
  assert [str(l) for l in spos.parse_searches("macs_m<=3 ; params_m>=1,latency_ms<=2")[1]] == \
      ["params_m>=1", "latency_ms<=2"]


def _arch(space, seed):
  rng = np.random.default_rng(seed)
  n = len(space.choice_blocks)
  return Arch.create(space, rng.integers(0, 4, n).tolist(), rng.integers(0, 8, n).tolist())


def _first_blocks(space, n):
  """The first `n` blocks of `space` as a space of its own (its head after block n-1):
  the same layers and code paths, a fraction of the graph to trace."""
  import dataclasses
  return dataclasses.replace(space, blocks=space.blocks[:n], references=())


def test_sliced_channels_train_only_the_sliced_weights(space, net):
  arch = Arch.create(space, [0] * 20, [1] * 20)  # choice_3 everywhere, mid scale 0.4
  ops, chans = net.arch_tensors(arch)
  images = tf.random.stateless_normal((2, 32, 32, 3), [1, 2])
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(net(images, ops=ops, chans=chans, bn_mode="train") ** 2)
  variables = net.trainable_variables
  grads = dict(zip([v.path for v in variables], tape.gradient(loss, variables)))
  layers = {l.name: l for l in net.sliced_layers}
  block = space.choice_blocks[3]
  mid = next(l.out_shape[2] for l in block.graph(block.ops[0], "relu", 0.4).layers()
             if l.role == "pw1_conv")
  pw1, pw2 = layers[f"{block.name}_choice_3_pw1_conv"], layers[f"{block.name}_choice_3_pw2_conv"]
  g1 = grads[pw1.kernel.path].numpy()
  assert mid < g1.shape[-1]
  assert np.abs(g1[..., :mid]).sum() > 0 and np.all(g1[..., mid:] == 0)
  g2 = grads[pw2.kernel.path].numpy()
  assert np.abs(g2[:, :, :mid]).sum() > 0 and np.all(g2[:, :, mid:] == 0)
  bn = layers[f"{block.name}_choice_3_pw1_bn"]
  assert not bn.affine and bn.gamma.path not in grads  # choice-block BN: no affine (SPOS)
  assert layers["stem_stem_bn"].gamma.path in grads
  other = layers[f"{block.name}_choice_7_pw1_conv"]  # a path that did not run
  assert grads[other.kernel.path] is None
  # One plain SGD step moves the slice only; BN moving statistics of the slice only.
  before = {n: l.kernel.numpy().copy() for n, l in layers.items() if isinstance(l, SlicedConv)}
  mm_before = bn.moving_mean.numpy().copy()
  opt = keras.optimizers.SGD(0.1)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(net(images, ops=ops, chans=chans, bn_mode="train") ** 2)
  opt.apply_gradients([(g, v) for g, v in zip(tape.gradient(loss, variables), variables)
                       if g is not None])
  after = pw1.kernel.numpy()
  assert np.any(after[..., :mid] != before[pw1.name][..., :mid])
  np.testing.assert_array_equal(after[..., mid:], before[pw1.name][..., mid:])
  np.testing.assert_array_equal(other.kernel.numpy(), before[other.name])
  assert np.any(bn.moving_mean.numpy()[:mid] != mm_before[:mid])
  np.testing.assert_array_equal(bn.moving_mean.numpy()[mid:], mm_before[mid:])


def test_recalibration_is_exact_and_touches_only_the_active_path(space, net):
  arch = _arch(space, 3)
  ops, chans = net.arch_tensors(arch)
  batches = [tf.random.stateless_normal((4, 32, 32, 3), [7, i]) for i in range(3)]
  inactive = [l for l in net.bns if l.name.startswith(
      f"{space.choice_blocks[0].name}_{space.choice_blocks[0].ops[(arch.ops[0] + 1) % 4].name}")]
  untouched = [bn.moving_mean.numpy().copy() for bn in inactive]
  eager = lambda im, o, c: net(im, ops=o, chans=c, bn_mode="calib")
  net.recalibrate(batches, ops, chans, step_fn=eager)
  # The stem BN's statistics are the exact mean/variance of the stem conv over every pixel.
  stem_conv = next(l for l in net.sliced_layers if l.name == "stem_stem_conv")
  feats = tf.concat([stem_conv(b) for b in batches], 0).numpy().reshape(-1, stem_conv.filters)
  stem_bn = next(l for l in net.bns if l.name == "stem_stem_bn")
  np.testing.assert_allclose(stem_bn.moving_mean.numpy(), feats.mean(0), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(stem_bn.moving_variance.numpy(), feats.var(0), rtol=1e-3, atol=1e-5)
  for bn, mm in zip(inactive, untouched):
    np.testing.assert_array_equal(bn.moving_mean.numpy(), mm)
  # The traced begin/end (one graph call each, as the search runs them) give the same
  # statistics as the eager per-layer updates.
  stats = lambda: [v.numpy().copy() for bn in net.bns for v in (bn.moving_mean,
                                                               bn.moving_variance)]
  want = stats()
  net.recalibrate(batches, ops, chans, step_fn=eager, edges=net.calibration_edges())
  for got, w in zip(stats(), want):
    np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-7)


def test_inherited_child_reproduces_the_supernet_path(space, net):
  for seed in (5, 6):
    arch = _arch(space, seed)
    ops, chans = net.arch_tensors(arch)
    batches = [tf.random.stateless_normal((4, 32, 32, 3), [seed, i]) for i in range(2)]
    net.recalibrate(batches, ops, chans,
                    step_fn=lambda im, o, c: net(im, ops=o, chans=c, bn_mode="calib"))
    x = tf.random.stateless_normal((3, 32, 32, 3), [seed, 9])
    want = net(x, ops=ops, chans=chans, bn_mode="eval").numpy()
    child = net.inherit_child(arch)
    got = child(x, training=False).numpy()
    # float32 over 20 blocks summed in two orders (see the next test): 1e-4.
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert child.count_params() == total(space, arch).params  # the sampled widths, not the max


@pytest.mark.parametrize("form", ["eager", "traced"])
def test_step_gives_each_path_the_childs_gradients(space, form):
  """A train-mode step, as the search runs it (eagerly, each path's blocks through their
  own traced functions) and as one traced `switch_case` graph serving every path: for each
  sampled arch its gradients equal the inherited plain child's (leading slices), and every
  other weight gets none (eager; zero here) or exactly zero (traced). Both run the first 6
  blocks (stage 1 and the stride-2 start of stage 2, every op and width choice): tracing
  all 20 blocks' switch_case took 97 s of the suite for the same code, and the eager form
  on all 20 blocks 41 s."""
  space = _first_blocks(space, 6)
  keras.utils.set_random_seed(0)  # seeded weights: the same check every run
  net = SPOSSupernet(space)
  x = tf.random.stateless_normal((4, 32, 32, 3), [3, 1])
  y = tf.one_hot([0, 1, 2, 3], space.head.num_classes)
  ce = keras.losses.CategoricalCrossentropy(from_logits=True)
  archs = [_arch(space, seed) for seed in (11, 12)]
  ops, chans = net.arch_tensors(archs[0])
  net(x, ops=ops, chans=chans, bn_mode="eval")
  variables = net.trainable_variables

  def grads(ops, chans):
    with tf.GradientTape() as tape:
      loss = ce(y, net(x, ops=ops, chans=chans, bn_mode="train", training=True))
    return [tf.zeros_like(v) if g is None else g for v, g in
            zip(variables, tape.gradient(loss, variables))]
  if form == "traced":
    grads = tf.function(grads)

  with supernet_graphs():
    for arch in archs:
      got = {id(v): g.numpy() for v, g in zip(variables, grads(*net.arch_tensors(arch)))}
      child = net.inherit_child(arch)
      with tf.GradientTape() as tape:
        loss = ce(y, child(x, training=True))
      want = dict(zip([id(w) for w in child.trainable_weights],
                      tape.gradient(loss, child.trainable_weights)))
      compared = set()
      for layer in child.layers:
        if not layer.trainable_weights:
          continue
        for src, dst in zip(net.source_weights(arch, layer.name), layer.weights):
          if not (dst.trainable and src.trainable):  # non-affine choice BN: fixed in both
            continue
          g = got[id(src)]
          inside = tuple(slice(0, d) for d in dst.shape)
          gc = want[id(dst)].numpy()
          err = np.linalg.norm(g[inside] - gc) / (np.linalg.norm(gc) + 1e-12)
          assert err < 5e-3, (layer.name, dst.name, err)
          rest = g.copy()
          rest[inside] = 0
          assert not rest.any(), (layer.name, "gradient outside the sampled slice")
          compared.add(id(src))
      assert len(compared) > 2 * len(space.choice_blocks)
      for v in variables:  # inactive paths: exactly zero
        if id(v) not in compared:
          assert not got[id(v)].any(), v.path


@pytest.mark.parametrize("name,resolution", [("proxyless_cifar", 32), ("fbnet_cifar", 32),
                                             ("spos_shufflenet", 64), ("ofa_mbv3", 64)])
def test_same_machinery_serves_other_spaces(name, resolution):
  """Op choices only ('zero' ops, fixed blocks, grouped convs + shuffle), the paper's space,
  or MobileNetV3's blocks (ofa_mbv3's first 10: squeeze-and-excitation, ReLU and hard
  swish stages; its pooled 1x1 conv before the classifier). Seeded weights; float32 tolerance 1e-4: the supernet's sliced `tf.nn` convs and the
  child's Keras layers sum in another order, and over fbnet_cifar's 22 blocks that once
  reached 1.1e-5 on logits of 0.1 (an unseeded run failed atol 1e-5 by 1 %); a wrong slice
  or BN statistic is off by 1e-2 or more."""
  keras.utils.set_random_seed(0)
  space = get_space(name, resolution=resolution, width=0.25)
  if name == "ofa_mbv3":
    space = _first_blocks(space, 10)
  net = SPOSSupernet(space)
  arch = (_arch(space, 4) if space.has_channel_choices else
          Arch.create(space, [8, 4, 9, 0, 5, 1, 9, 2, 3]) if name == "ofa_mbv3" else
          Arch.create(space, space.reference("largest")))
  ops, chans = net.arch_tensors(arch)
  x = tf.random.stateless_normal((2, resolution, resolution, 3), [3, 3])
  net.recalibrate([x], ops, chans, step_fn=lambda im, o, c: net(im, ops=o, chans=c,
                                                                  bn_mode="calib"))
  want = net(x, ops=ops, chans=chans, bn_mode="eval").numpy()
  np.testing.assert_allclose(net.inherit_child(arch)(x, training=False).numpy(), want,
                             rtol=1e-4, atol=1e-4)
  if name == "ofa_mbv3":  # SE weights would have to follow a sliced width: refused
    with pytest.raises(TfnasError, match="block b04: a squeeze-and-excitation block has no channel"):
      SPOSSupernet(space, share_expansion=True)


def test_shared_expansion_widths_are_slices_of_the_widest():
  """MBConv/IRF channel search: k3_e3 runs the leading slice of k3_e6's expand conv; the
  child inherits that slice and reproduces the path; a step on e3 trains only the slice."""
  fbnet = get_space("fbnet_cifar", resolution=32, width=0.25).choice_blocks[1]
  groups = [[fbnet.ops[k].name for k in g] for g in expansion_groups(fbnet)]
  assert ["k3_e6", "k3_e3", "k3_e1"] in groups and ["k3_e1_g2"] in groups and ["skip"] in groups
  # The first 6 blocks of proxyless_cifar (every op kind, a stride-2 block): the whole
  # 21-block supernet built twice took 47 s for the same checks.
  space = _first_blocks(get_space("proxyless_cifar", resolution=32, width=0.25), 6)
  keras.utils.set_random_seed(0)
  shared, plain = SPOSSupernet(space, share_expansion=True), SPOSSupernet(space)
  size = lambda net: sum(int(np.prod(v.shape)) for v in net.weights)
  assert size(shared) < size(plain)
  block = space.choice_blocks[1]
  names = {block.ops[k].name: shared.path_names[(block.name, k)] for k in range(len(block.ops))}
  assert names["k3_e3"] == names["k3_e6"] == f"{block.name}_k3_shared"
  assert names["k5_e3"] != names["k3_e3"]
  assert names.get("zero", f"{block.name}_zero") == f"{block.name}_zero"
  rng = np.random.default_rng(7)
  x = tf.random.stateless_normal((2, 32, 32, 3), [5, 5])
  for _ in range(2):
    arch = Arch.create(space, [int(rng.integers(len(b.ops))) for b in space.choice_blocks])
    ops, chans = shared.arch_tensors(arch)
    shared.recalibrate([x], ops, chans)
    want = shared(x, ops=ops, chans=chans, bn_mode="eval").numpy()
    child = shared.inherit_child(arch)
    np.testing.assert_allclose(child(x, training=False).numpy(), want, rtol=1e-4, atol=1e-4)
    assert child.count_params() == total(space, arch).params
  # One SGD step on a net whose block 1 is the narrow expansion: only its slice moves.
  narrow = min((k for k in range(len(block.ops)) if names[block.ops[k].name] ==
                names[block.ops[0].name]), key=lambda k: block.ops[k].expand)
  genes = [0] * len(space.choice_blocks)
  genes[1] = narrow
  ops, chans = shared.arch_tensors(Arch.create(space, genes))
  kernel = next(l for l in shared.sliced_layers
                if l.name == f"{names[block.ops[narrow].name]}_expand_conv").kernel
  before = kernel.numpy()
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(shared(x, ops=ops, chans=chans, bn_mode="train") ** 2)
  grads = tape.gradient(loss, [kernel])
  keras.optimizers.SGD(0.1).apply_gradients(zip(grads, [kernel]))
  mid = next(block.graph(block.ops[narrow], space.activation).layers()).out_shape[2]
  moved = np.abs(kernel.numpy() - before).max(axis=(0, 1, 2))
  assert mid < kernel.shape[-1] and moved[:mid].min() > 0 and moved[mid:].max() == 0


def test_sliced_bn_affine_gradients_stay_on_the_slice():
  bn = SlicedBN(name="x_bn")
  bn.build((None, 4, 4, 6))
  x = tf.random.stateless_normal((2, 4, 4, 3), [2, 2])
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(bn(x, mode="train") * tf.range(1.0, 4.0))
  g_gamma, g_beta = tape.gradient(loss, [bn.gamma, bn.beta])
  assert np.all(g_beta.numpy()[:3] > 0) and np.all(g_beta.numpy()[3:] == 0)
  assert np.all(g_gamma.numpy()[3:] == 0)
  fixed = SlicedBN(affine=False, name="y_bn")
  fixed.build((None, 4, 4, 6))
  assert not fixed.trainable_variables and len(fixed.keras_weights) == 4


def test_sliced_bn_rejects_unknown_mode():
  bn = SlicedBN(name="x_bn")
  with pytest.raises(ValueError, match="unknown BN mode"):
    bn(tf.zeros((1, 2, 2, 4)), mode="training")


def test_strict_fair_paths_hold_every_op_of_every_block_once():
  # FairNAS strict fairness: per step m paths, each block's ops a permutation across them.
  choices = spos.gene_choices(get_space("spos_cifar", width=0.25))  # 4 ops, 8 scales
  firsts = []
  for step in range(600):
    paths = spos.strict_fair_genes(np.random.default_rng([0, 31, step]), choices, 20)
    assert len(paths) == 4 and all(len(p) == 40 for p in paths)
    ops = np.array(paths)[:, :20]
    assert (np.sort(ops, axis=0) == np.arange(4)[:, None]).all()  # each op exactly once
    assert all(0 <= c < 8 for p in paths for c in p[20:])
    firsts.append(ops[0])
  # Which path gets which op is uniform (each block's permutation is random).
  firsts = np.array(firsts)
  for i in range(20):
    assert stats.chisquare(np.bincount(firsts[:, i], minlength=4)).pvalue > 1e-4
  fixed = spos.strict_fair_genes(np.random.default_rng(0), choices, 20, (3,) * 20)
  assert all(p[20:] == (3,) * 20 for p in fixed)
  with pytest.raises(TfnasError, match="same number of ops; this space's blocks have"):
    spos.strict_fair_genes(np.random.default_rng(0), [3, 4, 3], 3)


def test_strict_fair_step_trains_every_op_of_every_block(tiny_cifar, tmp_path):
  """One real `SPOSSearch.train` step with sampling='strict_fair' updates every weight of
  the supernet (all 3 ops of all 8 `nasbench_macro` blocks; uniform sampling updates one op
  per block: test_step_gives_each_path_the_childs_gradients), through the search's step
  traced whole (`supernet_step="traced"`, the full configs' form; the binary's
  end-to-end test runs the eager one)."""
  import os

  from conftest import ROOT
  from tfnas import configs
  c = configs.override(configs.load_file(os.path.join(ROOT, "configs", "spos_cifar10.py"),
                                         "quick"), {
      "model.space": "nasbench_macro", "model.width": 0.25,
      "data.dataset": f"folder:{tiny_cifar}", "data.train_limit": 64, "data.val_size": 32,
      "data.batch_size": 8, "data.eval_batch_size": 8, "train.steps": 1,
      "data.calib_images": 16, "search.val_images": 16, "search.searches": "macs_m<=9",
      "train.weight_decay": 0.0, "train.warmup_fraction": 0.0,
      "train.channel_warmup_fraction": 0.0, "train.sampling": "strict_fair",
      "search.measure_host": False, "train.supernet_step": "traced"})
  search = spos.SPOSSearch(c, str(tmp_path / "fair"))
  before = [v.numpy().copy() for v in search.net.trainable_variables]
  search.train()
  assert int(search.step.numpy()) == 1
  unchanged = [v.path for v, b in zip(search.net.trainable_variables, before)
               if np.array_equal(v.numpy(), b)]
  assert not unchanged, unchanged
  assert len(before) > 50
  # Candidate scores (BN recalibration + held-out top-1) agree between the traced
  # evaluation (this config's) and the eager one, batch by batch.
  genes = spos.random_genes(np.random.default_rng(0), search.choices, lambda g: True)
  traced = search.correct_per_batch(genes)
  search.config.train.supernet_step, search._eval = "eager", None
  np.testing.assert_array_equal(search.correct_per_batch(genes), traced)
  # What evolution maximizes: minus the mean validation cross-entropy (the configs'
  # default) or top-1; candidates.jsonl keeps both, and a rerun reads either back.
  per_batch = search.scores_per_batch(genes)
  assert search.config.search.score == "loss"
  assert search.evaluate(genes) == pytest.approx(-per_batch[:, 2].sum() / 16, rel=1e-5)
  key = search.arch_of(genes).key()
  assert search.evals[key]["accuracy"] == per_batch[:, 0].sum() / 16
  search.scores, search.evals, search.config.search.score = {}, {}, "accuracy"
  search.load_scores()
  assert search.scores[key] == per_batch[:, 0].sum() / 16
  c.search.score = "top1"
  with pytest.raises(TfnasError, match="score 'top1' is not one of accuracy, loss"):
    spos.SPOSSearch(c, str(tmp_path / "bad"))
  c.search.score = "loss"
  c.train.sample_constraints = "macs_m<=9"
  with pytest.raises(TfnasError, match="cannot also keep paths within sample_constraints"):
    spos.SPOSSearch(c, str(tmp_path / "bad"))
  c.train.sample_constraints, c.train.sampling = "", "fair"
  with pytest.raises(TfnasError, match="sampling 'fair' is not one of"):
    spos.SPOSSearch(c, str(tmp_path / "bad"))


@pytest.mark.parametrize("name", ["nasbench_macro", "spos_cifar"])
def test_block_terms_give_every_archs_metrics_and_exact_ranges(name):
  # The budgets of `tfnas.bin.spaces` and the feasibility checks sum per-block terms;
  # per arch they equal `metrics` (the spec's totals and the latency model's predict).
  space = get_space(name, width=0.25)
  macs = latency_lib.load("macs", space)
  choices = spos.gene_choices(space)
  rng = np.random.default_rng(0)
  genes = np.stack([rng.integers(n, size=40) for n in choices], axis=1)
  terms = spos.block_terms(space, macs)
  many = spos.metrics_of_many(space, macs, genes, terms)
  for i, g in enumerate(genes):
    one = spos.metrics(space, macs, spos.arch_of(space, tuple(int(x) for x in g)))
    for k, v in one.items():
      assert many[k][i] == pytest.approx(v, rel=1e-9), (k, g)
  ranges = spos.metric_ranges(space, macs, terms)
  if name == "nasbench_macro":  # 6,561 archs: the exact extremes by enumeration
    every = spos.metrics_of_many(space, macs, np.indices(choices).reshape(len(choices), -1).T)
    for k, (lo, hi) in ranges.items():
      assert (lo, hi) == pytest.approx((every[k].min(), every[k].max()), rel=1e-9)
  for k, (lo, hi) in ranges.items():
    assert lo <= many[k].min() and many[k].max() <= hi

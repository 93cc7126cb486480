"""Child builder: stock Keras layers, names, training, Keras vs LiteRT numerics, FLOPs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas.export.tflite import convert_float, run_tflite
from tfnas.layers.from_spec import HardSwish
from tfnas.models import ChannelShuffle, ChannelSplit, SqueezeExcite, build_child
from tfnas.spaces import get_space, list_spaces, parse_arch, total

STOCK = (keras.layers.InputLayer, keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
         keras.layers.BatchNormalization, keras.layers.ReLU, keras.layers.Add,
         keras.layers.Concatenate,
         keras.layers.GlobalAveragePooling2D, keras.layers.Dropout, keras.layers.Dense,
         ChannelSplit, ChannelShuffle, SqueezeExcite, HardSwish)
REFS = [(s, r) for s in list_spaces() for r, _ in get_space(s).references]


def every_op_arch(space):
  """One arch that uses every op kind (and channel scale) somewhere: block j takes op j mod N."""
  ops, channels = [], []
  for j, block in enumerate(space.choice_blocks):
    names = [n for n in block.op_names if n != "zero" or block.in_shape == block.out_shape]
    ops.append(names[j % len(names)])
    if block.mid_scales:
      channels.append(j % len(block.mid_scales))
  from tfnas.spaces import Arch
  return Arch.create(space, ops, channels or None)


# Keras vs LiteRT: per space, an arch with every op (zero included) and every channel
# scale in it; the sweep over all references, the largest included, is marked slow (the
# largest arch repeats the same kernels at other positions: 165 s of the default run).
AGREE = [(s, "every_op") for s in list_spaces()]


def randomize_bn(model, seed=0):
  """Non-trivial BatchNorm statistics, so numerics tests test something."""
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      c = layer.gamma.shape[0]
      layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c),
                         rng.normal(0, 0.1, c), rng.uniform(0.5, 2.0, c)])


@pytest.mark.parametrize("space_name", list_spaces())
def test_only_stock_layers_named_after_block_and_role(space_name):
  space = get_space(space_name, resolution=32)
  model = build_child(space, "largest")
  names = [l.name for l in model.layers]
  assert len(set(names)) == len(names)
  prefixes = {"stem", "head", "pool", "classifier", "image", "dropout"} | {b.name for b in space.blocks}
  for layer in model.layers:
    assert isinstance(layer, STOCK), type(layer)
    assert layer.name.split("_")[0] in prefixes or layer.name.startswith("first"), layer.name
  assert "b00_dw_conv" in names or "b00_dw1_conv" in names
  assert model.count_params() == total(space, parse_arch(space, "largest")).params


@pytest.mark.parametrize("space_name, ref", REFS)
def test_spec_params_equal_keras_params(space_name, ref):
  space = get_space(space_name, resolution=32)
  model = build_child(space, ref)
  assert model.count_params() == total(space, parse_arch(space, ref)).params


@pytest.mark.parametrize("space_name, ref", AGREE + [
    pytest.param(s, r, marks=pytest.mark.slow) for s, r in REFS])
def test_keras_and_litert_agree(space_name, ref):
  space = get_space(space_name, resolution=32)
  model = build_child(space, every_op_arch(space) if ref == "every_op" else ref)
  randomize_bn(model)
  x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype(np.float32)
  want = model(x, training=False).numpy()
  tflite = convert_float(model)
  got = run_tflite(tflite, x)
  assert np.abs(want).max() > 1e-3  # the check below is not vacuous
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
  # The whole graph runs inside XNNPACK (a model that falls off it is a different model).
  from tflite_bench.host import HostRunner
  assert HostRunner.delegate_partitions(HostRunner().load(tflite)) == 1


def test_width_and_resolution_options():
  model = build_child("proxyless_cifar", "all_k3_e3", resolution=48, width=0.5, num_classes=7)
  assert model.input_shape == (None, 48, 48, 3) and model.output_shape == (None, 7)
  full = build_child("proxyless_cifar", "all_k3_e3")
  assert model.count_params() < full.count_params() / 2


@pytest.mark.parametrize("space_name", list_spaces())
def test_every_space_trains_one_step_eager_graph_and_fit(space_name):
  """Every weight of every space's child trains: an eager step, `fit` (the traced step
  tfnas trains children with, tfnas.train) and, on nasbench_macro, a hand-written
  `tf.function` step (a user's own loop; on the 20-block spaces it traced the same graph
  as `fit` again, 18 s each)."""
  space = get_space(space_name, resolution=32, num_classes=10)
  model = build_child(space, "largest")
  x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype(np.float32)
  y = np.array([0, 1, 2, 3])
  loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  opt = keras.optimizers.SGD(0.01, momentum=0.9)
  before = [w.numpy().copy() for w in model.trainable_weights]

  def step(x, y):
    with tf.GradientTape() as tape:
      loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None for g in grads)
    opt.apply_gradients(zip(grads, model.trainable_weights))
    return loss

  eager = step(x, y)
  assert np.isfinite(float(eager))
  if space_name == "nasbench_macro":
    assert np.isfinite(float(tf.function(step)(x, y)))
  model.compile(optimizer="sgd", loss=loss_fn)
  hist = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
  assert np.isfinite(hist.history["loss"][0])
  changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
  assert all(changed)


def profiler_float_ops(model):
  """TensorFlow's own profiler count of the frozen inference graph, by op type."""
  from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
  fn = tf.function(lambda x: model(x, training=False))
  frozen = convert_variables_to_constants_v2(
      fn.get_concrete_function(tf.TensorSpec((1,) + tuple(model.input_shape[1:]), tf.float32)))
  opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  opts["output"] = "none"
  info = tf.compat.v1.profiler.profile(graph=frozen.graph, options=opts)
  by_type = {}

  def walk(node):
    for c in node.children:
      t = frozen.graph.get_operation_by_name(c.name).type
      by_type[t] = by_type.get(t, 0) + c.float_ops
      walk(c)
  walk(info)
  return info.total_float_ops, by_type


@pytest.mark.parametrize("space_name, ref, res", [
    ("proxyless_mobile", "all_k3_e6", 224), ("proxyless_cifar", "mobilenetv2_depths", 32),
    ("spos_shufflenet", "all_choice_x", 64), ("fbnet_cifar", "largest", 32),
    ("ofa_mbv3", "largest", 224)])
def test_spec_macs_match_tensorflow_profiler(space_name, ref, res):
  space = get_space(space_name, resolution=res)
  model = build_child(space, ref)
  total_ops, by_type = profiler_float_ops(model)
  spec_macs = total(space, parse_arch(space, ref)).macs
  # The profiler counts 2 FLOPs per multiply-accumulate of conv/depthwise/matmul.
  mac_ops = by_type["Conv2D"] + by_type.get("DepthwiseConv2dNative", 0) + by_type["MatMul"]
  assert abs(mac_ops / 2 - spec_macs) / spec_macs < 0.01
  # Everything else (unfolded BatchNorm, residual adds, bias) is a small remainder.
  assert 1.0 <= total_ops / (2 * spec_macs) < 1.04


def test_mobilenetv3_blocks_stay_inside_xnnpack_at_int8():
  """ofa_mbv3's first 10 blocks (squeeze-and-excitation, ReLU and hard-swish stages) and
  its head as the int8 file the export ships: one XNNPACK partition. Hard swish is built
  as (x / 6) * relu6(x + 3), which equals Keras' `hard_silu`; written in `hard_silu`'s
  order the converter fuses a HARD_SWISH op that this LiteRT's XNNPACK does not take at
  int8 (28 partitions on the whole space; BENCHMARKS.md)."""
  import dataclasses

  from tfnas.export.fastgen import convert_piece, randomize_batchnorm
  from tfnas.layers.activations import hard_swish
  from tflite_bench.host import HostRunner
  from tflite_bench.stitch import op_signature
  x = np.linspace(-8, 8, 161, dtype=np.float32)
  np.testing.assert_allclose(hard_swish(x), keras.activations.hard_silu(x), atol=1e-6)
  space = get_space("ofa_mbv3", resolution=64, width=0.25, num_classes=10)
  space = dataclasses.replace(space, blocks=space.blocks[:10], references=())
  model = randomize_batchnorm(build_child(space, every_op_arch(space)))
  data = convert_piece(model, "int8", int8_input=False, int8_output=False)
  ops = [op[0] for op in op_signature(data)]
  assert "HARD_SWISH" not in ops and ops.count("MEAN") >= 4  # 3 SE blocks and the pool
  runner = HostRunner()
  assert runner.delegate_partitions(runner.load(data)) == 1

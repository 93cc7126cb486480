"""Custom Keras layers against what they replace (keras-hub style: call, gradients,
`get_config` round trip, weights interchangeable)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas.layers.batchnorm import FusedBatchNorm


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("center_scale", [True, False])
def test_fused_batchnorm_is_keras_batchnorm(traced, center_scale):
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(2.0, 3.0, size=(4, 5, 3, 6)).astype(np.float32))
  kw = dict(momentum=0.9, epsilon=1e-3, center=center_scale, scale=center_scale)
  ref, fused = keras.layers.BatchNormalization(**kw), FusedBatchNorm(**kw)
  ref.build(x.shape)
  fused.build(x.shape)
  weights = [rng.normal(size=6).astype(np.float32) for _ in ref.weights]
  weights[-1] = np.abs(weights[-1]) + 0.5  # a variance
  ref.set_weights(weights)
  fused.set_weights(weights)

  def step(layer, x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = layer(x, training=True)
      loss = tf.reduce_sum(y * tf.range(6, dtype=tf.float32))
    return y, tape.gradient(loss, [x] + layer.trainable_weights)

  run = tf.function(step) if traced else step
  for _ in range(2):  # the moving statistics move the same way twice
    (y_ref, g_ref), (y, g) = run(ref, x), run(fused, x)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(g, g_ref):  # d/dgamma is a sum of 60 terms that cancel to ~0
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    for a, b in zip(fused.get_weights(), ref.get_weights()):
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
  # Inference is Keras' own path (on moving statistics equal to float rounding).
  fused.set_weights(ref.get_weights())
  np.testing.assert_array_equal(fused(x, training=False), ref(x, training=False))


def test_fused_batchnorm_dynamic_batch_and_config_round_trip(tmp_path):
  layer = FusedBatchNorm(momentum=0.8, epsilon=1e-3, name="bn")
  fn = tf.function(lambda x: layer(x, training=True),
                   input_signature=[tf.TensorSpec([None, 4, 4, 3])])
  x = np.random.default_rng(1).normal(size=(5, 4, 4, 3)).astype(np.float32)
  fn(x)
  mean = x.mean(axis=(0, 1, 2))
  np.testing.assert_allclose(layer.moving_mean.numpy(), 0.2 * mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(layer.moving_variance.numpy(),
                             0.8 + 0.2 * x.var(axis=(0, 1, 2)), rtol=1e-5)
  again = FusedBatchNorm.from_config(layer.get_config())
  assert again.get_config() == layer.get_config()
  # Saved inside a model and loaded back (registered as "tfnas>FusedBatchNorm").
  inp = keras.Input((4, 4, 3))
  model = keras.Model(inp, layer(inp))
  model.save(tmp_path / "m.keras")
  loaded = keras.models.load_model(tmp_path / "m.keras")
  assert type(loaded.get_layer("bn")) is FusedBatchNorm
  np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("nesterov", [True, False])
def test_tfnas_sgd_is_keras_sgd(traced, nesterov):
  """Schedule, momentum, Nesterov, decoupled weight decay with exclusions: the same
  variables and momentum slots as Keras' SGD after several steps."""
  from tfnas.optimizers import SGD
  rng = np.random.default_rng(0)
  init = [rng.normal(size=s).astype(np.float32) for s in ((3, 3, 4, 8), (8,), (8,))]
  names = ["kernel", "gamma", "bias"]
  grads = [[rng.normal(size=v.shape).astype(np.float32) for v in init] for _ in range(4)]
  results = []
  for cls in (keras.optimizers.SGD, SGD):
    vs = [keras.Variable(v, name=n) for v, n in zip(init, names)]
    opt = cls(keras.optimizers.schedules.CosineDecay(0.1, 5, warmup_target=0.2, warmup_steps=2),
              momentum=0.9, nesterov=nesterov, weight_decay=0.05)
    opt.exclude_from_weight_decay(var_names=["gamma", "bias"])
    opt.build(vs)
    def step(g, opt=opt, vs=vs):
      opt.apply_gradients(zip(g, vs))
    if traced:  # a closure: tf.function would take default arguments as inputs
      step = tf.function(lambda g, step=step: step(g))
    for g in grads:
      step([tf.constant(x) for x in g])
    results.append([v.numpy() for v in vs] + [m.numpy() for m in opt.momentums])
  for a, b in zip(*results):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert not np.allclose(results[1][0], init[0])
  config = SGD.from_config(SGD(0.1, momentum=0.9).get_config()).get_config()
  assert config["momentum"] == 0.9 and config["learning_rate"] == pytest.approx(0.1)


def _layer_cases():
  """(layer, input shape, call) for every custom layer tfnas registers with Keras."""
  from tfnas.layers.mixed import MixedOp
  from tfnas.layers.quant import FakeQuant, QuantConv, QuantDense
  from tfnas.layers.sliced import SlicedBN, SlicedConv
  from tfnas.layers.from_spec import HardSwish
  from tfnas.models.child import ChannelShuffle, ChannelSplit, SqueezeExcite
  from tfnas.spaces import get_space
  block = get_space("nasbench_macro", width=0.25).choice_blocks[1]
  # MobileNetV3's: squeeze-and-excitation and hard swish, the block's own activation.
  mbv3 = get_space("ofa_mbv3", resolution=32, width=0.25).choice_blocks[13]
  assert mbv3.se and mbv3.activation == "hswish"
  return {
      "FakeQuant": (FakeQuant(decay=0.9, name="fq"), (2, 4, 4, 3),
                    lambda l, x: l(x, training=True)),
      "QuantConv": (QuantConv(8, 3, strides=2, activation="hswish", weight_bits=4,
                              folded_from=("b01_conv", "b01_bn"), name="qc"), (2, 8, 8, 3),
                    lambda l, x: l(x)),
      "QuantDense": (QuantDense(5, weight_bits=8, name="qd"), (2, 7), lambda l, x: l(x)),
      "FusedBatchNorm": (FusedBatchNorm(momentum=0.8, epsilon=1e-2, name="fbn"), (2, 4, 4, 3),
                         lambda l, x: l(x, training=True)),
      "SlicedConv": (SlicedConv(8, 3, stride=2, name="sc"), (2, 8, 8, 4),
                     lambda l, x: l(x, out_channels=6)),
      "SlicedBN": (SlicedBN(momentum=0.8, affine=False, name="sbn"), (2, 4, 4, 6),
                   lambda l, x: l(x, mode="train")),
      "ChannelSplit": (ChannelSplit(name="split"), (2, 4, 4, 8), lambda l, x: l(x)),
      "ChannelShuffle": (ChannelShuffle(groups=2, name="shuffle"), (2, 4, 4, 8),
                         lambda l, x: l(x)),
      "MixedOp": (MixedOp(block, "relu", 0.8, name="b01_mixed"), (2,) + block.in_shape,
                  lambda l, x: l(x, active=tf.constant(2), mode="single", training=True)),
      "MixedOp_se": (MixedOp(mbv3, "hswish", 0.8, name="b13_mixed"), (2,) + mbv3.in_shape,
                     lambda l, x: l(x, active=tf.constant(8), mode="single", training=True)),
      "SqueezeExcite": (SqueezeExcite(mid=8, name="se"), (2, 4, 4, 16), lambda l, x: l(x)),
      "HardSwish": (HardSwish(name="hswish"), (2, 4, 4, 3), lambda l, x: l(x)),
  }


def test_every_registered_layer_is_covered_by_the_round_trip_sweep():
  import importlib
  import pkgutil

  import tfnas
  for m in pkgutil.walk_packages(tfnas.__path__, "tfnas."):
    if not m.name.startswith("tfnas.bin"):  # binaries define absl flags at import
      importlib.import_module(m.name)
  registered = {name.split(">", 1)[1] for name, cls in keras.saving.get_custom_objects().items()
                if name.startswith("tfnas>") and issubclass(cls, keras.layers.Layer)}
  assert registered == {name.split("_")[0] for name in _layer_cases()}


@pytest.mark.parametrize("name", sorted(_layer_cases()))
def test_layer_config_round_trips_and_the_clone_computes_the_same(name):
  # keras-hub style: serialize by registered name, rebuild, same config, same weights ->
  # same outputs (and the same state updates, for layers that keep statistics).
  layer, shape, call = _layer_cases()[name]
  x = tf.random.stateless_normal(shape, [7, 1])
  clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
  assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
  call(layer, x)
  call(clone, x)
  clone.set_weights(layer.get_weights())
  flat = lambda y: [np.asarray(t) for t in (y if isinstance(y, (tuple, list)) else [y])]
  for a, b in zip(flat(call(layer, x)), flat(call(clone, x))):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
  for a, b in zip(layer.get_weights(), clone.get_weights()):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)

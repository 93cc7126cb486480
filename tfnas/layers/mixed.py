"""ProxylessNAS binarized mixed op: N candidate paths, architecture parameters alpha.

Only used while searching; a derived architecture becomes a plain child model.
The path(s) are inputs to the call (int tensors), never hidden layer state, so
one traced graph serves every sampled path and nothing retraces per path.

Eagerly (a search's steps with `supernet_step="eager"`), only the chosen candidate(s)
run, each through a traced function shared by candidates of the same structure
(`tfnas.layers.compiled`); inside a `tf.function` the same call is a `tf.switch_case`
over all candidates, so a traced step serves every path. Both give the same outputs and
gradients.

Modes (a Python string fixed per traced step function):
- "single": run path `active` only (`tf.switch_case`): the weight step, and the
  forward pass of every binarized mode. Activations of one path are kept.
- "gated": BinaryConnect (Eq. 4). The output is path `active`; the gradient
  with respect to the binary gates, dL/dg_j = <dL/dy, o_j(x)>, is computed in
  the backward pass for the paths in `involved` only, recomputing each inactive
  path's output there and releasing it (memory stays at one path). The gate
  gradient becomes dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i) with p the
  softmax over the involved alphas. `involved` = two sampled paths is the
  two-path update of Sec. 3.2.1; `involved` = all paths is `full_v2`
  (Appendix D).
- "full": DARTS-style weighted sum of all paths (every path's activations are
  kept): only as the memory/speed contrast.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfnas.layers.batchnorm import FusedBatchNorm
from tfnas.layers.compiled import CompiledCalls
from tfnas.layers.from_spec import apply_graph
from tfnas.spaces.spec import Block


def binarize(alpha, active, involved):
  """One-hot gates for path `active`; gradient to alpha by Eq. 4 over `involved`."""
  n = alpha.shape[0]

  @tf.custom_gradient
  def fn(a):
    gates = tf.one_hot(active, n, dtype=a.dtype)

    def grad(dg):
      p = tf.nn.softmax(tf.gather(a, involved))
      dg_inv = tf.gather(dg, involved)
      d_inv = p * dg_inv - p * tf.reduce_sum(dg_inv * p)
      return tf.scatter_nd(involved[:, None], d_inv, [n])
    return gates, grad
  return fn(alpha)


def rescale_alpha(new_alpha, old_alpha, involved):
  """After an update of the involved alphas, shift them so the softmax mass of the
  paths that were not involved is unchanged (Sec. 3.2.1)."""
  new_inv = tf.gather(new_alpha, involved)
  old_inv = tf.gather(old_alpha, involved)
  offset = tf.reduce_logsumexp(new_inv) - tf.reduce_logsumexp(old_inv)
  return tf.tensor_scatter_nd_sub(new_alpha, involved[:, None],
                                  tf.fill(tf.shape(involved), offset))


@keras.saving.register_keras_serializable(package="tfnas")
class MixedOp(keras.layers.Layer):
  """A choice block of the ProxylessNAS over-parameterized network.

  Example:
    >>> op = MixedOp(block, "relu6", name="b03_mixed")
    >>> y = op(x, active=tf.constant(2), involved=tf.constant([2, 5]), mode="gated")

  Args:
    block: The `Block` spec; one candidate sub-model per op (`zero` is the
      identity).
    activation: The space's activation.
    bn_momentum: BatchNormalization momentum of the candidates.
  """

  def __init__(self, block, activation: str, bn_momentum: float = 0.9, **kwargs):
    super().__init__(**kwargs)
    if isinstance(block, dict):  # from get_config
      block = Block.from_config(block)
    self.block, self.activation, self.bn_momentum = block, activation, bn_momentum
    self.num_paths = len(block.ops)
    self.candidates = []
    # Structure of each candidate: equal keys run one trace in eager steps.
    self.structure = [(block.in_shape, block.graph(op, activation), activation, bn_momentum)
                      for op in block.ops]
    # Traced candidate calls for eager steps; a supernet hands all its MixedOps one cache.
    self.compiled = CompiledCalls()
    for (_, graph, _, _), op in zip(self.structure, block.ops):
      if not graph.main and graph.residual:
        self.candidates.append(None)  # zero: the shortcut alone
        continue
      inp = keras.Input(block.in_shape)
      out = apply_graph(inp, graph, f"{block.name}_{op.name}", activation, bn_momentum,
                        bn_class=FusedBatchNorm)
      self.candidates.append(keras.Model(inp, out, name=f"{block.name}_{op.name}"))
    self.alpha = self.add_weight(shape=(self.num_paths,), initializer="zeros",
                                 name="alpha", trainable=True)
    self.built = True  # the candidates and alpha exist: no symbolic first call

  def get_config(self):
    return {**super().get_config(), "block": self.block.to_config(),
            "activation": self.activation, "bn_momentum": self.bn_momentum}

  def probs(self):
    """(N,) softmax(alpha): the path probabilities p_j of Eq. 5."""
    return tf.nn.softmax(self.alpha)

  def run_path(self, k, x, training=None):
    """Output of path `k` (an int, or an int tensor); only that path executes."""
    if tf.executing_eagerly():
      k = int(k)
      model = self.candidates[k]
      if model is None:
        return x
      return self.compiled(model, x, bool(training), key=self.structure[k])
    branches = [(lambda m=m: x if m is None else m(x, training=training))
                for m in self.candidates]
    return tf.switch_case(tf.cast(k, tf.int32), branches)

  def call(self, x, active, involved=None, mode: str = "single", training=None):
    """The block's output for input `x` ((B, H, W, C_in) float32 -> (B, H', W', C_out)).

    Args:
      x: The block's input.
      active: The path that runs (sampled from `probs()` by the caller): a scalar int
        tensor, or a Python int when called eagerly.
      involved: (K,) int tensor, the paths whose gate gradients the backward pass computes
        in "gated" mode (two sampled paths: Sec. 3.2.1; all: Appendix D); None = all.
      mode: "single" (path `active` only), "gated" (Eq. 4's gradient to alpha) or "full"
        (the softmax-weighted sum of every path).
      training: Keras' training flag for the candidates' BatchNorm.

    Raises:
      ValueError: an unknown `mode`.
    """
    if mode == "single":
      return self.run_path(active, x, training)
    if mode == "full":
      p = self.probs()
      outs = [self.run_path(k, x, training) if tf.executing_eagerly()
              else (x if m is None else m(x, training=training))
              for k, m in enumerate(self.candidates)]
      return tf.add_n([p[k] * o for k, o in enumerate(outs)])
    if mode != "gated":
      raise ValueError(f"unknown MixedOp mode {mode!r}")
    if involved is None:
      involved = tf.range(self.num_paths)
    if tf.executing_eagerly():  # Python values: see ProxylessSupernet.call
      active, involved = int(active), np.asarray(involved, np.int32)
    gates = binarize(tf.convert_to_tensor(self.alpha), active, involved)
    y = self.run_path(active, x, training)
    return self._attach_gate_grads(y, gates, x, active, involved, training)

  def _attach_gate_grads(self, y, gates, x, active, involved, training):
    x_const = tf.stop_gradient(x)
    if tf.executing_eagerly():
      return self._attach_gate_grads_eager(y, gates, x_const, active, involved.tolist(),
                                           training)

    @tf.custom_gradient
    def fn(y, gates):
      def grad(dy):
        def gate_grad(k):
          out = tf.cond(tf.equal(k, active), lambda: y,
                        lambda: self.run_path(k, x_const, training))
          return tf.reduce_sum(dy * out)
        # One path at a time: each inactive output is recomputed, used, released.
        dg_inv = tf.map_fn(gate_grad, involved, fn_output_signature=y.dtype,
                           parallel_iterations=1)
        dg = tf.scatter_nd(involved[:, None], dg_inv, [self.num_paths])
        return dy, dg
      return tf.identity(y), grad
    return fn(y, gates)

  def _attach_gate_grads_eager(self, y, gates, x, active, involved, training):
    @tf.custom_gradient
    def fn(y, gates):
      def grad(dy):
        # One path at a time, as the traced form: recomputed, used, released.
        dg = [tf.reduce_sum(dy * (y if k == active else self.run_path(k, x, training)))
              for k in involved]
        return dy, tf.scatter_nd(tf.constant(involved)[:, None], tf.stack(dg),
                                 [self.num_paths])
      return tf.identity(y), grad
    return fn(y, gates)

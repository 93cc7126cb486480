"""Traced calls of small Keras models for supernet steps that run eagerly.

A supernet step traced as one `tf.function` holds every candidate of every choice block
inside `tf.switch_case`, and so does its gradient: on `proxyless_cifar` that graph took
minutes to build before the first step (BENCHMARKS.md, "Search start-up"). Run eagerly,
a step calls only the sampled candidate of each block, and each candidate's forward pass
is one traced function (its gradient one more), built the first time that candidate's
*structure* is sampled and shared by every candidate of the same structure: the function
takes the weights as inputs (Keras' `stateless_call`), so `b04_k3_e6` and `b05_k3_e6`
with equal shapes run the same trace with their own weights.
"""

from __future__ import annotations

from collections.abc import Hashable

import keras
import tensorflow as tf


class CompiledCalls:
  """A cache of traced functions for eager supernet steps, each built on first use: any
  `body` under a key (`get`), or a Keras model's stateless call keyed by its structure and
  training flag (`__call__`). A plain object: Keras does not track what it holds.

  Example:
    >>> calls = CompiledCalls()
    >>> y = calls(candidate, x, training=True, key=mixed_op.structure[k])
    >>> y = calls.get(("b03", 2, "train"), lambda x: path(x))(x)

  `__call__` must run eagerly (inside a `tf.function`, call the model itself). The
  model's variables are arguments of the trace: gradients reach the trainable ones
  through an enclosing `tf.GradientTape`, and in training the new values of the
  non-trainable ones (BatchNorm moving statistics, dropout seed state) are assigned,
  as the model's own call would.
  """

  def __init__(self):
    self._fns: dict = {}
    self.traces = 0  # how many functions were built (for tests and logs)

  def get(self, key: Hashable, body) -> tf.types.experimental.PolymorphicFunction:
    """The function stored under `key`; on first use, `traced(body)` is stored there."""
    fn = self._fns.get(key)
    if fn is None:
      self.traces += 1
      fn = self._fns[key] = traced(body)
    return fn

  def __call__(self, model: keras.Model, x, training: bool, key: Hashable | None = None):
    """`model(x, training=training)`, through the trace shared by `key`.

    Args:
      model: A built Keras model with one input.
      x: Its input (an eager tensor; batch size may vary between calls).
      training: Keras' training flag (a Python bool).
      key: Models with equal keys must have the same structure (layers, variable shapes
        and order); None shares with no other model.

    Returns:
      The model's output tensor.
    """
    training = bool(training)
    fkey = (("id", id(model)) if key is None else ("key", key), training)
    fn = self._fns.get(fkey) or self.get(fkey, _stateless_call(model, training))
    return fn([_tf_variable(v) for v in model.trainable_variables],
              [_tf_variable(v) for v in model.non_trainable_variables], x)


def _stateless_call(model, training: bool):
  """`call(trainable, non_trainable, x)` for `model`; the variables come in as arguments
  (read inside, assigned inside): reading them eagerly first cost more than the call
  itself (~130 us each on a 2-core host)."""
  def call(trainable, non_trainable, x):
    y, new = model.stateless_call(trainable, non_trainable, x, training=training)
    if training:
      for v, value in zip(non_trainable, new):
        v.assign(value)
    return y
  return call


class _Body:
  """A callable wrapping `fn`. TensorFlow counts traces per code object for its
  "excessive retracing" warning, so many functions made from one closure would warn
  although each traces at most twice (per replica: its first batch shape, then the
  relaxed one of `reduce_retracing`); an object is counted by itself."""

  def __init__(self, fn):
    self.fn = fn

  def __call__(self, *args):
    return self.fn(*args)


def traced(fn) -> tf.types.experimental.PolymorphicFunction:
  """`tf.function(fn)` for one piece of a supernet step: no AutoGraph (Keras layers hold
  no tensor-dependent Python control flow, and converting source costs time and reads the
  files on disk), one trace for every batch size (`reduce_retracing`)."""
  return tf.function(_Body(fn), autograph=False, reduce_retracing=True)


def _tf_variable(v):
  """The TensorFlow variable behind a Keras variable (under a distribution strategy, in a
  replica context: that replica's copy)."""
  v = v.value if isinstance(v, keras.Variable) else v
  if tf.distribute.has_strategy() and tf.distribute.in_cross_replica_context() is False:
    v = v._get_on_device_or_primary() if hasattr(v, "_get_on_device_or_primary") else v
  return v

"""Keras SGD with the same update in fewer graph ops, for supernets with many variables.

A supernet step updates every candidate's variables (`proxyless_cifar` at width 0.35:
1,100+), and building its traced step creates each variable's update op by op in Python.
Keras 3's SGD evaluates the learning-rate schedule (a cosine: ~15 ops) once per variable
inside its decoupled weight decay, and writes the momentum update as ~8 ops. `SGD`
below computes the schedule once per step and runs TensorFlow's fused
`ResourceApplyKerasMomentum` kernel, which implements the same update.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfnas")
class SGD(keras.optimizers.SGD):
  """`keras.optimizers.SGD` (momentum, Nesterov, decoupled weight decay), same results.

  Per variable v with gradient g, learning rate lr (the schedule's value at this step),
  momentum mu, weight decay wd, exactly as Keras' SGD:
    v <- v - v * wd * lr            (unless excluded by `exclude_from_weight_decay`)
    m <- mu * m - lr * g
    v <- v + mu * m - lr * g        (Nesterov; v <- v + m otherwise)
  Slot variables, checkpoints and `get_config` are Keras' own. Without momentum it is
  Keras' own update.

  Example:
    >>> opt = SGD(keras.optimizers.schedules.CosineDecay(0.1, 1000), momentum=0.9,
    ...           nesterov=True, weight_decay=4e-5)
  """

  def _apply_weight_decay(self, variables):
    if self.weight_decay is None:
      return
    rate = tf.cast(self.learning_rate, tf.float32) * tf.cast(self.weight_decay, tf.float32)

    def decay(distribution, variables, rate):
      def fn(variable, rate):
        if self._use_weight_decay(variable):
          variable.assign_sub(variable * tf.cast(rate, variable.dtype))
      for variable in variables:
        if isinstance(variable, keras.Variable):
          variable = variable.value
        distribution.extended.update(variable, fn, args=(rate,), group=False)

    tf.__internal__.distribute.interim.maybe_merge_call(decay, self._distribution_strategy,
                                                         variables, rate)

  def update_step(self, gradient, variable, learning_rate):
    if self.momentum == 0:
      return super().update_step(gradient, variable, learning_rate)
    m = self.momentums[self._get_variable_index(variable)]
    handle = lambda v: (v.value if isinstance(v, keras.Variable) else v).handle
    tf.raw_ops.ResourceApplyKerasMomentum(
        var=handle(variable), accum=handle(m), lr=tf.cast(learning_rate, variable.dtype),
        grad=tf.cast(gradient, variable.dtype), momentum=tf.cast(self.momentum, variable.dtype),
        use_nesterov=self.nesterov)


def dense_gradients(grads, variables, cache: dict) -> list:
  """`grads` with each None replaced by zeros of its variable's shape and dtype.

  A supernet step run eagerly touches only the sampled paths, so the tape gives None
  for every other variable; a traced `switch_case` step gives zeros there, and the
  optimizer's momentum and weight decay act on them. Passing zeros keeps that update
  (and one traced optimizer step for every sampled path). `cache` holds one zero
  tensor per (shape, dtype, replica), made once and reused (one per replica: a strategy
  would take one tensor returned by every replica for a single, non-replicated value).
  """
  out = []
  replica = tf.distribute.get_replica_context()
  # The replica's id among all replicas in sync (a constant; under MultiWorkerMirrored-
  # Strategy its index across workers, where `ReplicaContext.devices` fails).
  rid = (tf.get_static_value(replica.replica_id_in_sync_group)
         if replica is not None else None)
  for g, v in zip(grads, variables):
    if g is None:
      key = (tuple(v.shape), v.dtype, None if rid is None else int(rid))
      if key not in cache:
        with tf.init_scope():
          cache[key] = tf.zeros(v.shape, v.dtype)
      g = cache[key]
    out.append(g)
  return out

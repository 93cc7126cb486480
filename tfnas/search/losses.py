"""The ProxylessNAS search's latency objective: E[lat] over the architecture
distribution (Eq. 5-6) and the losses that combine it with cross-entropy (Eq. 7, the
official code's "mul#log", TuNAS's absolute form)."""

from __future__ import annotations

import tensorflow as tf


def expected_latency(probs: list, block_costs: list[list[float]], constant: float):
  """E[lat] = sum_j sum_i p_ji F(o_ji) + constant (Eq. 5-7): linear in the probabilities."""
  total = tf.constant(constant, tf.float32)
  for p, costs in zip(probs, block_costs):
    total += tf.reduce_sum(p * tf.constant(costs, tf.float32))
  return total


def latency_loss(ce, expected, target: float, form: str = "mul", lam: float = 0.1,
                 beta: float = 0.6):
  """Combines cross-entropy with the expected latency (ProxylessNAS Eq. 7 and the
  official code's "mul#log" form); `expected` (E[lat], Eq. 5-6) and `target` in the
  same unit, that of the cost model (ms, MMACs or Mparams). Scalars in, scalar out.

  form="add": CE + lam * E[lat] / target; form="mul": CE * (log E[lat] / log target)^beta;
  form="abs": CE + lam * |E[lat] / target - 1| (TuNAS's absolute-value reward as a
  differentiable loss: it pulls E[lat] to the target from either side, where the other
  two only push latency down; and it does not depend on the latency unit, while "mul"
  needs target > 1).
  """
  if form == "add":
    return ce + lam * expected / target
  if form == "abs":
    return ce + lam * tf.abs(expected / target - 1.0)
  if form == "mul":
    return ce * (tf.math.log(expected) / tf.math.log(tf.constant(target, tf.float32))) ** beta
  raise ValueError(f"unknown latency loss form {form!r}; expected 'add', 'mul' or 'abs'")

"""Loops that stop early, also under ``vmap``.

EM and Lloyd iterations stop when they converge. ``lax.while_loop`` does
that for one fit, but under ``vmap`` it keeps running the whole batch until
the *slowest* member has converged: one of 1,000 datasets that needs 100
iterations makes every dataset pay for 100, although most stop after 5.

:func:`while_loop` is ``lax.while_loop`` with a batching rule
(``jax.custom_batching.custom_vmap``) that compacts the batch as members
finish. The batch runs in phases of shrinking capacity (``B``, ``B/4``,
``B/16``, ...): a phase iterates its members until no more than the next
capacity are still running, then the running members are gathered into the
next, smaller phase and the finished ones are set aside. Every member goes
through exactly the iterations it would alone, so results equal a Python
loop of single fits; the cost is close to the *total* number of iterations
rather than batch size x the largest.

Shapes stay static (each phase has a fixed capacity), so everything compiles
once. Values the loop reads but never changes are passed as ``operands``
rather than closed over: a batching rule needs to see every batched input.
``while_loop`` is not reverse-differentiable (neither is ``lax.while_loop``),
and no tangent may reach it at all: ``custom_vmap`` has no linearisation
rule ("Linearization failed to produce known values ..." under ``jax.grad``)
and, under ``jax.jacfwd``, marks primal outputs batched. Callers keep it out
of derivatives: ``_em`` wraps it in a ``custom_jvp`` whose rule is a
``lax.scan`` form of the same iterations, and ``_init``'s Lloyd iterations
(discrete: they only choose labels) ``stop_gradient`` every input.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

__all__ = ["while_loop"]

# Each phase keeps a quarter of the previous one's capacity.
_SHRINK = 4


def while_loop(cond_fun, body_fun, operands, init_val):
    """``lax.while_loop`` over ``init_val`` with read-only ``operands``; compacts under ``vmap``.

    Args:
      cond_fun: ``(operands, state) -> bool scalar``.
      body_fun: ``(operands, state) -> state``.
      operands: pytree of arrays read by both functions (data, tolerances).
      init_val: the initial state pytree.

    Returns:
      The final state, as ``lax.while_loop`` would return it.
    """

    @custom_vmap
    def loop(operands, state):
        return jax.lax.while_loop(lambda s: cond_fun(operands, s), lambda s: body_fun(operands, s), state)

    @loop.def_vmap
    def loop_batched(axis_size, in_batched, operands, state):
        operands_batched, state_batched = in_batched
        state = jax.tree_util.tree_map(
            lambda x, b: x if b else jnp.broadcast_to(x, (axis_size, *jnp.shape(x))), state, state_batched
        )
        state = _compacting_loop(cond_fun, body_fun, operands, operands_batched, state, axis_size)
        return state, jax.tree_util.tree_map(lambda _: True, state)

    return loop(operands, init_val)


def _compacting_loop(cond_fun, body_fun, operands, operands_batched, state, batch_size):
    """The batched loop in phases of shrinking capacity (see the module docstring)."""
    operand_axes = jax.tree_util.tree_map(lambda b: 0 if b else None, operands_batched)
    running = jax.vmap(cond_fun, in_axes=(operand_axes, 0))
    step = jax.vmap(body_fun, in_axes=(operand_axes, 0))

    def masked_step(ops, s):
        # lax.while_loop's own batching rule: finished members keep their state.
        active = running(ops, s)
        new = step(ops, s)
        return jax.tree_util.tree_map(lambda a, b: jnp.where(_expand(active, a), a, b), new, s)

    def run_phase(ops, s, keep_running_above):
        return jax.lax.while_loop(
            lambda s: jnp.sum(running(ops, s)) > keep_running_above, lambda s: masked_step(ops, s), s
        )

    capacity = batch_size
    while True:
        next_capacity = capacity // _SHRINK
        if capacity == batch_size:
            state = run_phase(operands, state, next_capacity)
        else:
            # The `capacity` members still running (and finished ones to fill up), in batch order.
            idx = jnp.argsort(~running(operands, state), stable=True)[:capacity]
            ops = jax.tree_util.tree_map(
                lambda x, b: x[idx] if b else x, operands, operands_batched
            )
            sub = run_phase(ops, jax.tree_util.tree_map(lambda x: x[idx], state), next_capacity)
            state = jax.tree_util.tree_map(lambda x, y: x.at[idx].set(y), state, sub)
        if next_capacity == 0:
            return state
        capacity = next_capacity


def _expand(mask, like):
    return mask.reshape(mask.shape + (1,) * (like.ndim - 1))

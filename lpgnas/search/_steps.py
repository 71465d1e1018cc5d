"""The two alternating updates of the bilevel search, as pure functions of a :class:`SearchState`.

* :func:`weight_step`: cross-entropy on the training nodes/graphs, gradient w.r.t. the weights
  (``nnx.Param``) only, one Adam step; observers update (training mode, dropout on, and the
  space's Degree-Quant protective mask drawn afresh when it has a ``degree_quant`` block).
* :func:`logit_step`: cross-entropy on the validation nodes/graphs plus ``lambda`` times the
  normalised expected cost, gradient w.r.t. the :class:`~lpgnas.supernet.ArchLogit` only, one Adam
  step (evaluation mode: no dropout, observers frozen). Its forward pass doubles as the epoch's
  evaluation.

The temperature, lambda and the phase (search / fine-tune) are traced values of :class:`Schedule`,
so changing them never recompiles.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from lpgnas.quant import dq_protect_probability, dq_sample_mask
from lpgnas.supernet import ArchLogit, Relax, expected_cost, reference_cost, temperature_at

__all__ = ["SearchState", "Schedule", "Program", "make_program", "split_supernet", "phase"]


class SearchState(NamedTuple):
    """Everything a search carries from epoch to epoch (plain arrays; a checkpoint is its leaves)."""

    params: Any
    logits: Any
    rest: Any
    w_opt: Any
    a_opt: Any
    key: jax.Array  # uint32 key data
    epoch: jax.Array
    best_val: jax.Array  # fine-tune phase: best validation accuracy of the derived sub-network
    best_test: jax.Array
    best_epoch: jax.Array


class Schedule(NamedTuple):
    """Traced schedule values: temperature endpoints, search epochs, lambda, warm-up epochs."""

    t_start: jax.Array
    t_end: jax.Array
    epochs: jax.Array
    lam: jax.Array
    warmup: jax.Array

    @classmethod
    def of(cls, config) -> "Schedule":
        f = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
        return cls(f(config.t_start), f(config.t_end), jnp.asarray(config.epochs, jnp.int32), f(config.lam),
                   jnp.asarray(config.warmup, jnp.int32))


class Phase(NamedTuple):
    temperature: jax.Array
    arch_on: jax.Array  # bool: logits are updated this epoch
    discrete: jax.Array  # float 0/1: argmax sub-network (fine-tune)


def phase(epoch, sched: Schedule) -> Phase:
    searching = epoch < sched.epochs
    t = temperature_at(jnp.minimum(epoch, sched.epochs - 1), sched.t_start, sched.t_end, sched.epochs)
    return Phase(t, searching & (epoch >= sched.warmup), jnp.where(searching, 0.0, 1.0).astype(jnp.float32))


def split_supernet(net):
    """``(graphdef, params, logits, rest)`` with plain-array states."""
    graphdef, params, logits, rest = nnx.split(net, nnx.Param, ArchLogit, ...)
    return graphdef, nnx.as_pure(params), nnx.as_pure(logits), nnx.as_pure(rest)


def _update(tx, grads, opt_state, values):
    # optax mixes Python floats and int32 counters: run it under the standard promotion rules
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = tx.update(grads, opt_state, values)
        return optax.apply_updates(values, updates), opt_state


def xent(logits, labels, mask):
    safe = jnp.where(mask, labels, 0)
    per = optax.softmax_cross_entropy_with_integer_labels(logits, safe)
    m = mask.astype(logits.dtype)
    return jnp.sum(per * m) / jnp.maximum(jnp.sum(m), 1.0)


def accuracy(logits, labels, mask):
    hit = ((jnp.argmax(logits, axis=-1) == labels) & mask).astype(jnp.float32)
    return jnp.sum(hit) / jnp.maximum(jnp.sum(mask.astype(jnp.float32)), 1.0)


def _kernel_mask(tree):
    def keep(path, _):
        keys = [getattr(p, "key", getattr(p, "idx", None)) for p in path]
        return any(k in ("kernel", "skip_kernel") for k in keys)

    return jax.tree_util.tree_map_with_path(keep, tree)


def weight_optimizer(config) -> optax.GradientTransformation:
    parts = []
    if config.weight_decay > 0:
        parts.append(optax.add_decayed_weights(config.weight_decay, mask=_kernel_mask))
    parts.append(optax.adam(config.lr))
    return optax.chain(*parts)


def logit_optimizer(config) -> optax.GradientTransformation:
    parts = []
    if config.arch_weight_decay > 0:
        parts.append(optax.add_decayed_weights(config.arch_weight_decay))
    parts.append(optax.adam(config.arch_lr, b1=0.5, b2=0.999))
    return optax.chain(*parts)


class Program(NamedTuple):
    """The pure step functions of one supernet (static pieces closed over)."""

    graphdef: Any
    w_tx: Any
    a_tx: Any
    weight_step: Any
    logit_step: Any
    evaluate: Any


def make_program(net, config, num_nodes: float, num_edges: float) -> Program:
    """Build the step functions for ``net`` (a :class:`~lpgnas.supernet.Supernet`).

    ``num_nodes`` / ``num_edges``: the graph size the cost is counted on.
    ``weight_step(state, batch, sched, key) -> (state, train_loss)``;
    ``logit_step(state, batch, sched, key) -> (state, (outputs, val_loss, cost))``;
    ``evaluate(state, x, ga, sched) -> outputs`` (evaluation mode, current phase).
    ``batch = (x, graph_arrays, labels, mask)``.
    """
    graphdef = split_supernet(net)[0]
    ref = reference_cost(net, num_nodes, num_edges).target(config.cost)
    dq = net.space.degree_quant  # Degree-Quant masking of the training steps (None: none)
    w_tx = weight_optimizer(config)
    a_tx = logit_optimizer(config)

    def relax(ph: Phase, key):
        return Relax(ph.temperature, key if config.gumbel else None, ph.discrete, config.gumbel, config.hard)

    def weight_step(state: SearchState, batch, sched: Schedule, key):
        x, ga, labels, mask = batch
        ph = phase(state.epoch, sched)
        k_drop, k_gum = jax.random.split(key)
        protect = None
        if dq is not None:
            prob = dq_protect_probability(ga.in_degree, p_min=dq.p_min, p_max=dq.p_max)
            protect = dq_sample_mask(jax.random.fold_in(key, 2), prob)

        def loss_fn(params):
            model = nnx.merge(graphdef, params, state.logits, state.rest)
            out = model(x, ga, relax(ph, k_gum), training=True, key=k_drop, protect=protect)
            _, written, _, rest = nnx.split(model, nnx.Param, ArchLogit, ...)
            return xent(out, labels, mask), (nnx.as_pure(written), nnx.as_pure(rest))

        (loss, (written, rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        # ``written``: the weights as the forward pass left them -- equal to the inputs except for
        # lazily initialised quantiser parameters (LSQ steps), whose first value the forward sets
        params, w_opt = _update(w_tx, grads, state.w_opt, jax.lax.stop_gradient(written))
        return state._replace(params=params, rest=rest, w_opt=w_opt), loss

    def logit_step(state: SearchState, batch, sched: Schedule, key):
        x, ga, labels, mask = batch
        ph = phase(state.epoch, sched)
        rx = relax(ph, key)

        def loss_fn(logits):
            model = nnx.merge(graphdef, state.params, logits, state.rest)
            out = model(x, ga, rx, training=False)
            ce = xent(out, labels, mask)
            cost = expected_cost(model, rx, num_nodes, num_edges).target(config.cost) / ref
            return ce + sched.lam * cost, (out, ce, cost)

        (_, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.logits)
        logits, a_opt = _update(a_tx, grads, state.a_opt, state.logits)
        on = ph.arch_on
        keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(on, a, b), new, old)  # noqa: E731
        return state._replace(logits=keep(logits, state.logits), a_opt=keep(a_opt, state.a_opt)), aux

    def evaluate(state: SearchState, x, ga, sched: Schedule):
        ph = phase(state.epoch, sched)
        model = nnx.merge(graphdef, state.params, state.logits, state.rest)
        return model(x, ga, relax(ph, None), training=False)

    return Program(graphdef, w_tx, a_tx, weight_step, logit_step, evaluate)


def init_state(net, program: Program, seed: int) -> SearchState:
    _, params, logits, rest = split_supernet(net)
    return SearchState(
        params=params, logits=logits, rest=rest, w_opt=program.w_tx.init(params), a_opt=program.a_tx.init(logits),
        key=jax.random.key_data(jax.random.key(seed)), epoch=jnp.asarray(0, jnp.int32),
        best_val=jnp.asarray(-1.0, jnp.float32), best_test=jnp.asarray(0.0, jnp.float32),
        best_epoch=jnp.asarray(-1, jnp.int32),
    )

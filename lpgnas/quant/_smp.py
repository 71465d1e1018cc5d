r"""Smoothness-aware low-bit message propagation.

Deep propagation (K = 10+ steps) at INT2/INT4 accumulates quantisation noise, which is mostly
high-frequency on the graph. :class:`SmoothPropagation` propagates by solving a smoothness-
constrained denoising problem with a Lagrangian, updates the multiplier by dual ascent, and
quantises the node features after every step with a learned-range-scaling quantiser.

Notation: ``A_hat = D~^{-1/2} (A + I) D~^{-1/2}`` (GCN normalisation with self loops, optional edge
weights), ``L = I - A_hat``, ``X0 = Q_0(X)`` the quantised input, ``n = N * C`` entries, and the
smoothness ``S(F) = tr(F^T L F) / n = (<F, F> - <F, A_hat F>) / n``.

Problem:  ``min_F 1/2 ||F - X0||^2   s.t.   S(F) <= eps``,   with ``eps = rho * S(X0)``.

Lagrangian: ``L(F, mu) = 1/2 ||F - X0||^2 + (mu n / 2) (S(F) - eps)``, so
``grad_F L = (F - X0) + mu L F``.

Primal step (gradient step with step size ``1 / (1 + mu_k)``, then quantisation):

    F^{k+1} = Q_{k+1}( X0 / (1 + mu_k)  +  mu_k / (1 + mu_k) * A_hat F^k ),    F^0 = X0

Dual ascent on the multiplier (not differentiated):

    mu_{k+1} = clip( mu_k + eta * (S(F^{k+1}) - eps),  0,  mu_max )

With ``eta = 0`` and no quantisation this is APPNP with teleport ``1 / (1 + lambda)``. Every
``Q_k`` is an ``alpha`` (learned range scaling) quantiser with its own ``alpha_k`` and EMA range.
The multiplier persists across training steps: each call starts from the stored ``mu`` (initially
``lambda``) and, in training, stores ``mu_K`` back (a running dual ascent).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from lpgnas.quant._context import QuantContext
from lpgnas.quant._core import QuantStat
from lpgnas.quant._methods import make_plan, quant_apply, quant_init
from lpgnas.quant._spec import QuantSpec

__all__ = ["SmoothPropagation", "SmpTerms", "gcn_normalize", "propagate", "smoothness", "smp_loss_terms"]


def gcn_normalize(senders, receivers, num_nodes: int, edge_weight=None):
    """``(edge_norm [E], self_norm [N])`` of ``D~^{-1/2} (A + I) D~^{-1/2}``."""
    s = jnp.asarray(senders).astype(jnp.int32)
    r = jnp.asarray(receivers).astype(jnp.int32)
    w = jnp.ones(s.shape, jnp.float32) if edge_weight is None else jnp.asarray(edge_weight, jnp.float32)
    deg = jax.ops.segment_sum(w, r, num_segments=num_nodes) + 1.0
    inv = jax.lax.rsqrt(deg)
    return w * inv[s] * inv[r], 1.0 / deg


def propagate(f, senders, receivers, edge_norm, self_norm=None):
    """``A_hat f`` (sparse, ``segment_sum`` over receivers); ``self_norm=None`` when the edge list
    already holds the self loops."""
    msg = edge_norm[:, None] * f[senders]
    agg = jax.ops.segment_sum(msg, receivers, num_segments=f.shape[0])
    return agg if self_norm is None else agg + self_norm[:, None] * f


def _smooth(f, af):
    n = float(f.shape[0] * f.shape[1])
    return (jnp.sum(f * f) - jnp.sum(f * af)) / n


def smoothness(f, senders, receivers, edge_weight=None) -> jax.Array:
    """``S(f) = tr(f^T (I - A_hat) f) / (N C)`` (0 for a constant signal on a regular graph)."""
    en, sn = gcn_normalize(senders, receivers, f.shape[0], edge_weight)
    return _smooth(f, propagate(f, senders, receivers, en, sn))


class SmpTerms(NamedTuple):
    smoothness: jax.Array  # S(F)
    violation: jax.Array  # relu(S(F) - eps)
    lagrangian: jax.Array  # mu * (S(F) - eps), differentiable in F


def smp_loss_terms(f, senders, receivers, *, mu, epsilon, edge_weight=None) -> SmpTerms:
    """The constraint terms of the smoothness problem for an output ``f`` (add ``lagrangian`` to the
    loss to enforce the constraint on the trained features as well)."""
    s = smoothness(f, senders, receivers, edge_weight)
    mu = jax.lax.stop_gradient(jnp.asarray(mu, jnp.float32))
    return SmpTerms(s, jax.nn.relu(s - epsilon), mu * (s - epsilon))


class SmoothPropagation(nnx.Module):
    """K-step smoothness-constrained propagation, quantised at every step (see module docstring).

    Args: num_steps (K), lam (initial multiplier ``lambda``), bits (32 = no quantisation), eta (dual
    step), rho (``eps = rho * S(X0)``), mu_max, signed (asymmetric unsigned codes by default), spec
    (an explicit ``alpha``/other :class:`QuantSpec` overriding ``bits``/``signed``), shape (the
    ``[N, C]`` shape the per-step quantisers are planned for: per-row state needs ``N``; default
    ``(1, 1)``, per-tensor), degree_bits (topology-aware bits of the uniform methods),
    quantize_output (False: the last step's output ``F^K`` stays in full precision, e.g. when it is a
    model's logits; then only ``Q_0 .. Q_{K-1}`` exist), rngs.

    Call: ``prop(x [N, C], senders, receivers, ctx, edge_weight=None, norm=None) -> F^K [N, C]``;
    ``norm=(edge_norm [E], self_norm [N] or None)`` gives the normalised operator directly (e.g. the
    GCN normalisation on an edge list that already holds the self loops, ``self_norm=None``).
    """

    def __init__(
        self,
        num_steps: int = 10,
        lam: float = 1.0,
        bits: int = 4,
        *,
        eta: float = 0.5,
        rho: float = 0.5,
        mu_max: float = 100.0,
        signed: bool = False,
        spec: QuantSpec | None = None,
        shape: tuple[int, int] = (1, 1),
        degree_bits=None,
        quantize_output: bool = True,
        rngs: nnx.Rngs | None = None,
    ):
        if num_steps < 1:
            raise ValueError("num_steps must be >= 1")
        self.num_steps = int(num_steps)
        self.eta = float(eta)
        self.rho = float(rho)
        self.mu_max = float(mu_max)
        self.quantize_output = bool(quantize_output)
        if spec is None:
            spec = QuantSpec("fp32") if bits >= 32 else QuantSpec("alpha", bits, signed=signed)
        self.quantized = not spec.is_fp32 or (degree_bits is not None and spec.method != "fp32")
        self.plan = make_plan(spec, "node", tuple(shape), degree_bits) if self.quantized else None
        self.state_names: tuple[str, ...] = ()
        if self.quantized:
            key = rngs.params() if rngs is not None else jax.random.key(0)
            state, params = quant_init(self.plan, key)
            self.state_names = tuple(sorted(state))
            for name in self.state_names:
                stacked = jnp.stack([state[name]] * self.num_quantizers)
                setattr(self, name, (nnx.Param if name in params else QuantStat)(stacked))
        self.mu = QuantStat(jnp.asarray(lam, jnp.float32))
        self.last_smoothness = QuantStat(jnp.zeros((), jnp.float32))
        self.last_epsilon = QuantStat(jnp.zeros((), jnp.float32))

    @property
    def num_quantizers(self) -> int:
        """``K + 1`` (``Q_0 .. Q_K``), or ``K`` when the output stays in full precision."""
        return self.num_steps + 1 if self.quantize_output else self.num_steps

    def _stacked(self) -> dict:
        return {n: getattr(self, n)[...] for n in self.state_names}

    def step_bits(self, degree=None) -> list:
        """Average bits of the tensor each step holds, ``[X0, F^1, ..., F^K]`` (``K + 1`` entries;
        32 for full precision): the plan's bits, A2Q's learned widths averaged over the rows, or the
        topology-aware bits averaged over ``degree`` (per-node in-degrees) when given."""
        out = []
        plan = self.plan
        for k in range(self.num_steps + 1):
            if not self.quantized or k >= self.num_quantizers:
                out.append(32.0)
            elif plan.method == "a2q":
                s = plan.spec
                b = jnp.round(jnp.clip(getattr(self, "bitwidth")[...][k], s.min_bits, s.max_bits))
                out.append(jnp.mean(b))
            elif plan.degree_bits is not None and degree is not None:
                b = jnp.minimum(plan.degree_bits.lookup(degree), plan.bits).astype(jnp.float32)
                out.append(jnp.mean(b))
            else:
                out.append(float(plan.bits))
        return out

    def __call__(self, x, senders, receivers, ctx: QuantContext = QuantContext(), edge_weight=None, norm=None):
        n = x.shape[0]
        if norm is None:
            en, sn = gcn_normalize(senders, receivers, n, edge_weight)
        else:
            en, sn = norm
        stacked = self._stacked()
        plan = self.plan

        def quant(f, st):
            if not self.quantized:
                return f, st
            return quant_apply(plan, st, f, ctx)

        def prop(f):
            return propagate(f, senders, receivers, en, sn)

        st0 = {k: v[0] for k, v in stacked.items()}
        x0, new0 = quant(x, st0)
        af0 = prop(x0)
        eps = self.rho * jax.lax.stop_gradient(_smooth(x0, af0))
        mu0 = self.mu[...]

        def update(f, af, mu, st, quantize: bool):
            pre = x0 / (1.0 + mu) + (mu / (1.0 + mu)) * af
            f_new, st_new = quant(pre, st) if quantize else (pre, st)
            af_new = prop(f_new)
            s_new = jax.lax.stop_gradient(_smooth(f_new, af_new))
            mu_new = jnp.clip(mu + self.eta * (s_new - eps), 0.0, self.mu_max)
            return f_new, af_new, jax.lax.stop_gradient(mu_new), st_new, s_new

        def step(carry, st):
            f, af, mu = carry
            f_new, af_new, mu_new, st_new, s_new = update(f, af, mu, st, True)
            return (f_new, af_new, mu_new), (st_new, s_new)

        n_scan = self.num_quantizers - 1  # quantised steps
        xs = {k: v[1:] for k, v in stacked.items()}
        carry = (x0, af0, mu0)
        st_new, s_last = xs, jnp.zeros((), jnp.float32)
        if n_scan > 0:
            carry, (st_new, s_hist) = jax.lax.scan(step, carry, xs, length=n_scan)
            s_last = s_hist[-1]
        f, af, mu_k = carry
        if not self.quantize_output:  # the last step, in full precision
            f, _, mu_k, _, s_last = update(f, af, mu_k, None, False)
        if ctx.training:
            for name in self.state_names:
                full = jnp.concatenate([new0[name][None], st_new[name]], axis=0)
                getattr(self, name)[...] = jax.lax.stop_gradient(full)
            self.mu[...] = mu_k
            self.last_smoothness[...] = s_last
            self.last_epsilon[...] = eps
        return f

"""Row-compact sparse node features (bag-of-words matrices) and their products with a weight matrix.

A :class:`SparseRows` holds an ``[N, F]`` matrix as two ``[N, K]`` arrays: each row's non-zero
values (``values``) and their column indices (``cols``) first, then padding (value 0, column 0).
``K`` is at least one more than the largest number of non-zeros in a row, so every row holds at
least one padding zero. Those padding zeros stand for the row's implicit zeros: a quantiser whose
statistics are per-row or per-tensor minima/maxima that include zero (see
:func:`lpgnas.quant.row_compact_exact`) gives, on ``values``, exactly the values the dense quantiser
gives at the non-zeros (and exact zeros on the padding), with the same observer state. The first
layer then costs ``O(N K D)`` instead of ``O(N F D)``.

Built once on the host with :func:`sparse_rows`; a registered pytree (``values``/``cols``/``nz`` are
leaves, the dense ``shape`` is static), so it passes through ``jax.jit`` like an array. ``nz`` (the
flat positions of the stored non-zeros) lets :meth:`SparseRows.to_bcoo` rebuild, under ``jit``, the
exact ``BCOO`` matrix of the non-zeros (for consumers that quantise a ``BCOO``'s stored values, e.g.
the supernet).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse as jsparse

__all__ = ["SparseRows", "sparse_rows", "rows_matmul"]

_ROUND = 8  # K is rounded up to a multiple of this (capped at F)


@dataclasses.dataclass(frozen=True)
class SparseRows:
    """An ``[N, F]`` matrix stored row-compact: ``values f32[N, K]``, ``cols int32[N, K]`` (each row's
    non-zeros first, then padding with value 0 and column 0; at least one padding entry per row),
    ``nz int32[nnz]`` (flat positions in ``values`` of the stored non-zeros, row-major) and the static
    dense ``shape = (N, F)``."""

    values: jax.Array
    cols: jax.Array
    nz: jax.Array
    shape: tuple[int, int]

    @property
    def ndim(self) -> int:
        return 2

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def width(self) -> int:
        """``K``: stored entries per row."""
        return int(self.values.shape[1])

    def with_values(self, values: jax.Array) -> SparseRows:
        """The same sparsity pattern with new ``values`` (``[N, K]``)."""
        return SparseRows(values, self.cols, self.nz, self.shape)

    def todense(self) -> jax.Array:
        """The dense ``[N, F]`` matrix (padding adds zeros to column 0)."""
        n, f = self.shape
        rows = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32)[:, None], self.cols.shape)
        return jnp.zeros((n, f), self.values.dtype).at[rows, self.cols].add(self.values)

    def to_bcoo(self) -> jsparse.BCOO:
        """The stored non-zeros as a row-major ``BCOO`` (sorted, unique indices): the matrix
        ``lpgnas.train.node_arrays`` builds from the dense features, with the current ``values``."""
        k = self.width
        rows = self.nz // k
        cols = self.cols.reshape(-1)[self.nz]
        return jsparse.BCOO((self.values.reshape(-1)[self.nz], jnp.stack([rows, cols], axis=1)), shape=self.shape,
                            indices_sorted=True, unique_indices=True)


jax.tree_util.register_dataclass(SparseRows, data_fields=["values", "cols", "nz"], meta_fields=["shape"])


def sparse_rows(x: np.ndarray, *, max_width_fraction: float = 0.25) -> SparseRows | None:
    """Row-compact form of a host matrix ``x [N, F]``, or ``None`` when it is not worth it or not
    exact: ``x`` is not 2-D or empty, some row has no zero (a fully dense row has no implicit zero
    for the padding to stand for), or ``K`` (the widest row's non-zeros + 1, rounded up to a multiple
    of 8, at most ``F``) exceeds ``max_width_fraction * F``. Runs in ``O(N F)`` numpy, no Python loop."""
    x = np.asarray(x)
    if x.ndim != 2 or x.size == 0:
        return None
    n, f = x.shape
    nz = x != 0
    counts = nz.sum(axis=1)
    widest = int(counts.max())
    if widest >= f:
        return None
    k = min(-(-(widest + 1) // _ROUND) * _ROUND, f)
    if k > max_width_fraction * f:
        return None
    rows, cols = np.nonzero(nz)  # row-major: each row's columns ascending
    starts = np.zeros(n, np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    slot = np.arange(rows.shape[0], dtype=np.int64) - starts[rows]
    values = np.zeros((n, k), np.float32)
    col_idx = np.zeros((n, k), np.int32)
    values[rows, slot] = x[rows, cols].astype(np.float32)
    col_idx[rows, slot] = cols.astype(np.int32)
    nz = (rows * k + slot).astype(np.int32)
    return SparseRows(jnp.asarray(values), jnp.asarray(col_idx), jnp.asarray(nz), (int(n), int(f)))


_GATHER_BUDGET = 1 << 21  # elements of one [N, slots, D] gather (8 MiB of float32)


def _slots_per_step(n: int, k: int, d: int) -> int:
    """Slots gathered per step: all ``K`` when the ``[N, K, D]`` gather fits the budget, else the
    largest multiple of 8 dividing ``K`` that fits (at least 8)."""
    if k % _ROUND:
        return k
    c = k
    while c > _ROUND and (n * c * d > _GATHER_BUDGET or k % c):
        c -= _ROUND
    return c


def rows_matmul(x: SparseRows, w: jax.Array) -> jax.Array:
    """``x @ w`` for ``x`` row-compact ``[N, F]`` and ``w [F, D]``: ``sum_k values[:, k] * w[cols[:, k]]``
    (``O(N K D)``; the gradient to ``w`` is a scatter-add).

    The rows of ``w`` are gathered ``[N, c, D]`` at a time and contracted with an ``einsum``: one step
    (``c = K``) when the gather is at most 2^21 elements, else a ``lax.scan`` over blocks of ``c``
    slots (a multiple of 8). On CPU a single large gather, forward and backward in one program, falls
    off a cliff (CiteSeer at ``D = 64``: ~45 ms against ~6 ms in blocks of 8; measured on 2 cores)."""
    if w.ndim != 2 or w.shape[0] != x.shape[1]:
        raise ValueError(f"rows_matmul: weight of shape {w.shape} does not match features of shape {x.shape}")
    n, k = x.values.shape
    d = int(w.shape[1])
    values = x.values.astype(w.dtype)
    c = _slots_per_step(n, k, d)
    if c == k:
        return jnp.einsum("nk,nkd->nd", values, w[x.cols])
    steps = k // c
    vs = values.reshape(n, steps, c).transpose(1, 0, 2)
    cs = x.cols.reshape(n, steps, c).transpose(1, 0, 2)

    def step(acc, block):
        v, cols = block
        return acc + jnp.einsum("nc,ncd->nd", v, w[cols]), None

    out, _ = jax.lax.scan(step, jnp.zeros((n, d), w.dtype), (vs, cs))
    return out

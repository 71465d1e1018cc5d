"""Synthetic node-classification graphs: a degree-corrected planted partition with power-law degrees.

Scales to millions of nodes and tens of millions of edges: edges are drawn in fixed-size chunks with
vectorised numpy (no Python loop per node or edge) and stored as ``int64`` pair keys for the
deduplication, features are filled chunk by chunk in ``float32``.
"""

from __future__ import annotations

import inspect

import jraph
import numpy as np

from lpgnas.data._edges import sorted_unique
from lpgnas.data._graph import Graph
from lpgnas.data._splits import random_split
from lpgnas.errors import ConfigError

__all__ = ["synthetic_graph", "parse_synthetic_spec", "SYNTHETIC_PREFIX"]

SYNTHETIC_PREFIX = "synthetic:"
_CHUNK = 1 << 21


def _check(field: str, ok: bool, problem: str) -> None:
    if not ok:
        raise ConfigError(field, problem, source="synthetic graph")


def synthetic_graph(*, nodes: int = 1000, edges: int = 10000, classes: int = 4, features: int = 16,
                    homophily: float = 0.8, power: float = 2.5, noise: float = 1.0,
                    separation: float = 1.0, seed: int = 0, name: str | None = None) -> Graph:
    """Draw a degree-corrected stochastic block model (planted partition) graph.

    Args:
      nodes: number of nodes ``N``.
      edges: target number of *directed* edges (each undirected edge counts twice, as in
        ``Graph.num_edges``). ``edges // 2`` undirected pairs are drawn; self loops and
        duplicates are removed, so the result has slightly fewer.
      classes: number of classes ``C``; node classes are uniform at random.
      features: feature dimension ``F``.
      homophily: probability that a drawn edge joins two nodes of the same class (the expected
        edge homophily); the other end of a cross-class edge is in a uniformly chosen other class.
      power: exponent of the power-law degree distribution (> 1): node propensities are
        ``theta = 1 + Pareto(power - 1)`` (density ``~ theta^-power``), and both ends of an edge
        are drawn with probability proportional to ``theta`` (within the chosen class).
      noise: standard deviation of the per-dimension Gaussian feature noise.
      separation: length of each class mean (random directions in ``R^F``); features are
        ``mean[class] + noise * N(0, I)``.
      seed: seed of ``np.random.default_rng``; the same arguments give the same graph.
      name: dataset name (default: the ``synthetic:`` spec string).

    Returns:
      A :class:`Graph` with a random 60/20/20 train/val/test split.
    """
    _check("nodes", int(nodes) >= 1, f"must be >= 1, got {nodes}")
    _check("edges", int(edges) >= 0, f"must be >= 0, got {edges}")
    _check("classes", 1 <= int(classes) <= int(nodes), f"must be in 1..nodes, got {classes}")
    _check("features", int(features) >= 1, f"must be >= 1, got {features}")
    _check("homophily", 0.0 <= float(homophily) <= 1.0, f"must be in [0, 1], got {homophily}")
    _check("power", float(power) > 1.0, f"must be > 1, got {power}")
    _check("noise", float(noise) >= 0.0, f"must be >= 0, got {noise}")
    _check("separation", float(separation) >= 0.0, f"must be >= 0, got {separation}")
    n, m, c, f = int(nodes), int(edges) // 2, int(classes), int(features)
    _check("nodes", n < 2**31 - 1, "must fit in int32")
    if name is None:
        name = SYNTHETIC_PREFIX + ",".join(
            f"{k}={v}" for k, v in (("nodes", n), ("edges", int(edges)), ("classes", c),
                                    ("features", f), ("homophily", homophily), ("power", power),
                                    ("noise", noise), ("separation", separation), ("seed", seed)))
    rng = np.random.default_rng(seed)

    labels = (rng.permutation(n) % c).astype(np.int32)  # balanced, no class empty
    theta = rng.pareto(float(power) - 1.0, size=n) + 1.0
    order = np.argsort(labels, kind="stable").astype(np.int32)  # node ids grouped by class
    class_size = np.bincount(labels, minlength=c).astype(np.int64)
    class_start = np.concatenate([[0], np.cumsum(class_size)])
    cum = np.cumsum(theta[order])
    del theta
    cum_lo = np.concatenate([[0.0], cum])[class_start[:-1]]
    cum_hi = cum[class_start[1:] - 1]
    total = float(cum[-1])

    keys = np.empty(m, dtype=np.int64)
    count = 0
    for lo in range(0, m, _CHUNK):  # one iteration per chunk of ~2 M edges
        size = min(_CHUNK, m - lo)
        # senders: iid draws proportional to theta. Sorted uniforms make searchsorted walk the
        # cumulative sums in order (cache friendly); the edges are exchangeable so order is free.
        pos = np.searchsorted(cum, np.sort(rng.random(size)) * total, side="right")
        np.minimum(pos, n - 1, out=pos)
        s = order[pos]
        cls = labels[s]
        if c > 1:
            other = (cls + rng.integers(1, c, size=size, dtype=np.int32)) % c
            cls = np.where(rng.random(size) < homophily, cls, other).astype(np.int32)
        # receivers: per target class (a loop over classes, not nodes), sorted iid draws within
        # the class, matched to that class's edges in uniformly random order
        shuffled = rng.permutation(size)
        grouped = shuffled[np.argsort(cls[shuffled], kind="stable")]
        r = np.empty(size, dtype=np.int32)
        at = 0
        for t, k in enumerate(np.bincount(cls, minlength=c).tolist()):
            if k == 0:
                continue
            u = cum_lo[t] + np.sort(rng.random(k)) * (cum_hi[t] - cum_lo[t])
            pos = np.searchsorted(cum, u, side="right")
            np.clip(pos, class_start[t], class_start[t + 1] - 1, out=pos)
            r[grouped[at:at + k]] = order[pos]
            at += k
        del pos, u, cls, shuffled, grouped
        a, b = np.minimum(s, r).astype(np.int64), np.maximum(s, r).astype(np.int64)
        keep = a != b
        k = a[keep] * n + b[keep]
        keys[count:count + k.shape[0]] = k
        count += k.shape[0]
        del a, b, keep, k, s, r
    del cum
    und = sorted_unique(keys[:count])  # undirected pairs (lo * n + hi), sorted
    del keys
    u = und.shape[0]
    directed = np.empty(2 * u, dtype=np.int64)
    directed[:u] = und  # receiver = lo, sender = hi
    np.divmod(und, n, out=(und, directed[u:]))  # und <- lo, directed[u:] <- hi
    directed[u:] *= n
    directed[u:] += und  # receiver = hi, sender = lo
    del und
    directed.sort()
    senders = np.empty(2 * u, dtype=np.int32)
    receivers = np.empty(2 * u, dtype=np.int32)
    for lo in range(0, 2 * u, _CHUNK):
        q, rem = np.divmod(directed[lo:lo + _CHUNK], n)
        receivers[lo:lo + _CHUNK] = q
        senders[lo:lo + _CHUNK] = rem
    del directed

    means = rng.standard_normal((c, f))
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    means = (means / np.where(norms > 0, norms, 1.0) * float(separation)).astype(np.float32)
    x = np.empty((n, f), dtype=np.float32)
    rows = max(1, _CHUNK // f)
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        block = rng.standard_normal((hi - lo, f), dtype=np.float32)
        block *= np.float32(noise)
        block += means[labels[lo:hi]]
        x[lo:hi] = block

    graph = jraph.GraphsTuple(nodes=x, edges=None, senders=senders, receivers=receivers,
                              n_node=np.array([n], np.int32),
                              n_edge=np.array([senders.shape[0]], np.int32), globals=None)
    split = random_split(n, seed, (0.6, 0.2, 0.2))
    return Graph(graph=graph, labels=labels, num_classes=c, name=name, split=split)


_PARAMS = {k: p.default for k, p in inspect.signature(synthetic_graph).parameters.items()
           if k != "name"}


def _parse_int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        num = float(value)  # accepts 1e6
        if not np.isfinite(num) or num != int(num):
            raise
        return int(num)


def parse_synthetic_spec(spec: str) -> dict:
    """Parse ``"synthetic:nodes=1000,edges=20000,..."`` into keyword arguments of
    :func:`synthetic_graph`; an unknown key or a bad value raises :class:`ConfigError` naming it."""
    body = spec[len(SYNTHETIC_PREFIX):] if spec.startswith(SYNTHETIC_PREFIX) else spec
    out: dict = {}
    for item in filter(None, (s.strip() for s in body.split(","))):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq:
            raise ConfigError(key or item, "expected key=value", source=spec)
        if key not in _PARAMS:
            raise ConfigError(key, f"unknown synthetic-graph parameter; known: {', '.join(_PARAMS)}",
                              source=spec)
        default = _PARAMS[key]
        try:
            if isinstance(default, int):
                out[key] = _parse_int(value)
            else:
                out[key] = float(value)
        except (ValueError, OverflowError):
            kind = "an integer" if isinstance(default, int) else "a number"
            raise ConfigError(key, f"expected {kind}, got {value!r}", source=spec) from None
    return out


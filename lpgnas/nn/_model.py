"""Models built from an :class:`~lpgnas.arch.Architecture`: node classifiers and graph classifiers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lpgnas.arch import Architecture
from lpgnas.nn._layers import GNNLayer, activation, dropout
from lpgnas.nn._message import GraphArrays, pool_graphs
from lpgnas.nn._propagation import LinearLayer, make_propagation, propagate_output

__all__ = ["GNN"]


class GNN(nnx.Module):
    """The GNN an architecture describes.

    Node tasks: the layers in sequence (dropout before each), then a linear classifier only when the
    last layer's width differs from ``num_classes``; the logits (the last layer's ``output``
    component when it is the classifier) stay in full precision. Graph tasks: with ``arch.norm ==
    "batch"`` a batch norm after every layer but ``gin`` ones (whose MLP holds its own; padding
    nodes masked out of the statistics), before the activation; pooling (``arch.readout``) of every layer's output (and of the input when ``arch.jk``), one
    linear scorer per pooled representation, summed (the GIN read-out), or with ``arch.head > 0`` one
    MLP (:attr:`readout_mlp`: linear, ReLU, dropout, linear) on the pooled representations side by side.

    ``arch.propagation`` (node tasks): the output (after the classifier head, if any) is propagated
    K steps by :attr:`propagation` (a :class:`lpgnas.quant.SmoothPropagation`; APPNP with
    ``eta = 0``), its per-step quantisers from the ``propagate`` component of the config; the
    propagated logits stay in full precision. ``linear`` layers are :class:`LinearLayer` s.

    Call with ``(x, graph_arrays, training=..., key=..., protect=...)``; ``key`` drives dropout,
    ``protect`` is the Degree-Quant mask (``bool [N]``) or ``None``.
    """

    def __init__(self, arch: Architecture, in_dim: int, num_classes: int, *, quant=None,
                 num_nodes: int | None = None, rngs: nnx.Rngs):
        arch.validate()
        self.arch = arch
        quant = arch.quant if quant is None else quant
        self.num_classes = num_classes
        layers = []
        dim = in_dim
        dims = [in_dim]
        last = len(arch.layers) - 1
        for i, spec in enumerate(arch.layers):
            is_logits = arch.task == "node" and i == last and spec.out_dim() == num_classes
            cls = LinearLayer if spec.op == "linear" else GNNLayer
            layers.append(cls(spec, dim, layer_index=i, quant=quant, num_nodes=num_nodes,
                              quantize_output=not is_logits, rngs=rngs))
            dim = spec.out_dim()
            dims.append(dim)
        self.layers = nnx.List(layers)
        norms = None
        if arch.task == "graph" and arch.norm == "batch":
            norms = nnx.List([None if spec.op == "gin" else
                              nnx.BatchNorm(spec.out_dim(), momentum=0.9, epsilon=1e-5, rngs=rngs)
                              for spec in arch.layers])
        self.norms = norms
        if arch.task == "graph":
            readout_dims = dims if arch.jk else dims[-1:]
            if arch.head:
                self.scorers = None
                self.readout_mlp = nnx.List([nnx.Linear(sum(readout_dims), arch.head, rngs=rngs),
                                             nnx.Linear(arch.head, num_classes, rngs=rngs)])
            else:
                self.scorers = nnx.List([nnx.Linear(d, num_classes, rngs=rngs) for d in readout_dims])
                self.readout_mlp = None
            self.head = None
        else:
            self.scorers = None
            self.readout_mlp = None
            self.head = None if dim == num_classes else nnx.Linear(dim, num_classes, rngs=rngs)
        prop = None
        if arch.task == "node" and arch.propagation is not None:
            prop = make_propagation(arch, num_classes, quant=quant, num_nodes=num_nodes, rngs=rngs)
        self.propagation = nnx.data(prop)

    def __call__(self, x: jax.Array, ga: GraphArrays, *, training: bool = False, key: jax.Array | None = None,
                 protect: jax.Array | None = None) -> jax.Array:
        arch = self.arch
        n_layers = len(self.layers)
        keys = (list(jax.random.split(key, 2 * n_layers + 2)) if key is not None
                else [None] * (2 * n_layers + 2))
        h = x
        reps = [x]
        for i, layer in enumerate(self.layers):
            rate = arch.input_dropout if i == 0 else arch.dropout
            if arch.task == "node":
                h = dropout(h, rate, keys[2 * i], training)
            h = layer(h, ga, training=training, key=keys[2 * i + 1], protect=protect,
                      attn_dropout=arch.attn_dropout)
            if self.norms is not None and self.norms[i] is not None:
                h = self.norms[i](h, use_running_average=not training, mask=ga.node_mask[:, None])
            h = activation(layer.spec.activation, h)
            reps.append(h)
        if arch.task == "node":
            if self.head is not None:
                h = self.head(dropout(h, arch.dropout, keys[-1], training))
            if self.propagation is not None:
                h = propagate_output(self.propagation, h, ga, training=training, protect=protect)
            return h
        used = reps if arch.jk else reps[-1:]
        if self.readout_mlp is not None:
            pooled = jnp.concatenate([pool_graphs(rep, ga, arch.readout) for rep in used], axis=-1)
            hidden = jax.nn.relu(self.readout_mlp[0](pooled))
            return self.readout_mlp[1](dropout(hidden, arch.dropout, keys[-1], training))
        score = jnp.zeros((ga.num_graphs, self.num_classes), x.dtype)
        for j, (rep, scorer) in enumerate(zip(used, self.scorers)):
            pooled = pool_graphs(rep, ga, arch.readout)
            k = None if keys[-1] is None else jax.random.fold_in(keys[-1], j)
            score = score + dropout(scorer(pooled), arch.dropout, k, training)
        return score


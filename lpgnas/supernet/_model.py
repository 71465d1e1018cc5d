"""The :class:`Supernet`: every architecture of a search space in one relaxed, weight-sharing model."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import sparse as jsparse

from lpgnas._validate import finite_number
from lpgnas.nn import GraphArrays, SparseRows, dropout, pool_graphs
from lpgnas.search_spaces import SearchSpace, load_space
from lpgnas.supernet._layer import SuperLayer
from lpgnas.supernet._relax import ArchLogit, Relax, choice_probs
from lpgnas.supernet._slots import DECISIONS, SupernetPlan, plan_supernet

__all__ = ["SupernetConfig", "Supernet"]

_DEPTH_SALT = 7


@dataclasses.dataclass(frozen=True)
class SupernetConfig:
    """Regularisation of the supernet (copied into the derived architecture) and the logits'
    initialisation: ``N(0, init_scale^2)`` (tiny: the search starts from uniform choices).

    A graph task's read-out (pooling, batch norm, jumping knowledge) is part of the search space
    (its ``graph`` block, :class:`lpgnas.search_spaces.GraphReadout`), not of this configuration.
    """

    dropout: float = 0.5
    input_dropout: float = 0.5
    attn_dropout: float = 0.0
    init_scale: float = 1e-3

    def validate(self) -> "SupernetConfig":
        for name in ("dropout", "input_dropout", "attn_dropout"):
            finite_number(name, getattr(self, name), ge=0.0, lt=1.0)
        finite_number("init_scale", self.init_scale, ge=0.0)
        return self


class Supernet(nnx.Module):
    """All architectures of ``space`` in one model.

    Args:
      space: a :class:`~lpgnas.search_spaces.SearchSpace` (or a shipped name / YAML path).
      in_dim: input feature width. num_classes: number of classes.
      num_nodes: nodes of the transductive graph (per-node quantiser state), ``None`` for graph tasks.
      config: :class:`SupernetConfig`.

    Weights are ``nnx.Param``; every decision's logits are :class:`ArchLogit`. Call as
    ``net(x, graph_arrays, relax, training=..., key=...)``; ``relax`` is a :class:`Relax`.
    Depth: the deepest candidate is built; a hidden layer that some candidate depth leaves out is
    mixed with the identity, ``h <- q h_layer + (1 - q) h`` with ``q`` the probability that the
    depth includes it (node tasks: the classifier always follows the last included layer).

    Graph tasks read out as the space's ``graph`` block says: ``norm: batch`` puts a batch norm
    after every layer (before its activation; masked channels stay masked), ``jk`` pools the input
    and every layer position into a linear scorer each, the scores summed, a position's weighted by
    the probability that the depth includes it.
    """

    def __init__(self, space: SearchSpace | str, in_dim: int, num_classes: int, *, num_nodes: int | None = None,
                 config: SupernetConfig = SupernetConfig(), rngs: nnx.Rngs):
        space = load_space(space)
        config.validate()
        self.space = space
        self.config = config
        self.in_dim = int(in_dim)
        self.num_classes = int(num_classes)
        self.num_nodes = num_nodes
        plan = plan_supernet(space, num_classes)
        self.plan: SupernetPlan = plan
        head = space.readout
        graph_task = plan.task == "graph"
        # the read-out the derived architecture gets (Architecture.readout / norm / jk)
        self.readout = head.readout
        self.norm = head.norm if graph_task else "none"
        self.jk = graph_task and head.jk
        layers = []
        dim = in_dim
        dims = [dim]
        for slot in plan.slots:
            layers.append(SuperLayer(slot, dim, plan.quant, num_nodes=num_nodes, rngs=rngs,
                                     init_scale=config.init_scale, batch_norm=self.norm == "batch"))
            dim = slot.out_width
            dims.append(dim)
        self.layers = nnx.List(layers)
        depth_logits = None
        if len(plan.depths) > 1:
            depth_logits = ArchLogit(config.init_scale * jax.random.normal(rngs.params(), (len(plan.depths),),
                                                                            jnp.float32))
        self.alpha_depth = depth_logits
        scorers = None
        if plan.task == "graph":
            scorers = nnx.List([nnx.Linear(d, num_classes, rngs=rngs) for d in (dims if self.jk else dims[-1:])])
        self.scorers = scorers

    # -- probabilities -------------------------------------------------------------------------
    def depth_probs(self, relax: Relax) -> jax.Array:
        if self.alpha_depth is None:
            return jnp.ones((1,), jnp.float32)
        return choice_probs(self.alpha_depth[...], relax, _DEPTH_SALT)

    def active_probs(self, relax: Relax) -> list[jax.Array | None]:
        """Per layer position, the probability that the sampled depth includes it (``None``: always)."""
        p = self.depth_probs(relax)
        out = []
        for i in range(len(self.layers)):
            mask = self.plan.active_depths(i)
            out.append(None if all(mask) else jnp.sum(p * jnp.asarray(np.asarray(mask, np.float32))))
        return out

    # -- forward -------------------------------------------------------------------------------
    def __call__(self, x, ga: GraphArrays, relax: Relax = Relax(), *, training: bool = False,
                 key: jax.Array | None = None, protect: jax.Array | None = None) -> jax.Array:
        """``protect``: Degree-Quant's protective mask (``bool [N]``) of a training step, or ``None``."""
        if isinstance(x, SparseRows):
            x = x.to_bcoo()  # the supernet quantises a BCOO's stored values; same matrix, same draws
        cfg = self.config
        n_layers = len(self.layers)
        keys = list(jax.random.split(key, 2 * n_layers + 1)) if key is not None else [None] * (2 * n_layers + 1)
        active = self.active_probs(relax)
        node_task = self.plan.task == "node"
        h = x
        reps = [(x, None)]  # (representation, probability that the depth includes it)
        for i, layer in enumerate(self.layers):
            h_in = h
            if node_task:
                h = dropout(h, cfg.input_dropout if i == 0 else cfg.dropout, keys[2 * i], training, octets=True)
            out = layer(h, ga, relax, training=training, key=keys[2 * i + 1], attn_dropout=cfg.attn_dropout,
                        protect=protect)
            h = out if active[i] is None else active[i] * out + (1.0 - active[i]) * h_in
            reps.append((h, active[i]))
        if node_task:
            return h
        used = reps if self.jk else [(h, None)]
        score = None
        for j, ((rep, p), scorer) in enumerate(zip(used, self.scorers)):
            if isinstance(rep, jsparse.BCOO):
                rep = rep.todense()
            k = None if keys[-1] is None else jax.random.fold_in(keys[-1], j)
            term = dropout(scorer(pool_graphs(rep, ga, self.readout)), cfg.dropout, k, training, octets=True)
            term = term if p is None else p * term
            score = term if score is None else score + term
        return score

    # -- inspection ----------------------------------------------------------------------------
    def arch_logits(self) -> nnx.State:
        """The :class:`ArchLogit` state (every decision's logits)."""
        return nnx.state(self, ArchLogit)

    def choices(self) -> dict:
        """The argmax choice of every decision, as plain JSON values:
        ``{"depth": d, "layers": [{"attention": ..., ..., "bits": {"weight": "affine4", ...}}]}``
        (one entry per supernet layer position)."""
        depth = self.plan.depths[int(np.argmax(np.asarray(self.alpha_depth[...])))] if self.alpha_depth is not None \
            else self.plan.depths[0]
        layers = []
        for layer in self.layers:
            entry = {}
            for name in DECISIONS:
                opts = layer.slot.options(name)
                logit = getattr(layer, f"alpha_{name}")
                entry[name] = opts[0] if logit is None else opts[int(np.argmax(np.asarray(logit[...])))]
            entry["bits"] = {}
            for comp in layer.components:
                opt = layer.quantizer(comp).choice()
                entry["bits"][comp] = "fp32" if opt.method == "fp32" else f"{opt.method}{opt.bits}"
            layers.append(entry)
        return {"depth": depth, "layers": layers}


"""Derivation: the argmax of every decision -> an :class:`~lpgnas.arch.Architecture` whose ``quant``
is a :class:`~lpgnas.quant.QuantConfig` with the chosen format and bits per layer and component.

Layers are ``op="attn"`` with the chosen attention, aggregator, activation, width, heads and skip,
except where the choice is exactly a baseline layer: ``gat`` attention with ``add`` aggregation is
written ``op="gat"``; ``gcn`` attention with ``add`` aggregation, one head and an unquantised
``attention`` component is written ``op="gcn"`` (``lpgnas.nn.GNNLayer`` computes the same function
for both spellings; the baseline names make the JSON easier to read).
"""

from __future__ import annotations

from typing import Any, Mapping

from lpgnas import quant as Q
from lpgnas.arch import Architecture, LayerSpec
from lpgnas.supernet._mixed import option_spec
from lpgnas.supernet._slots import DECISIONS

__all__ = ["derive"]


def _op(choice: dict, attention_spec) -> str:
    if choice["attention"] == "gat" and choice["aggregator"] == "add":
        return "gat"
    if (choice["attention"] == "gcn" and choice["aggregator"] == "add" and choice["heads"] == 1
            and (attention_spec is None or attention_spec.is_fp32)):
        return "gcn"
    return "attn"


def derive(net, *, search: Mapping[str, Any] | None = None) -> Architecture:
    """The architecture ``net`` (a :class:`~lpgnas.supernet.Supernet`) currently prefers.

    ``search``: provenance stored in ``Architecture.search`` (space, dataset, lambda, seed, metrics).
    """
    plan = net.plan
    cfg = net.config
    choices = net.choices()
    depth = choices["depth"]
    layers = []
    overrides = []
    for j, pos in enumerate(plan.derived_positions(depth)):
        layer = net.layers[pos]
        choice = {name: choices["layers"][pos][name] for name in DECISIONS}
        specs = {}
        for comp in layer.components:
            spec = option_spec(layer.quantizer(comp).choice(), comp)
            specs[comp] = spec
            if not spec.is_fp32:
                overrides.append(Q.Override(spec, layer=j, component=comp))
        layers.append(LayerSpec(
            op=_op(choice, specs.get("attention")),
            hidden=int(choice["hidden"]),
            heads=int(choice["heads"]),
            concat=layer.slot.concat,
            attention=choice["attention"],
            aggregator=choice["aggregator"],
            activation=choice["activation"],
            skip=bool(choice["skip"]),
        ))
    quant = None
    if overrides:
        dq = net.space.degree_quant  # the masking the search trained under, for the retraining too
        quant = Q.QuantConfig(default=Q.QuantSpec("fp32", 32), overrides=tuple(overrides), name="lpgnas-search",
                              dq=None if dq is None else dq.settings())
    return Architecture(
        layers=tuple(layers),
        task=plan.task,
        dropout=cfg.dropout,
        input_dropout=cfg.input_dropout if plan.task == "node" else 0.0,
        attn_dropout=cfg.attn_dropout,
        norm=net.norm,
        readout=net.readout,
        jk=net.jk,
        quant=quant,
        search=dict(search) if search is not None else None,
    ).validate()

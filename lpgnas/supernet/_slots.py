"""From a :class:`~lpgnas.search_spaces.SearchSpace` to the static plan of a supernet: the candidate
values of every decision of every layer position (a :class:`Slot`) and the candidate depths."""

from __future__ import annotations

import dataclasses

from lpgnas.arch import SOFTMAX_ATTENTIONS
from lpgnas.errors import ConfigError
from lpgnas.search_spaces import QuantChoices, SearchSpace

__all__ = ["Slot", "SupernetPlan", "plan_supernet", "DECISIONS", "SOFTMAX_ATTENTIONS"]

DECISIONS = ("attention", "aggregator", "activation", "hidden", "heads", "skip")
_SUPPORTED_OPS = ("attn", "gcn", "gat")


@dataclasses.dataclass(frozen=True)
class Slot:
    """Candidates of one supernet layer position. ``concat=False`` marks the node classifier
    (its heads are averaged and its width is the number of classes)."""

    index: int
    attention: tuple[str, ...]
    aggregator: tuple[str, ...]
    activation: tuple[str, ...]
    hidden: tuple[int, ...]
    heads: tuple[int, ...]
    skip: tuple[bool, ...]
    concat: bool = True

    def options(self, decision: str) -> tuple:
        return getattr(self, decision)

    @property
    def max_width(self) -> int:
        """Width of the supernet tensors of this layer (``max heads * max hidden``)."""
        return max(self.heads) * max(self.hidden)

    @property
    def out_width(self) -> int:
        return self.max_width if self.concat else max(self.hidden)


@dataclasses.dataclass(frozen=True)
class SupernetPlan:
    """The static plan: task, candidate depths, one :class:`Slot` per layer position (the deepest
    candidate), the quantised components and their candidates."""

    task: str
    depths: tuple[int, ...]
    slots: tuple[Slot, ...]
    quant: tuple[QuantChoices, ...]
    space_name: str

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    def active_depths(self, position: int) -> tuple[bool, ...]:
        """For each candidate depth, whether the layer at ``position`` is part of it (node tasks:
        the last position, the classifier, always is)."""
        last = len(self.slots) - 1
        if self.task == "node":
            if position == last:
                return tuple(True for _ in self.depths)
            return tuple(d - 1 > position for d in self.depths)
        return tuple(d > position for d in self.depths)

    def derived_positions(self, depth: int) -> tuple[int, ...]:
        """Supernet positions making up a model of ``depth`` layers, in order."""
        if self.task == "node":
            return tuple(range(depth - 1)) + (len(self.slots) - 1,)
        return tuple(range(depth))


def plan_supernet(space: SearchSpace, num_classes: int) -> SupernetPlan:
    """Resolve ``space`` into a :class:`SupernetPlan` (raises :class:`ConfigError` for what the
    differentiable supernet cannot represent)."""
    if space.degree_buckets:
        raise ConfigError("degree_buckets", "the differentiable supernet searches one bit width per layer and "
                                            "component; in-degree buckets are not supported (use a space "
                                            "without degree_buckets)")
    depths = tuple(sorted(set(space.num_layers)))
    if space.task == "node" and min(depths) < 2:
        raise ConfigError("num_layers", "node-task supernets need at least 2 layers (a hidden layer and the "
                                        "classifier)")
    slots = []
    if space.layer is not None:
        lc = space.layer
        bad = [op for op in lc.op if op not in _SUPPORTED_OPS]
        if bad:
            raise ConfigError("layer.op", f"the supernet searches attention layers ({', '.join(_SUPPORTED_OPS)}); "
                                          f"{bad[0]!r} is not supported")
        attention = list(lc.attention)
        for op in lc.op:  # gcn / gat layers are attention layers with a fixed attention type
            if op in ("gcn", "gat") and op not in attention:
                attention.append(op)
        d = max(depths)
        for i in range(d):
            classifier = space.task == "node" and i == d - 1
            slots.append(Slot(
                index=i,
                attention=tuple(attention),
                aggregator=tuple(lc.aggregator),
                activation=("none",) if classifier else tuple(lc.activation),
                hidden=(int(num_classes),) if classifier else tuple(sorted(lc.hidden)),
                heads=tuple(sorted(lc.heads)),
                skip=tuple(lc.skip),
                concat=not classifier,
            ))
    else:
        if space.fixed.model not in ("gcn", "gat"):
            raise ConfigError("fixed.model", f"the supernet supports fixed gcn and gat topologies, not "
                                              f"{space.fixed.model!r}")
        base = space.base_architecture(num_classes if space.task == "node" else None)
        for i, spec in enumerate(base.layers):
            slots.append(Slot(index=i, attention=(spec.op,), aggregator=("add",), activation=(spec.activation,),
                              hidden=(spec.hidden,), heads=(spec.heads,), skip=(spec.skip,),
                              concat=spec.concat))
    plan = SupernetPlan(task=space.task, depths=depths, slots=tuple(slots), quant=tuple(space.quant),
                        space_name=space.name)
    for i in range(1, len(plan.slots)):
        if not all(plan.active_depths(i)) and plan.slots[i].out_width != plan.slots[i - 1].out_width:
            raise ConfigError("num_layers", f"layer {i} can be skipped but its width differs from layer {i - 1}")
    return plan

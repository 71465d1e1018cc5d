"""The LPGNAS supernet: every architecture and per-component quantisation of a search space in one
relaxed, weight-sharing model.

* :class:`ArchLogit` -- the variable type of architecture and quantisation logits (weights stay
  ``nnx.Param``; split them with ``nnx.split(net, nnx.Param, ArchLogit, ...)``);
* :class:`Relax` / :func:`choice_probs` / :func:`temperature_at` -- softmax or Gumbel-softmax
  relaxation (optionally hard, straight-through) with a traced temperature;
* :class:`Supernet` -- mixed ops per layer (attention, aggregator, activation, width, heads, skip,
  depth) with one shared max-width kernel, and :class:`MixedQuantizer` per layer and component;
* :func:`expected_cost` / :func:`reference_cost` / :func:`architecture_cost` -- differentiable
  expected model size, feature memory and BitOPs (on :mod:`lpgnas.cost`), and exact costs;
* :func:`derive` -- argmax per decision -> :class:`~lpgnas.arch.Architecture` with its ``QuantConfig``.
"""

from lpgnas.supernet._cost import COST_TARGETS, ExpectedCost, architecture_cost, expected_cost, reference_cost
from lpgnas.supernet._derive import derive
from lpgnas.supernet._layer import SuperLayer
from lpgnas.supernet._mixed import COMPONENT_KINDS, MixedQuantizer, option_bits, option_spec
from lpgnas.supernet._model import Supernet, SupernetConfig
from lpgnas.supernet._relax import ArchLogit, Relax, choice_probs, temperature_at
from lpgnas.supernet._slots import DECISIONS, Slot, SupernetPlan, plan_supernet

__all__ = [
    "ArchLogit",
    "COMPONENT_KINDS",
    "COST_TARGETS",
    "DECISIONS",
    "ExpectedCost",
    "MixedQuantizer",
    "Relax",
    "Slot",
    "SuperLayer",
    "Supernet",
    "SupernetConfig",
    "SupernetPlan",
    "architecture_cost",
    "choice_probs",
    "derive",
    "expected_cost",
    "option_bits",
    "option_spec",
    "plan_supernet",
    "reference_cost",
    "temperature_at",
]

"""Quantisers for every component of a GNN (see ``lpgnas.quant`` docs in README)."""

from lpgnas.quant._context import Identity, QuantContext, Quantizer, identity

__all__ = ["Identity", "QuantContext", "Quantizer", "identity"]

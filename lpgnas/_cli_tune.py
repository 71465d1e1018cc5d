"""``lpgnas tune``: Ray Tune backends (differentiable LPGNAS sweeps, SGQuant automatic bit selection)."""

from __future__ import annotations

import argparse

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register the ``tune`` subcommand (placeholder until the backends land)."""

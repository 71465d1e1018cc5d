"""``lpgnas pareto`` and ``lpgnas export``: Pareto fronts of tune runs and the export of one model."""

from __future__ import annotations

import argparse

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register the ``pareto`` and ``export`` subcommands (placeholder until they land)."""

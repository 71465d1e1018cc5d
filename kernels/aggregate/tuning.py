"""Block sizes of the packed aggregation kernels, keyed by ``(bits, feature bucket, flavour)``.

The entries are starting points chosen from the backends' documented rules, not measurements:
Triton wants power-of-two blocks, and a ``[block_rows, block_features]`` float32 accumulator of at most
~8K elements keeps register pressure sane at 4 warps; Mosaic (TPU) wants the row block to be a
multiple of 8 sublanes. Re-tune on hardware with ``python -m lpgnas.kernels.bench``.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["BlockConfig", "feature_bucket", "lookup", "TABLE", "DEFAULT"]


class BlockConfig(NamedTuple):
    block_rows: int
    block_features: int  # features per program (GPU); ignored by the TPU kernel (whole rows)
    num_warps: int = 4
    num_stages: int = 2


DEFAULT = {
    "gpu": BlockConfig(block_rows=16, block_features=128),
    "tpu": BlockConfig(block_rows=8, block_features=0),
}

# (bits, feature bucket, flavour) -> config
TABLE: dict[tuple[int, str, str], BlockConfig] = {
    # narrow rows: more rows per program to keep the gather loads busy
    **{(b, "<=64", "gpu"): BlockConfig(32, 64) for b in (1, 2, 4, 8)},
    **{(b, "<=256", "gpu"): BlockConfig(16, 128) for b in (1, 2, 4, 8)},
    # wide rows: tile the features, fewer rows
    **{(b, ">256", "gpu"): BlockConfig(8, 256, num_warps=8) for b in (1, 2, 4)},
    (8, ">256", "gpu"): BlockConfig(8, 128),
    **{(b, fb, "tpu"): BlockConfig(8, 0) for b in (1, 2, 4, 8) for fb in ("<=64", "<=256", ">256")},
}


def feature_bucket(num_features: int) -> str:
    if num_features <= 64:
        return "<=64"
    if num_features <= 256:
        return "<=256"
    return ">256"


def lookup(bits: int, num_features: int, flavour: str) -> BlockConfig:
    """The table entry for ``(bits, feature_bucket(num_features), flavour)``, else the default."""
    return TABLE.get((bits, feature_bucket(num_features), flavour), DEFAULT[flavour])

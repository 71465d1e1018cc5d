"""Settings of one differentiable search round (:class:`SearchConfig`)."""

from __future__ import annotations

import dataclasses
import math

from lpgnas.errors import ConfigError
from lpgnas.supernet import COST_TARGETS, SupernetConfig

__all__ = ["SearchConfig"]


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """One bilevel search round.

    epochs: search epochs (each: one weight update on the training split, then one logit update on
      the validation split). lam: weight of the normalised expected cost in the logit loss.
    cost: ``size`` (model size), ``buffer`` (feature memory) or ``bitops``.
    gumbel / hard: Gumbel-softmax relaxation; straight-through one-hot forward.
    t_start / t_end: temperature, exponential from ``t_start`` to ``t_end`` over the search epochs.
    lr / weight_decay: Adam on the weights (decay on the kernels). arch_lr / arch_weight_decay:
      Adam (``b1 = 0.5``) on the logits.
    warmup: first epochs with weight updates only. finetune: epochs after the search that train
      the derived (argmax) sub-network's shared weights only; the summary's ``val_acc``/``test_acc``
      are its validation-selected accuracies.
    chunk: epochs per compiled call (node tasks). checkpoint_every: epochs between checkpoints.
    batch_size: graphs per batch (graph tasks). supernet: :class:`~lpgnas.supernet.SupernetConfig`.
    """

    epochs: int = 300
    lam: float = 0.1
    cost: str = "size"
    gumbel: bool = False
    hard: bool = False
    t_start: float = 1.0
    t_end: float = 0.1
    seed: int = 0
    lr: float = 0.01
    weight_decay: float = 5e-4
    arch_lr: float = 0.01
    arch_weight_decay: float = 0.0
    warmup: int = 0
    finetune: int = 50
    chunk: int = 10
    checkpoint_every: int = 50
    batch_size: int = 32
    supernet: SupernetConfig = SupernetConfig()

    def validate(self) -> "SearchConfig":
        for name in ("epochs", "chunk", "checkpoint_every", "batch_size", "finetune"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(name, f"must be a positive integer, got {v!r}")
        for name in ("warmup", "seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError(name, f"must be a non-negative integer, got {v!r}")
        if not _number(self.lam) or self.lam < 0:
            raise ConfigError("lambda", f"must be a finite number >= 0, got {self.lam!r}")
        if self.cost not in COST_TARGETS:
            raise ConfigError("cost", f"unknown cost target {self.cost!r}; allowed: {', '.join(COST_TARGETS)}")
        for name in ("t_start", "t_end", "lr", "arch_lr"):
            v = getattr(self, name)
            if not _number(v) or v <= 0:
                raise ConfigError(name, f"must be a finite number > 0, got {v!r}")
        for name in ("weight_decay", "arch_weight_decay"):
            v = getattr(self, name)
            if not _number(v) or v < 0:
                raise ConfigError(name, f"must be a finite number >= 0, got {v!r}")
        for name in ("gumbel", "hard"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, f"must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.supernet, SupernetConfig):
            raise ConfigError("supernet", "must be a SupernetConfig")
        self.supernet.validate()
        return self

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.finetune

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["lambda"] = out.pop("lam")
        return out

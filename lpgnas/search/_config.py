"""Settings of one differentiable search round (:class:`SearchConfig`)."""

from __future__ import annotations

import dataclasses

from lpgnas._validate import finite_number, non_negative_int, positive_int
from lpgnas.data import check_node_split
from lpgnas.errors import ConfigError
from lpgnas.supernet import COST_TARGETS, SupernetConfig

__all__ = ["SearchConfig"]


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
    batch_size: graphs per batch (graph tasks). num_buckets: graph tasks, the padded batch shapes
      (:func:`lpgnas.data.make_buckets`; each is compiled once): one pads every batch to the worst
      case, which for sets with a few large graphs (PROTEINS) is several times the typical batch.
    supernet: :class:`~lpgnas.supernet.SupernetConfig`.
    split: node tasks, the train/val/test split the search uses (``public``, ``random`` 60/20/20 or
      ``per-class`` 20/30, :func:`lpgnas.data.node_split`; ``None``: public where the dataset has
      one, else random, as ``lpgnas train``). split_seed: seed of a random / per-class split
      (``None``: ``seed``, so a search is reproducible from its seed). Graph tasks leave both ``None``
      (fold 0 of 10 stratified folds).
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
    num_buckets: int = 3
    supernet: SupernetConfig = SupernetConfig()
    split: str | None = None
    split_seed: int | None = None

    def validate(self) -> "SearchConfig":
        for name in ("epochs", "chunk", "checkpoint_every", "batch_size", "num_buckets", "finetune"):
            positive_int(name, getattr(self, name))
        for name in ("warmup", "seed"):
            non_negative_int(name, getattr(self, name))
        finite_number("lambda", self.lam, ge=0)
        if self.cost not in COST_TARGETS:
            raise ConfigError("cost", f"unknown cost target {self.cost!r}; allowed: {', '.join(COST_TARGETS)}")
        for name in ("t_start", "t_end", "lr", "arch_lr"):
            finite_number(name, getattr(self, name), gt=0)
        for name in ("weight_decay", "arch_weight_decay"):
            finite_number(name, getattr(self, name), ge=0)
        for name in ("gumbel", "hard"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, f"must be true or false, got {getattr(self, name)!r}")
        if self.split is not None:
            check_node_split(self.split)
        if self.split_seed is not None:
            non_negative_int("split_seed", self.split_seed)
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

"""Training data: the train/validation split, a sampler that is distributed and resumable, and the baselines.

The order of an epoch is a function of (seed, epoch) alone, and each sample's augmentation a function of (seed,
epoch, index): a run on N processes sees the same samples per epoch as on one, and a resumed run continues
exactly where the interrupted one stopped — mid-epoch too, and on another number of processes.
"""
from __future__ import annotations

import math
import os
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, Subset

from ..data import SkipBad, build_dataset, collate
from ..data.transforms import build_eval_transform, build_train_transform
from ..errors import DepthforgeError
from ..recipe import Recipe


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's augmentation in one epoch (independent of workers and processes)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def step_seed(seed: int, step: int) -> int:
    """The seed of the in-model randomness (dropout, drop-path) of one optimiser step."""
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


class EpochSampler(Sampler):
    """Positions into a list of ``n`` samples for one epoch, this process's share.

    ``shuffle``: a permutation drawn from (seed, epoch); else 0..n-1. Process ``rank`` of ``world`` takes every
    world-th position. For training (``pad``) the order is padded by wrapping so every process gets the same
    number of batches (DDP steps together); validation is not padded, so each sample counts once. Training
    yields (position, augmentation seed) pairs.

    ``consumed`` counts the samples (all processes together) whose step has run this epoch; ``state_dict`` /
    ``load_state_dict`` carry it, so a resumed epoch skips them — on any number of processes.
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world: int = 1,
                 pad: bool = True, seeded: bool = True):
        self.n, self.seed, self.shuffle, self.rank, self.world = n, int(seed), shuffle, rank, world
        self.pad, self.seeded = pad, seeded
        self.epoch, self.consumed = 0, 0
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def __len__(self) -> int:
        # the full epoch, also when resuming mid-epoch: Lightning sizes the schedule and progress from it
        if self.pad:
            return math.ceil(self.n / self.world)
        return len(range(self.rank, self.n, self.world))

    def __iter__(self) -> Iterator[Any]:
        full = self._order()
        order = self._padded(full)
        skip = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            skip = min(self._resume[1], len(order))
        self._resume = None
        self.consumed = skip
        # pad before skipping: the padding then depends on (seed, epoch) only, so a resumed epoch ends with the
        # samples an unbroken one ends with (padding the remainder would wrap from wherever the resume began)
        order = order[skip:]
        if self.pad and len(order) % self.world:  # resumed on another number of processes
            order = (order + full * self.world)[:math.ceil(len(order) / self.world) * self.world]
        mine = order[self.rank::self.world]
        if self.seeded:
            return iter([(i, sample_seed(self.seed, self.epoch, i)) for i in mine])
        return iter(mine)

    def _padded(self, order: list[int]) -> list[int]:
        """``order`` wrapped to a multiple of ``world`` when training (every process takes as many batches)."""
        if not self.pad or not order:
            return order
        total = math.ceil(len(order) / self.world) * self.world
        return (order * math.ceil(total / len(order)))[:total]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = (int(state["epoch"]), int(state["consumed"]))


class ResumableLoader(DataLoader):
    """A DataLoader whose position in the epoch is saved in checkpoints (Lightning calls these two methods)."""

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.load_state_dict(state)


class Split(torch.utils.data.Dataset):
    """Samples ``positions`` of a SkipBad dataset; an item (position, seed) seeds the transform's draws."""

    def __init__(self, source: SkipBad, indices: list[int], transform):
        self.source, self.indices, self.transform = source, indices, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item):
        pos, seed = item if isinstance(item, tuple) else (item, None)
        sample = self.source[self.indices[pos]]
        return None if sample is None else self.transform(sample, seed)


def make_splits(recipe: Recipe) -> tuple[SkipBad, Split, Split | None]:
    """(the whole training split behind one skip counter, train part, validation part) — the validation share
    (``data.val_fraction``) drawn with the run's seed."""
    full = SkipBad(build_dataset(recipe.data.spec(recipe.size), split="train"))
    n_val = int(round(len(full) * recipe.data.val_fraction))
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(recipe.seed)).tolist()
    train = Split(full, order[n_val:], build_train_transform(recipe.augment.model_dump(), recipe.size))
    val = Split(full, order[:n_val], build_eval_transform(recipe.size)) if n_val else None
    if len(train) == 0:
        raise DepthforgeError(f"data: the training split of {recipe.data.name!r} is empty")
    return full, train, val


def worker_count(setting: int | str, world: int = 1) -> int:
    """Loader processes per training process: an explicit count as given; "auto" leaves each of the ``world``
    training processes one of the CPUs this process may run on and gives it the rest of its share (up to 8),
    so a 2-core machine does not start more workers than it has cores."""
    if setting != "auto":
        return int(setting)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cpus // max(1, world) - 1))


def make_loader(ds: Split, recipe: Recipe, train: bool, rank: int = 0, world: int = 1) -> ResumableLoader:
    t = recipe.train
    sampler = EpochSampler(len(ds), recipe.seed, shuffle=train, rank=rank, world=world, pad=train, seeded=train)
    workers = worker_count(t.num_workers, world)
    return ResumableLoader(ds, batch_size=t.batch_size, sampler=sampler, num_workers=workers,
                           collate_fn=collate, persistent_workers=workers > 0)


def training_baselines(train: Split, recipe: Recipe, max_samples: int = 2000) -> dict[str, Any]:
    """The two trivial predictors evaluation reports beside a model, fitted on (up to ``max_samples`` of) the
    training part: one constant depth (the mean valid depth) and the per-pixel mean depth map at the training
    size."""
    size = recipe.size
    plain = Split(train.source, train.indices, build_eval_transform(size))
    if len(plain) > max_samples:  # a fixed spread of samples: the mean settles long before 50k frames
        step = len(plain) / max_samples
        plain = Subset(plain, [int(i * step) for i in range(max_samples)])
    total = torch.zeros(1, *size, dtype=torch.float64)
    count = torch.zeros(1, *size, dtype=torch.float64)
    loader = DataLoader(plain, batch_size=recipe.train.batch_size,
                        num_workers=worker_count(recipe.train.num_workers), collate_fn=collate)
    for batch in loader:
        if batch is None:
            continue
        total += (batch["depth"] * batch["valid"]).sum(0).double()
        count += batch["valid"].sum(0).double()
    if count.sum() == 0:
        raise DepthforgeError("data: the training split has no valid depth pixel")
    constant = float(total.sum() / count.sum())
    mean_map = torch.where(count > 0, total / count.clamp(min=1), torch.tensor(constant, dtype=torch.float64))
    return {"constant": constant, "mean_map": mean_map[0].float()}

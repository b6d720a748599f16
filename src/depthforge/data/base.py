"""The dataset registry (by name, or detected from a path) and the loader plumbing that keeps a bad file from
stopping an epoch: ``SkipBad`` and ``collate``. Every format module registers itself here."""
from __future__ import annotations

import copy
import inspect
import logging
import multiprocessing
import os
from multiprocessing.context import get_spawning_popen
from pathlib import Path
from typing import Any, Callable

from torch.utils.data import Dataset, default_collate

from ..errors import DepthforgeError
from ..registry import Registry

log = logging.getLogger(__name__)

DATASETS = Registry("dataset")
# The protocol of a dataset without its own (synthetic scenes, a folder of files): the full image, 10 m cap.
GENERIC_PROTOCOLS = {"none": ("none", 1e-3, 10.0)}
DATA_ROOT_ENV = "DEPTHFORGE_DATA"  # the data root holding the benchmark sets' folders (``benchmark_spec``)


def register(name: str, detect: Callable[[Path], bool] | None = None,
             protocols: dict[str, tuple[str, float, float]] | None = None, benchmark: dict[str, Any] | None = None):
    """Class/function decorator adding a dataset factory ``factory(split=..., **options)`` under ``name``, with
    its facts: ``detect(path)`` tells whether a path holds this format (tried in registration order), and
    ``protocols`` maps each protocol it is evaluated with to (crop "eigen"|"garg"|"none", min depth, max depth)
    in metres: the valid depth range; the first is its default (see ``default_protocol``).

    ``benchmark`` marks a zero-shot benchmark set that ``depthforge benchmark`` finds under a data root:
    ``{"folder": name of its folder under the root, "split": split to evaluate, **options for the factory}``."""

    def wrap(factory):
        DATASETS.register(name, factory, detect=detect, protocols=dict(protocols or {}), benchmark=benchmark)
        return factory

    return wrap


def benchmark_spec(name: str, root: str | os.PathLike) -> tuple[dict[str, Any], str]:
    """(dataset spec, split) of benchmark set ``name`` under the data root ``root``, from its ``benchmark``
    fact: ``{"name": name, "root": ROOT/FOLDER, **options}``."""
    fact = dict(DATASETS.info[name]["benchmark"])
    folder = Path(root) / fact.pop("folder")
    split = fact.pop("split", "test")
    return {"name": name, "root": str(folder), **fact}, split


def protocols() -> dict[str, tuple[str, float, float]]:
    """Every protocol name -> (crop, min depth, max depth): the generic ones, then each dataset's."""
    out = dict(GENERIC_PROTOCOLS)
    for info in DATASETS.info.values():
        out.update(info.get("protocols", {}))
    return out


def default_protocol(name: str | None) -> str | None:
    """The protocol a registered dataset is evaluated with unless told (None: it has none of its own)."""
    own = DATASETS.info.get(name, {}).get("protocols") if name else None
    return next(iter(own)) if own else None


def detect_format(root: str | os.PathLike) -> str:
    path = Path(root)
    if not path.exists():
        raise DepthforgeError(f"{path}: dataset not found")
    detectors = {n: i["detect"] for n, i in DATASETS.info.items() if i.get("detect") is not None}
    for name, detect in detectors.items():
        if detect(path):
            return name
    raise DepthforgeError(f"{path}: no known dataset layout found (known: {', '.join(detectors)})")


def build_dataset(spec: str | os.PathLike | dict[str, Any], split: str = "test", **overrides: Any) -> Dataset:
    """Build a dataset split.

    ``spec`` is a dict ``{"name": ..., **options}`` (as in a config's ``data:`` section), a registered name
    (``"synth"``), or a path whose layout is detected. ``name: auto`` with ``root`` also detects.
    """
    if isinstance(spec, (str, os.PathLike)):
        spec = {"name": str(spec)} if str(spec) in DATASETS else {"name": "auto", "root": str(spec)}
    options = {**spec, **overrides}
    name = options.pop("name", "auto")
    if name == "auto":
        if not options.get("root"):
            raise DepthforgeError("data: 'name: auto' needs a 'root' path")
        name = detect_format(options["root"])
    DATASETS.get_factory(name)  # one line for an unknown name, before paths are checked
    root = options.get("root")
    if root is not None and not Path(root).exists():
        raise DepthforgeError(f"{root}: dataset not found (data.root of dataset {name!r})")
    if not _takes(DATASETS.get_factory(name), "size"):
        options.pop("size", None)  # the size synthetic scenes render at; file datasets keep their own
    return DATASETS.build(name, split=split, **options)


def _takes(factory: Callable, key: str) -> bool:
    params = inspect.signature(factory).parameters
    return key in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class SkipBad(Dataset):
    """Wraps a dataset so that a sample whose files are missing or unreadable becomes None (and is counted)
    instead of raising; ``collate`` drops the Nones. Training then goes on with a warning and a count.

    The count is shared with DataLoader workers (a byte per sample in shared memory): ``num_skipped`` in the
    main process counts the samples any worker skipped, and each bad sample is logged once per run.
    """

    def __init__(self, dataset: Dataset, transform: Callable[[dict], dict] | None = None):
        self.dataset, self.transform = dataset, transform
        self.skipped: set[int] = set()  # the ones this process met
        try:
            self._flags = multiprocessing.RawArray("B", max(len(dataset), 1))
        except OSError:  # no shared memory here: count per process
            self._flags = None

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def num_skipped(self) -> int:
        """How many distinct samples were skipped so far, in this process and its DataLoader workers."""
        if self._flags is None:
            return len(self.skipped)
        return bytes(self._flags).count(1)

    def _first_time(self, i: int) -> bool:
        if i in self.skipped:
            return False
        self.skipped.add(i)
        if self._flags is None:
            return True
        seen, self._flags[i] = self._flags[i], 1
        return not seen

    def __getitem__(self, item: int | tuple[int, int]):
        """``item``: an index, or (index, seed) for the transform's random draws."""
        i, seed = item if isinstance(item, tuple) else (item, None)
        try:
            sample = self.dataset[i]
            # a sample scored by annotated point pairs (DA-2K) has no depth to be valid
            if "pairs" not in sample and not bool(sample["valid"].any()):
                raise DepthforgeError(f"{sample['name']}: depth map has no valid pixel")
        except DepthforgeError as e:
            if self._first_time(i):
                log.warning("skipping sample %d: %s", i, e)
            return None
        return self.transform(sample, seed) if self.transform else sample

    def with_transform(self, transform: Callable[[dict], dict] | None) -> "SkipBad":
        """The same samples under another transform, sharing the record of skipped ones (so each is warned once)."""
        other = copy.copy(self)
        other.transform = transform
        return other

    def __getstate__(self):
        state = dict(self.__dict__)
        if get_spawning_popen() is None:  # shared memory travels only to workers being started
            state["_flags"] = None
        return state


def collate(batch: list[dict | None]) -> dict | None:
    """default_collate over the samples that loaded; None when none of them did."""
    batch = [b for b in batch if b is not None]
    return default_collate(batch) if batch else None

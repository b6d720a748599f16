"""data/: files -> samples. Datasets by name, and the loader plumbing that keeps a bad file from stopping an epoch.

A dataset is a torch Dataset of sample dicts (see ``sample.make_sample``) at the files' native size;
``build_dataset`` picks one by name (``synth``, ``folder``, ...) or detects it from a path. A new format is one
module whose ``register`` call carries its facts (detector, protocols with their depth range) plus its name in
the import line below: evaluation and recipes read those facts from the registry.
"""
from __future__ import annotations

from .base import DATASETS, SkipBad, build_dataset, collate, default_protocol, detect_format, protocols, register
from .sample import make_sample
# frames and tum first: their folders also look like a ``folder`` dataset, and detection tries formats in order
from . import frames, tum, folder, ibims, kitti, nyu, synth  # noqa: E402,F401  (formats register themselves)

__all__ = ["DATASETS", "build_dataset", "detect_format", "register", "protocols", "default_protocol", "make_sample",
           "SkipBad", "collate"]

"""data/: files -> samples. Datasets by name, and the loader plumbing that keeps a bad file from stopping an epoch.

A dataset is a torch Dataset of sample dicts (see ``sample.make_sample``) at the files' native size;
``build_dataset`` picks one by name (``synth``, ``folder``, ...) or detects it from a path. A new format is one
module whose ``register`` call carries its facts (detector, protocols with their depth range) plus its name in
the import line below: evaluation and recipes read those facts from the registry.
"""
from __future__ import annotations

from .base import DATA_ROOT_ENV, DATASETS, SkipBad, benchmark_spec, build_dataset, collate, default_protocol, \
    detect_format, protocols, register
from .sample import make_sample
# Specific layouts first: detection tries formats in this order, and the generic folder reader would also claim
# some of them (ETH3D's rgb/ + depth/, DIODE's NAME.png + NAME_depth.npy, frames + pose.txt, TUM's lists).
from . import eth3d, diode, scannet, sintel, hypersim, da2k, moge, frames, tum  # noqa: E402,F401
from . import folder, ibims, kitti, nyu, realdata, synth  # noqa: E402,F401  (formats register themselves)

__all__ = ["DATASETS", "DATA_ROOT_ENV", "benchmark_spec", "build_dataset", "detect_format", "register", "protocols",
           "default_protocol", "make_sample", "SkipBad", "collate"]

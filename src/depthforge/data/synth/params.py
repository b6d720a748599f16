"""Scene parameters as plain Python numbers, and the ray-hit tolerance shared by every shape."""
from __future__ import annotations

from dataclasses import fields

import numpy as np

EPS = 1e-4  # smallest ray parameter counted as a hit


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.number))


class Params:
    """Turns numeric dataclass fields into Python numbers (vectors into tuples): NumPy float64 scalars would
    turn every per-pixel float32 operation they touch into float64."""

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.number):
                setattr(self, f.name, v.item())
            elif isinstance(v, (tuple, list, np.ndarray)) and np.ndim(v) == 1 and all(_is_number(x) for x in v):
                setattr(self, f.name, tuple(x.item() if isinstance(x, np.number) else x for x in v))

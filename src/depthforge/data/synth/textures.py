"""Albedo patterns fixed in object coordinates (plain, stripes, checker, noise) and the palettes the random
rooms draw them from."""
from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from ...errors import DepthforgeError
from .params import Params

_LATTICE = np.random.default_rng(1234).random(16 ** 3, dtype=np.float32)  # fixed: noise is a function of position


def value_noise(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Smooth 3-D value noise in [0,1] with unit feature size, periodic every 16 units; same shape as x."""
    out = 0.0
    corners = []
    weights = []
    for c in (x, y, z):
        f = np.floor(c)
        u = c - f
        i = f.astype(np.int64) & 15
        corners.append((i, (i + 1) & 15))
        weights.append(u * u * (3 - 2 * u))
    (x0, x1), (y0, y1), (z0, z1) = corners
    wx, wy, wz = weights
    for ix, fx in ((x0, 1 - wx), (x1, wx)):
        for iy, fy in ((y0, 1 - wy), (y1, wy)):
            for iz, fz in ((z0, 1 - wz), (z1, wz)):
                out = out + _LATTICE[(ix * 16 + iy) * 16 + iz] * (fx * fy * fz)
    return out


@dataclass
class Texture(Params):
    """An albedo pattern fixed in object coordinates: ``kind`` is plain, stripes, checker or noise.

    Colours are linear RGB in [0,1]; ``scale`` is metres per stripe period / checker cell / noise feature;
    stripes vary along ``axis`` and are displaced by ``warp`` periods of noise (wood grain when > 0).
    """

    kind: str = "plain"
    color: tuple = (0.7, 0.7, 0.7)
    color2: tuple = (0.4, 0.4, 0.4)
    scale: float = 0.2
    axis: tuple = (1.0, 0.0, 0.0)
    warp: float = 0.0
    offset: tuple = (0.0, 0.0, 0.0)

    def __call__(self, q: np.ndarray) -> np.ndarray:
        """Albedo (3,M) float32 at object-frame points q (3,M), metres."""
        c0 = np.asarray(self.color, np.float32)[:, None]
        if self.kind == "plain":
            return np.broadcast_to(c0, q.shape).astype(np.float32)
        x, y, z = (q + np.asarray(self.offset, np.float32)[:, None]) / np.float32(self.scale)
        if self.kind == "stripes":
            a = np.asarray(self.axis, np.float32)
            s = a[0] * x + a[1] * y + a[2] * z
            if self.warp:
                s = s + self.warp * value_noise(x * 0.5, y * 0.5, z * 0.5)
            m = (s - np.floor(s) < 0.5).astype(np.float32)
        elif self.kind == "checker":
            m = ((np.floor(x) + np.floor(y) + np.floor(z)) % 2).astype(np.float32)
        elif self.kind == "noise":
            m = np.clip(0.7 * value_noise(x, y, z) + 0.5 * value_noise(2 * x, 2 * y, 2 * z) - 0.1, 0, 1)
        else:
            raise DepthforgeError(f"synth: unknown texture kind {self.kind!r}")
        c1 = np.asarray(self.color2, np.float32)[:, None]
        return (c0 + (c1 - c0) * m).astype(np.float32)


def _color(rng, kind: str) -> tuple:
    """A linear-RGB albedo: 'wall' (pale), 'wood', 'neutral' (white/grey/black) or 'any'."""
    if kind == "wall":
        hsv = rng.uniform(0, 1), rng.uniform(0.02, 0.25), rng.uniform(0.65, 0.95)
    elif kind == "wood":
        hsv = rng.uniform(0.05, 0.11), rng.uniform(0.4, 0.75), rng.uniform(0.25, 0.75)
    elif kind == "neutral":
        hsv = rng.uniform(0, 1), rng.uniform(0, 0.08), rng.choice([rng.uniform(0.05, 0.2), rng.uniform(0.5, 0.95)])
    else:
        hsv = rng.uniform(0, 1), rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.95)
    return tuple(c ** 2.2 for c in colorsys.hsv_to_rgb(*hsv))  # picked in display space, stored linear


def darker(rng, c: tuple, lo: float = 0.45, hi: float = 0.85) -> tuple:
    return tuple(v * rng.uniform(lo, hi) for v in c)


def random_texture(rng, palette: str = "any", kinds=("plain", "stripes", "checker", "noise"), p=None,
             scale=(0.04, 0.3), warp: float = 0.0) -> Texture:
    kind = str(rng.choice(kinds, p=p))
    c0 = _color(rng, palette)
    c1 = darker(rng, c0) if kind != "checker" or rng.random() < 0.5 else _color(rng, "any")
    axis = [(1, 0, 0), (0, 1, 0), (0, 0, 1)][rng.integers(3)] if rng.random() < 0.7 else rng.normal(size=3)
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return Texture(kind, c0, c1, float(np.exp(rng.uniform(*np.log(scale)))), tuple(axis), warp,
                   tuple(rng.uniform(0, 16, 3)))


def wood_texture(rng, along: tuple = (1.0, 0.0, 0.0)) -> Texture:
    c0 = _color(rng, "wood")
    return Texture("stripes", c0, darker(rng, c0, 0.6, 0.85), float(rng.uniform(0.01, 0.04)), along,
                   float(rng.uniform(1.0, 3.0)), tuple(rng.uniform(0, 16, 3)))

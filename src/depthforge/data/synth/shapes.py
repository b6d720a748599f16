"""The primitives a room is built of: intersection, normals and object-frame coordinates (exact, vectorised).

Vectors are stored component-first, ``(3, ...)``, so that every intersection is plain elementwise numpy over
all pixels at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .params import EPS, Params
from .textures import Texture


class Shape(Params):
    """A surface. intersect(o, d) -> t: o is a point (3,) or points (3,...), d directions (3,...) of any length;
    t (...) float32 is the smallest ray parameter > EPS with o + t*d on the surface, inf where the ray misses.
    normal_at(p) -> (3,M) unit normals at surface points p (3,M); local(p) -> (3,M) object-frame coordinates
    (where the texture is fixed); bounds() -> world AABB (lo, hi), or None when unbounded."""

    casts_shadow = True

    def local(self, p):
        return p

    def albedo(self, p):
        """Linear RGB albedo (3,M) at surface points p (3,M)."""
        return self.texture(self.local(p))

    def bounds(self):
        return None


def _nearest(tnear: np.ndarray, tfar: np.ndarray) -> np.ndarray:
    """First hit > EPS of a convex shape entered at tnear and left at tfar (inf where tfar < tnear)."""
    t = np.where(tnear > EPS, tnear, tfar)
    return np.where((tfar >= tnear) & (t > EPS), t, np.float32(np.inf)).astype(np.float32)


@dataclass
class Plane(Shape):
    """The infinite plane through ``point`` with ``normal``."""

    point: tuple
    normal: tuple
    texture: Texture = field(default_factory=Texture)

    def __post_init__(self):
        super().__post_init__()
        self.normal = tuple(float(v) for v in np.asarray(self.normal) / np.linalg.norm(self.normal))

    def intersect(self, o, d):
        n = np.asarray(self.normal, np.float32)
        dist = float(np.dot(n, np.asarray(self.point, np.float32)))
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (dist - (n[0] * o[0] + n[1] * o[1] + n[2] * o[2])) / (n[0] * d[0] + n[1] * d[1] + n[2] * d[2])
        return np.where(t > EPS, t, np.float32(np.inf)).astype(np.float32)

    def normal_at(self, p):
        return np.broadcast_to(np.asarray(self.normal, np.float32)[:, None], p.shape)


@dataclass
class Box(Shape):
    """A box with ``half`` extents (x, y, z), turned by ``yaw`` radians about the vertical through ``center``."""

    center: tuple
    half: tuple
    yaw: float = 0.0
    texture: Texture = field(default_factory=Texture)

    def _rotate(self, x, y, z, inverse=True):
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        if inverse:  # world -> local
            return c * x - s * z, y, s * x + c * z
        return c * x + s * z, y, -s * x + c * z

    def local(self, p):
        cx, cy, cz = self.center
        return np.stack(self._rotate(p[0] - cx, p[1] - cy, p[2] - cz))

    def intersect(self, o, d):
        cx, cy, cz = self.center
        lo = self._rotate(o[0] - cx, o[1] - cy, o[2] - cz)
        ld = self._rotate(*d)
        tnear, tfar = -np.inf, np.inf
        with np.errstate(divide="ignore", invalid="ignore"):
            for oi, di, hi in zip(lo, ld, self.half):
                inv = 1 / di
                t1, t2 = (-hi - oi) * inv, (hi - oi) * inv
                tnear = np.maximum(tnear, np.minimum(t1, t2))
                tfar = np.minimum(tfar, np.maximum(t1, t2))
            return _nearest(tnear, tfar)

    def normal_at(self, p):
        q = self.local(p)
        h = np.asarray(self.half, np.float32)[:, None]
        axis = np.argmax(np.abs(q) / h, axis=0)
        cols = np.arange(q.shape[1])
        n = np.zeros_like(q)
        n[axis, cols] = np.sign(q[axis, cols])
        return np.stack(self._rotate(*n, inverse=False))

    def bounds(self):
        hx, hy, hz = self.half
        c, s = abs(math.cos(self.yaw)), abs(math.sin(self.yaw))
        ext = np.array([c * hx + s * hz, hy, s * hx + c * hz])
        return np.asarray(self.center) - ext, np.asarray(self.center) + ext


@dataclass
class Sphere(Shape):
    """A ball of ``radius`` metres around ``center``."""

    center: tuple
    radius: float
    texture: Texture = field(default_factory=Texture)

    def intersect(self, o, d):
        ox, oy, oz = (o[i] - self.center[i] for i in range(3))
        a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
        b = d[0] * ox + d[1] * oy + d[2] * oz
        c = ox * ox + oy * oy + oz * oz - self.radius ** 2
        disc = b * b - a * c
        with np.errstate(invalid="ignore", divide="ignore"):
            q = -(b + np.copysign(np.sqrt(disc), b))  # the stable pair of roots: q/a and c/q
            r1, r2 = q / a, c / q
            return _nearest(np.minimum(r1, r2), np.maximum(r1, r2))

    def normal_at(self, p):
        return (p - np.asarray(self.center, np.float32)[:, None]) / np.float32(self.radius)

    def local(self, p):
        return p - np.asarray(self.center, np.float32)[:, None]

    def bounds(self):
        return np.asarray(self.center) - self.radius, np.asarray(self.center) + self.radius


@dataclass
class Cylinder(Shape):
    """An upright, capped cylinder: axis through ``base`` (x, y0, z) going up ``height``."""

    base: tuple
    height: float
    radius: float
    texture: Texture = field(default_factory=Texture)

    def intersect(self, o, d):
        bx, y0, bz = self.base
        y1 = y0 + self.height
        ox, oy, oz = o[0] - bx, o[1], o[2] - bz
        a = d[0] * d[0] + d[2] * d[2]
        b = d[0] * ox + d[2] * oz
        c = ox * ox + oz * oz - self.radius ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            q = -(b + np.copysign(np.sqrt(b * b - a * c), b))
            r1, r2 = q / a, c / q
            side_in, side_out = np.minimum(r1, r2), np.maximum(r1, r2)
            side_in = np.where(a > 0, side_in, -np.inf)  # vertical rays: inside the circle or missing it
            side_out = np.where(a > 0, side_out, np.where(c <= 0, np.inf, -np.inf))
            inv = 1 / d[1]
            t1, t2 = (y0 - oy) * inv, (y1 - oy) * inv
            tnear = np.maximum(side_in, np.minimum(t1, t2))
            tfar = np.minimum(side_out, np.maximum(t1, t2))
            return _nearest(tnear, tfar)

    def normal_at(self, p):
        bx, y0, bz = self.base
        rx, rz = (p[0] - bx) / self.radius, (p[2] - bz) / self.radius
        cap_top = np.abs(p[1] - (y0 + self.height)) < 1e-4 * max(1.0, self.height)
        cap_bottom = np.abs(p[1] - y0) < 1e-4 * max(1.0, self.height)
        on_cap = (cap_top | cap_bottom) & (rx * rx + rz * rz < 1 - 1e-3)
        ny = np.where(cap_top, 1.0, -1.0)
        n = np.stack([np.where(on_cap, 0, rx), np.where(on_cap, ny, 0), np.where(on_cap, 0, rz)])
        return (n / np.linalg.norm(n, axis=0)).astype(np.float32)

    def local(self, p):
        return p - np.asarray(self.base, np.float32)[:, None]

    def bounds(self):
        bx, y0, bz = self.base
        r = self.radius
        return np.array([bx - r, y0, bz - r]), np.array([bx + r, y0 + self.height, bz + r])


@dataclass
class Room(Shape):
    """The inside of the box [0,W]x[0,H]x[0,D] (``size`` = W, H, D); rays must start inside it.

    ``walls`` are the textures of the walls at x=0, x=W, z=0, z=D, in world coordinates.
    """

    size: tuple
    floor: Texture = field(default_factory=Texture)
    ceiling: Texture = field(default_factory=Texture)
    walls: tuple = (Texture(), Texture(), Texture(), Texture())
    casts_shadow = False  # lights are inside the room

    def intersect(self, o, d):
        t = np.float32(np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            for oi, di, si in zip(o, d, self.size):
                inv = 1 / di
                t = np.minimum(t, np.maximum(-oi * inv, (si - oi) * inv))
        return np.where(t > EPS, t, np.float32(np.inf)).astype(np.float32)

    def _face(self, p):
        """Face index per point: 0..5 = x=0, x=W, y=0 (floor), y=H (ceiling), z=0, z=D."""
        half = np.asarray(self.size, np.float32)[:, None] / 2
        q = (p - half) / half
        axis = np.argmax(np.abs(q), axis=0)
        return axis * 2 + (q[axis, np.arange(p.shape[1])] > 0)

    def normal_at(self, p):
        face = self._face(p)
        n = np.zeros_like(p)
        n[face // 2, np.arange(p.shape[1])] = np.where(face % 2 == 0, 1.0, -1.0)  # pointing into the room
        return n

    def albedo(self, p):
        face = self._face(p)
        out = np.empty_like(p)
        textures = (self.walls[0], self.walls[1], self.floor, self.ceiling, self.walls[2], self.walls[3])
        for i, tex in enumerate(textures):
            sel = np.flatnonzero(face == i)
            if sel.size:
                out[:, sel] = tex(p[:, sel])
        return out

"""Built-in synthetic indoor scenes: a small numpy ray caster with exact ground-truth depth.

Each scene is a room (floor, ceiling, four walls) with furniture-like boxes, spheres and cylinders, seen by a
pinhole camera with the NYU-Depth v2 intrinsics, lit by one or two point lights with cast shadows and ambient
light. Sample ``i`` of a split is drawn from its own seed, so it is the same on every machine and the splits
never share one.

Frames. World: metres, y up, the floor at y=0; a room is the box [0,W]x[0,H]x[0,D]. Camera: OpenCV axes
(x right, y down, z forward). A primary ray is scaled so that its camera-z component is 1, so the ray parameter
``t`` of a hit *is* its depth (z along the optical axis). Vectors are stored component-first, ``(3, ...)``, so
that every intersection is plain elementwise numpy over all pixels at once.
"""
from __future__ import annotations

import colorsys
import math
import time
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset
from tqdm import tqdm

from ..errors import DepthforgeError
from . import register
from ..files import write_bytes, write_depth_png, write_image
from .sample import NYU_INTRINSICS_640, make_sample, scale_intrinsics

SPLITS = {"train": 0, "val": 1, "test": 2}
SEED_TAG = 0x5E7D  # part of every scene's seed; change it when the generator changes what a seed draws
EPS = 1e-4  # smallest ray parameter counted as a hit
SHADOW_BIAS = 1e-3  # metres; shadow rays start this far off the surface
BACKGROUND = 0.0  # image value where a ray hits nothing (only in hand-made scenes without a room)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.number))


class _Params:
    """Turns numeric dataclass fields into Python numbers (vectors into tuples): NumPy float64 scalars would
    turn every per-pixel float32 operation they touch into float64."""

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.number):
                setattr(self, f.name, v.item())
            elif isinstance(v, (tuple, list, np.ndarray)) and np.ndim(v) == 1 and all(_is_number(x) for x in v):
                setattr(self, f.name, tuple(x.item() if isinstance(x, np.number) else x for x in v))


# --------------------------------------------------------------------------------------------- textures

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
class Texture(_Params):
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


# ----------------------------------------------------------------------------------------------- shapes

class Shape(_Params):
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


# ----------------------------------------------------------------------------------------------- camera

def camera_rotation(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world rotation (3,3) float64 for a level camera turned by yaw (about world y), then tilted up by
    ``pitch`` and rolled by ``roll`` (radians). At yaw 0 the camera looks along world -z with x to the right."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz @ np.diag([1.0, -1.0, -1.0])  # OpenCV camera axes -> level world axes


@lru_cache(maxsize=8)
def _camera_rays(k: tuple, size: tuple) -> np.ndarray:
    h, w = size
    fx, cx, fy, cy = k[0], k[2], k[4], k[5]
    x = (np.arange(w, dtype=np.float64) - cx) / fx
    y = (np.arange(h, dtype=np.float64) - cy) / fy
    rays = np.stack([np.broadcast_to(x[None], (h, w)), np.broadcast_to(y[:, None], (h, w)), np.ones((h, w))])
    rays = rays.astype(np.float32)
    rays.flags.writeable = False
    return rays


def camera_rays(k: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Rays through the pixel centres, camera frame: (3,H,W) float32 with z = 1, so ``t`` along one is depth.

    k: intrinsics (3,3) in pixels at ``size`` (H, W); pixel (u, v) is at ((u-cx)/fx, (v-cy)/fy, 1).
    """
    return _camera_rays(tuple(np.asarray(k, np.float64).ravel()), (int(size[0]), int(size[1])))


@dataclass
class Camera(_Params):
    """Pinhole camera: ``position`` (3,) metres, ``rotation`` (3,3) camera-to-world, ``k`` (3,3) at ``size``."""

    position: tuple
    rotation: np.ndarray
    k: np.ndarray
    size: tuple


@dataclass
class Light(_Params):
    """A point light: irradiance ``intensity * cos / distance^2`` (per RGB channel) on a surface it sees."""

    position: tuple
    intensity: tuple


@dataclass
class Scene:
    camera: Camera
    shapes: list
    lights: list = field(default_factory=list)
    ambient: float = 0.3


def _rotate(r: np.ndarray, v: np.ndarray) -> np.ndarray:
    """r (3,3) applied to vectors v (3,...) in v's precision, without BLAS (it would use more than one core)."""
    r = np.asarray(r).tolist()
    return np.stack([r[i][0] * v[0] + r[i][1] * v[1] + r[i][2] * v[2] for i in range(3)])


def _screen_window(shape, cam: Camera):
    """Pixel rectangle (y0, y1, x0, x1) that holds the shape's image; None when it is off screen."""
    h, w = cam.size
    box = shape.bounds()
    if box is None:
        return 0, h, 0, w
    lo, hi = box
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    pc = (corners - np.asarray(cam.position)) @ np.asarray(cam.rotation)  # rows: camera-frame corners
    z = pc[:, 2]
    if (z <= 1e-3).all():
        return None
    if (z <= 1e-3).any():
        return 0, h, 0, w
    k = cam.k
    u = k[0, 0] * pc[:, 0] / z + k[0, 2]
    v = k[1, 1] * pc[:, 1] / z + k[1, 2]
    x0, x1 = max(0, int(np.floor(u.min())) - 1), min(w, int(np.ceil(u.max())) + 2)
    y0, y1 = max(0, int(np.floor(v.min())) - 1), min(h, int(np.ceil(v.max())) + 2)
    return (y0, y1, x0, x1) if x0 < x1 and y0 < y1 else None


def _bounding_sphere(shape):
    box = shape.bounds()
    if box is None:
        return None
    lo, hi = box
    return (lo + hi) / 2, float(np.linalg.norm(hi - lo) / 2)


def _shadowed(shapes, origin: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Whether the segments origin (3,M) -> light (3,) are blocked by a shape: (M,) bool.

    Each shape is tested only on the segments inside the cone from the light around its bounding sphere."""
    seg = light[:, None] - origin
    v = -seg  # light -> origin
    vlen = np.sqrt((v * v).sum(0))
    blocked = np.zeros(origin.shape[1], bool)
    for shape in shapes:
        if not shape.casts_shadow:
            continue
        sphere = _bounding_sphere(shape)
        if sphere is None:
            cand = np.flatnonzero(~blocked)
        else:
            c, r = sphere
            wv = (c - light).astype(np.float32)
            wlen = float(np.linalg.norm(wv))
            if wlen <= r:
                cand = np.flatnonzero(~blocked)
            else:
                cos_cone = math.sqrt(1 - (r / wlen) ** 2)
                dots = wv[0] * v[0] + wv[1] * v[1] + wv[2] * v[2]
                cand = np.flatnonzero((dots >= cos_cone * wlen * vlen) & (vlen >= wlen - r) & ~blocked)
        if cand.size:
            t = shape.intersect(origin[:, cand], seg[:, cand])
            blocked[cand[t < 1]] = True
    return blocked


def render(scene: Scene) -> dict:
    """Ray-cast a scene description.

    Returns {"image": (H,W,3) float32 sRGB in [0,1], "depth": (H,W) float32 metres along the optical axis (0 where
    no shape is hit), "normal": (H,W,3) float32 unit normals in the camera frame facing the camera, "shape":
    (H,W) int16 index into scene.shapes (-1: nothing)}.
    """
    cam = scene.camera
    h, w = cam.size
    rot = np.asarray(cam.rotation, np.float64)
    origin = np.asarray(cam.position, np.float32)
    d = _rotate(rot, camera_rays(cam.k, cam.size))
    t = np.full((h, w), np.inf, np.float32)
    ids = np.full((h, w), -1, np.int16)
    for i, shape in enumerate(scene.shapes):
        win = _screen_window(shape, cam)
        if win is None:
            continue
        y0, y1, x0, x1 = win
        ts = shape.intersect(origin, d[:, y0:y1, x0:x1])
        closer = ts < t[y0:y1, x0:x1]
        t[y0:y1, x0:x1][closer] = ts[closer]
        ids[y0:y1, x0:x1][closer] = i

    flat = ids.ravel()
    hit = np.flatnonzero(flat >= 0)
    dh = d.reshape(3, -1)[:, hit]
    p = origin[:, None] + t.ravel()[hit] * dh
    normal = np.empty_like(p)
    albedo = np.empty_like(p)
    order = np.argsort(flat[hit], kind="stable")
    bounds = np.cumsum(np.bincount(flat[hit], minlength=len(scene.shapes)))
    for i, shape in enumerate(scene.shapes):
        sel = order[(bounds[i - 1] if i else 0):bounds[i]]
        if sel.size:
            ps = p[:, sel]
            normal[:, sel] = shape.normal_at(ps)
            albedo[:, sel] = shape.albedo(ps)
    normal *= np.where((normal * dh).sum(0) > 0, -1, 1).astype(np.float32)  # face the camera (planes' backs)

    light_sum = np.full_like(p, scene.ambient)
    for light in scene.lights:
        lp = np.asarray(light.position, np.float32)
        to_light = lp[:, None] - p
        dist2 = (to_light * to_light).sum(0)
        cos = (normal * to_light).sum(0) / np.sqrt(dist2)
        lit = np.flatnonzero(cos > 0)
        start = p[:, lit] + SHADOW_BIAS * normal[:, lit]
        visible = ~_shadowed(scene.shapes, start, lp)
        irradiance = cos[lit] / np.maximum(dist2[lit], 0.25) * visible
        light_sum[:, lit] += np.asarray(light.intensity, np.float32)[:, None] * irradiance

    image = np.full((3, h * w), BACKGROUND, np.float32)
    # Soft exposure (bright spots roll off instead of clipping), then display gamma.
    image[:, hit] = (1 - np.exp(-1.5 * albedo * light_sum)) ** np.float32(1 / 2.2)
    depth = np.where(np.isfinite(t), t, 0).astype(np.float32)
    normal_map = np.zeros((3, h * w), np.float32)
    normal_map[:, hit] = _rotate(rot.T, normal)
    return {"image": np.ascontiguousarray(image.reshape(3, h, w).transpose(1, 2, 0)), "depth": depth,
            "normal": np.ascontiguousarray(normal_map.reshape(3, h, w).transpose(1, 2, 0)), "shape": ids}


# ---------------------------------------------------------------------------------------- sensor model

def kinect_holes(depth: np.ndarray, normal: np.ndarray, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Kinect-like depth: holes (0) and depth-dependent noise added to an exact depth map.

    depth (H,W) metres, normal (H,W,3) camera-frame unit normals, k (3,3) intrinsics at that size.
    Holes: out of range (< 0.45 m or beyond 7-10 m), grazing surfaces (> ~82 deg), the projector's shadow beside
    near edges (7.5 cm baseline), mixed pixels at depth jumps, and a few random blobs. Noise: axial sigma
    0.0012 + 0.0019 (z - 0.4)^2 m (Nguyen et al. 2012). Returns float32 (H,W), 0 = invalid.
    """
    h, w = depth.shape
    rays = camera_rays(k, (h, w))
    cos = np.abs((normal.transpose(2, 0, 1) * rays).sum(0)) / np.sqrt((rays * rays).sum(0))
    bad = (depth < 0.45) | (depth > rng.uniform(7.0, 10.0)) | (cos < 0.14)
    # The projector sits to one side of the IR camera: a near edge hides the pattern from the background for
    # f * b * (1/z_near - 1/z_far) pixels beside it.
    disparity = k[0, 0] * 0.075 / np.maximum(depth, 1e-3)
    for s in range(1, int(k[0, 0] * 0.075 * (1 / 0.45 - 1 / 10)) + 1):
        bad[:, s:] |= disparity[:, :-s] - disparity[:, s:] > s
    # Mixed pixels where depth jumps: dropped at random on both sides.
    jump = np.zeros_like(bad)
    for axis, before, after in ((1, np.s_[:, :-1], np.s_[:, 1:]), (0, np.s_[:-1], np.s_[1:])):
        j = np.abs(np.diff(depth, axis=axis)) > 0.04 * np.minimum(depth[before], depth[after]) + 0.02
        jump[before] |= j
        jump[after] |= j
    bad |= jump & (rng.random((h, w)) < 0.6)
    # Blobs: dark, shiny or transparent spots the sensor cannot read (peaks of smooth noise).
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / np.float32(w * rng.uniform(0.08, 0.15))
    ox, oy, oz = rng.uniform(0, 16, 3)
    bad |= value_noise(xx + ox, yy + oy, np.full_like(xx, oz)) > rng.uniform(0.86, 0.95)
    noisy = depth + rng.standard_normal((h, w)).astype(np.float32) * (0.0012 + 0.0019 * (depth - 0.4) ** 2)
    return np.where(bad | (noisy <= 0), 0, noisy).astype(np.float32)


# -------------------------------------------------------------------------------------- random scenes

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


def _shade(rng, c: tuple, lo: float = 0.45, hi: float = 0.85) -> tuple:
    return tuple(v * rng.uniform(lo, hi) for v in c)


def _texture(rng, palette: str = "any", kinds=("plain", "stripes", "checker", "noise"), p=None,
             scale=(0.04, 0.3), warp: float = 0.0) -> Texture:
    kind = str(rng.choice(kinds, p=p))
    c0 = _color(rng, palette)
    c1 = _shade(rng, c0) if kind != "checker" or rng.random() < 0.5 else _color(rng, "any")
    axis = [(1, 0, 0), (0, 1, 0), (0, 0, 1)][rng.integers(3)] if rng.random() < 0.7 else rng.normal(size=3)
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return Texture(kind, c0, c1, float(np.exp(rng.uniform(*np.log(scale)))), tuple(axis), warp,
                   tuple(rng.uniform(0, 16, 3)))


def _wood(rng, along: tuple = (1.0, 0.0, 0.0)) -> Texture:
    c0 = _color(rng, "wood")
    return Texture("stripes", c0, _shade(rng, c0, 0.6, 0.85), float(rng.uniform(0.01, 0.04)), along,
                   float(rng.uniform(1.0, 3.0)), tuple(rng.uniform(0, 16, 3)))


class _Layout:
    """Floor footprints (circles) and support tops, so that new objects stand clear of others and the camera."""

    def __init__(self, rng, room: tuple, cam_xz: np.ndarray, yaw: float, hfov: float):
        self.rng, self.room, self.cam, self.hfov = rng, room, cam_xz, hfov
        self.forward = np.array([-math.sin(yaw), -math.cos(yaw)])  # camera's look direction in (x, z)
        self.circles: list[tuple[float, float, float]] = []
        self.on_walls: list[tuple[float, float, float]] = []  # pictures and doors
        self.tops: list[dict] = []  # horizontal box tops things can rest on

    def _in_view(self) -> np.ndarray:
        """A floor point (x, z) inside the camera's horizontal field of view, between it and the walls."""
        a = math.atan2(self.forward[1], self.forward[0]) + self.rng.uniform(-0.55, 0.55) * self.hfov
        ray = np.array([math.cos(a), math.sin(a)])
        with np.errstate(divide="ignore"):
            to_wall = np.max([-self.cam / ray, (np.asarray(self.room)[[0, 2]] - self.cam) / ray], axis=0).min()
        return self.cam + self.rng.uniform(0.8, max(1.0, to_wall)) * ray

    def _free(self, x: float, z: float, r: float, clearance: float = 0.7, in_room: bool = True) -> bool:
        w, _, d = self.room
        if in_room and not (r <= x <= w - r and r <= z <= d - r):
            return False
        if math.hypot(x - self.cam[0], z - self.cam[1]) < r + clearance:
            return False
        return all(math.hypot(x - cx, z - cz) >= r + cr for cx, cz, cr in self.circles)

    def spot(self, r: float):
        """A free floor point (x, z) for an object of footprint radius r, mostly in view; None if none found."""
        w, _, d = self.room
        for _ in range(25):
            x, z = self._in_view() if self.rng.random() < 0.8 else self.rng.uniform([0, 0], [w, d])
            if self._free(x, z, r):
                self.circles.append((x, z, r))
                return x, z
        return None

    def wall_spot(self, width: float, depth: float, hangs: bool = False):
        """Against a wall: (x, z, yaw, inward normal (x, z)) for a width x depth footprint, or None.

        Things that ``hangs`` (pictures, doors) only keep clear of each other, not of furniture."""
        w, _, d = self.room
        for _ in range(25):
            x, z = self._in_view() if self.rng.random() < 0.8 else self.rng.uniform([0, 0], [w, d])
            x, z = min(max(x, 0.0), w), min(max(z, 0.0), d)
            gaps = [x, w - x, z, d - z]
            wall = int(np.argmin(gaps))
            normal = [(1, 0), (-1, 0), (0, 1), (0, -1)][wall]
            off = depth / 2 + 0.01
            if wall < 2:
                x, z, yaw = (off if wall == 0 else w - off), min(max(z, width / 2), d - width / 2), math.pi / 2
            else:
                x, z, yaw = min(max(x, width / 2), w - width / 2), (off if wall == 2 else d - off), 0.0
            r = math.hypot(width, depth) / 2
            if hangs:
                if all(math.hypot(x - cx, z - cz) >= r + cr for cx, cz, cr in self.on_walls):
                    self.on_walls.append((x, z, r))
                    return x, z, yaw, normal
            elif self._free(x, z, r * 0.9, in_room=False):  # (x, z) is already against the wall
                self.circles.append((x, z, r * 0.9))
                return x, z, yaw, normal
        return None

    def add_top(self, y: float, center: tuple, hx: float, hz: float, yaw: float):
        self.tops.append({"y": y, "center": center, "hx": hx, "hz": hz, "yaw": yaw, "items": []})

    def top_spot(self, r: float):
        """A free point (x, y, z) on some support top for an item of radius r; None if none found."""
        for _ in range(10):
            if not self.tops:
                return None
            top = self.tops[self.rng.integers(len(self.tops))]
            if top["hx"] < r or top["hz"] < r:
                continue
            lx, lz = self.rng.uniform(-1, 1, 2) * (top["hx"] - r, top["hz"] - r)
            c, s = math.cos(top["yaw"]), math.sin(top["yaw"])
            x, z = top["center"][0] + c * lx + s * lz, top["center"][1] - s * lx + c * lz
            if all(math.hypot(x - ix, z - iz) >= r + ir for ix, iz, ir in top["items"]):
                top["items"].append((x, z, r))
                return x, top["y"], z
        return None


def _rot_xz(yaw: float, lx: float, lz: float) -> tuple[float, float]:
    c, s = math.cos(yaw), math.sin(yaw)
    return c * lx + s * lz, -s * lx + c * lz


def _furniture(kind: str, rng, lay: _Layout, room: tuple) -> list:
    """The primitives of one object of ``kind`` placed in the room (empty if it found no room)."""
    u = rng.uniform
    yaw_any = u(0, math.pi) if rng.random() < 0.3 else float(rng.integers(4)) * math.pi / 2
    if kind == "cabinet":  # also wardrobes, shelves, fridges
        wd, dp, ht = u(0.4, 1.6), u(0.3, 0.65), u(0.5, min(2.2, room[1] - 0.3))
        at = lay.wall_spot(wd, dp)
        if at is None:
            return []
        x, z, yaw, _ = at
        tex = _wood(rng, (0, 1, 0)) if rng.random() < 0.5 else _texture(rng, "neutral", ("plain", "noise"))
        if ht < 1.4:
            lay.add_top(ht, (x, z), wd / 2, dp / 2, yaw)
        return [Box((x, ht / 2, z), (wd / 2, ht / 2, dp / 2), yaw, tex)]
    if kind == "sofa":  # also beds
        wd, dp, ht = u(1.4, 2.2), u(0.8, 2.0), u(0.3, 0.5)
        at = lay.wall_spot(wd, dp)
        if at is None:
            return []
        x, z, yaw, (nx, nz) = at
        tex = _texture(rng, "any", ("plain", "noise", "stripes"), p=(0.4, 0.4, 0.2), scale=(0.02, 0.15))
        back_t, back_h = u(0.12, 0.25), u(0.3, 0.6)
        bx, bz = x - nx * (dp / 2 - back_t / 2), z - nz * (dp / 2 - back_t / 2)
        return [Box((x, ht / 2, z), (wd / 2, ht / 2, dp / 2), yaw, tex),
                Box((bx, (ht + back_h) / 2, bz), (wd / 2, (ht + back_h) / 2, back_t / 2), yaw, tex)]
    if kind == "table":
        wd, dp, ht, th = u(0.7, 1.8), u(0.5, 1.0), u(0.68, 0.78), u(0.025, 0.06)
        at = lay.spot(math.hypot(wd, dp) / 2)
        if at is None:
            return []
        x, z = at
        top = _wood(rng) if rng.random() < 0.6 else _texture(rng, "any", ("plain", "checker", "noise"))
        leg_tex = _texture(rng, "neutral", ("plain",))
        lay.add_top(ht, (x, z), wd / 2, dp / 2, yaw_any)
        prims = [Box((x, ht - th / 2, z), (wd / 2, th / 2, dp / 2), yaw_any, top)]
        r, inset = u(0.015, 0.035), u(0.04, 0.1)
        round_legs = rng.random() < 0.5
        for sx in (-1, 1):
            for sz in (-1, 1):
                ox, oz = _rot_xz(yaw_any, sx * (wd / 2 - inset), sz * (dp / 2 - inset))
                lh = ht - th
                prims.append(Cylinder((x + ox, 0.0, z + oz), lh, r, leg_tex) if round_legs else
                             Box((x + ox, lh / 2, z + oz), (r, lh / 2, r), yaw_any, leg_tex))
        return prims
    if kind == "chair":
        s, ht = u(0.38, 0.5), u(0.42, 0.48)
        at = lay.spot(s * 0.75)
        if at is None:
            return []
        x, z = at
        yaw = u(0, 2 * math.pi)
        tex = _wood(rng) if rng.random() < 0.5 else _texture(rng, "any", ("plain", "noise"))
        prims = [Box((x, ht - 0.025, z), (s / 2, 0.025, s / 2), yaw, tex)]
        r = u(0.012, 0.025)
        for sx in (-1, 1):
            for sz in (-1, 1):
                ox, oz = _rot_xz(yaw, sx * (s / 2 - 0.03), sz * (s / 2 - 0.03))
                prims.append(Cylinder((x + ox, 0.0, z + oz), ht - 0.05, r, tex))
        bh = u(0.35, 0.5)
        ox, oz = _rot_xz(yaw, 0.0, -(s / 2 - 0.02))
        prims.append(Box((x + ox, ht + bh / 2, z + oz), (s / 2, bh / 2, 0.02), yaw, tex))
        return prims
    if kind == "crate":  # boxes, possibly stacked
        wd, dp, ht = u(0.3, 0.8), u(0.3, 0.8), u(0.2, 0.8)
        at = lay.spot(math.hypot(wd, dp) / 2)
        if at is None:
            return []
        x, z = at
        prims = [Box((x, ht / 2, z), (wd / 2, ht / 2, dp / 2), yaw_any, _texture(rng))]
        if rng.random() < 0.4:
            w2, d2, h2 = wd * u(0.5, 0.95), dp * u(0.5, 0.95), u(0.15, 0.5)
            prims.append(Box((x, ht + h2 / 2, z), (w2 / 2, h2 / 2, d2 / 2), yaw_any + u(-0.3, 0.3), _texture(rng)))
            ht += h2
            wd, dp = w2, d2
        if ht < 1.3:
            lay.add_top(ht, (x, z), wd / 2, dp / 2, prims[-1].yaw)
        return prims
    if kind == "ball":
        r = u(0.1, 0.35)
        at = lay.spot(r)
        return [] if at is None else [Sphere((at[0], r, at[1]), r, _texture(rng))]
    if kind == "round":  # stools, bins, side tables, pillars
        pillar = rng.random() < 0.15
        r = u(0.1, 0.3) if pillar else u(0.12, 0.5)
        ht = room[1] if pillar else u(0.3, 0.9)
        at = lay.spot(r)
        if at is None:
            return []
        tex = _texture(rng, "wall" if pillar else "any")
        return [Cylinder((at[0], 0.0, at[1]), ht, r, tex)]
    if kind == "lamp":  # a pole with a base and a shade
        shade_r, pole_h = u(0.12, 0.25), u(1.1, 1.7)
        at = lay.spot(shade_r)
        if at is None:
            return []
        x, z = at
        metal = _texture(rng, "neutral", ("plain",))
        shade = _texture(rng, "wall", ("plain", "noise"))
        prims = [Cylinder((x, 0.0, z), u(0.015, 0.04), u(0.1, 0.18), metal),
                 Cylinder((x, 0.0, z), pole_h, u(0.01, 0.022), metal)]
        if rng.random() < 0.5:
            prims.append(Sphere((x, pole_h + shade_r * 0.8, z), shade_r * 0.8, shade))
        else:
            prims.append(Cylinder((x, pole_h - 0.05, z), u(0.18, 0.3), shade_r, shade))
        return prims
    if kind == "picture":  # pictures, windows and doors on a wall
        door = rng.random() < 0.25
        wd = u(0.75, 0.95) if door else u(0.3, 1.5)
        ht = u(1.95, min(2.2, room[1] - 0.1)) if door else u(0.3, 1.0)
        dp = u(0.02, 0.05)
        at = lay.wall_spot(wd, dp, hangs=True)
        if at is None:
            return []
        x, z, yaw, _ = at
        y = ht / 2 if door else u(0.9, room[1] - 0.15 - ht) + ht / 2
        tex = _wood(rng, (0, 1, 0)) if door else _texture(rng, "any", scale=(0.02, 0.2))
        return [Box((x, y, z), (wd / 2, ht / 2, dp / 2), yaw, tex)]
    if kind == "rug":
        wd, dp = u(1.0, 3.0), u(0.8, 2.0)
        x, z = lay._in_view()
        if not (wd / 2 < x < room[0] - wd / 2 and dp / 2 < z < room[2] - dp / 2):
            return []
        return [Box((x, 0.005, z), (wd / 2, 0.005, dp / 2), yaw_any, _texture(rng, scale=(0.03, 0.3)))]
    if kind == "item":  # something small on a table, cabinet or box
        shape = rng.choice(["book", "vase", "ball"])
        r = u(0.04, 0.18)
        at = lay.top_spot(r)
        if at is None:
            return []
        x, y, z = at
        if shape == "ball":
            return [Sphere((x, y + r, z), r, _texture(rng))]
        if shape == "vase":
            return [Cylinder((x, y, z), u(0.08, 0.4), r * 0.7, _texture(rng))]
        ht = u(0.03, 0.3)
        yaw = u(0, math.pi)
        if rng.random() < 0.5:
            lay.add_top(y + ht, (x, z), r * 0.7, r * 0.7, yaw)
        return [Box((x, y + ht / 2, z), (r * 0.7, ht / 2, r * 0.7), yaw, _texture(rng, scale=(0.02, 0.1)))]
    raise ValueError(kind)


FURNITURE = {"cabinet": 0.14, "table": 0.12, "chair": 0.07, "sofa": 0.07, "crate": 0.11, "ball": 0.07,
             "round": 0.1, "lamp": 0.06, "picture": 0.08, "rug": 0.04, "item": 0.14}


def random_scene(rng: np.random.Generator, k: np.ndarray, size: tuple[int, int]) -> Scene:
    """A random furnished room and a camera inside it looking into the room (k: intrinsics at size)."""
    u = rng.uniform
    room = (u(3, 8), u(2.5, 3.2), u(3, 10))
    w, hgt, d = room
    hfov = 2 * math.atan(size[1] / 2 / float(k[0, 0]))
    # Camera: random yaw, placed so that most of the room lies ahead of it.
    for _ in range(100):
        yaw = u(0, 2 * math.pi)
        pos = u([0.3, 0.3], [w - 0.3, d - 0.3])
        fwd = np.array([-math.sin(yaw), -math.cos(yaw)])
        with np.errstate(divide="ignore"):
            ahead = min(np.max([(0 - pos) / fwd, ((w, d) - pos) / fwd], axis=0))
            behind = min(np.max([(0 - pos) / -fwd, ((w, d) - pos) / -fwd], axis=0))
        if ahead >= max(2.0, 0.6 * (ahead + behind)):
            break
    cam_y = u(1.0, 1.8)
    rotation = camera_rotation(yaw, pitch=math.radians(u(-15, 6)), roll=math.radians(u(-4, 4)))
    camera = Camera((pos[0], cam_y, pos[1]), rotation, np.asarray(k, np.float32), tuple(size))

    walls_base = _texture(rng, "wall", ("plain", "stripes", "noise"), p=(0.6, 0.2, 0.2), scale=(0.05, 0.4))
    if walls_base.kind == "stripes":
        walls_base.axis = (math.sqrt(0.5), 0.0, math.sqrt(0.5))  # vertical stripes on every wall
    walls = [walls_base] * 4
    if rng.random() < 0.3:
        walls[rng.integers(4)] = _texture(rng, "any", ("plain", "noise"))  # an accent wall
    floor_kind = rng.choice(["wood", "tiles", "carpet", "plain"], p=(0.4, 0.25, 0.2, 0.15))
    if floor_kind == "wood":
        floor = _wood(rng, (1.0, 0.0, 0.0) if rng.random() < 0.5 else (0.0, 0.0, 1.0))
        floor.scale = float(u(0.08, 0.2))
        floor.warp = float(u(0.1, 0.4))
    elif floor_kind == "tiles":
        floor = _texture(rng, "neutral", ("checker",), scale=(0.25, 0.6))
    else:
        floor = _texture(rng, "any" if floor_kind == "carpet" else "neutral", ("noise",) if floor_kind == "carpet"
                         else ("plain",), scale=(0.02, 0.2))
    ceiling = Texture("plain", _shade(rng, (0.85, 0.85, 0.85), 0.8, 1.0))
    shapes: list = [Room(room, floor, ceiling, tuple(walls))]

    lay = _Layout(rng, room, pos, yaw, hfov)
    kinds, probs = list(FURNITURE), np.array(list(FURNITURE.values()))
    chosen = rng.choice(kinds, size=rng.integers(3, 16), p=probs / probs.sum())
    for kind in sorted(chosen, key=lambda kind: kind == "item"):  # supports first, then what rests on them
        shapes += _furniture(str(kind), rng, lay, room) or _furniture("picture", rng, lay, room)  # no room: hang one

    lights = []
    total = u(0.9, 1.6) * hgt ** 2  # roughly this irradiance on the floor below a light
    n_lights = 1 if rng.random() < 0.6 else 2
    warmth = u(-0.1, 0.15)
    for _ in range(n_lights):
        for _ in range(20):
            lp = np.array([u(0.4, w - 0.4), hgt - u(0.05, 0.4), u(0.4, d - 0.4)])
            if not any(b is not None and (b[0] - 0.05 <= lp).all() and (lp <= b[1] + 0.05).all()
                       for b in (s.bounds() for s in shapes)):
                break
        tint = np.array([1 + warmth, 1.0, 1 - warmth])
        lights.append(Light(tuple(lp), tuple(total / n_lights * tint)))
    return Scene(camera, shapes, lights, ambient=float(u(0.12, 0.3)))


def scene_rng(index: int, split: str = "train") -> np.random.Generator:
    """The generator of scene ``index`` of ``split``: its own seed, the same on every machine."""
    if split not in SPLITS:
        raise DepthforgeError(f"synth: unknown split {split!r} (known: {', '.join(SPLITS)})")
    if int(index) < 0:
        raise DepthforgeError(f"synth: scene index must be >= 0, got {index}")
    return np.random.default_rng(np.random.SeedSequence([SEED_TAG, SPLITS[split], int(index)]))


def _check_size(size) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise DepthforgeError(f"synth: size must be (H, W), got {size!r}") from None
    if h < 8 or w < 8:
        raise DepthforgeError(f"synth: size must be at least 8x8, got {h}x{w}")
    return h, w


def synth_intrinsics(size: tuple[int, int]) -> np.ndarray:
    """NYU-Depth v2 intrinsics (3,3) float32 scaled from 640x480 to ``size`` (H, W)."""
    h, w = size
    return scale_intrinsics(NYU_INTRINSICS_640, h / 480, w / 640)


def render_scene(index: int, split: str = "train", size=(240, 320), holes: bool = False) -> dict:
    """Scene ``index`` of ``split``: {"image": (H,W,3) float32 in [0,1], "depth": (H,W) float32 metres along the
    optical axis (valid everywhere; with ``holes``, Kinect-like holes are 0 and valid depth is noisy),
    "intrinsics": (3,3) float32 at this size}."""
    size = _check_size(size)
    rng = scene_rng(index, split)
    k = synth_intrinsics(size)
    out = render(random_scene(rng, k, size))
    depth = kinect_holes(out["depth"], out["normal"], k, rng) if holes else out["depth"]
    return {"image": out["image"], "depth": depth, "intrinsics": k}


# ------------------------------------------------------------------------------------ dataset and files

@register("synth")
class SynthDataset(Dataset):
    """``n`` synthetic rooms of ``split`` at ``size`` (H, W), rendered on first use.

    Images are kept as 8 bits, like a camera's and like the files ``write_dataset`` writes. With ``cache`` each
    rendered sample is kept in memory (about 0.55 MB at 240x320), per DataLoader worker process.
    """

    def __init__(self, split: str = "train", n: int = 1000, size=(240, 320), holes: bool = False,
                 cache: bool = True, **_: object):
        scene_rng(0, split)  # checks the split
        if int(n) < 1:
            raise DepthforgeError(f"synth: n must be >= 1, got {n}")
        self.split, self.n, self.size, self.holes = split, int(n), _check_size(size), bool(holes)
        self.cache: dict[int, tuple] | None = {} if cache else None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        if not -self.n <= i < self.n:
            raise IndexError(f"synth: index {i} out of range for {self.n} scenes")
        i %= self.n
        arrays = self.cache.get(i) if self.cache is not None else None
        if arrays is None:
            s = render_scene(i, self.split, self.size, self.holes)
            arrays = (np.round(s["image"] * 255).astype(np.uint8), s["depth"], s["intrinsics"])
            if self.cache is not None:
                self.cache[i] = arrays
        image, depth, k = arrays
        return make_sample(image.astype(np.float32) / 255, depth, f"synth-{self.split}-{i:05d}", k)


def write_dataset(out, n: int, size=(240, 320), split: str = "train", holes: bool = False,
                  progress: bool = True) -> Path:
    """Render scenes 0..n-1 of ``split`` to ``out`` in the folder format (``folder`` dataset) and return ``out``:
    ``rgb/NNNNN.png`` (8-bit RGB), ``depth/NNNNN.png`` (16-bit millimetres, 0 = invalid), ``intrinsics.txt``."""
    out = Path(out)
    size = _check_size(size)
    scene_rng(0, split)
    if int(n) < 1:
        raise DepthforgeError(f"synth: number of scenes must be >= 1, got {n}")
    k = synth_intrinsics(size)
    write_bytes(out / "intrinsics.txt", f"{k[0, 0]:.6f} {k[1, 1]:.6f} {k[0, 2]:.6f} {k[1, 2]:.6f}\n".encode())
    for i in tqdm(range(int(n)), desc=f"rendering {split} scenes", unit="scene", disable=not progress):
        s = render_scene(i, split, size, holes)
        write_image(out / "rgb" / f"{i:05d}.png", s["image"])
        write_depth_png(out / "depth" / f"{i:05d}.png", s["depth"])
    return out


def render_rate(size=(240, 320), n: int = 20) -> float:
    """Scenes rendered per second at ``size`` in this process (after one warm-up scene)."""
    render_scene(0, "test", size)
    start = time.perf_counter()
    for i in range(n):
        render_scene(i + 1, "test", size)
    return n / (time.perf_counter() - start)

"""The ray caster: pinhole camera, first hits, point lights with cast shadows, and shading.

Frames. World: metres, y up, the floor at y=0. Camera: OpenCV axes (x right, y down, z forward). A primary ray
is scaled so that its camera-z component is 1, so the ray parameter ``t`` of a hit *is* its depth (z along the
optical axis).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .params import Params

SHADOW_BIAS = 1e-3  # metres; shadow rays start this far off the surface
BACKGROUND = 0.0  # image value where a ray hits nothing (only in hand-made scenes without a room)


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
class Camera(Params):
    """Pinhole camera: ``position`` (3,) metres, ``rotation`` (3,3) camera-to-world, ``k`` (3,3) at ``size``."""

    position: tuple
    rotation: np.ndarray
    k: np.ndarray
    size: tuple


@dataclass
class Light(Params):
    """A point light: irradiance ``intensity * cos / distance^2`` (per RGB channel) on a surface it sees."""

    position: tuple
    intensity: tuple


@dataclass
class Scene:
    """What ``render`` draws. ``objects``: for each shape, the number of the piece it belongs to (0 = the room),
    where known (random rooms); empty otherwise."""

    camera: Camera
    shapes: list
    lights: list = field(default_factory=list)
    ambient: float = 0.3
    objects: list = field(default_factory=list)


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


def world_rays(cam: Camera) -> np.ndarray:
    """Primary ray directions (3,H,W) float32 in world axes, scaled so that ``t`` along one is depth."""
    return _rotate(np.asarray(cam.rotation, np.float64), camera_rays(cam.k, cam.size))


def primary_hits(shapes: list, cam: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First hits of the camera's pixel rays: (directions (3,H,W) float32 as ``world_rays``, t (H,W) float32 =
    depth in metres (inf: nothing hit), ids (H,W) int16 index into ``shapes`` (-1: nothing))."""
    h, w = cam.size
    origin = np.asarray(cam.position, np.float32)
    d = world_rays(cam)
    t = np.full((h, w), np.inf, np.float32)
    ids = np.full((h, w), -1, np.int16)
    for i, shape in enumerate(shapes):
        win = _screen_window(shape, cam)
        if win is None:
            continue
        y0, y1, x0, x1 = win
        ts = shape.intersect(origin, d[:, y0:y1, x0:x1])
        closer = ts < t[y0:y1, x0:x1]
        t[y0:y1, x0:x1][closer] = ts[closer]
        ids[y0:y1, x0:x1][closer] = i
    return d, t, ids


def first_hits(shapes: list, origin: np.ndarray, d: np.ndarray, skip=()) -> tuple[np.ndarray, np.ndarray]:
    """First hits of any rays: origins (3,M) or (3,), directions (3,M) -> (t (M,) float32 in units of |d|,
    inf where nothing is hit; ids (M,) int16 index into ``shapes``, -1 for none). Shapes whose index is in
    ``skip`` are transparent to these rays."""
    t = np.full(d.shape[1:], np.inf, np.float32)
    ids = np.full(d.shape[1:], -1, np.int16)
    for i, shape in enumerate(shapes):
        if i in skip:
            continue
        ts = shape.intersect(origin, d)
        closer = ts < t
        t[closer] = ts[closer]
        ids[closer] = i
    return t, ids


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
    d, t, ids = primary_hits(scene.shapes, cam)

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

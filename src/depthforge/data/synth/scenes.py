"""Random rooms, one per (split, index), and rendering them: the default synthetic scenes.

Each scene is a room (floor, ceiling, four walls) with furniture-like boxes, spheres and cylinders, seen by a
pinhole camera with the NYU-Depth v2 intrinsics, lit by one or two point lights with cast shadows and ambient
light. Sample ``i`` of a split is drawn from its own seed, so it is the same on every machine and the splits
never share one.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ...errors import DepthforgeError
from ..sample import NYU_INTRINSICS_640, scale_intrinsics
from .furniture import FURNITURE, build
from .layout import RoomLayout
from .raycast import Camera, Light, Scene, camera_rotation, render
from .sensor import kinect_holes
from .shapes import Room
from .textures import Texture, darker, random_texture, wood_texture

SPLITS = {"train": 0, "val": 1, "test": 2}
SEED_TAG = 0x5E7D  # part of every scene's seed; change it when the generator changes what a seed draws


def _camera_in_room(rng: np.random.Generator, k: np.ndarray, size: tuple[int, int]):
    """A room size (W, H, D) and a camera in it looking into the room -> (room, camera, (x, z), yaw, hfov)."""
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
    return room, camera, pos, yaw, hfov


def random_scene(rng: np.random.Generator, k: np.ndarray, size: tuple[int, int], mix: dict | None = None,
                 count: tuple[int, int] = (3, 16), extras: Callable | None = None) -> Scene:
    """A random furnished room and a camera inside it looking into the room (k: intrinsics at size).

    ``mix``: relative frequency of each furniture kind (default ``FURNITURE``, today's rooms); ``count``: the
    number of pieces is drawn from [lo, hi); ``extras(rng, lay, room) -> list of objects (lists of shapes)``
    places a suite's own objects first (the furniture fits around them). ``Scene.objects`` tells which piece each shape belongs to.
    """
    u = rng.uniform
    room, camera, pos, yaw, hfov = _camera_in_room(rng, k, size)
    w, hgt, d = room
    walls_base = random_texture(rng, "wall", ("plain", "stripes", "noise"), p=(0.6, 0.2, 0.2), scale=(0.05, 0.4))
    if walls_base.kind == "stripes":
        walls_base.axis = (math.sqrt(0.5), 0.0, math.sqrt(0.5))  # vertical stripes on every wall
    walls = [walls_base] * 4
    if rng.random() < 0.3:
        walls[rng.integers(4)] = random_texture(rng, "any", ("plain", "noise"))  # an accent wall
    floor_kind = rng.choice(["wood", "tiles", "carpet", "plain"], p=(0.4, 0.25, 0.2, 0.15))
    if floor_kind == "wood":
        floor = wood_texture(rng, (1.0, 0.0, 0.0) if rng.random() < 0.5 else (0.0, 0.0, 1.0))
        floor.scale = float(u(0.08, 0.2))
        floor.warp = float(u(0.1, 0.4))
    elif floor_kind == "tiles":
        floor = random_texture(rng, "neutral", ("checker",), scale=(0.25, 0.6))
    else:
        floor = random_texture(rng, "any" if floor_kind == "carpet" else "neutral", ("noise",) if floor_kind == "carpet"
                         else ("plain",), scale=(0.02, 0.2))
    ceiling = Texture("plain", darker(rng, (0.85, 0.85, 0.85), 0.8, 1.0))
    shapes: list = [Room(room, floor, ceiling, tuple(walls))]

    objects = [0]
    lay = RoomLayout(rng, room, pos, yaw, hfov)
    mix = FURNITURE if mix is None else mix
    kinds, probs = list(mix), np.array(list(mix.values()))
    chosen = rng.choice(kinds, size=rng.integers(*count), p=probs / probs.sum())
    pieces = [] if extras is None else extras(rng, lay, room)
    for kind in sorted(chosen, key=lambda kind: kind == "item"):  # supports first, then what rests on them
        pieces.append(build(str(kind), rng, lay, room) or build("picture", rng, lay, room))  # no room: hang one
    for n, piece in enumerate(pieces, 1):
        shapes += piece
        objects += [n] * len(piece)

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
    return Scene(camera, shapes, lights, ambient=float(u(0.12, 0.3)), objects=objects)


def scene_rng(index: int, split: str = "train") -> np.random.Generator:
    """The generator of scene ``index`` of ``split``: its own seed, the same on every machine."""
    if split not in SPLITS:
        raise DepthforgeError(f"synth: unknown split {split!r} (known: {', '.join(SPLITS)})")
    if int(index) < 0:
        raise DepthforgeError(f"synth: scene index must be >= 0, got {index}")
    return np.random.default_rng(np.random.SeedSequence([SEED_TAG, SPLITS[split], int(index)]))


# Rendering takes ~220 bytes per pixel (measured: a 1024x1024 scene peaks 210 MB above a 256x256 one), so
# 4096x4096 needs ~3.5 GB and 20000x20000 would need ~90 GB.
MAX_SIDE = 4096


def check_size(size) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError, OverflowError):
        raise DepthforgeError(f"synth: size must be (H, W), got {size!r}") from None
    if h < 8 or w < 8:
        raise DepthforgeError(f"synth: size must be at least 8x8, got {h}x{w}")
    if h > MAX_SIDE or w > MAX_SIDE:
        raise DepthforgeError(f"synth: size must be at most {MAX_SIDE}x{MAX_SIDE}, got {h}x{w}")
    return h, w


def synth_intrinsics(size: tuple[int, int]) -> np.ndarray:
    """NYU-Depth v2 intrinsics (3,3) float32 scaled from 640x480 to ``size`` (H, W)."""
    h, w = size
    return scale_intrinsics(NYU_INTRINSICS_640, h / 480, w / 640)


RENDERERS = ("raycast", "mitsuba")


def check_renderer(renderer: str) -> str:
    if renderer not in RENDERERS:
        raise DepthforgeError(f"synth: unknown renderer {renderer!r} (known: {', '.join(RENDERERS)})")
    return renderer


def draw(scene: Scene, rng: np.random.Generator, renderer: str = "raycast", spp: int = 32) -> dict:
    """``raycast.render``'s dict for ``scene``, its image from ``renderer``: the ray caster's own, or Mitsuba's
    path tracer (``pathtrace.render_image``, the glass suite's look; the camera must have square pixels)."""
    out = render(scene)
    if check_renderer(renderer) == "mitsuba":
        from .pathtrace import render_image  # Mitsuba loads only when asked for

        out["image"] = render_image(scene, spp=spp, seed=int(rng.integers(2 ** 31)))
    return out


def camera_intrinsics(size: tuple[int, int], renderer: str = "raycast") -> np.ndarray:
    """``synth_intrinsics``; with fy = fx for Mitsuba, whose pinhole has square pixels (NYU's differ by 0.1 %)."""
    k = synth_intrinsics(size)
    if check_renderer(renderer) == "mitsuba":
        k[1, 1] = k[0, 0]
    return k


def render_scene(index: int, split: str = "train", size=(240, 320), holes: bool = False,
                 renderer: str = "raycast", spp: int = 32) -> dict:
    """Scene ``index`` of ``split``: {"image": (H,W,3) float32 in [0,1], "depth": (H,W) float32 metres along the
    optical axis (valid everywhere; with ``holes``, Kinect-like holes are 0 and valid depth is noisy),
    "intrinsics": (3,3) float32 at this size}. ``renderer``, ``spp``: see ``draw``."""
    size = check_size(size)
    rng = scene_rng(index, split)
    k = camera_intrinsics(size, renderer)
    out = draw(random_scene(rng, k, size), rng, renderer, spp)
    depth = kinect_holes(out["depth"], out["normal"], k, rng) if holes else out["depth"]
    return {"image": out["image"], "depth": depth, "intrinsics": k}
